"""A labelled folder: a user's own images with image-level tags and no masks (what WSSS starts from).

Layout::

    images/<id>.<any format Pillow reads>
    labels.csv          header ``image,labels``; ``image`` the file name or its stem, ``labels`` the class names
                        separated by spaces (an empty cell: no object class)
    classes.txt         as in a segmentation folder (a line ``background`` is the background, wherever it stands)
    splits/<name>.txt   optional, as in a segmentation folder

Usable by every command that needs images and tags (train, finetune, pseudo-label, atlas without purity, the
explorer); ``evaluate`` refuses it (no masks). A row naming an unknown class, or an image without a row, is one line
naming ``labels.csv`` and is reported for that image only.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from glmix_viz.data._layout import IMAGE_SUFFIXES, FolderSplit
from glmix_viz.errors import DataError

__all__ = ["LabelledFolder", "is_labelled_folder"]


def is_labelled_folder(root: Path) -> bool:
    """``images/``, ``labels.csv`` and ``classes.txt`` under ``root``."""
    return (root / "images").is_dir() and (root / "labels.csv").is_file() and (root / "classes.txt").is_file()


class LabelledFolder(FolderSplit):
    """A split of a labelled folder (see the module docstring); a :class:`~glmix_viz.data.base.Split`."""

    format = "tagged"  # the name of its entry in glmix_viz.data.registry.DATASETS

    has_masks = False
    has_labels = True

    def __init__(self, root: str | Path, split: Optional[str] = None) -> None:
        super().__init__(root, split)
        self.labels_file = self.root / "labels.csv"
        self._rows: Dict[str, Tuple[int, List[str]]] = self._read_rows()
        self._object_position = {name: position for position, name in
                                 enumerate(n for k, n in enumerate(self.class_names) if k != self.background)}

    def _read_rows(self) -> Dict[str, Tuple[int, List[str]]]:
        try:
            with open(self.labels_file, newline="", encoding="utf-8-sig") as handle:
                rows = list(csv.reader(handle))
        except (OSError, UnicodeDecodeError, csv.Error) as error:
            raise DataError(f"{self.labels_file}: cannot read ({error})") from None
        if not rows or [cell.strip().lower() for cell in rows[0][:2]] != ["image", "labels"]:
            raise DataError(f"{self.labels_file}: the first line must be the header 'image,labels'")
        table: Dict[str, Tuple[int, List[str]]] = {}
        for number, row in enumerate(rows[1:], start=2):
            if not row or not row[0].strip():
                continue
            name = row[0].strip()
            stem = Path(name).stem if Path(name).suffix.lower() in IMAGE_SUFFIXES else name
            if stem in table:
                raise DataError(f"{self.labels_file}: line {number} repeats image {stem!r} of line {table[stem][0]}")
            table[stem] = (number, (row[1] if len(row) > 1 else "").split())
        return table

    def mask(self, image_id: str) -> None:
        """No masks in a labelled folder."""
        return None

    def labels(self, image_id: str) -> np.ndarray:
        entry = self._rows.get(image_id)
        if entry is None:
            raise DataError(f"{self.labels_file}: no row for image {image_id!r}")
        number, names = entry
        vector = np.zeros(len(self._object_position), dtype=np.float32)
        for name in names:
            position = self._object_position.get(name)
            if position is None and self.background is not None and name == self.class_names[self.background]:
                continue  # naming the background is allowed and says nothing
            if position is None:
                known = ", ".join(self._object_position)
                raise DataError(f"{self.labels_file}: line {number} names unknown class {name!r} (known: {known})")
            vector[position] = 1.0
        return vector
