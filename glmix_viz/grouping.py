"""Class-free grouping of a model's slots, collected over a data set: do a GLMix block's slots pick out the objects?

This module runs the model and collects; the scores themselves live in :mod:`glmix_viz.scoring.grouping`.

For every GLMix block, the hard grouping (each pixel's most likely slot, ``GroupingRecord.hard``) is up-sampled to the
mask's resolution (nearest neighbour) and compared with the ground-truth object instances (``SegmentationObject``
masks, as ``make-shapes`` writes them; any split whose ``instances(id)`` has them) by the adjusted Rand index over
the foreground pixels only
(:func:`~glmix_viz.scoring.grouping.foreground_ari`): the score asks whether the slots keep each object in one piece
and apart from the others, not whether they find the background. It is averaged over the images with at least
``min_instances`` visible objects (with one object the ARI is degenerate: 1 if the object lies in one slot, 0
otherwise).

Two controls put a score in context:

* ``untrained``: the same architecture with random initial weights (seeded);
* ``grid``: the regular grid of slot initialisations, i.e. assigning every pixel to the adaptive-pooling bin of the
  ``sqrt(S) x sqrt(S)`` grid that the block's pooled slots start from (bin of a pixel centre: ``floor(y * g / h)``).

The metrics of the object-centric literature (DINOSAUR, Seitzer et al. 2023; SPOT, Kakogeorgiou et al. 2024) are
collected too (:func:`per_image_object_scores`), with the slot count beside every number: mean best overlap at the
instance and class level, the same after merging a block's slots to K groups, and the slots' features and class
overlaps for the data-set-level semantic mIoU (all from :mod:`glmix_viz.scoring.grouping`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import timm
import torch
import torch.nn as nn

import glmix_viz.models  # noqa: F401  (registers the GLNet variants with timm)
from glmix_viz.data.registry import open_split
from glmix_viz.errors import DataError
from glmix_viz.images import batch_to_tensor
from glmix_viz.labels import IGNORE_INDEX, load_label_png
from glmix_viz.models.info import is_multilabel
from glmix_viz.probe import GroupingProbe, glmix_block_names
from glmix_viz.scoring.grouping import (
    foreground_ari,
    mean_best_overlap,
    merge_columns,
    merge_slots,
    overlap_table,
    semantic_miou,
    slot_class_overlaps,
    table_mbo,
)
from glmix_viz.slots.resize import upsample_labels

__all__ = [
    "slot_grid_labels",
    "GroupingSample",
    "load_grouping_samples",
    "BlockScores",
    "per_image_block_scores",
    "block_grouping_scores",
    "untrained_copy",
    "grouping_report",
    "benchmark_best_block",
    "MERGE_SIZES",
    "BlockObjectScores",
    "ObjectScores",
    "per_image_object_scores",
    "object_scores_summary",
]


def slot_grid_labels(height: int, width: int, grid: int) -> np.ndarray:
    """(height, width) map of the ``grid x grid`` adaptive-pooling bin of each pixel centre (ids row-major)."""
    rows = np.minimum((np.arange(height) * grid) // height, grid - 1)
    cols = np.minimum((np.arange(width) * grid) // width, grid - 1)
    return rows[:, None] * grid + cols[None, :]


@dataclass
class GroupingSample:
    """An image with its instance mask. ``image`` (H, W, 3) uint8 RGB; ``instances`` (H, W) uint8, 0 background.

    ``classes`` (H, W) uint8 is the class map (255 ignore) where the set has one (``SegmentationClass``); the
    class-level overlap and the data-set-level semantic mIoU need it. ``background`` is the class map's background
    class (the data set's; None when it has none); in the instance masks the background is always 0.
    """

    id: str
    image: np.ndarray
    instances: np.ndarray
    classes: Optional[np.ndarray] = None
    background: Optional[int] = 0

    @property
    def num_instances(self) -> int:
        values = np.unique(self.instances)
        return int(((values > 0) & (values != IGNORE_INDEX)).sum())


def load_grouping_samples(root: str, split: str, limit: Optional[int] = None) -> List[GroupingSample]:
    """Images, instance masks and (where present) class maps of a split (any format with instance masks, e.g. the
    VOC layout's ``SegmentationObject``).

    Args:
        root: the set's folder.
        split: its split.
        limit: only the first ``limit`` ids.

    Raises:
        DataError: the set has no instance masks, an image lacks its instance mask, or a mask's size differs from
            its image's.
    """
    data = open_split(root, split)
    samples = []
    for image_id in data.ids[:limit]:
        instances = data.instances(image_id)
        if instances is None:
            raise DataError(f"{data.root}: no instance mask for image {image_id!r} (instance masks are needed for "
                            "the grouping score)")
        image = data.image(image_id)
        if instances.shape != image.shape[:2]:
            raise DataError(f"{data.root}: instance mask of {image_id!r} differs in size from the image")
        classes = data.mask(image_id)
        if classes is not None and classes.shape != image.shape[:2]:
            raise DataError(f"{data.root}: class mask of {image_id!r} differs in size from the image")
        samples.append(GroupingSample(image_id, image, instances, classes, data.background))
    return samples


@dataclass
class BlockScores:
    """Per-image foreground ARI of every GLMix block and of its slot-initialisation grid.

    Attributes:
        ids: (N,) ids of the scored images (those with at least ``min_instances`` instances), in order.
        trained: block -> (N,) ARI of the block's hard grouping.
        grid: block -> (N,) ARI of the block's slot-initialisation grid.
        sizes: block -> (h, w) of its map.
    """

    ids: List[str]
    trained: Dict[str, np.ndarray]
    grid: Dict[str, np.ndarray]
    sizes: Dict[str, Tuple[int, int]]


@torch.no_grad()
def per_image_block_scores(
    model: nn.Module,
    samples: Sequence[GroupingSample],
    *,
    input_size: int,
    batch_size: int = 64,
    min_instances: int = 2,
    device: Optional[torch.device] = None,
) -> BlockScores:
    """Foreground ARI of every GLMix block's hard grouping (and of its slot grid), image by image.

    Args:
        model: a GLNet (any module with GLMix blocks); evaluated in eval mode.
        samples: images with instance masks.
        input_size: square side the images are resized to for the model.
        batch_size: images per forward pass.
        min_instances: images with fewer visible instances are skipped.
        device: where to run (default: the model's).

    Raises:
        DataError: no image has ``min_instances`` instances.
    """
    chosen = [s for s in samples if s.num_instances >= min_instances]
    if not chosen:
        raise DataError(f"no image with at least {min_instances} instances to score the grouping on")
    device = device or next(model.parameters()).device
    names = glmix_block_names(model)
    scores: Dict[str, List[float]] = {name: [] for name in names}
    grid_scores: Dict[str, List[float]] = {name: [] for name in names}
    sizes: Dict[str, Tuple[int, int]] = {}
    for batch, records in _block_batches(model, chosen, input_size, batch_size, device):
        for name, record in records.items():
            sizes[name] = tuple(record.size)
            grid = slot_grid_labels(*record.size, record.slot_grid)
            hard = record.hard.numpy()
            for index, sample in enumerate(batch):
                shape = sample.instances.shape
                scores[name].append(foreground_ari(upsample_labels(hard[index], shape), sample.instances))
                grid_scores[name].append(foreground_ari(upsample_labels(grid, shape), sample.instances))
    return BlockScores(ids=[s.id for s in chosen], trained={n: np.asarray(v) for n, v in scores.items()},
                       grid={n: np.asarray(v) for n, v in grid_scores.items()}, sizes=sizes)


def block_grouping_scores(
    model: nn.Module,
    samples: Sequence[GroupingSample],
    *,
    input_size: int,
    batch_size: int = 64,
    min_instances: int = 2,
    device: Optional[torch.device] = None,
) -> Dict[str, Dict[str, float]]:
    """Mean foreground ARI per GLMix block, for the model and for the slot-initialisation grid.

    Arguments as :func:`per_image_block_scores`.

    Returns:
        ``{block: {"ari": mean ARI, "grid_ari": mean ARI of the init grid, "images": count, "size": [h, w]}}``.
    """
    scores = per_image_block_scores(model, samples, input_size=input_size, batch_size=batch_size,
                                    min_instances=min_instances, device=device)
    return {
        name: {"ari": float(np.nanmean(scores.trained[name])), "grid_ari": float(np.nanmean(scores.grid[name])),
               "images": len(scores.ids), "size": list(scores.sizes[name])}
        for name in scores.trained
    }


# ---------------------------------------------------------------------------------------------------------------------
# The metrics of the object-centric literature (DINOSAUR, Seitzer et al. ICLR 2023; SPOT, Kakogeorgiou et al.
# CVPR 2024): mean best overlap per image, the same after merging a block's slots, and the data-set-level
# semantic mIoU of k-means clusters of slot features.
# ---------------------------------------------------------------------------------------------------------------------

MERGE_SIZES = tuple(range(2, 9))
"""Group counts K the slots of a block are merged to for the merged mean best overlap."""


@dataclass
class BlockObjectScores:
    """Per-image object-centric scores of one GLMix block, and its slots for the data-set-level semantic mIoU.

    Attributes:
        num_slots: S of the block.
        size: (h, w) of its map.
        mbo: level ("instance", "class") -> (N,) mBO of the block's hard grouping per image (NaN: no target).
        merged: level -> K -> (N,) mBO after merging the slots to K groups (:func:`merge_slots`).
        grid: level -> (N,) mBO of the block's slot-initialisation grid.
        regions: (N,) slots that own pixels, per image.
        merged_regions: K -> (N,) groups that own pixels after merging.
        features: (M, C) float32 features (``slots_in``) of the slots that own pixels, image after image.
        overlaps: (M, num_classes) their pixel overlaps with the classes (empty without class maps).
        slot_image: (M,) the image of every slot.
        slot_index: (M,) the index of every slot in its block (its identity when slots are learned, not pooled).
    """

    num_slots: int
    size: Tuple[int, int]
    mbo: Dict[str, np.ndarray]
    merged: Dict[str, Dict[int, np.ndarray]]
    grid: Dict[str, np.ndarray]
    regions: np.ndarray
    merged_regions: Dict[int, np.ndarray]
    features: np.ndarray
    overlaps: np.ndarray
    slot_image: np.ndarray
    slot_index: Optional[np.ndarray] = None


@dataclass
class ObjectScores:
    """:func:`per_image_object_scores` of a model on a split: image ids and the scores of every GLMix block."""

    ids: List[str]
    blocks: Dict[str, BlockObjectScores]
    num_classes: int
    background: Optional[int] = 0


class _BlockAccumulator:
    """Collects the per-image scores of one block (see :class:`BlockObjectScores`)."""

    def __init__(self, sizes: Sequence[int], levels: Sequence[str]) -> None:
        self.sizes, self.levels = tuple(sizes), tuple(levels)
        self.mbo = {level: [] for level in levels}
        self.grid = {level: [] for level in levels}
        self.merged = {level: {k: [] for k in self.sizes} for level in levels}
        self.regions: List[int] = []
        self.merged_regions: Dict[int, List[int]] = {k: [] for k in self.sizes}
        self.features: List[np.ndarray] = []
        self.overlaps: List[np.ndarray] = []
        self.slot_image: List[np.ndarray] = []
        self.slot_index: List[np.ndarray] = []

    def add(self, index: int, sample: GroupingSample, hard: np.ndarray, vectors: np.ndarray, features: np.ndarray,
            grid: np.ndarray, num_classes: int) -> None:
        num_slots = len(features)
        used = np.bincount(hard.reshape(-1), minlength=num_slots) > 0
        merges = merge_slots(vectors, self.sizes, used)
        hard = upsample_labels(hard, sample.instances.shape)  # once, not once per score
        grid = upsample_labels(grid, sample.instances.shape)
        targets = {"instance": (sample.instances, 0), "class": (sample.classes, sample.background)}
        for level in self.levels:
            target, background = targets[level]
            target_ids, region_ids, counts = overlap_table(hard, target, ignore=IGNORE_INDEX)
            self.mbo[level].append(table_mbo(target_ids, counts, background=background))
            self.grid[level].append(mean_best_overlap(grid, target, background=background, ignore=IGNORE_INDEX))
            for k, groups in merges.items():
                merged = merge_columns(region_ids, counts, groups)
                self.merged[level][k].append(table_mbo(target_ids, merged, background=background))
        self.regions.append(int(used.sum()))
        for k, groups in merges.items():
            self.merged_regions[k].append(len(np.unique(groups[used])))
        self.features.append(features[used].astype(np.float32))
        self.slot_image.append(np.full(int(used.sum()), index, np.int64))
        self.slot_index.append(np.flatnonzero(used).astype(np.int64))
        if sample.classes is not None:
            self.overlaps.append(slot_class_overlaps(hard, sample.classes, num_slots, num_classes)[used])

    def result(self, num_slots: int, size: Tuple[int, int], num_classes: int) -> BlockObjectScores:
        array = lambda values: np.asarray(values, dtype=np.float64)  # noqa: E731
        return BlockObjectScores(
            num_slots=num_slots, size=size, mbo={lv: array(v) for lv, v in self.mbo.items()},
            merged={lv: {k: array(v) for k, v in by_k.items()} for lv, by_k in self.merged.items()},
            grid={lv: array(v) for lv, v in self.grid.items()}, regions=np.asarray(self.regions),
            merged_regions={k: np.asarray(v) for k, v in self.merged_regions.items()},
            features=np.concatenate(self.features) if self.features else np.zeros((0, 0), np.float32),
            overlaps=np.concatenate(self.overlaps) if self.overlaps else np.zeros((0, num_classes), np.int64),
            slot_image=np.concatenate(self.slot_image) if self.slot_image else np.zeros(0, np.int64),
            slot_index=np.concatenate(self.slot_index) if self.slot_index else np.zeros(0, np.int64))


def _block_batches(model: nn.Module, samples: Sequence[GroupingSample], input_size: int, batch_size: int,
                   device: torch.device):
    """Yield ``(batch, {block: GroupingRecord on the CPU})`` for the samples, a batch at a time (eval mode)."""
    names = glmix_block_names(model)
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(samples), batch_size):
            batch = samples[start:start + batch_size]
            inputs = batch_to_tensor([s.image for s in batch], input_size).to(device)
            with torch.no_grad(), GroupingProbe(model) as probe:
                model(inputs)
                records = {name: probe[name].to("cpu") for name in names}
            yield batch, records
    finally:
        model.train(was_training)


def per_image_object_scores(
    model: nn.Module,
    samples: Sequence[GroupingSample],
    *,
    input_size: int,
    num_classes: Optional[int] = None,
    merge_sizes: Sequence[int] = MERGE_SIZES,
    merge_on: str = "features",
    batch_size: int = 64,
    device: Optional[torch.device] = None,
) -> ObjectScores:
    """mBO (instance and class level), mBO after merging slots, and the slots for semantic mIoU, of every block.

    Args:
        model: a GLNet (any module with GLMix blocks); evaluated in eval mode.
        samples: images with instance masks; the class level needs every sample's class map.
        input_size: square side the images are resized to for the model.
        num_classes: classes of the class maps, background included (default: the largest id seen + 1).
        merge_sizes: group counts K of the merged mBO.
        merge_on: merge slots by the similarity of their ``"features"`` (``slots_in``) or of their
            ``"assignments"`` (dispatch maps).
        batch_size: images per forward pass.
        device: where to run (default: the model's).
    """
    if merge_on not in ("features", "assignments"):
        raise ValueError(f"merge_on must be 'features' or 'assignments', got {merge_on!r}")
    if not samples:
        raise DataError("no image to score the grouping on")
    levels = ("instance", "class") if all(s.classes is not None for s in samples) else ("instance",)
    if num_classes is None:
        seen = [int(c[c != IGNORE_INDEX].max(initial=0)) for c in (s.classes for s in samples) if c is not None]
        num_classes = max(seen, default=0) + 1
    device = device or next(model.parameters()).device
    names = glmix_block_names(model)
    accumulators = {name: _BlockAccumulator(merge_sizes, levels) for name in names}
    shapes: Dict[str, Tuple[int, Tuple[int, int]]] = {}
    index = 0
    for batch, records in _block_batches(model, list(samples), input_size, batch_size, device):
        for name, record in records.items():
            shapes[name] = (record.num_slots, tuple(record.size))
            grid = slot_grid_labels(*record.size, record.slot_grid)
            hard, features = record.hard.numpy(), record.slots_in.float().numpy()
            vectors = features if merge_on == "features" else record.dispatch.flatten(2).float().numpy()
            for offset, sample in enumerate(batch):
                accumulators[name].add(index + offset, sample, hard[offset], vectors[offset], features[offset],
                                       grid, num_classes)
        index += len(batch)
    blocks = {name: accumulators[name].result(*shapes[name], num_classes) for name in names}
    backgrounds = {s.background for s in samples}
    if len(backgrounds) > 1:
        raise DataError(f"the samples name different background classes: {sorted(map(str, backgrounds))}")
    return ObjectScores(ids=[s.id for s in samples], blocks=blocks, num_classes=int(num_classes),
                        background=backgrounds.pop())


def object_scores_summary(scores: ObjectScores, *, clusters: Optional[int] = None, seed: int = 0) -> Dict[str, Any]:
    """Means of :func:`per_image_object_scores` per block, with the slot count beside every number, and the
    data-set-level semantic mIoU (:func:`semantic_miou`, ``clusters`` default: the number of classes, background
    included).

    Returns:
        ``{block: {"slots": S, "size", "regions": mean slots with pixels, "mbo": {level: mean}, "grid_mbo": {...},
        "merged": {level: {K: mean}}, "merged_regions": {K: mean groups with pixels}, "semantic": {"miou",
        "clusters", "slots", "iou"} or None}}`` (levels "instance" and, with class maps, "class").
    """
    clusters = clusters or scores.num_classes
    summary: Dict[str, Any] = {}
    for name, block in scores.blocks.items():
        semantic = None
        if block.overlaps.shape[0] == block.features.shape[0] >= clusters:
            result = semantic_miou(block.features, block.overlaps, clusters=clusters, seed=seed,
                                   background=scores.background)
            semantic = {"miou": result.miou, "clusters": result.clusters, "slots": result.slots,
                        "iou": [None if np.isnan(v) else float(v) for v in result.iou]}
        summary[name] = {
            "slots": block.num_slots, "size": list(block.size), "regions": float(block.regions.mean()),
            "mbo": {lv: float(np.nanmean(v)) for lv, v in block.mbo.items()},
            "grid_mbo": {lv: float(np.nanmean(v)) for lv, v in block.grid.items()},
            "merged": {lv: {k: float(np.nanmean(v)) for k, v in by_k.items()} for lv, by_k in block.merged.items()},
            "merged_regions": {k: float(v.mean()) for k, v in block.merged_regions.items()},
            "semantic": semantic,
        }
    return summary


def untrained_copy(model: nn.Module, seed: int = 0) -> nn.Module:
    """A freshly initialised model of the same variant and constructor arguments (the "untrained" control).

    It keeps the model's class names, input size and multi-label reading (so its predictions line up class by
    class with the model's), but no checkpoint source.
    """
    config = getattr(model, "checkpoint_config", None) or {}
    variant = config.get("variant") or model.pretrained_cfg.get("architecture")
    args = {k: tuple(v) if isinstance(v, list) else v for k, v in (config.get("model_args") or {}).items()}
    args["num_classes"] = model.num_classes
    torch.manual_seed(seed)
    fresh = timm.create_model(variant, **args)
    cfg = getattr(model, "pretrained_cfg", None) or {}
    fresh.pretrained_cfg = dict(fresh.pretrained_cfg, **{k: cfg[k] for k in ("label_names", "input_size") if k in cfg})
    fresh.checkpoint_config = {"variant": variant, "model_args": config.get("model_args") or {},
                               "multi_label": is_multilabel(model), "untrained_seed": seed}
    return fresh.to(next(model.parameters()).device).eval()


def grouping_report(
    model: nn.Module,
    samples: Sequence[GroupingSample],
    *,
    input_size: int,
    min_instances: int = 2,
    batch_size: int = 64,
    control_seed: int = 0,
) -> Dict[str, Any]:
    """Per-block trained / untrained / grid ARI, the best block (highest trained ARI) and its margin over both of
    its controls, plus the margin over the best control of any block (the stricter reading).

    Returns:
        ``{"blocks": {name: {"trained", "untrained", "grid", "size"}}, "best_block", "best": {...},
        "margin": trained - max(untrained, grid) of the best block, "margin_any_block": trained of the best block -
        the largest control score of any block, "images": count}``.
    """
    trained = block_grouping_scores(model, samples, input_size=input_size, batch_size=batch_size,
                                    min_instances=min_instances)
    untrained = block_grouping_scores(untrained_copy(model, control_seed), samples, input_size=input_size,
                                      batch_size=batch_size, min_instances=min_instances)
    blocks = {
        name: {"trained": trained[name]["ari"], "untrained": untrained[name]["ari"], "grid": trained[name]["grid_ari"],
               "size": trained[name]["size"]}
        for name in trained
    }
    best = max(blocks, key=lambda name: blocks[name]["trained"])
    best_scores = blocks[best]
    strongest_control = max(max(b["untrained"], b["grid"]) for b in blocks.values())
    return {
        "blocks": blocks,
        "best_block": best,
        "best": best_scores,
        "margin": best_scores["trained"] - max(best_scores["untrained"], best_scores["grid"]),
        "margin_any_block": best_scores["trained"] - strongest_control,
        "images": next(iter(trained.values()))["images"],
    }


def opening_block(block_names: Sequence[str], benchmark: Optional[Mapping[str, Any]] = None) -> str:
    """The GLMix block shown when the user names none: the explorer opens on it and ``glmix-viz atlas`` uses it
    without ``--block``.

    Args:
        block_names: the model's GLMix blocks, in network order (:func:`glmix_viz.probe.glmix_block_names`).
        benchmark: the model's benchmark (:func:`benchmark_best_block`, given only for the bundled demo model).

    Returns:
        The benchmark's best-grouping block when it is one of ``block_names``, else the first block.
    """
    if not block_names:
        raise ValueError("the model has no GLMix block")
    if benchmark and benchmark.get("block") in block_names:
        return benchmark["block"]
    return block_names[0]


def benchmark_best_block(results: Optional[Any] = None, run: str = "grouping") -> Optional[Dict[str, Any]]:
    """The GLMix block of the bundled demo model that groups best on its held-out benchmark, with its score.

    Reads the demo results (``glmix_viz/assets/demo/demo_results.json``, written by ``experiments/train_demo.py``):
    per block, the mean over the held-out sets of the foreground ARI; the best block is the highest.

    Args:
        results: a results dict, or the path of a results file (default: the bundled one).
        run: which run of the results (the shipped model is "grouping").

    Returns:
        ``{"block", "ari", "untrained", "grid", "best_control", "best_control_ari", "images", "sets"}`` (means over
        the sets; the best control is the highest-scoring untrained block or grid), or None when there are no
        results for ``run``.
    """
    if not isinstance(results, dict):
        path = Path(results) if results is not None else Path(__file__).parent / "assets" / "demo" / "demo_results.json"
        if not path.is_file():
            return None
        results = json.loads(path.read_text())
    reports = [entry["reports"][run] for entry in results.get("sets", {}).values() if run in entry.get("reports", {})]
    if not reports:
        return None
    blocks = [report["grouping"]["blocks"] for report in reports]
    mean = lambda name, key: float(np.mean([b[name][key] for b in blocks]))  # noqa: E731
    best = max(blocks[0], key=lambda name: mean(name, "trained"))
    controls = {f"{kind} {name}": mean(name, kind) for name in blocks[0] for kind in ("untrained", "grid")}
    control = max(controls, key=controls.get)
    return {"block": best, "ari": mean(best, "trained"), "untrained": mean(best, "untrained"),
            "grid": mean(best, "grid"), "best_control": control, "best_control_ari": controls[control],
            "images": int(sum(report["grouping"]["images"] for report in reports)),
            "sets": [name for name, entry in results["sets"].items() if run in entry.get("reports", {})]}
