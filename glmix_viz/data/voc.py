"""PASCAL VOC as users have it: class names and a reader for the VOC folder layout.

The reader understands the standard ``VOCdevkit/VOC2012`` layout::

    JPEGImages/<id>.jpg                  (.jpeg and .png are accepted too)
    Annotations/<id>.xml                 (image-level labels: the ``name`` of every ``object``)
    SegmentationClass/<id>.png           (palette PNG, one class index per pixel, 255 = ignore)
    SegmentationClassAug/<id>.png        (optional, the common SBD-augmented masks)
    ImageSets/Segmentation/<split>.txt   (also ImageSets/Main/<split>.txt or <root>/<split>.txt, e.g. train_aug.txt)
    classes.txt | classes.json           (optional, other class lists; names[0] is the background)
    cls_labels.json | .npz | .npy        (optional image-level labels, used when an image has no XML)

The synthetic data set of :mod:`glmix_viz.data.shapes` is written in the same layout, so every tool that reads VOC
reads it too.

Decisions worth knowing:

* Image-level labels come from the XML when it exists; every ``object`` counts, ``difficult`` and ``truncated`` ones
  included (the usual convention of CAM-based WSSS code such as IRN), unless ``include_difficult=False``.
* ``cls_labels.npy`` (a pickled dict from id to a 20-dim multi-hot vector, as written by IRN) is accepted, but it is
  never handed to ``np.load(allow_pickle=True)``, which would run arbitrary code from the file: it is read with a
  restricted unpickler that only rebuilds plain numpy arrays, dicts, strings and numbers
  (:func:`glmix_viz.safe_pickle.read_pickled_npy`).
* Masks are palette PNGs read as class indices, 255 the ignored pixels (:mod:`glmix_viz.labels`).
* Shards of a split are the runtime's (:func:`glmix_viz.runtime.distributed.shard_ids`).
"""

from __future__ import annotations

import json
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence
from xml.etree import ElementTree

import numpy as np

from glmix_viz.data.base import SplitBase, background_of, check_mask, labels_from_mask
from glmix_viz.errors import DataError, ImageLoadError
from glmix_viz.images import load_image
from glmix_viz.labels import load_label_png
from glmix_viz.safe_pickle import read_pickled_npy

# The label conventions used to live here; their home is glmix_viz.labels, and these names stay importable from here.
from glmix_viz.labels import IGNORE_INDEX, label_to_pil, palette_bytes, voc_palette  # noqa: E402,F401,I001

__all__ = [
    "VOC_CLASSES",
    "IMAGE_EXTENSIONS",
    "VOCObject",
    "VOCSample",
    "VOCDataset",
    "find_voc_root",
    "read_cls_labels",
]

VOC_CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)
"""The 21 PASCAL VOC class names; index 0 is the background."""

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")
"""File endings tried, in this order, for ``JPEGImages/<id>``."""

_MASK_FOLDERS: tuple[str, ...] = ("SegmentationClass", "SegmentationClassAug")
_CLASS_LIST_FILES: tuple[str, ...] = ("classes.txt", "classes.json")
_CLS_LABEL_FILES: tuple[str, ...] = ("cls_labels.json", "cls_labels.npz", "cls_labels.npy")


# ----------------------------------------------------------------------------------------------------------------
# Reader
# ----------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class VOCObject:
    """One ``object`` of a VOC XML annotation.

    Attributes:
        name: Class name.
        bbox: ``(xmin, ymin, xmax, ymax)`` in VOC's 1-based inclusive pixel coordinates, or ``None`` if absent.
        difficult: The ``difficult`` flag.
        truncated: The ``truncated`` flag.
    """

    name: str
    bbox: tuple[int, int, int, int] | None
    difficult: bool = False
    truncated: bool = False


@dataclass
class VOCSample:
    """One image of a :class:`VOCDataset`.

    Attributes:
        id: Image id (file stem).
        image: ``(H, W, 3)`` uint8 RGB image.
        labels: ``(C - 1,)`` float32 multi-hot image-level labels (background excluded), or ``None`` if unknown.
        mask: ``(H, W)`` uint8 ground-truth class map (255 = ignore), or ``None`` if the image has none.
    """

    id: str
    image: np.ndarray
    labels: np.ndarray | None
    mask: np.ndarray | None = field(default=None)


def find_voc_root(root: str | os.PathLike) -> Path:
    """Locate the folder holding ``JPEGImages`` from what a user is likely to pass.

    Accepted: the ``VOC2012`` folder itself (or any folder with ``JPEGImages``), the ``VOCdevkit`` folder, or the
    folder containing ``VOCdevkit``. ``VOC2012`` is preferred; another single ``VOC*`` year folder is accepted.

    Raises:
        DataError: Nothing with a ``JPEGImages`` folder is found; the message names the paths tried.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: VOC root folder does not exist")
    tried = []
    for candidate in (root, root / "VOC2012", root / "VOCdevkit" / "VOC2012"):
        tried.append(candidate)
        if (candidate / "JPEGImages").is_dir():
            return candidate
    for devkit in (root, root / "VOCdevkit"):
        if devkit.is_dir():
            years = sorted(path for path in devkit.glob("VOC*") if (path / "JPEGImages").is_dir())
            if len(years) == 1:
                return years[0]
            if len(years) > 1:
                names = ", ".join(path.name for path in years)
                raise DataError(f"{devkit}: several VOC folders ({names}); pass the one to use as the root")
    raise DataError(
        f"{root}: no JPEGImages folder found (looked in {', '.join(str(path) for path in tried)}); "
        "expected a VOC2012 folder, a VOCdevkit folder or the folder that contains VOCdevkit"
    )


class VOCDataset(SplitBase):
    """Reader for a data set in the PASCAL VOC layout (real VOC, VOC + SBD, or the synthetic shapes set).

    Args:
        root: The ``VOC2012`` folder, the ``VOCdevkit`` folder, or the folder containing ``VOCdevkit``.
        split: Split name (``train``, ``val``, ``trainval``, ``train_aug`` ...), the path of a split list, or
            ``None`` for every image in ``JPEGImages`` (sorted).
        classes: Class names (index 0 the background). Default: ``classes.txt``/``classes.json`` at the root if
            present, else :data:`VOC_CLASSES`.
        label_source: Where image-level labels come from: ``"auto"`` (XML, else a ``cls_labels`` file), ``"xml"``,
            ``"cls_labels"``, or ``"mask"`` (the classes present in the ground-truth mask).
        cls_labels: Path of a ``cls_labels`` file; default: the first of ``cls_labels.json``, ``.npz``, ``.npy``
            found at the root.
        include_difficult: Whether objects flagged ``difficult`` count for the image-level labels.

    Raises:
        DataError: The root, the split list or the class list is missing or malformed.
    """

    format = "voc"  # the name of its entry in glmix_viz.data.registry.DATASETS

    def __init__(
        self,
        root: str | os.PathLike,
        split: str | os.PathLike | None = "train",
        *,
        classes: Sequence[str] | None = None,
        label_source: str = "auto",
        cls_labels: str | os.PathLike | None = None,
        include_difficult: bool = True,
    ) -> None:
        if label_source not in ("auto", "xml", "cls_labels", "mask"):
            raise ValueError(f"label_source must be auto, xml, cls_labels or mask, got {label_source!r}")
        self.given_root = Path(root).expanduser()
        self.root = find_voc_root(self.given_root)
        self.label_source = label_source
        self.include_difficult = include_difficult
        self.class_names: tuple[str, ...] = tuple(classes) if classes is not None else self._read_class_names()
        if len(self.class_names) < 2:
            raise DataError(f"{self.root}: need at least two classes (background and one object class)")
        if len(set(self.class_names)) != len(self.class_names):
            raise DataError(f"{self.root}: class names are not unique: {list(self.class_names)}")
        if len(self.class_names) > 255:
            raise DataError(f"{self.root}: at most 255 classes fit a VOC mask, got {len(self.class_names)}")
        self._class_index = {name: index for index, name in enumerate(self.class_names)}
        found = background_of(self.class_names)
        self.background = 0 if found is None else found  # VOC's convention: the first class, unless one is named so
        objects = [name for index, name in enumerate(self.class_names) if index != self.background]
        self._object_index = {name: position for position, name in enumerate(objects)}
        self.has_masks = any((self.root / folder).is_dir() for folder in _MASK_FOLDERS)
        self.split = None if split is None else str(split)
        self.split_file: Path | None = None
        self.ids: list[str] = self._read_split(split)
        self._cls_labels_path = Path(cls_labels) if cls_labels is not None else self._find_cls_labels()
        self._cls_labels: dict[str, np.ndarray] | None = None

    # -- layout ----------------------------------------------------------------------------------------------------

    @property
    def num_classes(self) -> int:
        """Number of classes, background included."""
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return (
            f"VOCDataset(root={str(self.root)!r}, split={self.split!r}, images={len(self)}, "
            f"classes={self.num_classes})"
        )

    def _read_class_names(self) -> tuple[str, ...]:
        for folder in dict.fromkeys((self.root, self.given_root)):
            for file_name in _CLASS_LIST_FILES:
                path = folder / file_name
                if path.is_file():
                    return _read_class_list(path)
        return VOC_CLASSES

    def _split_candidates(self, split: str) -> list[Path]:
        file_name = split if split.endswith(".txt") else f"{split}.txt"
        folders = [
            self.root / "ImageSets" / "Segmentation",
            self.root / "ImageSets" / "SegmentationAug",
            self.root / "ImageSets" / "Main",
            self.root,
            self.given_root,
        ]
        return [folder / file_name for folder in dict.fromkeys(folders)]

    def _read_split(self, split: str | os.PathLike | None) -> list[str]:
        if split is None:
            folder = self.root / "JPEGImages"
            stems = {path.stem for path in folder.iterdir() if path.suffix in IMAGE_EXTENSIONS and path.is_file()}
            if not stems:
                raise DataError(f"{folder}: no images found")
            return sorted(stems)
        split_path = Path(split)
        if split_path.suffix == ".txt" and split_path.is_file():
            candidates = [split_path]
        else:
            candidates = self._split_candidates(str(split))
        for path in candidates:
            if path.is_file():
                self.split_file = path
                ids = _read_split_list(path)
                if not ids:
                    raise DataError(f"{path}: split list is empty")
                return ids
        raise DataError(
            f"{self.root}: split list {str(split)!r} not found "
            f"(looked for {', '.join(str(path) for path in candidates)})"
        )

    def image_path(self, image_id: str) -> Path:
        """The image file of ``image_id``: ``JPEGImages/<id>`` with the first existing ending of
        :data:`IMAGE_EXTENSIONS`, or the ``.jpg`` path when none exists (so a caller can report it)."""
        folder = self.root / "JPEGImages"
        for extension in IMAGE_EXTENSIONS:
            path = folder / f"{image_id}{extension}"
            if path.is_file():
                return path
        return folder / f"{image_id}.jpg"

    def annotation_path(self, image_id: str) -> Path:
        """``Annotations/<id>.xml`` (whether or not it exists)."""
        return self.root / "Annotations" / f"{image_id}.xml"

    def mask_path(self, image_id: str) -> Path | None:
        """The ground-truth mask of ``image_id``: ``SegmentationClass/<id>.png``, else
        ``SegmentationClassAug/<id>.png``, else ``None``."""
        for folder_name in _MASK_FOLDERS:
            path = self.root / folder_name / f"{image_id}.png"
            if path.is_file():
                return path
        return None

    # -- contents --------------------------------------------------------------------------------------------------

    def load_image(self, image_id: str, *, max_side: int | None = None) -> np.ndarray:
        """Decode the image of ``image_id``.

        Returns:
            ``(H, W, 3)`` uint8 RGB array.

        Raises:
            ImageLoadError: The file is missing or cannot be decoded.
        """
        path = self.image_path(image_id)
        if not path.is_file():
            raise ImageLoadError(f"{path}: image file not found (id {image_id!r})")
        return load_image(path, max_side=max_side)

    def load_mask(self, image_id: str) -> np.ndarray | None:
        """The ground-truth class map of ``image_id`` as palette indices.

        Returns:
            ``(H, W)`` uint8 array (255 = ignore), or ``None`` if the image has no mask.

        Raises:
            DataError: The mask file exists but cannot be read.
        """
        path = self.mask_path(image_id)
        return None if path is None else check_mask(path, load_label_png(path), self.num_classes, self.ignore)

    def instances(self, image_id: str) -> np.ndarray | None:
        """``SegmentationObject/<id>.png`` (instance ids, 0 no object, 255 ignore), or ``None`` without one.

        Raises:
            DataError: the file cannot be read, or its size differs from the image's.
        """
        path = self.root / "SegmentationObject" / f"{image_id}.png"
        if not path.is_file():
            return None
        instances = load_label_png(path)
        image = self.image_path(image_id)
        if image.is_file():
            from PIL import Image

            with Image.open(image) as opened:
                width, height = opened.size
            if instances.shape != (height, width):
                raise DataError(f"{path}: instance mask size differs from the image's")
        return instances

    def image(self, image_id: str) -> np.ndarray:
        """The :class:`~glmix_viz.data.base.Split` spelling of :meth:`load_image`."""
        return self.load_image(image_id)

    def mask(self, image_id: str) -> np.ndarray | None:
        """The :class:`~glmix_viz.data.base.Split` spelling of :meth:`load_mask`."""
        return self.load_mask(image_id)

    def labels(self, image_id: str) -> np.ndarray:
        """The :class:`~glmix_viz.data.base.Split` spelling of :meth:`image_labels`."""
        return self.image_labels(image_id)

    def objects(self, image_id: str) -> list[VOCObject]:
        """The objects of ``Annotations/<id>.xml``.

        Raises:
            DataError: The XML file is missing or malformed; the message names the id and the file.
        """
        path = self.annotation_path(image_id)
        if not path.is_file():
            raise DataError(f"{path}: annotation of image {image_id!r} not found")
        try:
            tree = ElementTree.parse(path)
        except (ElementTree.ParseError, OSError) as error:
            raise DataError(f"{path}: cannot parse annotation of image {image_id!r} ({error})") from None
        objects = []
        for element in tree.getroot().findall("object"):
            name = (element.findtext("name") or "").strip()
            if not name:
                raise DataError(f"{path}: an object without a name (image {image_id!r})")
            objects.append(
                VOCObject(
                    name=name,
                    bbox=_parse_bbox(element.find("bndbox"), path),
                    difficult=_parse_flag(element.findtext("difficult")),
                    truncated=_parse_flag(element.findtext("truncated")),
                )
            )
        return objects

    def image_labels(self, image_id: str) -> np.ndarray:
        """Image-level labels of ``image_id`` (see ``label_source``).

        Returns:
            ``(C - 1,)`` float32 multi-hot vector over the object classes (background excluded).

        Raises:
            DataError: No label source has this image, or it names an unknown class; the message names the id and
                the file.
        """
        source = self.label_source
        if source == "mask":
            return self._labels_from_mask(image_id)
        if source == "xml" or (source == "auto" and self.annotation_path(image_id).is_file()):
            return self._labels_from_xml(image_id)
        if source == "cls_labels" or self._cls_labels_path is not None:
            return self._labels_from_cls_file(image_id)
        raise DataError(
            f"{self.annotation_path(image_id)}: annotation of image {image_id!r} not found "
            f"and no cls_labels file at {self.root}"
        )

    def _labels_from_xml(self, image_id: str) -> np.ndarray:
        labels = np.zeros(len(self._object_index), dtype=np.float32)
        for obj in self.objects(image_id):
            if obj.difficult and not self.include_difficult:
                continue
            position = self._object_index.get(obj.name)
            if position is None:
                raise DataError(
                    f"{self.annotation_path(image_id)}: unknown class {obj.name!r} "
                    f"(known: {', '.join(self._object_index)})"
                )
            labels[position] = 1.0
        return labels

    def _labels_from_mask(self, image_id: str) -> np.ndarray:
        mask = self.load_mask(image_id)
        if mask is None:
            raise DataError(f"{self.root}: no mask for image {image_id!r} in {' or '.join(_MASK_FOLDERS)}")
        return labels_from_mask(mask, self.num_classes, self.background)

    def _find_cls_labels(self) -> Path | None:
        for folder in dict.fromkeys((self.root, self.given_root)):
            for file_name in _CLS_LABEL_FILES:
                if (folder / file_name).is_file():
                    return folder / file_name
        return None

    def _labels_from_cls_file(self, image_id: str) -> np.ndarray:
        if self._cls_labels_path is None:
            raise DataError(f"{self.root}: no cls_labels file ({', '.join(_CLS_LABEL_FILES)}) for image {image_id!r}")
        if self._cls_labels is None:
            self._cls_labels = read_cls_labels(self._cls_labels_path)
        vector = self._cls_labels.get(image_id)
        if vector is None:
            vector = self._cls_labels.get(image_id.replace("_", ""))  # IRN keys VOC ids as integers 2007000032
        if vector is None:
            raise DataError(f"{self._cls_labels_path}: no labels for image {image_id!r}")
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        if vector.shape[0] != len(self._object_index):
            raise DataError(
                f"{self._cls_labels_path}: labels of image {image_id!r} have {vector.shape[0]} entries, "
                f"expected {len(self._object_index)}"
            )
        return vector

    def get(self, image_id: str, *, with_labels: bool = True, with_mask: bool = True) -> VOCSample:
        """Load one image with its labels and mask.

        Raises:
            ImageLoadError: The image cannot be read.
            DataError: Labels are missing, or the mask does not have the image's size.
        """
        image = self.load_image(image_id)
        labels = self.image_labels(image_id) if with_labels else None
        mask = self.load_mask(image_id) if with_mask else None
        if mask is not None and mask.shape != image.shape[:2]:
            raise DataError(
                f"{self.mask_path(image_id)}: mask size {mask.shape[1]}x{mask.shape[0]} differs from the image "
                f"size {image.shape[1]}x{image.shape[0]}"
            )
        return VOCSample(id=image_id, image=image, labels=labels, mask=mask)

    def __getitem__(self, index: int) -> VOCSample:
        return self.get(self.ids[index])


# ----------------------------------------------------------------------------------------------------------------
# File helpers
# ----------------------------------------------------------------------------------------------------------------

def _read_class_list(path: Path) -> tuple[str, ...]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read class list ({error})") from None
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}: invalid JSON ({error})") from None
        if isinstance(data, Mapping):
            data = data.get("classes", data.get("class_names"))
        if not isinstance(data, list) or not all(isinstance(name, str) for name in data):
            raise DataError(f"{path}: expected a list of class names or {{\"classes\": [...]}}")
        names = [name.strip() for name in data]
    else:
        names = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if len(names) < 2:
        raise DataError(f"{path}: class list needs the background and at least one class, got {names}")
    return tuple(names)


def _read_split_list(path: Path) -> list[str]:
    """Ids of a split list: one per line, first token; path-like tokens (``/JPEGImages/x.jpg ...``) give their stem."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read split list ({error})") from None
    ids: dict[str, None] = {}
    for line in lines:
        tokens = line.split()
        if not tokens or tokens[0].startswith("#"):
            continue
        token = tokens[0]
        if "/" in token or "\\" in token or Path(token).suffix.lower() in (".jpg", ".jpeg", ".png"):
            token = Path(token.replace("\\", "/")).stem
        ids[token] = None
    return list(ids)


def _parse_flag(text: str | None) -> bool:
    if text is None:
        return False
    try:
        return bool(int(float(text.strip())))
    except ValueError:
        return text.strip().lower() in ("true", "yes")


def _parse_bbox(element: ElementTree.Element | None, path: Path) -> tuple[int, int, int, int] | None:
    if element is None:
        return None
    try:
        return tuple(int(round(float(element.findtext(key)))) for key in ("xmin", "ymin", "xmax", "ymax"))
    except (TypeError, ValueError):
        raise DataError(f"{path}: malformed bndbox") from None


def read_cls_labels(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read image-level labels from ``cls_labels.json`` (``{id: [0, 1, ...]}``), ``.npz`` (one array per id) or
    ``.npy`` (IRN's pickled dict, read safely without running code from the file).

    Returns:
        Dict from image id (string; integer keys are turned into strings) to a float32 multi-hot vector.

    Raises:
        DataError: The file is missing, malformed, or holds objects other than plain arrays.
    """
    path = Path(path)
    try:
        if path.suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                data = {key: archive[key] for key in archive.files}
        elif path.suffix == ".npy":
            data = read_pickled_npy(path)
        else:
            raise DataError(f"{path}: unknown cls_labels format (use .json, .npz or .npy)")
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path}: cls_labels file not found") from None
    except (OSError, ValueError, pickle.UnpicklingError, EOFError) as error:
        raise DataError(f"{path}: cannot read cls_labels ({error})") from None
    if not isinstance(data, Mapping):
        raise DataError(f"{path}: expected a mapping from image id to a multi-hot vector")
    try:
        return {str(key): np.asarray(value, dtype=np.float32).reshape(-1) for key, value in data.items()}
    except (TypeError, ValueError) as error:
        raise DataError(f"{path}: labels are not numeric vectors ({error})") from None
