"""Class-free grouping score: do a GLMix block's slots pick out the objects of an image?

For every GLMix block, the hard grouping (each pixel's most likely slot, ``GroupingRecord.hard``) is compared with the
ground-truth object instances (``SegmentationObject`` masks of a VOC-layout set, as ``make-shapes`` writes them) by
the adjusted Rand index (ARI) over the foreground pixels only: background pixels are left out, so the score asks
whether the slots keep each object in one piece and apart from the others, not whether they find the background.
The ARI is computed per image, at the mask's resolution (the block's map is up-sampled by nearest neighbour), and
averaged over the images with at least ``min_instances`` visible objects (with one object the ARI is degenerate:
1 if the object lies in one slot, 0 otherwise).

Two controls put a score in context:

* ``untrained``: the same architecture with random initial weights (seeded);
* ``grid``: the regular grid of slot initialisations, i.e. assigning every pixel to the adaptive-pooling bin of the
  ``sqrt(S) x sqrt(S)`` grid that the block's pooled slots start from (bin of a pixel centre: ``floor(y * g / h)``).

The ARI is written here from its definition (Hubert and Arabie, 1985) with a numpy contingency table.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import timm
import torch
import torch.nn as nn

import glmix_viz.models  # noqa: F401  (registers the GLNet variants with timm)
from glmix_viz.data.voc import VOCDataset
from glmix_viz.errors import DataError
from glmix_viz.images import batch_to_tensor
from glmix_viz.labels import IGNORE_INDEX, load_label_png
from glmix_viz.probe import GroupingProbe, glmix_block_names
from glmix_viz.slots.resize import upsample_labels

__all__ = [
    "adjusted_rand_index",
    "foreground_ari",
    "slot_grid_labels",
    "GroupingSample",
    "load_grouping_samples",
    "BlockScores",
    "per_image_block_scores",
    "block_grouping_scores",
    "untrained_copy",
    "grouping_report",
    "benchmark_best_block",
]


def _pairs(counts: np.ndarray) -> np.ndarray:
    counts = counts.astype(np.float64)
    return counts * (counts - 1.0) / 2.0


def adjusted_rand_index(labels_true: np.ndarray, labels_pred: np.ndarray) -> float:
    """Adjusted Rand index of two labelings of the same items.

    ARI = (sum_ij C(n_ij, 2) - E) / (0.5 (sum_i C(a_i, 2) + sum_j C(b_j, 2)) - E), with n_ij the contingency table,
    a_i, b_j its row and column sums, and E = sum_i C(a_i, 2) sum_j C(b_j, 2) / C(n, 2). 1 for identical partitions
    (whatever the label values), about 0 for independent ones. When the denominator vanishes (both labelings put
    everything in one group, or every item alone) the partitions are identical and the value is 1.

    Args:
        labels_true: (N,) or any shape; integer labels.
        labels_pred: same number of items; integer labels.

    Returns:
        ARI as a float (1.0 for fewer than two items).
    """
    true = np.asarray(labels_true).reshape(-1)
    pred = np.asarray(labels_pred).reshape(-1)
    if true.shape != pred.shape:
        raise ValueError(f"labelings differ in size: {true.size} vs {pred.size}")
    n = true.size
    if n < 2:
        return 1.0
    true_values, true_index = np.unique(true, return_inverse=True)
    pred_values, pred_index = np.unique(pred, return_inverse=True)
    table = np.bincount(true_index * len(pred_values) + pred_index,
                        minlength=len(true_values) * len(pred_values)).reshape(len(true_values), len(pred_values))
    sum_cells = _pairs(table).sum()
    sum_rows = _pairs(table.sum(axis=1)).sum()
    sum_cols = _pairs(table.sum(axis=0)).sum()
    expected = sum_rows * sum_cols / _pairs(np.array(n))
    maximum = 0.5 * (sum_rows + sum_cols)
    if math.isclose(maximum, expected):
        return 1.0
    return float((sum_cells - expected) / (maximum - expected))


def foreground_ari(groups: np.ndarray, instances: np.ndarray) -> float:
    """ARI of a grouping against instance masks over the foreground pixels (instance > 0; 255 = ignore, left out).

    Args:
        groups: (h, w) integer grouping at any resolution (up-sampled to the mask's by nearest neighbour).
        instances: (H, W) instance ids, 0 = background.

    Returns:
        ARI over the foreground pixels; NaN when there are none.
    """
    instances = np.asarray(instances)
    groups = upsample_labels(groups, instances.shape)
    keep = (instances > 0) & (instances != IGNORE_INDEX)
    if not keep.any():
        return float("nan")
    return adjusted_rand_index(instances[keep], groups[keep])


def slot_grid_labels(height: int, width: int, grid: int) -> np.ndarray:
    """(height, width) map of the ``grid x grid`` adaptive-pooling bin of each pixel centre (ids row-major)."""
    rows = np.minimum((np.arange(height) * grid) // height, grid - 1)
    cols = np.minimum((np.arange(width) * grid) // width, grid - 1)
    return rows[:, None] * grid + cols[None, :]


@dataclass
class GroupingSample:
    """An image with its instance mask. ``image`` (H, W, 3) uint8 RGB; ``instances`` (H, W) uint8, 0 background."""

    id: str
    image: np.ndarray
    instances: np.ndarray

    @property
    def num_instances(self) -> int:
        values = np.unique(self.instances)
        return int(((values > 0) & (values != IGNORE_INDEX)).sum())


def load_grouping_samples(root: str, split: str, limit: Optional[int] = None) -> List[GroupingSample]:
    """Images and ``SegmentationObject`` instance masks of a VOC-layout split (first ``limit`` ids).

    Raises:
        DataError: the set has no ``SegmentationObject`` folder or an image lacks its instance mask.
    """
    voc = VOCDataset(root, split)
    folder = voc.root / "SegmentationObject"
    if not folder.is_dir():
        raise DataError(f"{voc.root}: no SegmentationObject folder (instance masks are needed for the grouping score)")
    samples = []
    for image_id in voc.ids[:limit]:
        path = folder / f"{image_id}.png"
        if not path.is_file():
            raise DataError(f"{path}: instance mask missing")
        image = voc.load_image(image_id)
        instances = load_label_png(path)
        if instances.shape != image.shape[:2]:
            raise DataError(f"{path}: instance mask size differs from the image's")
        samples.append(GroupingSample(image_id, image, instances))
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
    was_training = model.training
    model.eval()
    names = glmix_block_names(model)
    scores: Dict[str, List[float]] = {name: [] for name in names}
    grid_scores: Dict[str, List[float]] = {name: [] for name in names}
    sizes: Dict[str, Tuple[int, int]] = {}
    for start in range(0, len(chosen), batch_size):
        batch = chosen[start:start + batch_size]
        inputs = batch_to_tensor([s.image for s in batch], input_size).to(device)
        with GroupingProbe(model) as probe:
            model(inputs)
            hard = {name: probe[name].hard.cpu().numpy() for name in names}
            slot_grids = {name: probe[name].slot_grid for name in names}
        for name in names:
            h, w = hard[name].shape[-2:]
            sizes[name] = (h, w)
            grid = slot_grid_labels(h, w, slot_grids[name])
            for index, sample in enumerate(batch):
                scores[name].append(foreground_ari(hard[name][index], sample.instances))
                grid_scores[name].append(foreground_ari(grid, sample.instances))
    model.train(was_training)
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


def untrained_copy(model: nn.Module, seed: int = 0) -> nn.Module:
    """A freshly initialised model of the same variant and constructor arguments (the "untrained" control)."""
    config = getattr(model, "checkpoint_config", None) or {}
    variant = config.get("variant") or model.pretrained_cfg.get("architecture")
    args = {k: tuple(v) if isinstance(v, list) else v for k, v in (config.get("model_args") or {}).items()}
    args["num_classes"] = model.num_classes
    torch.manual_seed(seed)
    fresh = timm.create_model(variant, **args)
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
