"""PASCAL VOC as users have it: class names, the colour palette, and a reader for the VOC folder layout.

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
  restricted unpickler that only rebuilds plain numpy arrays, dicts, strings and numbers.
* Shards of a split are the runtime's (:func:`glmix_viz.runtime.distributed.shard_ids`).
"""

from __future__ import annotations

import functools
import io as _bytes_io
import json
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence
from xml.etree import ElementTree

import numpy as np
from PIL import Image

from glmix_viz.errors import DataError, ImageLoadError

__all__ = [
    "VOC_CLASSES",
    "IGNORE_INDEX",
    "IMAGE_EXTENSIONS",
    "voc_palette",
    "palette_bytes",
    "label_to_pil",
    "load_label_png",
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

IGNORE_INDEX: int = 255
"""Label value that marks pixels to ignore (object borders in VOC masks, uncertain pixels in pseudo-masks)."""

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")
"""File endings tried, in this order, for ``JPEGImages/<id>``."""

_MASK_FOLDERS: tuple[str, ...] = ("SegmentationClass", "SegmentationClassAug")
_CLASS_LIST_FILES: tuple[str, ...] = ("classes.txt", "classes.json")
_CLS_LABEL_FILES: tuple[str, ...] = ("cls_labels.json", "cls_labels.npz", "cls_labels.npy")


# ----------------------------------------------------------------------------------------------------------------
# Palette
# ----------------------------------------------------------------------------------------------------------------

def voc_palette(n: int = 256) -> np.ndarray:
    """The standard PASCAL VOC colour map.

    Label ``i`` gets its colour by spreading its bits over the three channels: bit 0 of ``i`` goes to red, bit 1 to
    green, bit 2 to blue, each into the highest bit of the channel; bits 3, 4, 5 go one bit lower, and so on.
    Class 1 (aeroplane) is therefore (128, 0, 0), class 15 (person) (192, 128, 128) and 255 (ignore) (224, 224, 192).

    Args:
        n: Number of entries (labels ``0 .. n-1``), at most 256.

    Returns:
        ``(n, 3)`` uint8 array of RGB colours.
    """
    if not 0 < n <= 256:
        raise ValueError(f"voc_palette: n must be in 1..256, got {n}")
    labels = np.arange(n, dtype=np.int64)
    palette = np.zeros((n, 3), dtype=np.int64)
    for bit_group in range(8):  # bits 3*g, 3*g+1, 3*g+2 of the label -> bit (7 - g) of R, G, B
        for channel in range(3):
            bit = (labels >> (3 * bit_group + channel)) & 1
            palette[:, channel] |= bit << (7 - bit_group)
    return palette.astype(np.uint8)


@functools.lru_cache(maxsize=1)
def _palette_tuple() -> tuple[int, ...]:
    return tuple(voc_palette(256).reshape(-1).tolist())


def palette_bytes() -> list[int]:
    """The 256-entry VOC palette as the flat list ``[r0, g0, b0, r1, ...]`` of 768 ints that ``putpalette`` wants."""
    return list(_palette_tuple())


def label_to_pil(label_map: np.ndarray) -> Image.Image:
    """A label map as a palette ("P" mode) PIL image with the VOC colours, as VOC stores its masks.

    Args:
        label_map: ``(H, W)`` integer array with values in ``0 .. 255``.

    Returns:
        ``Image`` of mode "P" and size ``(W, H)``; its pixel values are the labels themselves.
    """
    label_map = np.asarray(label_map)
    if label_map.ndim != 2:
        raise ValueError(f"label_to_pil: expected an (H, W) label map, got shape {label_map.shape}")
    if label_map.size and (label_map.min() < 0 or label_map.max() > 255):
        raise ValueError("label_to_pil: labels must lie in 0..255")
    image = Image.fromarray(np.ascontiguousarray(label_map, dtype=np.uint8), mode="P")
    image.putpalette(palette_bytes())
    return image


def load_label_png(path: str | os.PathLike) -> np.ndarray:
    """Read a label PNG as class indices (never as colours).

    Palette ("P") and grey ("L", "I", "I;16") images give their pixel values directly. An RGB mask (a palette PNG
    someone converted) is mapped back through the VOC palette; a colour that is not in it is an error.

    Args:
        path: The PNG file.

    Returns:
        ``(H, W)`` uint8 label map.

    Raises:
        DataError: The file is missing, unreadable, or holds values that are not VOC labels.
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode in ("P", "L"):
                return np.array(image, dtype=np.uint8)
            if mode in ("I", "I;16", "I;16B", "I;16L"):
                values = np.array(image)
                if values.size and (values.min() < 0 or values.max() > 255):
                    raise DataError(f"{path}: label values outside 0..255 in a {mode} image")
                return values.astype(np.uint8)
            if mode in ("RGB", "RGBA"):
                return _labels_from_colours(np.array(image.convert("RGB")), path)
            raise DataError(f"{path}: label image has unsupported mode {mode!r}")
    except FileNotFoundError:
        raise DataError(f"{path}: label image not found") from None
    except DataError:
        raise
    except (OSError, ValueError, SyntaxError) as error:
        raise DataError(f"{path}: cannot read label image ({error})") from None


def _labels_from_colours(rgb: np.ndarray, path: Path) -> np.ndarray:
    """Map an ``(H, W, 3)`` VOC-coloured mask back to ``(H, W)`` uint8 labels through the palette."""
    palette = voc_palette(256).astype(np.int64)
    colour_codes = (palette[:, 0] << 16) | (palette[:, 1] << 8) | palette[:, 2]
    lookup = {int(code): label for label, code in enumerate(colour_codes)}
    pixel_codes = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    unique_codes, inverse = np.unique(pixel_codes, return_inverse=True)
    unknown = [int(code) for code in unique_codes if int(code) not in lookup]
    if unknown:
        first = unknown[0]
        raise DataError(
            f"{path}: RGB mask holds {len(unknown)} colour(s) outside the VOC palette, "
            f"e.g. {(first >> 16) & 255, (first >> 8) & 255, first & 255}"
        )
    labels = np.array([lookup[int(code)] for code in unique_codes], dtype=np.uint8)
    return labels[inverse.reshape(pixel_codes.shape)]


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


class VOCDataset:
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
        from glmix_viz.images import load_image  # imported here: decoding pulls in torch, which listing ids never needs

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
        return None if path is None else load_label_png(path)

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
        labels = np.zeros(self.num_classes - 1, dtype=np.float32)
        for obj in self.objects(image_id):
            if obj.difficult and not self.include_difficult:
                continue
            index = self._class_index.get(obj.name)
            if index is None or index == 0:
                raise DataError(
                    f"{self.annotation_path(image_id)}: unknown class {obj.name!r} "
                    f"(known: {', '.join(self.class_names[1:])})"
                )
            labels[index - 1] = 1.0
        return labels

    def _labels_from_mask(self, image_id: str) -> np.ndarray:
        mask = self.load_mask(image_id)
        if mask is None:
            raise DataError(f"{self.root}: no mask for image {image_id!r} in {' or '.join(_MASK_FOLDERS)}")
        present = np.unique(mask)
        present = present[(present > 0) & (present < self.num_classes)]
        labels = np.zeros(self.num_classes - 1, dtype=np.float32)
        labels[present.astype(np.int64) - 1] = 1.0
        return labels

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
        if vector.shape[0] != self.num_classes - 1:
            raise DataError(
                f"{self._cls_labels_path}: labels of image {image_id!r} have {vector.shape[0]} entries, "
                f"expected {self.num_classes - 1}"
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


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickler that rebuilds numpy arrays, dicts, lists, strings and numbers, and refuses everything else."""

    _ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),  # protocol 5
        ("numpy._core.numeric", "_frombuffer"),
        ("collections", "OrderedDict"),
        ("_codecs", "encode"),  # protocol 2 stores bytes as _codecs.encode(text, "latin1")
        ("builtins", "dict"),
        ("builtins", "list"),
    }

    def find_class(self, module: str, name: str):  # noqa: D102 - pickle API
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if module.startswith("numpy.core.") and hasattr(np, "_core"):
            module = "numpy._core." + module[len("numpy.core."):]
        return super().find_class(module, name)


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
            data = _read_pickled_npy(path)
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


def _read_pickled_npy(path: Path) -> object:
    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
        if not dtype.hasobject:
            raise DataError(f"{path}: expected a pickled dict (as np.save writes it), got a {dtype} array")
        array = _ArrayOnlyUnpickler(_bytes_io.BytesIO(handle.read())).load()
    if isinstance(array, np.ndarray) and array.shape == ():
        return array.item()
    return array
