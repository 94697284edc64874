"""COCO-2014 in the weak-supervision setting: image labels and 81-class masks from the instance annotations.

The official layout, as downloaded::

    train2014/COCO_train2014_<12 digits>.jpg      (also <root>/images/train2014/)
    val2014/COCO_val2014_<12 digits>.jpg
    annotations/instances_train2014.json
    annotations/instances_val2014.json

read with pycocotools. Conventions (those of the WSSS code bases, e.g. the COCO lists of IRN-style methods):

* Ids are the image files' stems (``COCO_val2014_000000000042``); predictions and cached masks are ``<id>.png``.
* A split holds the images with at least one annotation (82,081 of train2014 and 40,137 of val2014 in the
  WSSS lists); images without any object have neither image-level labels nor anything to segment.
* Classes: the background, then the 80 categories in increasing category id (``person`` = 1 ... ``toothbrush`` = 80).
* Image-level labels: every category annotated in the image, crowd annotations included.
* Masks, built on the fly (and cached as palette PNGs when ``mask_cache`` is given, written atomically): crowd
  regions are 255 (ignored), then the non-crowd objects are painted largest first, so that a small object lying on
  a large one stays visible; the rest is background 0.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
from pycocotools.coco import COCO

from glmix_viz.data.base import SplitBase
from glmix_viz.errors import DataError, ImageLoadError, one_line
from glmix_viz.files import save_png_atomic
from glmix_viz.images import load_image
from glmix_viz.labels import IGNORE_INDEX, label_to_pil, load_label_png

__all__ = ["COCO_SPLITS", "COCODataset", "COCOSample", "is_coco_root"]

COCO_SPLITS: Dict[str, str] = {"train": "train2014", "val": "val2014", "train2014": "train2014", "val2014": "val2014"}
"""Accepted split names -> the folder / annotation suffix."""


class COCOSample:
    """One image of a :class:`COCODataset` (``id``, ``image``, ``labels``, ``mask``), like a ``VOCSample``."""

    def __init__(self, image_id: str, image: np.ndarray, labels: Optional[np.ndarray], mask: Optional[np.ndarray]):
        self.id, self.image, self.labels, self.mask = image_id, image, labels, mask


class COCODataset(SplitBase):
    """A COCO-2014 split with the interface of :class:`~glmix_viz.data.voc.VOCDataset`.

    Args:
        root: the folder holding ``train2014/``, ``val2014/`` and ``annotations/``.
        split: ``train`` / ``val`` (or ``train2014`` / ``val2014``).
        mask_cache: folder where built masks are kept as ``<id>.png`` (read back on later calls); None: build each
            time.

    Attributes:
        root, split, ids (sorted stems), class_names (81, background first), num_classes, annotation_file.

    Raises:
        DataError: unknown split, missing folder or annotation file, unreadable annotations.
    """

    format = "coco"  # the name of its entry in glmix_viz.data.registry.DATASETS

    def __init__(self, root: str | os.PathLike, split: str = "train", *,
                 mask_cache: Optional[str | os.PathLike] = None) -> None:
        self.root = Path(root).expanduser()
        self.given_root = self.root
        if split not in COCO_SPLITS:
            raise DataError(f"{self.root}: unknown COCO split {split!r}; use one of {', '.join(COCO_SPLITS)}")
        self.split = split
        name = COCO_SPLITS[split]
        self.annotation_file = self.root / "annotations" / f"instances_{name}.json"
        if not self.annotation_file.is_file():
            raise DataError(f"{self.annotation_file}: COCO annotation file not found (is {self.root} the COCO root?)")
        candidates = [self.root / name, self.root / "images" / name]
        self.image_folder = next((path for path in candidates if path.is_dir()), candidates[0])
        if not self.image_folder.is_dir():
            raise DataError(f"{self.root}: image folder {name}/ not found (looked in {candidates[0]}, {candidates[1]})")
        self.mask_cache = None if mask_cache is None else Path(mask_cache)
        self.coco = self._read_annotations()
        categories = sorted(self.coco.loadCats(self.coco.getCatIds()), key=lambda category: category["id"])
        self.class_names: tuple[str, ...] = ("background", *(category["name"] for category in categories))
        self.background = 0
        self._label_of_category = {category["id"]: index + 1 for index, category in enumerate(categories)}
        by_stem = {Path(info["file_name"]).stem: info for info in self.coco.imgs.values()
                   if self.coco.getAnnIds(imgIds=info["id"])}
        self._info = by_stem
        self.ids: List[str] = sorted(by_stem)
        if not self.ids:
            raise DataError(f"{self.annotation_file}: no annotated image")

    def _read_annotations(self) -> Any:
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress lines
                return COCO(str(self.annotation_file))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise DataError(f"{self.annotation_file}: cannot read COCO annotations ({one_line(error)})") from None

    def __len__(self) -> int:
        return len(self.ids)

    def _image_info(self, image_id: str) -> Dict[str, Any]:
        info = self._info.get(image_id)
        if info is None:
            raise DataError(f"{self.annotation_file}: no annotated image {image_id!r} in split {self.split!r}")
        return info

    def image_path(self, image_id: str) -> Path:
        """``<split folder>/<file_name>`` of the image (whether or not it exists)."""
        return self.image_folder / self._image_info(image_id)["file_name"]

    def mask_path(self, image_id: str) -> Path:
        """Where the image's mask comes from: its cached PNG when cached, else the annotation file."""
        if self.mask_cache is not None and (self.mask_cache / f"{image_id}.png").is_file():
            return self.mask_cache / f"{image_id}.png"
        return self.annotation_file

    def load_image(self, image_id: str, *, max_side: int | None = None) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB. Raises ImageLoadError when the file is missing or cannot be decoded."""
        path = self.image_path(image_id)
        if not path.is_file():
            raise ImageLoadError(f"{path}: image file not found (id {image_id!r})")
        return load_image(path, max_side=max_side)

    def image(self, image_id: str) -> np.ndarray:
        return self.load_image(image_id)

    def mask(self, image_id: str) -> np.ndarray:
        return self.load_mask(image_id)

    def labels(self, image_id: str) -> np.ndarray:
        return self.image_labels(image_id)

    def image_labels(self, image_id: str) -> np.ndarray:
        """``(80,)`` float32 multi-hot labels: every category annotated in the image (crowd included)."""
        labels = np.zeros(self.num_classes - 1, dtype=np.float32)
        for annotation in self.coco.loadAnns(self.coco.getAnnIds(imgIds=self._image_info(image_id)["id"])):
            labels[self._label_of_category[annotation["category_id"]] - 1] = 1.0
        return labels

    def build_mask(self, image_id: str) -> np.ndarray:
        """The ``(H, W)`` uint8 class map from the annotations: crowd 255, objects painted largest first."""
        info = self._image_info(image_id)
        mask = np.zeros((info["height"], info["width"]), dtype=np.uint8)
        annotations = self.coco.loadAnns(self.coco.getAnnIds(imgIds=info["id"]))
        try:
            for annotation in annotations:
                if annotation.get("iscrowd", 0):
                    mask[self.coco.annToMask(annotation) > 0] = IGNORE_INDEX
            objects = [annotation for annotation in annotations if not annotation.get("iscrowd", 0)]
            for annotation in sorted(objects, key=lambda item: -float(item.get("area", 0.0))):
                mask[self.coco.annToMask(annotation) > 0] = self._label_of_category[annotation["category_id"]]
        except (KeyError, TypeError, ValueError, IndexError) as error:
            raise DataError(f"{self.annotation_file}: bad segmentation for image {image_id!r} ({one_line(error)})") \
                from None
        return mask

    def load_mask(self, image_id: str) -> np.ndarray:
        """The 81-class mask: the cached PNG when there is one, else built (and cached when ``mask_cache`` is set)."""
        if self.mask_cache is not None:
            cached = self.mask_cache / f"{image_id}.png"
            if cached.is_file():
                return load_label_png(cached)
            mask = self.build_mask(image_id)
            save_png_atomic(cached, label_to_pil(mask))
            return mask
        return self.build_mask(image_id)

    def get(self, image_id: str, *, with_labels: bool = True, with_mask: bool = True) -> COCOSample:
        """Image, labels and mask of one id (as :meth:`VOCDataset.get`)."""
        image = self.load_image(image_id)
        return COCOSample(image_id, image, self.image_labels(image_id) if with_labels else None,
                          self.load_mask(image_id) if with_mask else None)

    def __getitem__(self, index: int) -> COCOSample:
        return self.get(self.ids[index])


def is_coco_root(root: str | os.PathLike) -> bool:
    """Whether ``root`` has the COCO-2014 layout (``annotations/instances_{train,val}2014.json``)."""
    folder = Path(root).expanduser() / "annotations"
    return any((folder / f"instances_{name}.json").is_file() for name in ("train2014", "val2014"))
