"""A plain folder of images as a data set without labels: the ``--images DIR`` of the batch jobs.

:class:`ImageFolder` has the reading side of :class:`~glmix_viz.data.voc.VOCDataset` (``ids``, ``image_path``,
``load_image``, ``load_mask``) so that a job written for a labelled set also runs on unlabelled images: ids are the
files' paths relative to the folder (POSIX separators, sorted), ``load_mask`` is always ``None`` and there are no class
names.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

import numpy as np

from glmix_viz.errors import DataError, ImageLoadError
from glmix_viz.images import load_image

__all__ = ["IMAGE_SUFFIXES", "ImageFolder"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")


class ImageFolder:
    """The image files under a folder (searched recursively; hidden files and folders skipped).

    Args:
        root: the folder.

    Attributes:
        root, ids (relative POSIX paths, sorted), split (``None``), class_names (``None``).

    Raises:
        DataError: the folder does not exist or holds no image file.
    """

    split: Optional[str] = None
    class_names = None

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DataError(f"{self.root}: image folder does not exist")
        self.ids: List[str] = sorted(
            path.relative_to(self.root).as_posix() for path in self.root.rglob("*")
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES
            and not any(part.startswith(".") for part in path.relative_to(self.root).parts)
        )
        if not self.ids:
            raise DataError(f"{self.root}: no image file ({', '.join(IMAGE_SUFFIXES)}) in the folder")

    def __len__(self) -> int:
        return len(self.ids)

    def image_path(self, image_id: str) -> Path:
        return self.root / image_id

    def load_image(self, image_id: str, *, max_side: int | None = None) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB. Raises ImageLoadError when the file is missing or cannot be decoded."""
        path = self.image_path(image_id)
        if not path.is_file():
            raise ImageLoadError(f"{path}: image file not found")
        return load_image(path, max_side=max_side)

    def load_mask(self, image_id: str) -> None:
        """No ground truth in a plain folder."""
        return None
