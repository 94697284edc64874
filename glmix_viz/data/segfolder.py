"""A segmentation folder: a user's own images with masks.

Layout::

    images/<id>.<any format Pillow reads>   any size
    masks/<id>.png                          pixel value = class id (palette or grey PNG), 255 = ignore
    classes.txt                             line k names class id k; a line ``background`` is the background
                                            wherever it stands (no such line: no background class)
    splits/<name>.txt                       optional: ids, one per line; without it every image is split ``all``

An image without a mask has ``mask(id) is None`` (nothing to score there); its labels are then unknown.
Bad input is one line naming the file: a mask value that is neither a listed class nor 255, a mask whose size
differs from its image, a split list naming a missing image, a blank or repeated line in ``classes.txt``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from glmix_viz.data._layout import FolderSplit
from glmix_viz.data.base import check_mask, labels_from_mask
from glmix_viz.errors import DataError
from glmix_viz.labels import load_label_png

__all__ = ["SegmentationFolder", "is_segmentation_folder"]


def is_segmentation_folder(root: Path) -> bool:
    """``images/``, ``masks/`` and ``classes.txt`` under ``root``."""
    return (root / "images").is_dir() and (root / "masks").is_dir() and (root / "classes.txt").is_file()


class SegmentationFolder(FolderSplit):
    """A split of a segmentation folder (see the module docstring); a :class:`~glmix_viz.data.base.Split`."""

    format = "segfolder"  # the name of its entry in glmix_viz.data.registry.DATASETS

    has_masks = True
    has_labels = True

    def mask_path(self, image_id: str) -> Optional[Path]:
        """``masks/<id>.png``, or ``None`` when the image has no mask."""
        path = self.root / "masks" / f"{image_id}.png"
        return path if path.is_file() else None

    def _image_size(self, image_id: str) -> tuple:
        path = self.image_path(image_id)
        try:
            with Image.open(path) as image:
                width, height = image.size
        except FileNotFoundError:
            raise DataError(f"{path}: image file not found") from None
        except OSError as error:
            raise DataError(f"{path}: cannot read the image ({error})") from None
        return height, width

    def mask(self, image_id: str) -> Optional[np.ndarray]:
        path = self.mask_path(image_id)
        if path is None:
            return None
        return check_mask(path, load_label_png(path), self.num_classes, self.ignore, self._image_size(image_id))

    def labels(self, image_id: str) -> np.ndarray:
        """The classes present in the image's mask (background and 255 left out)."""
        mask = self.mask(image_id)
        if mask is None:
            raise DataError(f"{self.root / 'masks' / (image_id + '.png')}: no mask, so no labels for {image_id!r}")
        return labels_from_mask(mask, self.num_classes, self.background)
