"""A plain folder of images as a data set without labels: the ``--images DIR`` of the batch jobs.

:class:`ImageFolder` has the reading side of :class:`~glmix_viz.data.voc.VOCDataset` (``ids``, ``image_path``,
``load_image``, ``load_mask``) so that a job written for a labelled set also runs on unlabelled images: ids are the
files' paths relative to the folder (POSIX separators, sorted), ``mask`` is always ``None``, there are no class
names (``()``), no background and no image-level labels (``labels`` refuses in one line).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

import numpy as np

from glmix_viz.data.base import SplitBase
from glmix_viz.errors import DataError

__all__ = ["IMAGE_SUFFIXES", "ImageFolder"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")


class ImageFolder(SplitBase):
    """The image files under a folder (searched recursively; hidden files and folders skipped).

    Args:
        root: the folder.

    Attributes:
        root, ids (relative POSIX paths, sorted), split (``None``), class_names (``()``).

    Raises:
        DataError: the folder does not exist or holds no image file.
    """

    format = "images"  # the name of its entry in glmix_viz.data.registry.DATASETS

    split: Optional[str] = None
    class_names: tuple = ()
    background = None
    has_masks = False
    has_labels = False

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

    def image_path(self, image_id: str) -> Path:
        return self.root / image_id

    def mask(self, image_id: str) -> None:
        """No ground truth in a plain folder."""
        return None

    def labels(self, image_id: str) -> np.ndarray:
        raise DataError(f"{self.root}: a plain image folder has no image-level labels (use a labelled folder: "
                        "images/, labels.csv, classes.txt)")
