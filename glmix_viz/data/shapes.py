"""The synthetic "shapes" data set: object classes that differ by shape, not colour, written in the VOC layout.

Every image holds 1 to 3 (configurable) filled shapes on a smooth, mildly noisy colour-field background. The class
of an object is its outline only: colours and textures (solid, stripes, checker, noise, gradient) are drawn at random
for every object, so a network has to look at shape to classify. Objects are placed at random, may overlap (later
objects occlude earlier ones) and are re-drawn until every object keeps at least half of its area visible. Masks are
exact (no antialiasing): shapes are rasterised with OpenCV fill functions and the texture is painted where the mask
is true.

:func:`make_shapes` writes a folder that :class:`~glmix_viz.data.voc.VOCDataset` reads like PASCAL VOC::

    JPEGImages/<id>.png                  RGB images (lossless PNG by default; ``image_format="jpg"`` gives JPEG q95)
    Annotations/<id>.xml                 VOC XML: size, and per object its name and the bounding box of its visible part
    SegmentationClass/<id>.png           palette PNG (VOC colours), class index per pixel, 0 = background
    SegmentationObject/<id>.png          palette PNG, instance index per pixel (1, 2, ... drawing order), 0 = background
    ImageSets/Segmentation/<split>.txt   train, val, (test) and trainval; written last
    classes.txt                          background first, then the shape names
    shapes_meta.json                     generator settings, seed, counts, format version; written last

With ``layout="folder"`` it writes a segmentation folder (:mod:`glmix_viz.data.segfolder`) instead: ``images/``,
``masks/`` (palette PNGs), ``classes.txt`` and ``splits/<split>.txt``.

Determinism: image ``i`` of split ``s`` is drawn from ``numpy.random.default_rng([seed, code(s), i])``, so the same
seed gives byte-identical files, and changing ``num_train`` changes neither the validation images nor the first
training images. VOC marks object borders with 255 in its class masks; here that band is off by default
(``boundary_width=0``) and can be switched on.
"""

from __future__ import annotations

import io as _bytes_io
import json
import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple, Sequence
from xml.etree import ElementTree

import cv2
import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from glmix_viz.errors import DataError
from glmix_viz.files import save_bytes_atomic
from glmix_viz.labels import IGNORE_INDEX, label_to_pil

__all__ = [
    "SHAPE_CLASSES",
    "DEFAULT_SHAPE_CLASSES",
    "TEXTURES",
    "SHAPES_FORMAT_VERSION",
    "ShapesConfig",
    "ShapeObject",
    "ShapesImage",
    "render_shapes_image",
    "make_shapes",
]

SHAPE_CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "cross", "star", "ring")
"""Every shape the generator can draw, in the order used when ``classes`` is given as a count."""

DEFAULT_SHAPE_CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "cross")
"""The default classes: the set a small GLNet learned in the experiments (``experiments/train_demo.py``)."""

TEXTURES: tuple[str, ...] = ("solid", "stripes", "checker", "noise", "gradient")
"""Object fills, drawn uniformly at random for every object."""

SHAPES_FORMAT_VERSION = 1
"""Version of the generator's output; bumped whenever the same seed would give different images."""

_SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
_PLACEMENT_TRIES = 60
_COLOUR_TRIES = 60
_MIN_OBJECT_COLOUR_DISTANCE = 90.0  # Euclidean RGB distance from the background colour under the object.
_MIN_SECOND_COLOUR_DISTANCE = 60.0  # ... for the second texture colour, and between the two texture colours.
_SUBPIXEL_BITS = 4  # fractional bits of the vertex coordinates given to OpenCV


@dataclass(frozen=True)
class ShapesConfig:
    """Settings of the generator (everything but the seed and the split sizes).

    Attributes:
        image_size: Side of the square images, in pixels.
        classes: Shape names (a subset of :data:`SHAPE_CLASSES`, 1 to 6 of them), or how many of them to take in
            order; class index ``k + 1`` is ``classes[k]``, 0 is the background.
        min_objects: Fewest objects per image.
        max_objects: Most objects per image.
        radius_range: ``(low, high)`` object radius in pixels (radius of the circle; the other shapes are scaled to a
            similar area). ``None``: 18 to 40 px at 128 px, scaled with ``image_size``.
        min_visible: Fraction of each object's area that must stay visible after occlusion.
        boundary_width: Width in pixels of the 255 ("ignore") band drawn on each side of object borders in the
            class masks, as VOC does; 0 (default) for none.
        background_stripes: Probability that a background gets faint stripes on top of its colour field. Default 0:
            the smooth, mildly noisy backgrounds on which a small GLNet learned (``experiments/train_demo.py``).
        noise_sigma: ``(low, high)`` standard deviation of the background's pixel noise, in grey levels.
    """

    image_size: int = 128
    classes: tuple[str, ...] = DEFAULT_SHAPE_CLASSES
    min_objects: int = 1
    max_objects: int = 3
    radius_range: tuple[float, float] | None = None
    min_visible: float = 0.5
    boundary_width: int = 0
    background_stripes: float = 0.0
    noise_sigma: tuple[float, float] = (2.0, 6.0)

    def __post_init__(self) -> None:
        if isinstance(self.classes, int):
            if not 1 <= self.classes <= len(SHAPE_CLASSES):
                raise ValueError(f"classes: a count must be in 1..{len(SHAPE_CLASSES)}, got {self.classes}")
            object.__setattr__(self, "classes", SHAPE_CLASSES[: self.classes])
        classes = tuple(self.classes)
        object.__setattr__(self, "classes", classes)
        unknown = [name for name in classes if name not in SHAPE_CLASSES]
        if unknown or not classes or len(set(classes)) != len(classes):
            raise ValueError(f"classes must be distinct names from {SHAPE_CLASSES}, got {classes}")
        if self.image_size < 32:
            raise ValueError(f"image_size must be at least 32, got {self.image_size}")
        if not 1 <= self.min_objects <= self.max_objects:
            raise ValueError(f"need 1 <= min_objects <= max_objects, got {self.min_objects}, {self.max_objects}")
        if self.radius_range is None:
            scale = self.image_size / 128.0
            object.__setattr__(self, "radius_range", (18.0 * scale, 40.0 * scale))
        low, high = (float(value) for value in self.radius_range)
        object.__setattr__(self, "radius_range", (low, high))
        if not 3.0 <= low <= high <= self.image_size / 2:
            raise ValueError(f"radius_range must satisfy 3 <= low <= high <= image_size / 2, got {self.radius_range}")
        if not 0.0 < self.min_visible <= 1.0:
            raise ValueError(f"min_visible must be in (0, 1], got {self.min_visible}")
        if self.boundary_width < 0:
            raise ValueError(f"boundary_width must be >= 0, got {self.boundary_width}")
        if not 0.0 <= self.background_stripes <= 1.0:
            raise ValueError(f"background_stripes is a probability, got {self.background_stripes}")

    @property
    def class_names(self) -> tuple[str, ...]:
        """``("background", *classes)``, the class list written to ``classes.txt``."""
        return ("background", *self.classes)


@dataclass(frozen=True)
class ShapeObject:
    """One drawn object.

    Attributes:
        instance: Its value in the instance mask (1-based drawing order; later ones occlude earlier ones).
        class_index: Its value in the class mask (1-based index into the configured classes).
        class_name: Shape name.
        center: ``(x, y)`` centre in pixels.
        radius: Size parameter in pixels.
        angle: Rotation in degrees.
        texture: One of :data:`TEXTURES`.
        area: Pixels of the whole shape inside the image.
        visible_area: Pixels left visible after occlusion.
        bbox: ``(xmin, ymin, xmax, ymax)`` of the visible part, 0-based inclusive pixel coordinates.
        truncated: Whether the shape was cut by the image border.
    """

    instance: int
    class_index: int
    class_name: str
    center: tuple[float, float]
    radius: float
    angle: float
    texture: str
    area: int
    visible_area: int
    bbox: tuple[int, int, int, int]
    truncated: bool

    @property
    def visible_fraction(self) -> float:
        """``visible_area / area``."""
        return self.visible_area / max(self.area, 1)


class ShapesImage(NamedTuple):
    """One generated image with its ground truth.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB.
        class_mask: ``(H, W)`` uint8, 0 background, ``k`` the k-th class, 255 on the optional border band.
        instance_mask: ``(H, W)`` uint8, 0 background, ``i`` the i-th object (see :attr:`ShapeObject.instance`).
        objects: The objects, in drawing order.
    """

    image: np.ndarray
    class_mask: np.ndarray
    instance_mask: np.ndarray
    objects: list[ShapeObject]


# ----------------------------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------------------------

def _rotate(points: np.ndarray, angle_degrees: float) -> np.ndarray:
    theta = math.radians(angle_degrees)
    rotation = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    return points @ rotation.T


def _regular_polygon(vertices: int, circumradius: float, start_degrees: float = -90.0) -> np.ndarray:
    angles = np.radians(start_degrees + 360.0 * np.arange(vertices) / vertices)
    return circumradius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _shape_polygons(name: str, radius: float) -> list[np.ndarray]:
    """Polygons (each ``(N, 2)`` x, y around the origin, unrotated) whose union is the shape; scaled so that every
    shape covers roughly 2 to 3 squared radii."""
    if name == "square":
        half_side = 0.85 * radius
        return [np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64) * half_side]
    if name == "triangle":
        return [_regular_polygon(3, 1.3 * radius)]
    if name == "cross":
        arm, half_width = radius, 0.33 * radius
        horizontal = np.array([[-arm, -half_width], [arm, -half_width], [arm, half_width], [-arm, half_width]])
        return [horizontal, horizontal[:, ::-1].copy()]
    if name == "star":
        outer = _regular_polygon(5, 1.25 * radius)
        inner = _regular_polygon(5, 0.5 * 1.25 * radius, start_degrees=-90.0 + 36.0)
        return [np.stack([outer, inner], axis=1).reshape(-1, 2)]
    raise ValueError(f"no polygon for shape {name!r}")


def _shape_mask(name: str, size: int, center: tuple[float, float], radius: float, angle: float) -> np.ndarray:
    """``(size, size)`` bool mask of one shape (exact, no antialiasing)."""
    canvas = np.zeros((size, size), dtype=np.uint8)
    scale = 1 << _SUBPIXEL_BITS
    center_fixed = (int(round(center[0] * scale)), int(round(center[1] * scale)))
    if name in ("circle", "ring"):
        cv2.circle(canvas, center_fixed, int(round(radius * scale)), 1, -1, cv2.LINE_8, _SUBPIXEL_BITS)
        if name == "ring":
            cv2.circle(canvas, center_fixed, int(round(0.55 * radius * scale)), 0, -1, cv2.LINE_8, _SUBPIXEL_BITS)
        return canvas.astype(bool)
    for polygon in _shape_polygons(name, radius):
        points = _rotate(polygon, angle) + np.asarray(center)
        fixed = np.round(points * scale).astype(np.int32).reshape(-1, 1, 2)
        cv2.fillPoly(canvas, [fixed], 1, cv2.LINE_8, _SUBPIXEL_BITS)  # one call per polygon: their union
    return canvas.astype(bool)


def _background(rng: np.random.Generator, config: ShapesConfig) -> np.ndarray:
    """``(H, W, 3)`` float32 smooth colour field with mild noise and, sometimes, faint stripes."""
    size = config.image_size
    grid = int(rng.integers(2, 5))
    base = rng.uniform(30.0, 225.0, size=3)
    nodes = np.clip(base + rng.uniform(-45.0, 45.0, size=(grid, grid, 3)), 0.0, 255.0).astype(np.float32)
    field = cv2.resize(nodes, (size, size), interpolation=cv2.INTER_CUBIC)
    if rng.random() < config.background_stripes:
        ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
        theta = rng.uniform(0.0, math.pi)
        period = rng.uniform(8.0, 24.0)
        amplitude = rng.uniform(5.0, 12.0)
        wave = np.sin(2.0 * math.pi * (xs * math.cos(theta) + ys * math.sin(theta)) / period)
        field = field + (amplitude * wave)[..., None]
    sigma = rng.uniform(*config.noise_sigma)
    field = field + rng.normal(0.0, sigma, size=field.shape).astype(np.float32)
    return field


def _pick_colours(rng: np.random.Generator, background_colour: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two texture colours that stand out from ``background_colour`` (and from each other)."""
    first = None
    for _ in range(_COLOUR_TRIES):
        candidate = rng.uniform(0.0, 255.0, size=3)
        if np.linalg.norm(candidate - background_colour) >= _MIN_OBJECT_COLOUR_DISTANCE:
            first = candidate
            break
    if first is None:
        first = 255.0 - background_colour
    second = None
    for _ in range(_COLOUR_TRIES):
        candidate = rng.uniform(0.0, 255.0, size=3)
        if (np.linalg.norm(candidate - background_colour) >= _MIN_SECOND_COLOUR_DISTANCE
                and np.linalg.norm(candidate - first) >= _MIN_SECOND_COLOUR_DISTANCE):
            second = candidate
            break
    if second is None:
        second = np.clip(first + np.where(first > 127, -70.0, 70.0), 0.0, 255.0)
    return first, second


def _texture(
    rng: np.random.Generator, kind: str, mask: np.ndarray, first: np.ndarray, second: np.ndarray
) -> np.ndarray:
    """``(N, 3)`` float32 colours for the ``N`` true pixels of ``mask``, in row-major order."""
    ys, xs = np.nonzero(mask)
    ys = ys.astype(np.float32)
    xs = xs.astype(np.float32)
    theta = rng.uniform(0.0, math.pi)
    along = xs * math.cos(theta) + ys * math.sin(theta)
    if kind == "solid":
        return np.broadcast_to(first, (xs.size, 3)).astype(np.float32)
    if kind == "stripes":
        period = rng.uniform(4.0, 10.0)
        use_second = (np.floor(along / (period / 2.0)) % 2).astype(bool)
        return np.where(use_second[:, None], second, first).astype(np.float32)
    if kind == "checker":
        cell = rng.uniform(3.0, 8.0)
        across = -xs * math.sin(theta) + ys * math.cos(theta)
        use_second = ((np.floor(along / cell) + np.floor(across / cell)) % 2).astype(bool)
        return np.where(use_second[:, None], second, first).astype(np.float32)
    if kind == "noise":
        sigma = rng.uniform(15.0, 30.0)
        return (first + rng.normal(0.0, sigma, size=(xs.size, 3))).astype(np.float32)
    if kind == "gradient":
        span = max(float(along.max() - along.min()), 1.0)
        weight = ((along - along.min()) / span)[:, None]
        return ((1.0 - weight) * first + weight * second).astype(np.float32)
    raise ValueError(f"unknown texture {kind!r}")


def _border_band(instance_mask: np.ndarray, width: int) -> np.ndarray:
    """Bool mask of pixels within ``width`` pixels of a change of instance (background included)."""
    kernel = np.ones((2 * width + 1, 2 * width + 1), dtype=np.uint8)
    return cv2.dilate(instance_mask, kernel) != cv2.erode(instance_mask, kernel)


def render_shapes_image(rng: np.random.Generator, config: ShapesConfig | None = None, **options) -> ShapesImage:
    """Draw one synthetic image and its exact masks.

    Args:
        rng: Source of randomness; the result is a deterministic function of its state.
        config: Generator settings; default ``ShapesConfig(**options)``.
        **options: Fields of :class:`ShapesConfig` (only when ``config`` is not given), e.g. ``image_size=64``.

    Returns:
        :class:`ShapesImage` ``(image (H, W, 3) uint8, class_mask (H, W) uint8, instance_mask (H, W) uint8, objects)``.
    """
    if config is None:
        config = ShapesConfig(**options)
    elif options:
        raise TypeError("pass either config or keyword options, not both")
    size = config.image_size
    canvas = _background(rng, config)
    background_field = canvas.copy()
    instance_mask = np.zeros((size, size), dtype=np.uint8)
    full_areas: list[int] = []
    placed: list[dict] = []
    wanted = int(rng.integers(config.min_objects, config.max_objects + 1))
    low, high = config.radius_range
    for _ in range(wanted):
        for _attempt in range(_PLACEMENT_TRIES):
            class_offset = int(rng.integers(len(config.classes)))
            radius = float(rng.uniform(low, high))
            margin = 0.7 * radius
            center = (float(rng.uniform(margin, size - margin)), float(rng.uniform(margin, size - margin)))
            angle = float(rng.uniform(0.0, 360.0))
            shape = _shape_mask(config.classes[class_offset], size, center, radius, angle)
            area = int(shape.sum())
            if area < 16:
                continue
            remaining = np.bincount(instance_mask[~shape], minlength=len(placed) + 1)
            if all(remaining[index + 1] >= config.min_visible * full_areas[index] for index in range(len(placed))):
                break
        else:
            break  # no room left for another object: keep the image with fewer objects
        instance = len(placed) + 1
        background_colour = background_field[shape].mean(axis=0)
        first, second = _pick_colours(rng, background_colour)
        texture = TEXTURES[int(rng.integers(len(TEXTURES)))]
        canvas[shape] = _texture(rng, texture, shape, first, second)
        instance_mask[shape] = instance
        full_areas.append(area)
        placed.append(dict(class_index=class_offset + 1, center=center, radius=radius, angle=angle, texture=texture,
                           truncated=_touches_border(shape)))
    image = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    class_lookup = np.zeros(256, dtype=np.uint8)
    objects = []
    for index, info in enumerate(placed):
        instance = index + 1
        class_lookup[instance] = info["class_index"]
        ys, xs = np.nonzero(instance_mask == instance)
        objects.append(ShapeObject(
            instance=instance,
            class_index=info["class_index"],
            class_name=config.classes[info["class_index"] - 1],
            center=info["center"],
            radius=info["radius"],
            angle=info["angle"],
            texture=info["texture"],
            area=full_areas[index],
            visible_area=int(xs.size),
            bbox=(int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())),
            truncated=info["truncated"],
        ))
    class_mask = class_lookup[instance_mask]
    if config.boundary_width > 0:
        class_mask[_border_band(instance_mask, config.boundary_width)] = IGNORE_INDEX
    return ShapesImage(image=image, class_mask=class_mask, instance_mask=instance_mask, objects=objects)


def _touches_border(mask: np.ndarray) -> bool:
    return bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())


# ----------------------------------------------------------------------------------------------------------------
# Writing the data set
# ----------------------------------------------------------------------------------------------------------------

def _annotation_xml(image_id: str, file_name: str, sample: ShapesImage) -> bytes:
    height, width = sample.class_mask.shape
    root = ElementTree.Element("annotation")
    ElementTree.SubElement(root, "folder").text = "JPEGImages"
    ElementTree.SubElement(root, "filename").text = file_name
    source = ElementTree.SubElement(root, "source")
    ElementTree.SubElement(source, "database").text = "glmix-viz shapes"
    size_element = ElementTree.SubElement(root, "size")
    for key, value in (("width", width), ("height", height), ("depth", 3)):
        ElementTree.SubElement(size_element, key).text = str(value)
    ElementTree.SubElement(root, "segmented").text = "1"
    for obj in sample.objects:
        element = ElementTree.SubElement(root, "object")
        ElementTree.SubElement(element, "name").text = obj.class_name
        ElementTree.SubElement(element, "pose").text = "Unspecified"
        ElementTree.SubElement(element, "truncated").text = str(int(obj.truncated))
        ElementTree.SubElement(element, "occluded").text = str(int(obj.visible_area < obj.area))
        ElementTree.SubElement(element, "difficult").text = "0"
        box = ElementTree.SubElement(element, "bndbox")
        xmin, ymin, xmax, ymax = obj.bbox
        for key, value in (("xmin", xmin), ("ymin", ymin), ("xmax", xmax), ("ymax", ymax)):
            ElementTree.SubElement(box, key).text = str(value + 1)  # VOC boxes are 1-based
    ElementTree.indent(root)
    return ElementTree.tostring(root, encoding="utf-8") + b"\n"


def _encode_png(image: Image.Image) -> bytes:
    buffer = _bytes_io.BytesIO()
    image.save(buffer, format="PNG", compress_level=3)
    return buffer.getvalue()


def _encode_image(image: np.ndarray, image_format: str) -> bytes:
    pil_image = Image.fromarray(image, mode="RGB")
    if image_format == "png":
        return _encode_png(pil_image)
    buffer = _bytes_io.BytesIO()
    pil_image.save(buffer, format="JPEG", quality=95, subsampling=0)
    return buffer.getvalue()


_OUTPUT_FOLDERS = ("JPEGImages", "Annotations", "SegmentationClass", "SegmentationObject", "ImageSets")
_FOLDER_LAYOUT = {"JPEGImages": "images", "SegmentationClass": "masks", "ImageSets": "splits"}
LAYOUTS = ("voc", "folder")
_META_FILE = "shapes_meta.json"


def _prepare_output(out_dir: Path, overwrite: bool) -> None:
    existing = [name for name in (*_OUTPUT_FOLDERS, "images", "masks", "splits") if (out_dir / name).exists()]
    if not existing:
        return
    if not overwrite:
        raise DataError(
            f"{out_dir}: already holds a data set ({', '.join(existing)}); "
            "pass overwrite=True (--overwrite) to replace it"
        )
    if not (out_dir / _META_FILE).is_file() and any((out_dir / name).exists() for name in ("JPEGImages", "images")):
        raise DataError(
            f"{out_dir}: holds data folders not written by make_shapes (no {_META_FILE}); refusing to delete"
        )
    for name in existing:
        shutil.rmtree(out_dir / name)
    (out_dir / _META_FILE).unlink(missing_ok=True)


def make_shapes(
    out_dir: str | Path,
    config: ShapesConfig | None = None,
    *,
    num_train: int,
    num_val: int,
    seed: int,
    num_test: int = 0,
    image_format: str = "png",
    overwrite: bool = False,
    progress: bool = True,
    layout: str = "voc",
) -> dict:
    """Write a synthetic shapes data set in the PASCAL VOC layout (see the module docstring).

    Args:
        out_dir: Output folder (created if needed).
        config: What the images look like (:class:`ShapesConfig`; its defaults when None).
        num_train: Number of training images.
        num_val: Number of validation images.
        seed: Non-negative integer; the same seed and settings give byte-identical files.
        num_test: Number of test images (0: no test split).
        image_format: ``"png"`` (lossless, default) or ``"jpg"`` (JPEG quality 95, as VOC stores photos).
        overwrite: Replace a data set that ``make_shapes`` wrote there before.
        progress: Show a tqdm progress bar when more than 200 images are written.
        layout: ``"voc"`` (default: the PASCAL VOC layout) or ``"folder"`` (a segmentation folder: ``images/``,
            ``masks/``, ``classes.txt``, ``splits/``; no XML, no instance masks).

    Returns:
        Summary dict: ``out_dir``, ``seed``, ``classes`` (with background), ``splits`` (name -> count),
        ``objects_per_class``, ``images_with_overlap``, ``seconds``.

    Raises:
        DataError: ``out_dir`` already holds a data set and ``overwrite`` is false.
    """
    config = config or ShapesConfig()
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if image_format not in ("png", "jpg"):
        raise ValueError(f"image_format must be 'png' or 'jpg', got {image_format!r}")
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    counts = {"train": int(num_train), "val": int(num_val), "test": int(num_test)}
    if any(count < 0 for count in counts.values()) or counts["train"] + counts["val"] + counts["test"] == 0:
        raise ValueError(f"split sizes must be non-negative and not all zero, got {counts}")
    out_dir = Path(out_dir).expanduser()
    out_dir.mkdir(parents=True, exist_ok=True)
    _prepare_output(out_dir, overwrite)
    folders = {name: out_dir / name for name in _OUTPUT_FOLDERS}
    if layout == "folder":
        folders = {name: out_dir / _FOLDER_LAYOUT[name] if name in _FOLDER_LAYOUT else None
                   for name in _OUTPUT_FOLDERS}
    for name in ("JPEGImages", "Annotations", "SegmentationClass", "SegmentationObject"):
        if folders[name] is not None:
            folders[name].mkdir(parents=True, exist_ok=True)
    (out_dir / "classes.txt").write_text("\n".join(config.class_names) + "\n", encoding="utf-8")

    started = time.perf_counter()
    split_ids, objects_per_class, images_with_overlap = _write_images(
        folders, counts, config, int(seed), image_format, progress, out_dir.name)
    # The split lists and the metadata come last: a folder without them is an unfinished run.
    _write_split_lists(folders["ImageSets"] / ("Segmentation" if layout == "voc" else ""), split_ids)
    seconds = time.perf_counter() - started
    metadata = _metadata(config, int(seed), image_format, split_ids, objects_per_class, images_with_overlap)
    if layout != "voc":
        metadata["layout"] = layout
    save_bytes_atomic(out_dir / _META_FILE, (json.dumps(metadata, indent=2) + "\n").encode("utf-8"))
    return {
        "out_dir": str(out_dir),
        "seed": int(seed),
        "classes": list(config.class_names),
        "splits": metadata["splits"],
        "objects_per_class": objects_per_class,
        "images_with_overlap": images_with_overlap,
        "seconds": round(seconds, 3),
    }


def _write_sample(folders: dict[str, Path], image_id: str, sample: ShapesImage, image_format: str) -> None:
    """One image's picture, class and instance masks (palette PNGs) and XML annotation."""
    file_name = f"{image_id}.{image_format}"
    (folders["JPEGImages"] / file_name).write_bytes(_encode_image(sample.image, image_format))
    (folders["SegmentationClass"] / f"{image_id}.png").write_bytes(_encode_png(label_to_pil(sample.class_mask)))
    if folders["SegmentationObject"] is not None:
        (folders["SegmentationObject"] / f"{image_id}.png").write_bytes(_encode_png(label_to_pil(sample.instance_mask)))
    if folders["Annotations"] is not None:
        (folders["Annotations"] / f"{image_id}.xml").write_bytes(_annotation_xml(image_id, file_name, sample))


def _write_images(folders: dict[str, Path], counts: dict[str, int], config: ShapesConfig, seed: int,
                  image_format: str, progress: bool, label: str) -> tuple[dict[str, list[str]], dict[str, int], int]:
    """Render and write every split's images; returns the ids per split, objects per class, images with overlap."""
    total = sum(counts.values())
    objects_per_class = {name: 0 for name in config.classes}
    images_with_overlap = 0
    split_ids: dict[str, list[str]] = {}
    progress_bar = None
    if progress and total > 200:
        progress_bar = tqdm(total=total, desc=f"make-shapes {label}", unit="img")
    try:
        for split, count in counts.items():
            if count == 0:
                continue
            ids = []
            for index in range(count):
                image_id = f"{split}_{index:06d}"
                sample = render_shapes_image(np.random.default_rng([seed, _SPLIT_CODES[split], index]), config)
                _write_sample(folders, image_id, sample, image_format)
                for obj in sample.objects:
                    objects_per_class[obj.class_name] += 1
                images_with_overlap += any(obj.visible_area < obj.area for obj in sample.objects)
                ids.append(image_id)
                if progress_bar is not None:
                    progress_bar.update(1)
            split_ids[split] = ids
    finally:
        if progress_bar is not None:
            progress_bar.close()
    return split_ids, objects_per_class, images_with_overlap


def _write_split_lists(lists_folder: Path, split_ids: dict[str, list[str]]) -> None:
    """``ImageSets/Segmentation/<split>.txt`` for every split, and ``trainval.txt``."""
    for split, ids in split_ids.items():
        save_bytes_atomic(lists_folder / f"{split}.txt", ("\n".join(ids) + "\n").encode("utf-8"))
    trainval = split_ids.get("train", []) + split_ids.get("val", [])
    if trainval:
        save_bytes_atomic(lists_folder / "trainval.txt", ("\n".join(trainval) + "\n").encode("utf-8"))


def _metadata(config: ShapesConfig, seed: int, image_format: str, split_ids: dict[str, list[str]],
              objects_per_class: dict[str, int], images_with_overlap: int) -> dict:
    """The data set's metadata file: generator, format version, seed, classes, splits, settings, counts."""
    settings = asdict(config)
    settings["classes"] = list(config.classes)
    settings["radius_range"] = list(config.radius_range)
    settings["noise_sigma"] = list(config.noise_sigma)
    return {
        "generator": "glmix_viz.data.shapes",
        "format_version": SHAPES_FORMAT_VERSION,
        "seed": seed,
        "image_format": image_format,
        "classes": list(config.class_names),
        "splits": {split: len(ids) for split, ids in split_ids.items()},
        "settings": settings,
        "objects_per_class": objects_per_class,
        "images_with_overlap": images_with_overlap,
    }
