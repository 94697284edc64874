"""Held-out evaluation of a classifier's slots, measured like a paper: one function for the benchmarks, the
experiments and the notebooks.

:func:`heldout_evaluation` scores a model on a split with instance masks (a ``make-shapes`` set of a seed
never used for training or selection):

* classification mAP over all images (:func:`glmix_viz.scoring.classification.mean_average_precision`);
* the foreground ARI of every GLMix block's hard grouping per image (:mod:`glmix_viz.grouping`, images with at least
  ``min_instances`` objects), beside its two controls: an untrained copy of the same architecture, block by block,
  and the block's slot-initialisation grid;
* paired differences over the images, each with a bootstrap interval (:mod:`glmix_viz.scoring.stats`): every block
  against its own untrained control; the best block (highest mean ARI) against the best control (the highest mean of
  any untrained block and any grid);
* the metrics of the object-centric literature per block (``report["objects"]``, :mod:`glmix_viz.grouping`): mean
  best overlap at the instance and class level (images with at least one object), the same after merging the
  block's slots to K = 2..8 groups, and the data-set-level semantic mIoU of k-means clusters of the slot features
  (over every image of the split), each beside the untrained copy (and the grid for mBO), with the slot count. The
  semantic mIoU's interval resamples images with the clustering held fixed.

:func:`compare_models` gives the paired differences of two reports on the same split (e.g. a model against its
BCE-only control): per block, and the classification mAP (a paired bootstrap over images).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

from glmix_viz.data.registry import open_split
from glmix_viz.grouping import (
    ObjectScores,
    load_grouping_samples,
    per_image_block_scores,
    per_image_object_scores,
    untrained_copy,
)
from glmix_viz.scoring.classification import mean_average_precision
from glmix_viz.scoring.grouping import semantic_miou
from glmix_viz.scoring.stats import DEFAULT_RESAMPLES, image_bootstrap, paired_difference, paired_miou_difference
from glmix_viz.train import load_split, predict_scores

__all__ = ["object_report", "object_report_from_scores", "heldout_evaluation", "compare_models", "strip_per_image"]


def _semantic(scores: ObjectScores, name: str, clusters: int, seed: int) -> Optional[Tuple[Any, np.ndarray]]:
    """Semantic mIoU of one block and its per-image confusions, or None without class maps or with too few slots."""
    block = scores.blocks[name]
    if block.overlaps.shape[0] != block.features.shape[0] or block.features.shape[0] < clusters:
        return None
    result = semantic_miou(block.features, block.overlaps, clusters=clusters, seed=seed, background=scores.background)
    return result, result.per_image_confusion(block.overlaps, block.slot_image, len(scores.ids))


def _block_objects(trained: ObjectScores, control: ObjectScores, name: str, clusters: int, boot: Dict[str, Any],
                   control_name: str = "untrained") -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """The object-centric entry of one block (model, control, grid, paired) and its per-image arrays."""
    mine, theirs = trained.blocks[name], control.blocks[name]
    mean = lambda values: float(np.nanmean(values))  # noqa: E731
    other, versus = control_name, f"vs_{control_name}"
    entry: Dict[str, Any] = {"slots": mine.num_slots, "size": list(mine.size),
                             "regions": {"trained": float(mine.regions.mean()), other: float(theirs.regions.mean())}}
    entry["mbo"] = {level: {"trained": mean(mine.mbo[level]), other: mean(theirs.mbo[level]),
                            "grid": mean(mine.grid[level]), "grid_regions": mine.num_slots,
                            versus: paired_difference(mine.mbo[level], theirs.mbo[level], **boot),
                            "images": int(np.sum(~np.isnan(mine.mbo[level])))}
                    for level in mine.mbo}
    entry["merged"] = {level: {str(k): {"trained": mean(values), other: mean(theirs.merged[level][k]),
                                        "regions": float(mine.merged_regions[k].mean()),
                                        f"{other}_regions": float(theirs.merged_regions[k].mean()),
                                        versus: paired_difference(values, theirs.merged[level][k], **boot)}
                               for k, values in by_k.items()}
                       for level, by_k in mine.merged.items()}
    per_image: Dict[str, Any] = {"mbo": {level: values.tolist() for level, values in mine.mbo.items()}}
    semantic = _semantic(trained, name, clusters, boot["seed"]), _semantic(control, name, clusters, boot["seed"])
    entry["semantic"] = None
    if semantic[0] is not None and semantic[1] is not None:
        (result, confusion), (reference, reference_confusion) = semantic
        entry["semantic"] = {"trained": result.miou, other: reference.miou, "clusters": clusters,
                             "slots": result.slots, f"{other}_slots": reference.slots,
                             "iou": [None if np.isnan(v) else float(v) for v in result.iou],
                             versus: paired_miou_difference(confusion, reference_confusion, **boot)}
        per_image["semantic_confusion"] = confusion.tolist()
    return entry, per_image


def object_report_from_scores(trained: ObjectScores, control: ObjectScores, *, clusters: Optional[int] = None,
                              control_name: str = "untrained", resamples: int = DEFAULT_RESAMPLES,
                              seed: int = 0) -> Dict[str, Any]:
    """:func:`object_report` from scores already made (:func:`glmix_viz.grouping.per_image_object_scores` of a
    model and of its control on the same images); the control's numbers are keyed by ``control_name`` and the
    paired differences by ``"vs_<control_name>"``.

    Raises:
        ValueError: the two were not scored on the same images.
    """
    if trained.ids != control.ids:
        raise ValueError("the model and its control were not scored on the same images")
    clusters = clusters or trained.num_classes
    boot = dict(resamples=resamples, seed=seed)
    blocks, per_image = {}, {}
    for name in trained.blocks:
        if name in control.blocks:
            blocks[name], per_image[name] = _block_objects(trained, control, name, clusters, boot, control_name)
    return {"blocks": blocks, "images": len(trained.ids), "clusters": clusters,
            "per_image": {"ids": trained.ids, "blocks": per_image}}


def object_report(model: nn.Module, samples: Sequence[Any], *, input_size: int, num_classes: int,
                  clusters: Optional[int] = None, control_seed: int = 0, batch_size: int = 64,
                  resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> Dict[str, Any]:
    """The object-centric metrics of every block of ``model`` beside its untrained copy (see the module docstring).

    Args:
        model: a GLNet.
        samples: :class:`~glmix_viz.grouping.GroupingSample` with instance and class maps.
        input_size: square input side.
        num_classes: classes of the class maps, background included.
        clusters: k-means clusters of the semantic mIoU (default ``num_classes``).
        control_seed: seed of the untrained copy's weights.
        batch_size: images per forward pass.
        resamples, seed: bootstrap settings (``seed`` also seeds k-means).

    Returns:
        ``{"blocks": {name: {"slots", "size", "regions", "mbo": {level: {...}}, "merged": {level: {K: {...}}},
        "semantic": {...} or None}}, "images", "clusters", "per_image": {"ids", "blocks": {name: ...}}}``.
    """
    kwargs = dict(input_size=input_size, num_classes=num_classes, batch_size=batch_size)
    trained = per_image_object_scores(model, samples, **kwargs)
    untrained = per_image_object_scores(untrained_copy(model, control_seed), samples, **kwargs)
    return object_report_from_scores(trained, untrained, clusters=clusters, resamples=resamples, seed=seed)


def _classification(model: nn.Module, root: str, split: str, size: int, device: torch.device) -> Dict[str, Any]:
    """mAP, per-class AP and the per-image scores and labels of a split."""
    data = load_split(root, split, size, workers=0)
    scores, targets = predict_scores(model, data, device)
    value, per_class = mean_average_precision(scores, targets)
    names = model.pretrained_cfg.get("label_names") or [str(k) for k in range(scores.shape[1])]
    return {"map": value, "ap": dict(zip(names, map(float, per_class))), "images": len(targets),
            "per_image": {"ids": list(data.split.ids), "scores": scores.tolist(), "targets": targets.tolist()}}


def heldout_evaluation(
    model: nn.Module,
    root: str,
    split: str = "val",
    *,
    input_size: Optional[int] = None,
    min_instances: int = 2,
    control_seed: int = 0,
    batch_size: int = 64,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    objects: bool = True,
    clusters: Optional[int] = None,
) -> Dict[str, Any]:
    """Classification and grouping of ``model`` on a held-out split, with both controls and paired intervals.

    Args:
        model: a GLNet classifier (multi-label head).
        root: a data set with instance masks (``make-shapes`` output: its ``SegmentationObject``).
        split: its split.
        input_size: square input side (default: the model's).
        min_instances: the grouping is scored on images with at least this many objects.
        control_seed: seed of the untrained control's weights.
        batch_size: images per forward pass of the grouping score.
        resamples, seed: bootstrap settings.
        objects: also report the object-centric metrics (:func:`object_report`; needs ``SegmentationClass``).
        clusters: k-means clusters of the semantic mIoU (default: the set's classes, background included).

    Returns:
        ``{"map", "ap", "images", "grouping": {"blocks": {name: {"trained", "untrained", "grid", "size",
        "vs_untrained": paired}}, "best_block", "best", "best_control", "margin": paired best block - best control,
        "worst_block", "worst_vs_untrained": paired, "images"}, "per_image": {...}}``; paired entries as
        :func:`~glmix_viz.scoring.stats.paired_difference`; with ``objects``, also ``"objects"``
        (:func:`object_report` without its per-image arrays, which go to ``per_image["objects"]``).
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
    if objects:
        found = object_report(model, samples, input_size=size, num_classes=open_split(root, split).num_classes,
                              clusters=clusters, control_seed=control_seed, batch_size=batch_size, **boot)
        report["per_image"]["objects"] = found.pop("per_image")
        report["objects"] = found
    return report


def compare_models(report: Dict[str, Any], other: Dict[str, Any], *, resamples: int = DEFAULT_RESAMPLES,
                   seed: int = 0) -> Dict[str, Any]:
    """Paired differences of two :func:`heldout_evaluation` reports of the same split (``report - other``).

    Returns:
        ``{"map": {"difference", "ci95"}, "blocks": {name: paired ARI difference}}``; when both reports carry the
        object-centric metrics, also ``"mbo": {name: {level: paired}}`` and ``"semantic": {name: paired mIoU
        difference or None}`` (blocks of the same name only).

    Raises:
        ValueError: the reports were not made on the same images.
    """
    mine, theirs = report["per_image"], other["per_image"]
    if mine["ids"] != theirs["ids"] or mine["grouping"]["ids"] != theirs["grouping"]["ids"]:
        raise ValueError("the two reports were not computed on the same images")
    targets = np.asarray(mine["targets"])
    a, b = np.asarray(mine["scores"]), np.asarray(theirs["scores"])

    def map_difference(weights: np.ndarray) -> np.ndarray:  # mAP of A minus mAP of B on the same resampled images
        return mean_average_precision(a, targets, weights)[0] - mean_average_precision(b, targets, weights)[0]

    low, high = image_bootstrap(len(targets), map_difference, resamples=resamples, seed=seed).pair()
    blocks = {name: paired_difference(values, theirs["grouping"]["trained"][name], resamples=resamples, seed=seed)
              for name, values in mine["grouping"]["trained"].items() if name in theirs["grouping"]["trained"]}
    result = {"map": {"difference": report["map"] - other["map"], "ci95": [low, high]},
              "blocks": blocks}
    if "objects" in mine and "objects" in theirs:
        result.update(_compare_objects(mine["objects"], theirs["objects"], resamples=resamples, seed=seed))
    return result


def _compare_objects(mine: Dict[str, Any], theirs: Dict[str, Any], **boot: Any) -> Dict[str, Any]:
    """Paired mBO and semantic-mIoU differences of the per-image object arrays of two reports."""
    if mine["ids"] != theirs["ids"]:
        raise ValueError("the two reports were not computed on the same images")
    shared = [name for name in mine["blocks"] if name in theirs["blocks"]]
    mbo = {name: {level: paired_difference(values, theirs["blocks"][name]["mbo"][level], **boot)
                  for level, values in mine["blocks"][name]["mbo"].items() if level in theirs["blocks"][name]["mbo"]}
           for name in shared}
    semantic = {}
    for name in shared:
        a, b = mine["blocks"][name].get("semantic_confusion"), theirs["blocks"][name].get("semantic_confusion")
        semantic[name] = None if a is None or b is None else paired_miou_difference(np.asarray(a), np.asarray(b),
                                                                                    **boot)
    return {"mbo": mbo, "semantic": semantic}


def strip_per_image(report: Dict[str, Any]) -> Dict[str, Any]:
    """A copy of a report without its per-image arrays (for small JSON files)."""
    return {key: value for key, value in report.items() if key != "per_image"}
