"""What every data set is to the rest of the package: a :class:`Split`.

A split is a list of image ids with, for each id, an RGB image, and where the format has them a mask of class ids
and image-level labels. Every reader (:mod:`~glmix_viz.data.voc`, :mod:`~glmix_viz.data.coco`,
:mod:`~glmix_viz.data.folder`, :mod:`~glmix_viz.data.segfolder`, :mod:`~glmix_viz.data.tagged`) implements it, and
code outside ``data/`` sees only this protocol (opened by :func:`glmix_viz.data.registry.open_split`).

Conventions:

* ``class_names[k]`` names class id ``k`` (the value of its mask pixels); ``()`` for a set without classes.
* ``background`` is the id of the background class, wherever it stands, or ``None`` when the set has none; nothing
  outside ``data/`` assumes it is 0.
* ``ignore`` is the mask value of pixels left out of every score (255).
* ``labels(id)`` is a multi-hot float32 vector over the *object classes*: every class but the background, in id
  order (:func:`object_ids`); for VOC that is the usual 20-vector.
* ``mask(id)`` is ``None`` for an image without a mask (and always for a set with ``has_masks`` false).
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Protocol, Sequence, Tuple, runtime_checkable

import numpy as np

from glmix_viz.errors import DataError, ImageLoadError
from glmix_viz.images import load_image
from glmix_viz.labels import IGNORE_INDEX

__all__ = [
    "Split",
    "SplitBase",
    "check_mask",
    "object_ids",
    "object_names",
    "labels_from_mask",
    "read_class_names",
    "background_of",
]


@runtime_checkable
class Split(Protocol):
    """One split of a data set (see the module docstring)."""

    root: Path
    format: str
    split: Optional[str]
    ids: List[str]
    class_names: Tuple[str, ...]
    background: Optional[int]
    ignore: int
    has_masks: bool
    has_labels: bool

    @property
    def num_classes(self) -> int:
        """``len(class_names)``."""

    def image(self, image_id: str) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB; raises ImageLoadError / DataError naming the file."""

    def mask(self, image_id: str) -> Optional[np.ndarray]:
        """``(H, W)`` uint8 class ids (``ignore`` where unscored), or ``None`` without a mask."""

    def labels(self, image_id: str) -> np.ndarray:
        """``(len(object_ids(split)),)`` float32 multi-hot image-level labels."""

    def image_path(self, image_id: str) -> Path:
        """The image's file."""

    def mask_path(self, image_id: str) -> Optional[Path]:
        """Where the image's mask comes from, or ``None`` when it has none."""

    def instances(self, image_id: str) -> Optional[np.ndarray]:
        """``(H, W)`` uint8 instance ids (0 no object, 255 ignore) where the format has them, else ``None``."""


def object_ids(split: Split) -> List[int]:
    """The ids of the classes that image-level labels cover: every class but the background, in id order."""
    return [index for index in range(len(split.class_names or ())) if index != split.background]


def object_names(split: Split) -> List[str]:
    """The names of :func:`object_ids`."""
    return [split.class_names[index] for index in object_ids(split)]


def labels_from_mask(mask: np.ndarray, num_classes: int, background: Optional[int]) -> np.ndarray:
    """Multi-hot labels over the object classes (every id but ``background``) of the classes present in ``mask``."""
    present = np.zeros(num_classes, dtype=bool)
    values = np.unique(mask)
    present[values[values < num_classes].astype(np.int64)] = True
    keep = [index for index in range(num_classes) if index != background]
    return present[keep].astype(np.float32)


def check_mask(path: Path | str, mask: np.ndarray, num_classes: int, ignore: int,
               image_size: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """``mask`` when every value is a class id or ``ignore`` and (given ``image_size`` ``(H, W)``) its size is the
    image's; else one DataError line naming ``path`` and the problem."""
    if image_size is not None and tuple(mask.shape[:2]) != tuple(image_size):
        raise DataError(f"{path}: mask size {mask.shape[1]}x{mask.shape[0]} differs from the image size "
                        f"{image_size[1]}x{image_size[0]}")
    bad = (mask >= num_classes) & (mask != ignore)
    if bad.any():
        values = np.unique(mask[bad])[:5].tolist()
        raise DataError(f"{path}: mask values {values} are neither a listed class (0..{num_classes - 1}) "
                        f"nor the ignore value {ignore}")
    return mask


def read_class_names(path: Path) -> Tuple[str, ...]:
    """``classes.txt``: line ``k`` names class id ``k``; trailing blank lines are allowed.

    Raises:
        DataError: missing file, a blank line before the last name (a missing name), a duplicated name, fewer
            than one class or more than 255 (one line naming the file and the line).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: class list not found (one class name per line; line k names class id k)")
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read the class list ({error})") from None
    while lines and not lines[-1].strip():
        lines.pop()
    names: List[str] = []
    seen = {}
    for number, line in enumerate(lines, start=1):
        name = line.strip()
        if not name:
            raise DataError(f"{path}: line {number} has no class name (line k names class id k; no blank lines)")
        if name in seen:
            raise DataError(f"{path}: line {number} repeats the class name {name!r} of line {seen[name]}")
        seen[name] = number
        names.append(name)
    if not names:
        raise DataError(f"{path}: the class list is empty")
    if len(names) > 255:
        raise DataError(f"{path}: {len(names)} classes; at most 255 fit a mask (255 is the ignore value)")
    return tuple(names)


def background_of(class_names: Sequence[str]) -> Optional[int]:
    """The id of the class named ``background`` (any case), or ``None``."""
    for index, name in enumerate(class_names):
        if name.strip().lower() == "background":
            return index
    return None


class SplitBase:
    """What the path-based readers share: ``image`` from ``image_path``, sizes, ``num_classes``, and the older method
    names (``load_image``, ``load_mask``, ``image_labels``) kept for existing callers."""

    format: str = ""
    ignore: int = IGNORE_INDEX
    background: Optional[int] = None
    class_names: Tuple[str, ...] = ()
    has_masks: bool = True
    has_labels: bool = True
    ids: List[str]

    @property
    def num_classes(self) -> int:
        """Number of classes, background included."""
        return len(self.class_names or ())

    def __len__(self) -> int:
        return len(self.ids)

    def image_path(self, image_id: str) -> Path:  # pragma: no cover - every reader defines it
        raise NotImplementedError

    def load_image(self, image_id: str, *, max_side: Optional[int] = None) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB (longer side at most ``max_side``); ImageLoadError naming a missing or bad file."""
        path = self.image_path(image_id)
        if not Path(path).is_file():
            raise ImageLoadError(f"{path}: image file not found (id {image_id!r})")
        return load_image(path, max_side=max_side)

    def image(self, image_id: str) -> np.ndarray:
        return self.load_image(image_id)

    def load_mask(self, image_id: str) -> Optional[np.ndarray]:
        return self.mask(image_id)

    def image_labels(self, image_id: str) -> np.ndarray:
        return self.labels(image_id)

    def mask(self, image_id: str) -> Optional[np.ndarray]:  # pragma: no cover - every reader defines it
        raise NotImplementedError

    def mask_path(self, image_id: str) -> Optional[Path]:
        """No mask file unless the format has one."""
        return None

    def instances(self, image_id: str) -> Optional[np.ndarray]:
        """No instance masks unless the format has them."""
        return None

    def labels(self, image_id: str) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError
