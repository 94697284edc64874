"""A finished atlas, opened for browsing: its blocks and concepts, their crops, the 2-D map, and the concept of any
slot (nearest centroid; in a slot-identity atlas, the slot's own index), for the explorer and the notebooks.

    atlas = open_atlas("runs/atlas")
    atlas.block_names                        # blocks with concepts
    atlas.block("stages.0.blocks.0")         # its atlas.json entry: concepts, purity, examples ...
    atlas.slot_concepts(name, record)        # (S,) concept of every slot of a block's record, and its distance
    atlas.source                             # "kmeans" or "slot" (glmix_viz.atlas.sources)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from glmix_viz.atlas.build import ATLAS_FORMAT
from glmix_viz.atlas.sources import atlas_source
from glmix_viz.errors import DataError

__all__ = ["Atlas", "ExampleRegion", "open_atlas"]


@dataclass(frozen=True)
class ExampleRegion:
    """One typical region of a concept: the image (id, index, path), the slot, its crop file (or None)."""

    concept: int
    rank: int
    image_id: str
    image_index: int
    image_path: Path
    slot: int
    crop: Optional[Path]
    distance: float


@dataclass
class Atlas:
    """An atlas folder (see :mod:`glmix_viz.atlas.build` for the files)."""

    folder: Path
    data: Dict[str, Any]
    images: Dict[str, List[str]]
    _arrays: Dict[str, Dict[str, np.ndarray]] = field(default_factory=dict, repr=False)

    @property
    def block_names(self) -> List[str]:
        return [block["name"] for block in self.data["blocks"]]

    @property
    def class_names(self) -> Optional[List[str]]:
        return self.data.get("class_names")

    @property
    def source(self) -> str:
        """Where the concepts come from: ``"kmeans"`` or ``"slot"`` (an atlas that does not say is k-means)."""
        return atlas_source(self.data)

    @property
    def feature(self) -> str:
        return self.data["plan"].get("feature", "slots_in")

    def block(self, name: str) -> Dict[str, Any]:
        """The ``atlas.json`` entry of a block."""
        for block in self.data["blocks"]:
            if block["name"] == name:
                return block
        raise KeyError(f"{name!r} has no concepts in {self.folder}; blocks: {self.block_names}")

    def arrays(self, name: str) -> Dict[str, np.ndarray]:
        """``block-J.npz`` of a block (centroids, map, PCA, bootstrap draws), read once."""
        if name not in self._arrays:
            with np.load(self.folder / self.block(name)["data"], allow_pickle=False) as data:
                self._arrays[name] = {key: data[key] for key in data.files}
        return self._arrays[name]

    def examples(self, name: str, concept: int) -> List[ExampleRegion]:
        """The typical regions of one concept, most typical first."""
        entry = self.block(name)["concepts"][concept]
        return [ExampleRegion(concept, rank, e["id"], e["image"], Path(self.images["paths"][e["image"]]), e["slot"],
                              self.folder / e["crop"] if "crop" in e else None, e["distance"])
                for rank, e in enumerate(entry["examples"])]

    def image_path(self, index: int) -> Path:
        return Path(self.images["paths"][index])

    def nearest_concepts(self, name: str, features: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """``(concept, distance)`` of each row of ``(S, C)`` slot features (scaled to unit length, as collected).

        In a k-means atlas, the nearest centroid. In a slot-identity atlas the rows must be the block's ``S`` slots
        in order, and row ``s``'s concept is ``s`` whatever its feature; its distance is to the slot's mean feature
        (NaN for a slot that held no region in the atlas)."""
        centroids = self.arrays(name)["centroids"]
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or features.shape[1] != centroids.shape[1]:
            raise ValueError(f"{name}: features must be (S, {centroids.shape[1]}), got {features.shape}")
        features = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
        if self.source == "slot":
            if len(features) != len(centroids):
                raise ValueError(f"{name}: a slot-identity atlas needs all {len(centroids)} slots in order, got "
                                 f"{len(features)} rows")
            concept = np.arange(len(features))
            distance = np.linalg.norm(features - centroids, axis=1)
            sizes = np.array([c["size"] for c in self.block(name)["concepts"]])
            return concept, np.where(sizes > 0, distance, np.nan)
        distances = np.linalg.norm(features[:, None, :] - centroids[None], axis=2)
        concept = distances.argmin(axis=1)
        return concept, distances[np.arange(len(concept)), concept]

    def slot_concepts(self, name: str, record: Any) -> Tuple[np.ndarray, np.ndarray]:
        """The concept of every slot of a block's :class:`~glmix_viz.probe.GroupingRecord` (first image of the
        batch), by the feature the atlas was collected with (:meth:`nearest_concepts`: in a slot-identity atlas,
        slot ``s`` is concept ``s``)."""
        features = getattr(record, self.feature)[0].float().cpu().numpy()
        return self.nearest_concepts(name, features)

    def project(self, name: str, features: np.ndarray) -> np.ndarray:
        """``(S, 2)`` map coordinates of slot features (the atlas's PCA)."""
        arrays = self.arrays(name)
        features = np.asarray(features, dtype=np.float32)
        features = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
        return (features - arrays["pca_mean"]) @ arrays["pca_components"].T

    @property
    def concept_noun(self) -> str:
        """What a concept is called: ``"concept"``, or ``"slot"`` in a slot-identity atlas."""
        return "slot" if self.source == "slot" else "concept"

    def concept_title(self, name: str, concept: int) -> str:
        """``"concept 3: 120 regions, circle 84%"`` (the class part only with labels; ``"slot 3: ..."`` in a
        slot-identity atlas)."""
        entry = self.block(name)["concepts"][concept]
        label = f", {entry['class']} {entry['purity']:.0%}" if "class" in entry else ""
        return f"{self.concept_noun} {concept}: {entry['size']} regions{label}"


def open_atlas(folder: Union[str, os.PathLike]) -> Atlas:
    """Open an atlas folder written by ``glmix-viz atlas``.

    Raises:
        DataError: no such folder, no ``atlas.json`` (e.g. the regions were collected but not yet clustered), or a
            file of another format.
    """
    folder = Path(folder).expanduser()
    path = folder / "atlas.json"
    if not folder.is_dir():
        raise DataError(f"{folder}: atlas folder does not exist")
    if not path.is_file():
        raise DataError(f"{folder}: no atlas.json (run glmix-viz atlas ... --out {folder} to finish it)")
    try:
        data = json.loads(path.read_text())
        images = json.loads((folder / "images.json").read_text())
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: cannot read the atlas ({error})") from None
    if data.get("format") != ATLAS_FORMAT:
        raise DataError(f"{path}: not a glmix-viz atlas (format {data.get('format')!r}, expected {ATLAS_FORMAT!r})")
    try:
        atlas_source(data)
    except DataError as error:
        raise DataError(f"{path}: {str(error).removeprefix('atlas.json: ')}") from None
    return Atlas(folder, data, images)
