"""What the two folder formats share (:mod:`~glmix_viz.data.segfolder`, :mod:`~glmix_viz.data.tagged`):
``images/`` indexed by file stem, ``classes.txt`` and the optional ``splits/<name>.txt``."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Tuple

from glmix_viz.data.base import SplitBase, background_of, read_class_names
from glmix_viz.errors import DataError

__all__ = ["ALL_SPLIT", "FolderSplit", "image_index"]

ALL_SPLIT = "all"
"""The split of a folder without ``splits/``: every image."""

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")


def image_index(folder: Path) -> Dict[str, Path]:
    """``{stem: file}`` of the image files directly in ``folder`` (hidden files skipped).

    Raises:
        DataError: the folder is missing or empty, or two files share a stem.
    """
    if not folder.is_dir():
        raise DataError(f"{folder}: image folder not found")
    index: Dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if path.stem in index:
            raise DataError(f"{folder}: two images for id {path.stem!r} ({index[path.stem].name}, {path.name})")
        index[path.stem] = path
    if not index:
        raise DataError(f"{folder}: no image file ({', '.join(IMAGE_SUFFIXES)}) in the folder")
    return index


class FolderSplit(SplitBase):
    """``images/``, ``classes.txt`` and a split of ``splits/`` (or ``all``) under ``root``."""

    def __init__(self, root: str | Path, split: Optional[str] = None) -> None:
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DataError(f"{self.root}: data folder does not exist")
        self.class_names: Tuple[str, ...] = read_class_names(self.root / "classes.txt")
        self.background = background_of(self.class_names)
        self._images = image_index(self.root / "images")
        self.split_file: Optional[Path] = None
        self.split, self.ids = self._read_split(split)

    def splits(self) -> List[str]:
        """The split names this folder offers."""
        folder = self.root / "splits"
        names = sorted(path.stem for path in folder.glob("*.txt")) if folder.is_dir() else []
        return names or [ALL_SPLIT]

    def _read_split(self, split: Optional[str]) -> Tuple[str, List[str]]:
        available = self.splits()
        if split is None:
            split = ALL_SPLIT if available == [ALL_SPLIT] else ("train" if "train" in available else available[0])
        if split == ALL_SPLIT and available == [ALL_SPLIT]:
            return split, sorted(self._images)
        path = self.root / "splits" / f"{split}.txt"
        if not path.is_file():
            raise DataError(f"{path}: no such split list (this folder has: {', '.join(available)})")
        self.split_file = path
        ids: Dict[str, None] = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            token = line.strip()
            if token and not token.startswith("#"):
                ids[Path(token).stem if Path(token).suffix.lower() in IMAGE_SUFFIXES else token] = None
        if not ids:
            raise DataError(f"{path}: split list is empty")
        return split, list(ids)

    def image_path(self, image_id: str) -> Path:
        path = self._images.get(image_id)
        if path is None:
            where = self.split_file if self.split_file is not None else self.root / "images"
            raise DataError(f"{where}: names image {image_id!r} but {self.root / 'images'} has no file of that stem")
        return path

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, images={len(self.ids)}, "
                f"classes={self.num_classes})")
