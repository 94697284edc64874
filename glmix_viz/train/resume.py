"""Resuming a run: the optimiser and progress state beside ``last.safetensors`` (plain tensors and numbers, read
back with ``weights_only=True``), written atomically after every epoch."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
import torch.nn as nn

from glmix_viz.errors import CheckpointError
from glmix_viz.models.loading import load_state_dict
from glmix_viz.train.config import LOG_FILE, STATE_FILE, TrainConfig

__all__ = ["Progress", "save_state", "finished_piece", "resume"]


@dataclass
class Progress:
    """Where a run stands: epochs done, optimiser steps done, best validation score, one log entry per epoch."""

    epoch: int = 0
    step: int = 0
    best_map: float = -1.0
    history: List[Dict[str, Any]] = field(default_factory=list)

    def summary(self, seconds: float, out: Path) -> Dict[str, Any]:
        """The run summary :func:`~glmix_viz.train.train` returns (empty when no epoch was done)."""
        if not self.history:
            return {}
        return {"epochs_done": self.history[-1]["epoch"], "final": self.history[-1], "best_val_map": self.best_map,
                "seconds": seconds, "out": str(out)}


def save_state(path: Path, optimizer: torch.optim.Optimizer, aux: Optional[nn.Module], progress: Progress) -> None:
    """Write the resume state atomically (a temporary file, then a rename)."""
    state = {
        "optimizer": optimizer.state_dict(),
        "epoch": torch.tensor(progress.epoch),
        "step": torch.tensor(progress.step),
        "best_map": torch.tensor(progress.best_map),
        "history_json": json.dumps(progress.history),
    }
    if aux is not None:
        state["aux"] = aux.state_dict()
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def finished_piece(config: TrainConfig, is_main: bool) -> Optional[Dict[str, Any]]:
    """The summary of a run already past ``stop_after_epoch`` (so the data need not be loaded), else None."""
    state_path = Path(config.out) / STATE_FILE
    if not (config.resume and config.stop_after_epoch and state_path.is_file()):
        return None
    done = torch.load(state_path, map_location="cpu", weights_only=True)
    if int(done["epoch"]) < config.stop_after_epoch:
        return None
    history = json.loads(done["history_json"])
    if is_main:
        print(f"{config.out}: already at epoch {int(done['epoch'])} (--stop-after-epoch {config.stop_after_epoch})")
    return {"epochs_done": int(done["epoch"]), "final": history[-1] if history else {},
            "best_val_map": float(done["best_map"]), "seconds": 0.0, "out": str(config.out)}


def resume(config: TrainConfig, model: nn.Module, optimizer: torch.optim.Optimizer, aux: Optional[nn.Module],
           is_main: bool) -> Progress:
    """Load the model, optimiser (and MIL heads) of ``out/last_*`` when resuming; else start the log afresh.

    Raises:
        CheckpointError: a state that does not fit the run.
    """
    out = Path(config.out)
    state_path = out / STATE_FILE
    if not (config.resume and state_path.is_file() and (out / "last.safetensors").is_file()):
        if is_main:
            (out / LOG_FILE).write_text("")
        return Progress()
    try:
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        model.load_state_dict(load_state_dict(out / "last.safetensors"), strict=True)
        optimizer.load_state_dict(state["optimizer"])
        if aux is not None and "aux" in state:
            aux.load_state_dict(state["aux"])
    except (RuntimeError, KeyError, ValueError) as error:
        raise CheckpointError(f"{state_path}: cannot resume this run ({str(error).splitlines()[0][:160]}); "
                              "use another --out or --no-resume") from None
    progress = Progress(int(state["epoch"]), int(state["step"]), float(state["best_map"]),
                        json.loads(state["history_json"]))
    if is_main:
        print(f"resuming {out} at epoch {progress.epoch + 1}/{config.epochs}", flush=True)
    return progress
