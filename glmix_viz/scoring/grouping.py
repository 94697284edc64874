"""Scores of a grouping (slots, regions, clusters) against ground-truth objects and classes.

Every function takes label maps of one size (resize a block's map to the mask's first, e.g. with
:func:`glmix_viz.slots.resize.upsample_labels`); which id is the background and which is ignored are parameters.

* :func:`adjusted_rand_index` (scikit-learn's ``adjusted_rand_score``) and :func:`foreground_ari`: the ARI of a
  grouping against instance masks over the foreground pixels only;
* :func:`mean_best_overlap` (mBO, DINOSAUR, Seitzer et al. 2023; SPOT, Kakogeorgiou et al. 2024): for every
  ground-truth region (object, or class), the *best* IoU of any predicted region, averaged; with instance masks it
  is the instance level, with class maps the class level. :func:`overlap_table`, :func:`table_ious`,
  :func:`table_mbo` and :func:`merge_columns` give the same from a pixel-count table, so that the mBO after merging
  slots to K groups (:func:`merge_slots`: scipy's average-linkage agglomeration on cosine distance) costs one
  matrix product per K;
* :func:`semantic_miou`: DINOSAUR's data-set-level semantic mIoU (scikit-learn k-means over slot features, clusters
  matched to classes by ``scipy.optimize.linear_sum_assignment``, unmatched clusters background);
* :func:`purity`, :func:`object_purity`, :func:`purity_draws`, :func:`contingency_scores`: purity and NMI of a
  concept x class table; the object purity leaves the background class out; :func:`image_tables`,
  :func:`purity_statistic` and :func:`purity_difference` bootstrap them over images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from glmix_viz.scoring.segmentation import per_class_iou

__all__ = [
    "adjusted_rand_index",
    "foreground_ari",
    "overlap_table",
    "table_ious",
    "table_mbo",
    "merge_columns",
    "region_overlaps",
    "best_overlaps",
    "mean_best_overlap",
    "merge_slots",
    "slot_class_overlaps",
    "SemanticScores",
    "semantic_miou",
    "purity",
    "purity_draws",
    "cluster_class_regions",
    "object_table",
    "object_purity",
    "contingency_scores",
    "image_tables",
    "purity_statistic",
    "purity_difference",
]


def _same_shape(a: np.ndarray, b: np.ndarray, what: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{what}: maps differ in size, {a.shape} and {b.shape} (resize the grouping first)")


# ----------------------------------------------------------------------------------------------------------------------
# ARI
# ----------------------------------------------------------------------------------------------------------------------


def adjusted_rand_index(labels_true: np.ndarray, labels_pred: np.ndarray) -> float:
    """Adjusted Rand index of two labelings of the same items (scikit-learn's ``adjusted_rand_score``).

    1 for identical partitions (whatever the label values), about 0 for independent ones, 1.0 for fewer than two
    items.
    """
    from sklearn.metrics import adjusted_rand_score

    true = np.asarray(labels_true).reshape(-1)
    pred = np.asarray(labels_pred).reshape(-1)
    if true.shape != pred.shape:
        raise ValueError(f"labelings differ in size: {true.size} vs {pred.size}")
    return float(adjusted_rand_score(true, pred))


def foreground_ari(groups: np.ndarray, instances: np.ndarray, *, background: Optional[int] = 0,
                   ignore: int = 255) -> float:
    """ARI of a grouping against instance masks over the foreground pixels (instance not ``background``, not
    ``ignore``); NaN when there are none.

    Args:
        groups: (H, W) integer grouping.
        instances: (H, W) instance ids (``background``: no object).
    """
    groups, instances = np.asarray(groups), np.asarray(instances)
    _same_shape(groups, instances, "foreground ARI")
    keep = instances != ignore
    if background is not None:
        keep &= instances != background
    if not keep.any():
        return float("nan")
    return adjusted_rand_index(instances[keep], groups[keep])


# ----------------------------------------------------------------------------------------------------------------------
# Mean best overlap
# ----------------------------------------------------------------------------------------------------------------------


def _dense_labels(values: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """``(ids, index)`` with ``ids[index] == values``: small non-negative labels as they are (no sort), others by
    ``np.unique``. ``ids`` may hold labels that do not occur."""
    values = values.reshape(-1)
    if values.size and np.issubdtype(values.dtype, np.integer) and values.min() >= 0 and values.max() < 4096:
        return np.arange(int(values.max()) + 1), values.astype(np.int64)
    return np.unique(values, return_inverse=True)


def overlap_table(regions: np.ndarray, targets: np.ndarray, *,
                  ignore: int = 255) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel counts of every target id (background included) in every predicted region of one image.

    Pixels labelled ``ignore`` in ``targets`` are left out (VOC's object borders; DINOSAUR's ignore mask).

    Args:
        regions: (H, W) integer grouping.
        targets: (H, W) target ids: instance ids or class ids.

    Returns:
        ``(target_ids (T,), region_ids (R,), counts (T, R))``, the ids that occur, sorted.
    """
    targets, regions = np.asarray(targets), np.asarray(regions)
    _same_shape(regions, targets, "overlap table")
    valid = targets != ignore
    target_ids, target_index = _dense_labels(targets[valid])
    region_ids, region_index = _dense_labels(regions[valid])
    table = np.bincount(target_index * len(region_ids) + region_index,
                        minlength=len(target_ids) * len(region_ids)).reshape(len(target_ids), len(region_ids))
    present_targets, present_regions = table.sum(axis=1) > 0, table.sum(axis=0) > 0
    return target_ids[present_targets], region_ids[present_regions], table[present_targets][:, present_regions]


def table_ious(target_ids: np.ndarray, counts: np.ndarray, *, background: Optional[int] = 0) -> np.ndarray:
    """(G, R) IoU of every target other than ``background`` with every region, from :func:`overlap_table`'s counts
    (background pixels count in the regions' areas)."""
    union = counts.sum(axis=1, keepdims=True) + counts.sum(axis=0, keepdims=True) - counts
    iou = counts / np.maximum(union, 1)
    return iou if background is None else iou[np.asarray(target_ids) != background]


def table_mbo(target_ids: np.ndarray, counts: np.ndarray, *, background: Optional[int] = 0) -> float:
    """mBO from :func:`overlap_table`'s counts: the mean over targets of the best IoU of any region (NaN: no
    target)."""
    iou = table_ious(target_ids, counts, background=background)
    return float(iou.max(axis=1).mean()) if iou.shape[0] and iou.shape[1] else float("nan")


def merge_columns(region_ids: np.ndarray, counts: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """(T, K') the counts of :func:`overlap_table` after merging regions: region r joins group ``groups[r]``."""
    group_of_region = np.asarray(groups)[np.asarray(region_ids)]
    _, column = np.unique(group_of_region, return_inverse=True)
    return counts @ np.eye(column.max() + 1 if column.size else 0, dtype=counts.dtype)[column]


def region_overlaps(regions: np.ndarray, targets: np.ndarray, *, background: Optional[int] = 0,
                    ignore: int = 255) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IoU of every target region (object or class) with every predicted region of one image.

    Pixels labelled ``ignore`` in ``targets`` are left out of both sides; ``background`` is no target, but its pixels
    count in the predicted regions' areas.

    Returns:
        ``(target_ids (G,), region_ids (R,), iou (G, R))``; G = 0 when the image has no target.
    """
    target_ids, region_ids, counts = overlap_table(regions, targets, ignore=ignore)
    kept = target_ids if background is None else target_ids[target_ids != background]
    return kept, region_ids, table_ious(target_ids, counts, background=background)


def best_overlaps(regions: np.ndarray, targets: np.ndarray, **ids: Optional[int]) -> np.ndarray:
    """(G,) for every target region of one image, the best IoU of any predicted region (see
    :func:`region_overlaps`; ``background``, ``ignore`` as there)."""
    _, _, iou = region_overlaps(regions, targets, **ids)
    return iou.max(axis=1) if iou.size else np.zeros(iou.shape[0])


def mean_best_overlap(regions: np.ndarray, targets: np.ndarray, **ids: Optional[int]) -> float:
    """Mean best overlap (mBO) of one image: the mean over its targets of each target's best IoU with any region.

    DINOSAUR's and SPOT's definition: with instance masks as targets it is instance-level mBO (mBO^i), with class
    maps (the instances of one class merged) class-level mBO (mBO^c); a data set's mBO is the mean over its images
    with at least one target. Each region may be the best match of several targets. ``background`` (no target) and
    ``ignore`` as :func:`region_overlaps`.

    Returns:
        mBO in [0, 1]; NaN when the image has no target.
    """
    best = best_overlaps(regions, targets, **ids)
    return float(best.mean()) if best.size else float("nan")


def merge_slots(vectors: np.ndarray, sizes: Sequence[int], used: Optional[np.ndarray] = None) -> Dict[int, np.ndarray]:
    """Group the slots of one block into K groups by agglomerative clustering of their vectors, for several K.

    Average linkage on the cosine distance (``scipy.cluster.hierarchy.linkage``), cut at each K with
    ``scipy.cluster.hierarchy.cut_tree`` (one call for all K). Only the ``used`` slots (those that own pixels) are
    clustered; when K is at least their number, each used slot stays its own group.

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


# ----------------------------------------------------------------------------------------------------------------------
# Data-set-level semantic mIoU
# ----------------------------------------------------------------------------------------------------------------------


def slot_class_overlaps(hard: np.ndarray, classes: np.ndarray, num_slots: int, num_classes: int, *,
                        ignore: int = 255) -> np.ndarray:
    """(S, num_classes) pixel counts of every slot's region with every class (``ignore`` pixels left out).

    Args:
        hard: (H, W) hard grouping (slot ids).
        classes: (H, W) class ids.
        num_slots: S.
        num_classes: classes, background included.
    """
    classes, hard = np.asarray(classes), np.asarray(hard)
    _same_shape(hard, classes, "slot-class overlaps")
    valid = classes != ignore
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
        cluster_class: (clusters,) the class of every cluster (the background for clusters left unmatched).
        slot_class: (slots,) the class every slot is given.
        confusion: (num_classes, num_classes) pixel counts, rows ground truth, columns prediction.
        labels: (slots,) the k-means cluster of every slot (the concepts of :func:`cluster_class_regions`).
    """

    miou: float
    iou: np.ndarray
    clusters: int
    slots: int
    cluster_class: np.ndarray
    slot_class: np.ndarray
    confusion: np.ndarray
    labels: Optional[np.ndarray] = None

    def per_image_confusion(self, overlaps: np.ndarray, slot_image: np.ndarray, num_images: int) -> np.ndarray:
        """(num_images, C, C) the confusion matrix of every image (for bootstrap intervals over images)."""
        num_classes = self.confusion.shape[0]
        out = np.zeros((num_images, num_classes, num_classes), np.int64)
        for klass in range(num_classes):
            np.add.at(out[:, :, klass], slot_image[self.slot_class == klass], overlaps[self.slot_class == klass])
        return out


def semantic_miou(features: np.ndarray, overlaps: np.ndarray, *, clusters: int, seed: int = 0,
                  background: Optional[int] = 0) -> SemanticScores:
    """DINOSAUR's data-set-level semantic mIoU of a block's slots.

    The slot features of every image of a split are clustered by k-means (scikit-learn, ``n_init=10``); every
    cluster is matched to one class by the Hungarian algorithm (``scipy.optimize.linear_sum_assignment``) on the
    cluster x class pixel overlap; clusters left unmatched (more clusters than classes) count as ``background``
    (with no background class, they predict nothing: their pixels are missed by every class). Every pixel then
    takes the class of its slot's cluster, and the IoU of each class is computed over the whole split.

    Args:
        features: (M, C) features of the M slots of all images (e.g. the slots that own pixels).
        overlaps: (M, num_classes) pixel counts of each slot's region with each class (:func:`slot_class_overlaps`).
        clusters: k-means clusters (DINOSAUR: the number of classes; here usually classes + background).
        seed: k-means seed.
        background: the background class id, or None.

    Raises:
        ValueError: fewer slots than clusters, or the inputs disagree.
    """
    from scipy.optimize import linear_sum_assignment
    from sklearn.cluster import KMeans

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
    cluster_class = np.full(clusters, -1 if background is None else background, np.int64)
    cluster_class[rows] = cols
    slot_class = cluster_class[labels]
    confusion = np.zeros((num_classes, num_classes), np.int64)
    matched = slot_class >= 0
    np.add.at(confusion.T, slot_class[matched], overlaps[matched])
    iou = per_class_iou(confusion)
    if background is None:  # pixels of unmatched clusters are predicted as no class: false negatives only
        missed = overlaps[~matched].sum(axis=0)
        union = confusion.sum(axis=0) + confusion.sum(axis=1) - np.diag(confusion) + missed
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = np.where(union > 0, np.diag(confusion) / np.where(union > 0, union, 1), np.nan)
    return SemanticScores(miou=float(np.nanmean(iou)), iou=iou, clusters=int(clusters), slots=len(features),
                          cluster_class=cluster_class, slot_class=slot_class, confusion=confusion, labels=labels)


# ----------------------------------------------------------------------------------------------------------------------
# Purity of concepts (clusters of regions) against classes
# ----------------------------------------------------------------------------------------------------------------------


def purity(table: np.ndarray) -> float:
    """``sum_k max_c n[k, c] / sum n`` of a concept x class count table (NaN when it is empty).

    It grows with the number of concepts (one concept per region is pure), so report it beside the majority baseline
    and the NMI (:func:`contingency_scores`).
    """
    table = np.asarray(table, dtype=np.float64)
    total = table.sum()
    return float(table.max(axis=-1).sum() / total) if total > 0 else float("nan")


def purity_draws(tables: np.ndarray) -> np.ndarray:
    """Purity of each of ``(..., K, C)`` tables (NaN for an empty one)."""
    tables = np.asarray(tables, dtype=np.float64)
    totals = tables.sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return tables.max(axis=-1).sum(axis=-1) / totals


def cluster_class_regions(labels: np.ndarray, overlaps: np.ndarray, clusters: int,
                          slot_image: Optional[np.ndarray] = None, num_images: Optional[int] = None) -> np.ndarray:
    """Regions (slots) per cluster and majority class: the concept x class table of the atlas's purity, for the
    clusters of :func:`semantic_miou` (``SemanticScores.labels``).

    Every slot counts once, under its cluster and the class that covers most of its pixels (slots without labelled
    pixels are left out).

    Args:
        labels: (M,) cluster of every slot.
        overlaps: (M, C) pixel counts of every slot's region with every class (:func:`slot_class_overlaps`).
        clusters: number of clusters.
        slot_image, num_images: with them, one table per image (for bootstrap intervals over images).

    Returns:
        (clusters, C) counts, or (num_images, clusters, C) per image.
    """
    labels = np.asarray(labels, np.int64)
    overlaps = np.asarray(overlaps)
    keep = overlaps.sum(axis=1) > 0
    majority = overlaps.argmax(axis=1)
    if slot_image is None:
        table = np.zeros((clusters, overlaps.shape[1]), np.int64)
        np.add.at(table, (labels[keep], majority[keep]), 1)
        return table
    table = np.zeros((int(num_images), clusters, overlaps.shape[1]), np.int64)
    np.add.at(table, (np.asarray(slot_image)[keep], labels[keep], majority[keep]), 1)
    return table


def object_table(table: np.ndarray, background: Optional[int]) -> np.ndarray:
    """A ``(..., K, C)`` concept x class table without its ``background`` column (unchanged for None)."""
    table = np.asarray(table)
    if background is None:
        return table
    return np.delete(table, background, axis=-1)


def object_purity(table: np.ndarray, background: Optional[int]) -> float:
    """:func:`purity` over the regions whose class is not the background (the data set's ``background`` id)."""
    return purity(object_table(table, background))


def contingency_scores(table: np.ndarray) -> Dict[str, float]:
    """Purity, majority baseline (one concept) and NMI (arithmetic mean of the entropies) of a count table."""
    from scipy.stats import entropy
    from sklearn.metrics import mutual_info_score

    table = np.asarray(table, dtype=np.float64)
    total = table.sum()
    if total <= 0:
        return {"purity": float("nan"), "majority_baseline": float("nan"), "nmi": float("nan")}
    info = mutual_info_score(None, None, contingency=table)
    mean_entropy = (entropy(table.sum(axis=1)) + entropy(table.sum(axis=0))) / 2
    return {"purity": purity(table), "majority_baseline": float(table.sum(axis=0).max() / total),
            "nmi": float(info / mean_entropy) if mean_entropy > 0 else 0.0}


def image_tables(image: np.ndarray, concept: np.ndarray, label: np.ndarray, *, images: int, concepts: int,
                 classes: int):
    """Per-image concept x class tables of labelled regions, as a sparse ``(images, concepts * classes)`` matrix
    (scipy CSR): row ``i`` counts image ``i``'s regions of concept ``k`` and class ``c`` in column ``k * classes + c``.
    Regions whose label is outside ``0 .. classes - 1`` (unlabelled) are left out."""
    from scipy.sparse import csr_matrix

    image, concept, label = (np.asarray(v, dtype=np.int64).reshape(-1) for v in (image, concept, label))
    keep = (label >= 0) & (label < classes)
    return csr_matrix((np.ones(int(keep.sum())), (image[keep], concept[keep] * classes + label[keep])),
                      shape=(images, concepts * classes))


def purity_statistic(tables, concepts: int, classes: int, *, background: Optional[int] = None,
                     objects: bool = False):
    """The statistic of :func:`glmix_viz.scoring.stats.image_bootstrap` for the purity of :func:`image_tables`:
    ``(..., images)`` weights -> ``(...)`` purities of the weighted sums of the images' tables (with ``objects``,
    the object purity: the ``background`` column left out)."""
    def statistic(weights: np.ndarray) -> np.ndarray:
        weights = np.asarray(weights, dtype=np.float64)
        flat = weights.reshape(-1, weights.shape[-1])
        summed = np.asarray((tables.T @ flat.T).T).reshape(weights.shape[:-1] + (concepts, classes))
        return purity_draws(object_table(summed, background) if objects else summed)

    return statistic


def purity_difference(tables_a, tables_b, concepts: int, classes: int, *, background: Optional[int] = None,
                      objects: bool = False, **options) -> Dict[str, object]:
    """Purity of A minus purity of B (two atlases of the same images, e.g. a model and its untrained copy) with a
    paired bootstrap over the images (:mod:`glmix_viz.scoring.stats`).

    Returns:
        ``{"mean": difference on all images, "ci95": [low, high], "images": N}``.
    """
    from glmix_viz.scoring.stats import image_bootstrap

    if tables_a.shape != tables_b.shape:
        raise ValueError(f"the two atlases' tables differ in shape: {tables_a.shape} and {tables_b.shape}")
    first = purity_statistic(tables_a, concepts, classes, background=background, objects=objects)
    second = purity_statistic(tables_b, concepts, classes, background=background, objects=objects)

    def statistic(weights: np.ndarray) -> np.ndarray:
        return first(weights) - second(weights)

    count = tables_a.shape[0]
    interval = image_bootstrap(count, statistic, **options)
    return {"mean": float(statistic(np.ones(count))), "ci95": [interval.low, interval.high], "images": int(count)}
