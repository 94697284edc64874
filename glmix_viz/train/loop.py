"""The training loop itself: set up, resume, then one epoch and one validate-and-save at a time."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Dict

import torch.distributed as dist

from glmix_viz.train.config import CONFIG_FILE, TrainConfig
from glmix_viz.train.epoch import train_one_epoch
from glmix_viz.runtime.distributed import start_process, stop_process
from glmix_viz.train.resume import finished_piece, resume, run_summary
from glmix_viz.train.setup import build_run
from glmix_viz.train.validate import validate_and_save

__all__ = ["train"]


def train(config: TrainConfig) -> Dict[str, Any]:
    """Train (or resume) a run; return its summary (epochs done, final and best validation mAP, timing).

    Raises:
        DataError: bad data folder or splits.
        CheckpointError: unreadable ``init`` checkpoint or a ``last_state.pt`` that does not fit the run.
    """
    process = start_process(config.device, config.threads)
    is_main = process.is_main
    Path(config.out).mkdir(parents=True, exist_ok=True)
    done = finished_piece(config, is_main)
    if done is not None:  # nothing to do in this piece: skip loading the data
        return done
    run = build_run(config, process)
    progress = resume(config, run.model, run.optimizer, run.aux, is_main, run.proto)
    if is_main:
        (run.out / CONFIG_FILE).write_text(json.dumps(dict(run.record, input_size=run.size), indent=2) + "\n")
    started = time.perf_counter()
    for epoch in range(progress.epoch, config.epochs):
        if config.stop_after_epoch and epoch >= config.stop_after_epoch:
            if is_main:
                print(f"stopping after epoch {epoch} as asked (--stop-after-epoch); run again without it to go on",
                      flush=True)
            break
        entry = train_one_epoch(run, progress, epoch)
        if process.world > 1:
            dist.barrier()
        if is_main:
            validate_and_save(run, progress, entry)
        if process.world > 1:
            dist.barrier()
        if config.max_minutes > 0 and time.perf_counter() - started > 60 * config.max_minutes:
            if is_main:
                print(f"stopping after epoch {epoch + 1}: time limit of {config.max_minutes} min reached", flush=True)
            break
    summary = run_summary(progress, time.perf_counter() - started, run.out)
    stop_process(process)
    return summary
