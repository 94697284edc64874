"""Held-out evaluation of a classifier's slots, measured like a paper: one function for the benchmarks, the
experiments and the notebooks.

:func:`heldout_evaluation` scores a model on a VOC-layout split with instance masks (a ``make-shapes`` set of a seed
never used for training or selection):

* classification mAP over all images (:func:`glmix_viz.train.mean_average_precision`);
* the foreground ARI of every GLMix block's hard grouping per image (:mod:`glmix_viz.grouping`, images with at least
  ``min_instances`` objects), beside its two controls: an untrained copy of the same architecture, block by block,
  and the block's slot-initialisation grid;
* paired differences over the images, each with a percentile-bootstrap confidence interval of the mean: every block
  against its own untrained control; the best block (highest mean ARI) against the best control (the highest mean of
  any untrained block and any grid).

:func:`compare_models` gives the paired differences of two reports on the same split (e.g. a model against its
BCE-only control): per block, and the classification mAP (a paired bootstrap over images).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

from glmix_viz.grouping import load_grouping_samples, per_image_block_scores, untrained_copy
from glmix_viz.train import load_split, mean_average_precision, predict_scores

__all__ = ["bootstrap_interval", "paired_difference", "heldout_evaluation", "compare_models", "strip_per_image"]


def bootstrap_interval(values: Sequence[float], *, level: float = 0.95, resamples: int = 2000, seed: int = 0,
                       statistic: Optional[Callable[[np.ndarray], np.ndarray]] = None) -> Tuple[float, float]:
    """Percentile-bootstrap confidence interval of the mean of ``values`` (NaNs dropped).

    Args:
        values: (N,) per-image values (e.g. paired differences).
        level: coverage of the interval.
        resamples: bootstrap resamples (with replacement, N each).
        seed: seed of the resampling.
        statistic: reduces a (R, N) array of resamples to (R,); default the mean over axis 1.

    Returns:
        (low, high); (NaN, NaN) without values.
    """
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    draws = values[rng.integers(0, values.size, size=(resamples, values.size))]
    stats = draws.mean(axis=1) if statistic is None else statistic(draws)
    low, high = np.quantile(stats, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(low), float(high)


def paired_difference(a: Sequence[float], b: Sequence[float], **bootstrap: Any) -> Dict[str, Any]:
    """Mean of the per-image differences ``a - b`` with its bootstrap interval (pairs with a NaN are dropped).

    Returns:
        ``{"mean": ..., "ci95": [low, high], "images": pairs used}``.
    """
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    diff = diff[~np.isnan(diff)]
    low, high = bootstrap_interval(diff, **bootstrap)
    return {"mean": float(diff.mean()) if diff.size else float("nan"), "ci95": [low, high], "images": int(diff.size)}


def _classification(model: nn.Module, root: str, split: str, size: int, device: torch.device) -> Dict[str, Any]:
    """mAP, per-class AP and the per-image scores and labels of a split."""
    data = load_split(root, split, size, workers=0)
    scores, targets = predict_scores(model, data, device)
    value, per_class = mean_average_precision(scores, targets)
    names = model.pretrained_cfg.get("label_names") or [str(k) for k in range(scores.shape[1])]
    return {"map": value, "ap": dict(zip(names, map(float, per_class))), "images": len(targets),
            "per_image": {"ids": list(data.voc.ids), "scores": scores.tolist(), "targets": targets.tolist()}}


def heldout_evaluation(
    model: nn.Module,
    root: str,
    split: str = "val",
    *,
    input_size: Optional[int] = None,
    min_instances: int = 2,
    control_seed: int = 0,
    batch_size: int = 64,
    resamples: int = 2000,
    seed: int = 0,
) -> Dict[str, Any]:
    """Classification and grouping of ``model`` on a held-out split, with both controls and paired intervals.

    Args:
        model: a GLNet classifier (multi-label head).
        root: VOC-layout set with ``SegmentationObject`` instance masks (``make-shapes`` output).
        split: its split.
        input_size: square input side (default: the model's).
        min_instances: the grouping is scored on images with at least this many objects.
        control_seed: seed of the untrained control's weights.
        batch_size: images per forward pass of the grouping score.
        resamples, seed: bootstrap settings.

    Returns:
        ``{"map", "ap", "images", "grouping": {"blocks": {name: {"trained", "untrained", "grid", "size",
        "vs_untrained": paired}}, "best_block", "best", "best_control", "margin": paired best block - best control,
        "worst_block", "worst_vs_untrained": paired, "images"}, "per_image": {...}}``; paired entries as
        :func:`paired_difference`.
    """
    device = next(model.parameters()).device
    size = input_size or model.pretrained_cfg["input_size"][-1]
    report = _classification(model, root, split, size, device)
    samples = load_grouping_samples(root, split)
    kwargs = dict(input_size=size, batch_size=batch_size, min_instances=min_instances)
    trained = per_image_block_scores(model, samples, **kwargs)
    untrained = per_image_block_scores(untrained_copy(model, control_seed), samples, **kwargs)
    boot = dict(resamples=resamples, seed=seed)
    blocks = {}
    for name in trained.trained:
        blocks[name] = {
            "trained": float(np.nanmean(trained.trained[name])),
            "untrained": float(np.nanmean(untrained.trained[name])),
            "grid": float(np.nanmean(trained.grid[name])), "size": list(trained.sizes[name]),
            "vs_untrained": paired_difference(trained.trained[name], untrained.trained[name], **boot)}
    controls = {f"untrained {n}": untrained.trained[n] for n in blocks}
    controls.update({f"grid {n}": trained.grid[n] for n in blocks})
    best = max(blocks, key=lambda n: blocks[n]["trained"])
    best_control = max(controls, key=lambda n: float(np.nanmean(controls[n])))
    worst = min(blocks, key=lambda n: blocks[n]["vs_untrained"]["mean"])
    report["grouping"] = {
        "blocks": blocks, "best_block": best, "best": {k: blocks[best][k] for k in ("trained", "untrained", "grid")},
        "best_control": {"name": best_control, "ari": float(np.nanmean(controls[best_control]))},
        "margin": paired_difference(trained.trained[best], controls[best_control], **boot),
        "worst_block": worst, "worst_vs_untrained": blocks[worst]["vs_untrained"], "images": len(trained.ids),
    }
    report["per_image"]["grouping"] = {"ids": trained.ids,
                                       "trained": {n: v.tolist() for n, v in trained.trained.items()},
                                       "untrained": {n: v.tolist() for n, v in untrained.trained.items()},
                                       "grid": {n: v.tolist() for n, v in trained.grid.items()}}
    return report


def compare_models(report: Dict[str, Any], other: Dict[str, Any], *, resamples: int = 2000,
                   seed: int = 0) -> Dict[str, Any]:
    """Paired differences of two :func:`heldout_evaluation` reports of the same split (``report - other``).

    Returns:
        ``{"map": {"difference", "ci95"}, "blocks": {name: paired ARI difference}}``.

    Raises:
        ValueError: the reports were not made on the same images.
    """
    mine, theirs = report["per_image"], other["per_image"]
    if mine["ids"] != theirs["ids"] or mine["grouping"]["ids"] != theirs["grouping"]["ids"]:
        raise ValueError("the two reports were not computed on the same images")
    targets = np.asarray(mine["targets"])
    a, b = np.asarray(mine["scores"]), np.asarray(theirs["scores"])
    rng = np.random.default_rng(seed)
    draws = [rng.integers(0, len(targets), len(targets)) for _ in range(resamples)]
    diffs = [mean_average_precision(a[i], targets[i])[0] - mean_average_precision(b[i], targets[i])[0] for i in draws]
    low, high = np.nanquantile(diffs, [0.025, 0.975])
    blocks = {name: paired_difference(values, theirs["grouping"]["trained"][name], resamples=resamples, seed=seed)
              for name, values in mine["grouping"]["trained"].items() if name in theirs["grouping"]["trained"]}
    return {"map": {"difference": report["map"] - other["map"], "ci95": [float(low), float(high)]},
            "blocks": blocks}


def strip_per_image(report: Dict[str, Any]) -> Dict[str, Any]:
    """A copy of a report without its per-image arrays (for small JSON files)."""
    return {key: value for key, value in report.items() if key != "per_image"}
