"""Where an atlas's concepts come from: the one module that knows the concept sources.

* ``kmeans`` (the default, and what every atlas written before ``atlas.json`` recorded a source is): the regions of
  a block are clustered into ``--clusters`` concepts by their features (:func:`glmix_viz.atlas.concepts.fit_concepts`).
* ``slot`` (slot identity): a region's concept is the index of its slot, so a block has as many concepts as slots.
  This means something only where slot ``k`` starts from the same vector in every image: a GLMix block whose initial
  slots are learned parameters (``slot_init == "param"``, e.g. ``glnet_stl_paramslot``). The atlas then asks what
  each learned slot stands for across the data set, and its purity is the object purity of the slot index that
  ``grouping-scores`` reports as ``slot_identity_purity`` (the same :mod:`glmix_viz.scoring.grouping` functions).
  A concept's centre is the mean of its regions' unit-length features: its typical regions are the ones nearest that
  mean, and the distance the explorer shows is a slot's distance to it.

With pooled initial slots (``slot_init == "ada_avgpool"``) slot ``k`` is pooled from the ``k``-th cell of a grid
over the image, so "slot k" names a position, not a learned identity, and an atlas of it would read as concepts what
are image cells. :func:`check_source` refuses such a block unless the caller says ``allow_pooled`` (the CLI's
``--allow-pooled-slots``): a positional atlas is a fair baseline to set beside a learned one, but only on purpose.

The model knows nothing of this: the slot count and initialisation of each block are read from its grouping tap's
description (:func:`block_slots`) and recorded in the atlas's ``features/plan.json`` (``slots``), so the atlas is
built, and checked, without the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from glmix_viz.atlas.collect import read_chunk
from glmix_viz.atlas.concepts import fit_concepts
from glmix_viz.errors import DataError, GlmixVizError

__all__ = ["CONCEPT_SOURCES", "DEFAULT_SOURCE", "SlotIdentity", "atlas_source", "block_slots", "check_source",
           "fit_source", "fit_slot_identity"]

CONCEPT_SOURCES = ("kmeans", "slot")
DEFAULT_SOURCE = "kmeans"
LEARNED = "param"  # the slot initialisation under which slot k is one identity in every image


def atlas_source(data: Mapping[str, Any]) -> str:
    """The concept source of an ``atlas.json`` (``concepts``; an atlas without the field is a k-means one).

    Raises:
        DataError: a source this version does not know.
    """
    source = data.get("concepts", DEFAULT_SOURCE)
    if source not in CONCEPT_SOURCES:
        raise DataError(f"atlas.json: unknown concept source {source!r} (known: {', '.join(CONCEPT_SOURCES)})")
    return source


def block_slots(model: Any, names: Sequence[str]) -> List[Dict[str, Any]]:
    """``{"num_slots", "slot_init"}`` of each named block, from its grouping tap's description (no forward pass)."""
    from glmix_viz.models.tap import tap_infos

    infos = tap_infos(model)
    return [{"num_slots": int(infos[name].num_slots), "slot_init": str(infos[name].slot_init)} for name in names]


def check_source(source: str, names: Sequence[str], slots: Optional[Sequence[Mapping[str, Any]]], *,
                 clusters: Optional[int] = None, allow_pooled: bool = False) -> None:
    """Refuse a concept source that does not fit the blocks, in one line naming the block and why.

    Args:
        source: one of :data:`CONCEPT_SOURCES`.
        names: the blocks' paths.
        slots: per block, ``{"num_slots", "slot_init"}`` (:func:`block_slots`; None: not recorded, which the slot
            source cannot do without).
        clusters: a concept count the user asked for explicitly (None: not asked); the slot source's count is each
            block's slot count, so another number is refused rather than silently ignored.
        allow_pooled: accept blocks whose slots are pooled from the input (module docstring).

    Raises:
        GlmixVizError: an unknown source; for ``slot``: no slot record, pooled slots without ``allow_pooled``, or
            ``clusters`` other than a block's slot count.
    """
    if source not in CONCEPT_SOURCES:
        raise GlmixVizError(f"--concepts must be one of {', '.join(CONCEPT_SOURCES)}, got {source!r}")
    if source != "slot":
        return
    if slots is None or len(slots) != len(names):
        raise DataError("--concepts slot: these regions were collected before the blocks' slot initialisations were "
                        "recorded; collect them again (--overwrite)")
    for name, info in zip(names, slots):
        if info["slot_init"] != LEARNED and not allow_pooled:
            raise GlmixVizError(
                f"--concepts slot: block {name} pools its slots from the input (slot_init={info['slot_init']!r}), so "
                f"slot k is the k-th grid cell of each image, not a learned identity; use a block with learned slots "
                f"(slot_init='param'), --concepts kmeans, or --allow-pooled-slots for a positional atlas on purpose")
        if clusters is not None and clusters != info["num_slots"]:
            raise GlmixVizError(f"--clusters {clusters}: with --concepts slot a block has one concept per slot "
                                f"({name} has {info['num_slots']}); leave --clusters out")


class SlotIdentity:
    """The fitted "model" of the slot source: concept = slot index, centre = mean feature of the slot's regions.

    It has what the atlas needs of a fitted k-means (``n_clusters``, ``cluster_centers_``) and
    :meth:`assign`, which :func:`glmix_viz.atlas.concepts.describe_concepts` calls in place of the nearest centroid.

    Attributes:
        n_clusters: the block's slot count.
        cluster_centers_: ``(S, C)`` mean unit-length feature of each slot's regions (zeros for a slot that never
            held a region).
        counts: ``(S,)`` regions per slot.
    """

    def __init__(self, centres: np.ndarray, counts: np.ndarray) -> None:
        self.cluster_centers_ = np.asarray(centres, np.float32)
        self.counts = np.asarray(counts, np.int64)
        self.n_clusters = int(len(self.cluster_centers_))

    def assign(self, rows: Mapping[str, np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
        """``(concept, distance)`` of chunk rows: their slot, and their feature's distance to that slot's centre."""
        concept = np.asarray(rows["slot"], np.int64)
        if concept.size and (concept.min() < 0 or concept.max() >= self.n_clusters):
            raise DataError(f"a region of slot {int(concept.max())} in a block of {self.n_clusters} slots")
        distance = np.linalg.norm(np.asarray(rows["features"], np.float32) - self.cluster_centers_[concept], axis=1)
        return concept, distance


def fit_slot_identity(chunks: Sequence[Path], block: int, num_slots: int) -> SlotIdentity:
    """One pass over the chunk files: each slot's region count and mean feature (bounded memory: one chunk).

    Raises:
        DataError: no region at all.
    """
    sums: Optional[np.ndarray] = None
    counts = np.zeros(num_slots, np.int64)
    for path in chunks:
        rows = read_chunk(path, block, fields=("features", "slot"))
        slot = rows["slot"].astype(np.int64)
        if sums is None:
            sums = np.zeros((num_slots, rows["features"].shape[1]), np.float64)
        if slot.size and slot.max() >= num_slots:
            raise DataError(f"{path}: a region of slot {int(slot.max())} in a block recorded with {num_slots} slots")
        np.add.at(sums, slot, rows["features"].astype(np.float64))
        counts += np.bincount(slot, minlength=num_slots)
    if sums is None or counts.sum() == 0:
        raise DataError("no regions to describe: add images")
    centres = sums / np.maximum(counts, 1)[:, None]
    return SlotIdentity(centres, counts)


def fit_source(source: str, chunks: Sequence[Path], block: int, *, clusters: int, slots: Optional[Mapping[str, Any]],
               seed: int = 0, passes: int = 3):
    """The fitted concepts of one block: a ``MiniBatchKMeans`` (``kmeans``) or a :class:`SlotIdentity` (``slot``)."""
    if source == "slot":
        if slots is None:
            raise DataError("--concepts slot: the block's slot count was not recorded; collect again (--overwrite)")
        return fit_slot_identity(chunks, block, int(slots["num_slots"]))
    return fit_concepts(chunks, block, clusters, seed=seed, passes=passes)
