"""Resuming a classifier run on :mod:`glmix_viz.runtime.resume`: ``last.safetensors`` and ``last_state.pt``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

import torch
import torch.nn as nn

from glmix_viz.errors import CheckpointError
from glmix_viz.models.loading import load_state_dict
from glmix_viz.runtime.resume import LAST_WEIGHTS, Progress, load_state, read_state, start_log
from glmix_viz.train.config import TrainConfig

__all__ = ["finished_piece", "resume", "run_summary"]


def run_summary(progress: Progress, seconds: float, out: Path) -> Dict[str, Any]:
    """The run summary :func:`~glmix_viz.train.train` returns (empty when no epoch was done)."""
    if not progress.history:
        return {}
    return {"epochs_done": progress.history[-1]["epoch"], "final": progress.history[-1],
            "best_val_map": progress.best, "seconds": seconds, "out": str(out)}


def finished_piece(config: TrainConfig, is_main: bool) -> Optional[Dict[str, Any]]:
    """The summary of a run already past ``stop_after_epoch`` (so the data need not be loaded), else None."""
    if not (config.resume and config.stop_after_epoch):
        return None
    saved = read_state(Path(config.out))
    if saved is None or saved[1].epoch < config.stop_after_epoch:
        return None
    progress = saved[1]
    if is_main:
        print(f"{config.out}: already at epoch {progress.epoch} (--stop-after-epoch {config.stop_after_epoch})")
    return {"epochs_done": progress.epoch, "final": progress.history[-1] if progress.history else {},
            "best_val_map": progress.best, "seconds": 0.0, "out": str(config.out)}


def resume(config: TrainConfig, model: nn.Module, optimizer: torch.optim.Optimizer, aux: Optional[nn.Module],
           is_main: bool, proto: Optional[nn.Module] = None) -> Progress:
    """Load the model, optimiser (and MIL heads) of ``out/last_*`` when resuming; else start the log afresh.

    Raises:
        CheckpointError: a state that does not fit the run.
    """
    out = Path(config.out)
    saved = read_state(out) if config.resume and (out / LAST_WEIGHTS).is_file() else None
    if saved is None:
        if is_main:
            start_log(out)
        return Progress()
    state, progress = saved
    try:
        model.load_state_dict(load_state_dict(out / LAST_WEIGHTS), strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"{out / LAST_WEIGHTS}: cannot resume this run ({str(error).splitlines()[0][:160]}); "
                              "use another --out or --no-resume") from None
    load_state(state, out, optimizer, {"aux": aux, "proto": proto})
    if is_main:
        print(f"resuming {out} at epoch {progress.epoch + 1}/{config.epochs}", flush=True)
    return progress
