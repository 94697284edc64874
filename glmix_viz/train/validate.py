"""After each epoch: validation mAP, the checkpoints (``last`` and ``best``), the resume state and the log line."""

from __future__ import annotations

from typing import Any, Dict, Tuple

import numpy as np
import torch
import torch.nn as nn

from glmix_viz.models.loading import save_checkpoint
from glmix_viz.runtime.resume import BEST_WEIGHTS, LAST_WEIGHTS, Progress, save_progress
from glmix_viz.train.config import TERM_LOG_NAMES
from glmix_viz.train.data import LoadedSplit, normalize_batch
from glmix_viz.scoring.classification import mean_average_precision
from glmix_viz.train.setup import Run

__all__ = ["predict_scores", "validate_and_save"]


@torch.no_grad()
def predict_scores(model: nn.Module, split: LoadedSplit, device: torch.device, batch_size: int = 128,
                   amp: bool = True) -> Tuple[np.ndarray, np.ndarray]:
    """Sigmoid scores (N, K) of every image of a split, and its labels (N, K)."""
    was_training = model.training
    model.eval()
    scores = []
    for images, _ in split.batches(range(len(split)), batch_size, drop_last=False):
        inputs = normalize_batch(images.to(device, non_blocking=True))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda"):
            logits = model(inputs)
        scores.append(torch.sigmoid(logits.float()).cpu())
    model.train(was_training)
    return torch.cat(scores).numpy(), split.labels.numpy()


def validate_and_save(run: Run, progress: Progress, entry: Dict[str, Any]) -> None:
    """Validate (when the run has a validation split), record ``entry`` in ``progress`` and write every file.

    ``best.safetensors`` is rewritten when the validation mAP (without validation: minus the training loss) beats
    the best so far. Rank 0 only.
    """
    config, out = run.config, run.out
    if run.val_set is not None:
        scores, targets = predict_scores(run.model, run.val_set, run.process.device, amp=config.amp)
        entry["val_map"], per_class = mean_average_precision(scores, targets)
        entry["val_ap"] = {name: round(float(ap), 4) for name, ap in zip(run.class_names, per_class)}
    progress.history.append(entry)
    progress.epoch = entry["epoch"]
    current = entry.get("val_map", -entry["train_loss"])
    extra = {"train": dict(run.record, input_size=run.size, epoch=entry["epoch"]),
             "input_size": [3, run.size, run.size],
             "metrics": {k: entry[k] for k in ("val_map", "train_loss") if k in entry}}
    save = dict(variant=config.model, model_args=run.overrides, class_names=run.class_names, extra=extra)
    save_checkpoint(run.model, out / LAST_WEIGHTS, **save)
    if current > progress.best:
        progress.best = current
        save_checkpoint(run.model, out / BEST_WEIGHTS, **save)
    save_progress(out, run.optimizer, progress, {"aux": run.aux, "proto": run.proto})
    message = f"epoch {entry['epoch']}/{config.epochs} loss {entry['train_loss']:.4f}"
    message += "".join(f" {name} {entry[name]:.4f}" for name in TERM_LOG_NAMES.values() if name in entry)
    if "val_map" in entry:
        message += f" val mAP {entry['val_map']:.4f}"
    print(message + f" ({entry['images_per_s']:.0f} img/s, {entry['seconds']:.1f} s)", flush=True)
