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

The metrics of the object-centric literature (DINOSAUR, Seitzer et al. 2023; SPOT, Kakogeorgiou et al. 2024) are here
too, so that a block's numbers mean what theirs mean:

* :func:`mean_best_overlap` (mBO): for every ground-truth object, the best IoU of any slot's region, averaged
  (instance level from ``SegmentationObject``, class level from ``SegmentationClass``);
* the same after merging a block's slots to K groups (:func:`merge_slots`: scipy's average-linkage agglomeration on
  the cosine distance of slot features or assignments), since mBO rewards over-splitting;
* :func:`semantic_miou`: DINOSAUR's data-set-level semantic mIoU (scikit-learn k-means over the slot features of
  every image, clusters matched to classes by ``scipy.optimize.linear_sum_assignment``, unmatched ones background).

:func:`per_image_object_scores` collects them for every block of a model, with the slot count beside every number.
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
from glmix_viz.data.registry import open_split
from glmix_viz.errors import DataError
from glmix_viz.images import batch_to_tensor
from glmix_viz.labels import IGNORE_INDEX, load_label_png
from glmix_viz.models.info import is_multilabel
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
    "MERGE_SIZES",
    "overlap_table",
    "table_ious",
    "merge_columns",
    "region_overlaps",
    "best_overlaps",
    "mean_best_overlap",
    "merge_slots",
    "slot_class_overlaps",
    "SemanticScores",
    "semantic_miou",
    "BlockObjectScores",
    "ObjectScores",
    "per_image_object_scores",
    "object_scores_summary",
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
    """An image with its instance mask. ``image`` (H, W, 3) uint8 RGB; ``instances`` (H, W) uint8, 0 background.

    ``classes`` (H, W) uint8 is the class map (0 background, 255 ignore) where the set has one (``SegmentationClass``);
    the class-level overlap and the data-set-level semantic mIoU need it.
    """

    id: str
    image: np.ndarray
    instances: np.ndarray
    classes: Optional[np.ndarray] = None

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
        samples.append(GroupingSample(image_id, image, instances, classes))
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
                scores[name].append(foreground_ari(hard[index], sample.instances))
                grid_scores[name].append(foreground_ari(grid, sample.instances))
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


def overlap_table(regions: np.ndarray, targets: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel counts of every target id (background included) in every predicted region of one image.

    Pixels labelled 255 in ``targets`` are left out (VOC's object borders; DINOSAUR's ignore mask).

    Args:
        regions: (h, w) integer grouping at any resolution (up-sampled to the targets' by nearest neighbour).
        targets: (H, W) target ids: instance ids (``SegmentationObject``) or class ids (``SegmentationClass``).

    Returns:
        ``(target_ids (T,), region_ids (R,), counts (T, R))``, the ids that occur, sorted.
    """
    targets = np.asarray(targets)
    regions = upsample_labels(regions, targets.shape)
    valid = targets != IGNORE_INDEX
    target_ids, target_index = _dense_labels(targets[valid])
    region_ids, region_index = _dense_labels(regions[valid])
    table = np.bincount(target_index * len(region_ids) + region_index,
                        minlength=len(target_ids) * len(region_ids)).reshape(len(target_ids), len(region_ids))
    present_targets, present_regions = table.sum(axis=1) > 0, table.sum(axis=0) > 0
    return target_ids[present_targets], region_ids[present_regions], table[present_targets][:, present_regions]


def table_ious(target_ids: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(G, R) IoU of every non-background target (id != 0) with every region, from :func:`overlap_table`'s counts
    (background pixels count in the regions' areas)."""
    union = counts.sum(axis=1, keepdims=True) + counts.sum(axis=0, keepdims=True) - counts
    return (counts / np.maximum(union, 1))[np.asarray(target_ids) != 0]


def merge_columns(region_ids: np.ndarray, counts: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """(T, K') the counts of :func:`overlap_table` after merging regions: region r joins group ``groups[r]``."""
    group_of_region = np.asarray(groups)[np.asarray(region_ids)]
    _, column = np.unique(group_of_region, return_inverse=True)
    return counts @ np.eye(column.max() + 1 if column.size else 0, dtype=counts.dtype)[column]


def region_overlaps(regions: np.ndarray, targets: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IoU of every target region (object or class) with every predicted region of one image.

    Pixels labelled 255 in ``targets`` are left out of both sides; background (0) is no target, but its pixels count
    in the predicted regions' areas (see :func:`overlap_table`).

    Returns:
        ``(target_ids (G,), region_ids (R,), iou (G, R))``; G = 0 when the image has no target.
    """
    target_ids, region_ids, counts = overlap_table(regions, targets)
    return target_ids[target_ids != 0], region_ids, table_ious(target_ids, counts)


def _dense_labels(values: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """``(ids, index)`` with ``ids[index] == values``: small non-negative labels as they are (no sort), others by
    ``np.unique``. ``ids`` may hold labels that do not occur."""
    values = values.reshape(-1)
    if values.size and np.issubdtype(values.dtype, np.integer) and values.min() >= 0 and values.max() < 4096:
        return np.arange(int(values.max()) + 1), values.astype(np.int64)
    return np.unique(values, return_inverse=True)


def _table_mbo(target_ids: np.ndarray, counts: np.ndarray) -> float:
    iou = table_ious(target_ids, counts)
    return float(iou.max(axis=1).mean()) if iou.shape[0] and iou.shape[1] else float("nan")


def best_overlaps(regions: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(G,) for every target region of one image, the best IoU of any predicted region (see :func:`region_overlaps`)."""
    _, _, iou = region_overlaps(regions, targets)
    return iou.max(axis=1) if iou.size else np.zeros(iou.shape[0])


def mean_best_overlap(regions: np.ndarray, targets: np.ndarray) -> float:
    """Mean best overlap (mBO) of one image: the mean over its targets of each target's best IoU with any region.

    DINOSAUR's and SPOT's definition: with instance masks as targets it is instance-level mBO (mBO^i), with class
    maps (the instances of one class merged) class-level mBO (mBO^c); a data set's mBO is the mean over its images
    with at least one target. Each region may be the best match of several targets.

    Returns:
        mBO in [0, 1]; NaN when the image has no target.
    """
    best = best_overlaps(regions, targets)
    return float(best.mean()) if best.size else float("nan")


def merge_slots(vectors: np.ndarray, sizes: Sequence[int], used: Optional[np.ndarray] = None) -> Dict[int, np.ndarray]:
    """Group the slots of one block into K groups by agglomerative clustering of their vectors, for several K.

    Average linkage on the cosine distance (``scipy.cluster.hierarchy.linkage``), cut at each K with
    ``scipy.cluster.hierarchy.cut_tree`` (one call for all K). Only the ``used`` slots (those that own pixels) are clustered; when K is
    at least their number, each used slot stays its own group.

    Args:
        vectors: (S, D) one vector per slot: its features (``slots_in``) or its assignment (dispatch map, flattened).
        sizes: the group counts K.
        used: (S,) bool, the slots to group (default all).

    Returns:
        ``{K: (S,) int64 group of every slot}``; unused slots get -1.
    """
    from scipy.cluster.hierarchy import cut_tree, linkage
    from scipy.spatial.distance import squareform

    vectors = np.asarray(vectors, dtype=np.float64)
    used = np.ones(len(vectors), bool) if used is None else np.asarray(used, bool)
    members = np.flatnonzero(used)
    merges: Dict[int, np.ndarray] = {}
    tree = None
    if len(members) > 1:
        unit = vectors[members] / np.maximum(np.linalg.norm(vectors[members], axis=1, keepdims=True), 1e-12)
        distance = np.clip(1.0 - unit @ unit.T, 0.0, 2.0)
        np.fill_diagonal(distance, 0.0)
        tree = linkage(squareform((distance + distance.T) / 2, checks=False), method="average")
    cuts = sorted({int(size) for size in sizes if 0 < int(size) < len(members)})
    cut = dict(zip(cuts, cut_tree(tree, n_clusters=cuts).T)) if cuts and tree is not None else {}
    for size in sizes:
        groups = np.full(len(vectors), -1, np.int64)
        groups[members] = cut[int(size)] if int(size) in cut else np.arange(len(members))
        merges[int(size)] = groups
    return merges


def slot_class_overlaps(hard: np.ndarray, classes: np.ndarray, num_slots: int, num_classes: int) -> np.ndarray:
    """(S, num_classes) pixel counts of every slot's region with every class (255 pixels left out).

    Args:
        hard: (h, w) hard grouping at any resolution (up-sampled to the class map's).
        classes: (H, W) class ids, 0 background, 255 ignore.
        num_slots: S.
        num_classes: classes, background included.
    """
    classes = np.asarray(classes)
    hard = upsample_labels(hard, classes.shape)
    valid = classes != IGNORE_INDEX
    if valid.any() and int(classes[valid].max()) >= num_classes:
        raise ValueError(f"class id {int(classes[valid].max())} is outside 0..{num_classes - 1}")
    index = hard[valid].astype(np.int64) * num_classes + classes[valid].astype(np.int64)
    return np.bincount(index, minlength=num_slots * num_classes).reshape(num_slots, num_classes)


@dataclass
class SemanticScores:
    """Data-set-level semantic segmentation of slot clusters (:func:`semantic_miou`).

    Attributes:
        miou: mean IoU over the classes (background included) that occur in the ground truth or the prediction.
        iou: (num_classes,) IoU per class (NaN where a class is absent from both).
        clusters: number of k-means clusters.
        slots: number of slots clustered.
        cluster_class: (clusters,) the class of every cluster (0, background, for clusters left unmatched).
        slot_class: (slots,) the class every slot is given.
        confusion: (num_classes, num_classes) pixel counts, rows ground truth, columns prediction.
    """

    miou: float
    iou: np.ndarray
    clusters: int
    slots: int
    cluster_class: np.ndarray
    slot_class: np.ndarray
    confusion: np.ndarray

    def per_image_confusion(self, overlaps: np.ndarray, slot_image: np.ndarray, num_images: int) -> np.ndarray:
        """(num_images, C, C) the confusion matrix of every image (for bootstrap intervals over images)."""
        num_classes = self.confusion.shape[0]
        out = np.zeros((num_images, num_classes, num_classes), np.int64)
        for klass in range(num_classes):
            np.add.at(out[:, :, klass], slot_image[self.slot_class == klass], overlaps[self.slot_class == klass])
        return out


def semantic_miou(features: np.ndarray, overlaps: np.ndarray, *, clusters: int, seed: int = 0) -> SemanticScores:
    """DINOSAUR's data-set-level semantic mIoU of a block's slots.

    The slot features of every image of a split are clustered by k-means (scikit-learn, ``n_init=10``); every
    cluster is matched to one class by the Hungarian algorithm (``scipy.optimize.linear_sum_assignment``) on the
    cluster x class pixel overlap; clusters left unmatched (more clusters than classes) count as background. Every
    pixel then takes the class of its slot's cluster, and the IoU of each class is computed over the whole split.

    Args:
        features: (M, C) features of the M slots of all images (e.g. the slots that own pixels).
        overlaps: (M, num_classes) pixel counts of each slot's region with each class (:func:`slot_class_overlaps`).
        clusters: k-means clusters (DINOSAUR: the number of classes; here usually classes + background).
        seed: k-means seed.

    Raises:
        ValueError: fewer slots than clusters, or the inputs disagree.
    """
    from scipy.optimize import linear_sum_assignment
    from sklearn.cluster import KMeans

    from glmix_viz.metrics import per_class_iou

    features = np.asarray(features, dtype=np.float64)
    overlaps = np.asarray(overlaps, dtype=np.int64)
    if features.ndim != 2 or overlaps.ndim != 2 or len(features) != len(overlaps):
        raise ValueError(f"features {features.shape} and overlaps {overlaps.shape} must be (M, C) and (M, K)")
    if len(features) < clusters:
        raise ValueError(f"{len(features)} slots cannot make {clusters} clusters")
    labels = KMeans(n_clusters=clusters, n_init=10, random_state=seed).fit_predict(features)
    num_classes = overlaps.shape[1]
    cluster_overlap = np.zeros((clusters, num_classes), np.int64)
    np.add.at(cluster_overlap, labels, overlaps)
    rows, cols = linear_sum_assignment(cluster_overlap, maximize=True)
    cluster_class = np.zeros(clusters, np.int64)
    cluster_class[rows] = cols
    slot_class = cluster_class[labels]
    confusion = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(confusion.T, slot_class, overlaps)
    iou = per_class_iou(confusion)
    return SemanticScores(miou=float(np.nanmean(iou)), iou=iou, clusters=int(clusters), slots=len(features),
                          cluster_class=cluster_class, slot_class=slot_class, confusion=confusion)


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


@dataclass
class ObjectScores:
    """:func:`per_image_object_scores` of a model on a split: image ids and the scores of every GLMix block."""

    ids: List[str]
    blocks: Dict[str, BlockObjectScores]
    num_classes: int


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

    def add(self, index: int, sample: GroupingSample, hard: np.ndarray, vectors: np.ndarray, features: np.ndarray,
            grid: np.ndarray, num_classes: int) -> None:
        num_slots = len(features)
        used = np.bincount(hard.reshape(-1), minlength=num_slots) > 0
        merges = merge_slots(vectors, self.sizes, used)
        hard = upsample_labels(hard, sample.instances.shape)  # once, not once per score
        targets = {"instance": sample.instances, "class": sample.classes}
        for level in self.levels:
            target_ids, region_ids, counts = overlap_table(hard, targets[level])
            self.mbo[level].append(_table_mbo(target_ids, counts))
            self.grid[level].append(mean_best_overlap(grid, targets[level]))
            for k, groups in merges.items():
                self.merged[level][k].append(_table_mbo(target_ids, merge_columns(region_ids, counts, groups)))
        self.regions.append(int(used.sum()))
        for k, groups in merges.items():
            self.merged_regions[k].append(len(np.unique(groups[used])))
        self.features.append(features[used].astype(np.float32))
        self.slot_image.append(np.full(int(used.sum()), index, np.int64))
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
            slot_image=np.concatenate(self.slot_image) if self.slot_image else np.zeros(0, np.int64))


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
    return ObjectScores(ids=[s.id for s in samples], blocks=blocks, num_classes=int(num_classes))


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
            result = semantic_miou(block.features, block.overlaps, clusters=clusters, seed=seed)
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
