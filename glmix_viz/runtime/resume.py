"""Saving and resuming a training run: one set of file names and one resume state for both training loops.

A run folder holds (after timm's ``utils/checkpoint_saver.py``: last, best, and the state to recover from)::

    last.safetensors (+ .json)   the weights after the last finished epoch (written by the loop, in its format)
    best.safetensors (+ .json)   the weights of the best epoch so far
    last_state.pt                the resume state: optimiser, epoch, step, best score, the history, extra modules
    log.jsonl                    one JSON line per finished epoch (rewritten whole, atomically, after each epoch)

The state holds plain tensors, numbers and strings only, and is read back with ``torch.load(weights_only=True)``.
Runs written before the two loops shared this scheme still resume: the segmenter's ``last.state.pt`` and
``history.json`` are read when the new names are absent (:data:`OLD_STATE_FILES`, :data:`OLD_LOG_FILES`).
"""

from __future__ import annotations

import io
import json
import math
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch
import torch.nn as nn

from glmix_viz.errors import CheckpointError
from glmix_viz.files import save_bytes_atomic

__all__ = ["BEST_WEIGHTS", "LAST_WEIGHTS", "LOG_FILE", "OLD_LOG_FILES", "OLD_STATE_FILES", "STATE_FILE", "Progress",
           "load_state", "read_state", "save_progress", "start_log", "state_path"]

LAST_WEIGHTS = "last.safetensors"
BEST_WEIGHTS = "best.safetensors"
STATE_FILE = "last_state.pt"
LOG_FILE = "log.jsonl"
OLD_STATE_FILES = ("last.state.pt",)
"""Earlier names of the resume state (the segmenter's), read when :data:`STATE_FILE` is absent."""
OLD_LOG_FILES = ("history.json",)
"""Earlier names of the epoch log (the segmenter's JSON list), read when the state holds no history."""


@dataclass
class Progress:
    """Where a run stands: epochs done, optimiser steps done, the best score so far, one log entry per epoch."""

    epoch: int = 0
    step: int = 0
    best: float = -1.0
    history: List[Dict[str, Any]] = field(default_factory=list)


def state_path(out: Path) -> Optional[Path]:
    """The run's resume state: ``last_state.pt``, else an older name; None when there is none."""
    for name in (STATE_FILE, *OLD_STATE_FILES):
        if (Path(out) / name).is_file():
            return Path(out) / name
    return None


def _old_history(out: Path) -> List[Dict[str, Any]]:
    for name in OLD_LOG_FILES:
        if (out / name).is_file():
            return json.loads((out / name).read_text())
    if (out / LOG_FILE).is_file():
        return [json.loads(line) for line in (out / LOG_FILE).read_text().splitlines() if line.strip()]
    return []


def read_state(out: Path) -> Optional[Tuple[Dict[str, Any], Progress]]:
    """The raw resume state and the :class:`Progress` it records, or None when the run has no state.

    The history is the state's own; a state without one (older segmenter runs) takes ``history.json`` up to its
    epoch. The best score is the state's (``best_score``, or the classifier's earlier ``best_map``), else -1.

    Raises:
        CheckpointError: a state that cannot be read (one line).
    """
    path = state_path(Path(out))
    if path is None:
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        epoch, step = int(state["epoch"]), int(state["step"])
    except (RuntimeError, KeyError, ValueError, EOFError, OSError, pickle.UnpicklingError) as error:
        raise CheckpointError(f"{path}: cannot read the resume state ({str(error).splitlines()[0][:160]}); "
                              "use another --out or --no-resume") from None
    if "history_json" in state:
        history = json.loads(state["history_json"])
    else:
        history = [row for row in _old_history(Path(out)) if row["epoch"] <= epoch]
    best = state.get("best_score", state.get("best_map", -1.0))
    return state, Progress(epoch, step, float(best), history)


def load_state(state: Mapping[str, Any], path: Path, optimizer: torch.optim.Optimizer,
               modules: Optional[Mapping[str, nn.Module]] = None) -> None:
    """Load the optimiser and the extra modules (e.g. ``{"aux": heads}``) of a state read by :func:`read_state`.

    Raises:
        CheckpointError: a state that does not fit the run (one line).
    """
    try:
        optimizer.load_state_dict(state["optimizer"])
        for name, module in (modules or {}).items():
            if module is not None and name in state:
                module.load_state_dict(state[name])
    except (RuntimeError, KeyError, ValueError) as error:
        raise CheckpointError(f"{path}: cannot resume this run ({str(error).splitlines()[0][:160]}); "
                              "use another --out or --no-resume") from None


def save_progress(out: Path, optimizer: torch.optim.Optimizer, progress: Progress,
                  modules: Optional[Mapping[str, nn.Module]] = None) -> None:
    """Write ``last_state.pt`` and ``log.jsonl`` atomically (the loop writes the weights first)."""
    state: Dict[str, Any] = {
        "optimizer": optimizer.state_dict(),
        "epoch": torch.tensor(progress.epoch),
        "step": torch.tensor(progress.step),
        "best_score": torch.tensor(progress.best if math.isfinite(progress.best) else -1.0),
        "history_json": json.dumps(progress.history),
    }
    for name, module in (modules or {}).items():
        if module is not None:
            state[name] = module.state_dict()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    save_bytes_atomic(Path(out) / STATE_FILE, buffer.getvalue())
    save_bytes_atomic(Path(out) / LOG_FILE, "".join(json.dumps(row) + "\n" for row in progress.history).encode())


def start_log(out: Path) -> None:
    """A fresh run: an empty ``log.jsonl``."""
    save_bytes_atomic(Path(out) / LOG_FILE, b"")
