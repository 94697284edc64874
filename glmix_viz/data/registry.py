"""The data-set formats, and :func:`open_split`: the one way the package opens a data set.

:data:`DATASETS` lists the formats in the order they are tried; each recognises its layout from the folder. A new
format is one reader module and one line here. :func:`open_split` returns a :class:`~glmix_viz.data.base.Split`
and, where no format recognises the folder, fails in one line saying what it looked for.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Tuple

from glmix_viz.data.base import Split
from glmix_viz.errors import DataError

__all__ = ["DATASETS", "DataFormat", "detect_format", "open_split"]


@dataclass(frozen=True)
class DataFormat:
    """One on-disk format: ``name``, ``looks_for`` (what its layout holds, for the error), ``recognise(root)`` and
    ``open(root, split, **options)``."""

    name: str
    looks_for: str
    recognise: Callable[[Path], bool]
    open: Callable[..., Split]


def _coco_recognise(root: Path) -> bool:
    folder = root / "annotations"
    return any((folder / f"instances_{name}.json").is_file() for name in ("train2014", "val2014"))


def _coco_open(root: Path, split: Optional[str], *, mask_cache: Any = None, **_: Any) -> Split:
    from glmix_viz.data.coco import COCODataset

    return COCODataset(root, split or "train", mask_cache=mask_cache)


def _voc_recognise(root: Path) -> bool:
    folders = (root, root / "VOC2012", root / "VOCdevkit" / "VOC2012")
    return any((folder / "JPEGImages").is_dir() for folder in folders) \
        or any((folder / "JPEGImages").is_dir() for devkit in (root, root / "VOCdevkit") if devkit.is_dir()
               for folder in devkit.glob("VOC*"))


def _voc_open(root: Path, split: Optional[str], **_: Any) -> Split:
    from glmix_viz.data.voc import VOCDataset

    return VOCDataset(root, split or "train")


def _segfolder_open(root: Path, split: Optional[str], **_: Any) -> Split:
    from glmix_viz.data.segfolder import SegmentationFolder

    return SegmentationFolder(root, split)


def _tagged_open(root: Path, split: Optional[str], **_: Any) -> Split:
    from glmix_viz.data.tagged import LabelledFolder

    return LabelledFolder(root, split)


def _images_recognise(root: Path) -> bool:
    from glmix_viz.data.folder import IMAGE_SUFFIXES

    return any(path.suffix.lower() in IMAGE_SUFFIXES for path in root.rglob("*") if path.is_file())


def _images_open(root: Path, split: Optional[str], **_: Any) -> Split:
    from glmix_viz.data.folder import ImageFolder

    return ImageFolder(root)


def _has(*names: str) -> Callable[[Path], bool]:
    return lambda root: all((root / name).exists() for name in names)


DATASETS: Tuple[DataFormat, ...] = (
    DataFormat("coco", "annotations/instances_{train,val}2014.json (COCO-2014)", _coco_recognise, _coco_open),
    DataFormat("voc", "JPEGImages/ (PASCAL VOC layout, also make-shapes)", _voc_recognise, _voc_open),
    DataFormat("segfolder", "images/ + masks/ + classes.txt (segmentation folder)",
               _has("images", "masks"), _segfolder_open),
    DataFormat("tagged", "images/ + labels.csv + classes.txt (labelled folder)",
               _has("images", "labels.csv"), _tagged_open),
    DataFormat("images", "image files (plain image folder, no labels)", _images_recognise, _images_open),
)
"""The formats, in the order :func:`open_split` tries them."""


def detect_format(path: str | os.PathLike) -> DataFormat:
    """The first format of :data:`DATASETS` that recognises ``path``.

    Raises:
        DataError: ``path`` is not a folder, or no format recognises it (one line listing what was looked for).
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: data folder does not exist")
    if not any(root.iterdir()):
        raise DataError(f"{root}: the data folder is empty")
    for data_format in DATASETS:
        if data_format.recognise(root):
            return data_format
    looked = "; ".join(data_format.looks_for for data_format in DATASETS)
    raise DataError(f"{root}: not a data set I know (looked for: {looked})")


def open_split(path: str | os.PathLike, split: Optional[str] = None, **options: Any) -> Split:
    """Open one split of the data set at ``path``, whatever its format (:data:`DATASETS`).

    Args:
        path: the data set's folder.
        split: the split's name (``None``: the format's default: ``train`` for VOC and COCO, ``all`` or ``train``
            for the folder formats; a plain image folder has one split).
        **options: reader options (``mask_cache`` for COCO).

    Raises:
        DataError: one line: the folder is missing, no format recognises it, or the split or a file is bad.
    """
    root = Path(path).expanduser()
    return detect_format(root).open(root, split, **options)
