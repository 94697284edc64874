"""Concepts: the regions of one block over a data set, clustered by their features, streamed chunk by chunk.

* :func:`fit_concepts` - scikit-learn's ``MiniBatchKMeans`` fitted with ``partial_fit`` over the chunk files, a few
  passes in a fixed order (so memory holds one batch of rows, whatever the number of images; same files and seed,
  same centroids).
* :func:`describe_concepts` - a second pass: every region's concept (nearest centroid; for the slot-identity source
  of :mod:`glmix_viz.atlas.sources`, its slot), each concept's size and class counts, its most typical regions
  (closest to the centroid, or to the slot's mean feature), a uniform sample of regions for the 2-D map, and the
  (image, concept, class) of every labelled region, from which the atlas bootstraps the purity over images.

The scores (purity, object purity, NMI) and their bootstrap are :mod:`glmix_viz.scoring.grouping`'s and
:mod:`glmix_viz.scoring.stats`'; the interval is conditional on the fitted centroids.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

import numpy as np

from glmix_viz.atlas.collect import read_chunk
from glmix_viz.errors import DataError
from sklearn.cluster import MiniBatchKMeans

__all__ = ["ConceptStats", "describe_concepts", "fit_concepts"]


def _row_batches(chunks: Sequence[Path], block: int, rows: int) -> Iterator[np.ndarray]:
    """The features of a block over the chunk files, in batches of ``rows`` (the last one may be short)."""
    buffer: List[np.ndarray] = []
    held = 0
    for path in chunks:
        features = read_chunk(path, block, fields=("features",))["features"]
        buffer.append(features)
        held += len(features)
        while held >= rows:
            joined = np.concatenate(buffer)
            yield joined[:rows]
            buffer, held = [joined[rows:]], held - rows
    if held:
        yield np.concatenate(buffer)


def fit_concepts(chunks: Sequence[Path], block: int, clusters: int, *, seed: int = 0, passes: int = 3,
                 batch_rows: int = 4096):
    """``MiniBatchKMeans`` over one block's regions, fitted batch by batch.

    Raises:
        DataError: fewer regions than ``clusters``.
    """
    total = sum(len(read_chunk(path, block, fields=("slot",))["slot"]) for path in chunks)
    if total < clusters:
        raise DataError(f"only {total} regions for {clusters} concepts: lower --clusters or add images")
    batch_rows = max(batch_rows, clusters)
    kmeans = MiniBatchKMeans(n_clusters=clusters, random_state=seed, batch_size=batch_rows, n_init=3)
    pending: Optional[np.ndarray] = None
    for _ in range(passes):
        for batch in _row_batches(chunks, block, batch_rows):
            if pending is not None:  # the first call needs at least `clusters` rows: a short tail joins the next
                batch, pending = np.concatenate([pending, batch]), None
            if not hasattr(kmeans, "cluster_centers_") and len(batch) < clusters:
                pending = batch
                continue
            kmeans.partial_fit(batch)
    if pending is not None:
        kmeans.partial_fit(pending)
    return kmeans


@dataclass
class ConceptStats:
    """What the second pass learns about one block's concepts.

    Attributes:
        sizes: ``(K,)`` regions per concept.
        table: ``(K, C)`` regions per concept and majority class (``C = 0`` without labels).
        labelled: ``image``, ``concept``, ``label`` of every labelled region (for the bootstrap over images).
        typical: per concept, up to ``examples`` ``(distance, image, slot, confidence)`` closest to the centroid.
        sample: the regions of the 2-D map: ``features``, ``concept``, ``label``, ``image``, ``slot``.
        images: images with at least one region of the block.
    """

    sizes: np.ndarray
    table: np.ndarray
    typical: List[List[tuple]]
    labelled: Dict[str, np.ndarray] = field(default_factory=dict)
    sample: Dict[str, np.ndarray] = field(default_factory=dict)
    images: int = 0


def _keep_typical(typical: List[List[tuple]], concept: np.ndarray, distance: np.ndarray, rows: Dict[str, np.ndarray],
                  examples: int) -> None:
    for k, heap in enumerate(typical):
        members = np.flatnonzero(concept == k)
        best = members[np.argsort(distance[members], kind="stable")[:examples]]
        merged = heap + [(float(distance[i]), int(rows["image"][i]), int(rows["slot"][i]),
                          float(rows["confidence"][i])) for i in best]
        heap[:] = heapq.nsmallest(examples, merged)


def _sample_rows(chunk_no: int, count: int, seed: int) -> np.ndarray:
    """Uniform keys of a chunk's rows: the ``map_points`` smallest over all chunks are a uniform sample."""
    return np.random.default_rng([seed, 7919, chunk_no]).random(count)


def _assign(concepts, rows: Dict[str, np.ndarray]):
    """``(concept, distance to its centre)`` of chunk rows: the model's own ``assign`` where it has one (the slot
    source's :class:`~glmix_viz.atlas.sources.SlotIdentity`), else the nearest centroid of a fitted k-means."""
    if hasattr(concepts, "assign"):
        return concepts.assign(rows)
    distances = concepts.transform(rows["features"])
    concept = distances.argmin(axis=1)
    return concept, distances[np.arange(len(concept)), concept]


def describe_concepts(chunks: Sequence[Path], block: int, kmeans, num_classes: int, *, examples: int = 8,
                      map_points: int = 3000, seed: int = 0) -> ConceptStats:
    """Second pass over one block's chunk files: concept of every region, sizes, class table, typical regions,
    labelled regions, map sample (see :class:`ConceptStats`).

    ``kmeans``: a fitted ``MiniBatchKMeans`` (``n_clusters``, ``transform``), or any concepts with ``n_clusters`` and
    ``assign(rows) -> (concept, distance)`` (:func:`glmix_viz.atlas.sources.fit_source`)."""
    clusters = kmeans.n_clusters
    classes = max(num_classes, 0)
    stats = ConceptStats(sizes=np.zeros(clusters, np.int64), table=np.zeros((clusters, classes), np.int64),
                         typical=[[] for _ in range(clusters)])
    labelled_rows: Dict[str, List[np.ndarray]] = {"image": [], "concept": [], "label": []}
    sample: Dict[str, List[np.ndarray]] = {}
    keys: List[np.ndarray] = []
    for chunk_no, path in enumerate(chunks):
        rows = read_chunk(path, block)
        if not len(rows["slot"]):
            continue
        concept, own = _assign(kmeans, rows)
        stats.sizes += np.bincount(concept, minlength=clusters)
        stats.images += len(np.unique(rows["image"]))
        _keep_typical(stats.typical, concept, own, rows, examples)
        labelled = (rows["label"] >= 0) & (rows["label"] < classes)
        if classes and labelled.any():
            np.add.at(stats.table, (concept[labelled], rows["label"][labelled]), 1)
            for name, values in (("image", rows["image"]), ("concept", concept), ("label", rows["label"])):
                labelled_rows[name].append(np.asarray(values)[labelled].astype(np.int32))
        keys.append(_sample_rows(chunk_no, len(concept), seed))
        for name, values in (("features", rows["features"]), ("concept", concept), ("label", rows["label"]),
                             ("image", rows["image"]), ("slot", rows["slot"])):
            sample.setdefault(name, []).append(values)
        if sum(len(k) for k in keys) > 4 * map_points:  # bounded: keep only the current best candidates
            _shrink(sample, keys, map_points)
    _shrink(sample, keys, map_points)
    stats.sample = {name: values[0] for name, values in sample.items()}
    stats.labelled = {name: np.concatenate(values) if values else np.zeros(0, np.int32)
                      for name, values in labelled_rows.items()}
    return stats


def _shrink(sample: Dict[str, List[np.ndarray]], keys: List[np.ndarray], points: int) -> None:
    """Keep the ``points`` rows of smallest key (in place; ``keys`` and every list end as one array)."""
    if not keys:
        return
    joined = np.concatenate(keys)
    chosen = np.sort(np.argsort(joined, kind="stable")[:points])
    keys[:] = [joined[chosen]]
    for name in sample:
        sample[name] = [np.concatenate(sample[name])[chosen]]
