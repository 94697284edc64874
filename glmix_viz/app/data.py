"""Sources and caches of the explorer: models, images and network results, each computed once.

Streamlit reruns the whole script on every interaction; everything slow lives here behind a cache:

* models: ``st.cache_resource`` keyed by where they come from (path + file stamp, upload hash, variant) and the device;
* decoded images: keyed by the hash of the file's bytes;
* network results (:func:`glmix_viz.slots.explore.explore_image`, class score maps, dense CRF): keyed by model key,
  image key and the settings that change them, never by display settings, so moving an opacity slider redraws
  pictures only.

Nothing here draws; :mod:`glmix_viz.app.views` does.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import streamlit as st
import torch
import torch.nn as nn

import glmix_viz  # noqa: F401  (registers the GLNet variants with timm)
from glmix_viz import CheckpointError, ImageLoadError
from glmix_viz.app.threads import interactive_threads
from glmix_viz.errors import one_line
from glmix_viz.data.shapes import DEFAULT_SHAPE_CLASSES, render_shapes_image
from glmix_viz.slots.explore import Exploration, explore_image
from glmix_viz.grouping import benchmark_best_block
from glmix_viz.open import Opened, demo_checkpoint, open_checkpoint, resolve_model
from glmix_viz.pseudo import METHODS
from glmix_viz.segment.model import segmenter_class_names
from glmix_viz.segment.predict import predict_labels
from glmix_viz.images import check_min_size, load_image_with_info
from glmix_viz.models.registry import VARIANTS

MAX_IMAGE_SIDE = 1024  # larger images are downscaled on loading (with a notice)
MIN_IMAGE_SIDE = 32
CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
IMAGE_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "gif"]
SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
# Generated gallery images: draws [2024, index] of make-shapes. The first is the one the app opens on: the bundled demo
# model names all three of its objects' classes and every block's grouping follows them (foreground ARI 0.56-0.84).
SHAPES_GALLERY_DRAWS = (7, 0, 2, 6)
SHAPES_GALLERY_SIDE = 256


@st.cache_resource
def configure_torch() -> int:
    """Set torch's CPU threads once per process (:func:`interactive_threads`); returns the number."""
    threads = interactive_threads()
    torch.set_num_threads(threads)
    return threads


# ----------------------------------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedModel:
    """A model and what the page says about it.

    Attributes:
        model: the GLNet, in eval mode on its device (a segmenter checkpoint's encoder).
        key: identifies the weights (and device) in the result caches.
        label: one line naming the model for the page.
        variant: the GLNet variant.
        trained: False for randomly initialised weights.
        class_names: the classifier's class names.
        default_resolution: the input size the model was made for (longer side, pixels).
        segmenter: the whole segmenter of a ``segment-train`` checkpoint, else None.
    """

    model: nn.Module
    key: str
    label: str
    variant: str
    trained: bool
    class_names: Tuple[str, ...]
    default_resolution: int
    segmenter: Optional[nn.Module] = None


def available_devices() -> List[str]:
    """``["cuda", "cpu"]`` when CUDA is available, else ``["cpu"]`` (the first is the default)."""
    return ["cuda", "cpu"] if torch.cuda.is_available() else ["cpu"]


def _describe(opened: Opened, key: str, label: str, trained: bool) -> LoadedModel:
    info = opened.info
    return LoadedModel(opened.model, key, label, info.variant, trained, info.class_names, info.input_size[-1],
                       opened.segmenter)


def _file_stamp(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def _load_safely(path: str, variant: Optional[str], device: str, name: str) -> Opened:
    """:func:`open_checkpoint`, with any failure turned into a one-line CheckpointError naming the file as ``name``."""
    try:
        return open_checkpoint(path, variant=variant, device=device)
    except CheckpointError as error:
        raise CheckpointError(str(error).replace(path, name)) from None
    except Exception as error:  # noqa: BLE001  (a reader that fails in an unforeseen way on a bad file)
        raise CheckpointError(f"{name}: not a readable checkpoint ({one_line(error)})") from None


@st.cache_resource(max_entries=4, show_spinner="Loading the model...")
def _load_checkpoint(path: str, stamp: str, variant: Optional[str], device: str) -> Opened:
    return _load_safely(path, variant, device, path)


def checkpoint_model(path: str | os.PathLike, variant: Optional[str], device: str, *, label: str) -> LoadedModel:
    """A model from a checkpoint file, loaded once per (path, file stamp, variant, device).

    Raises:
        CheckpointError: the file is missing, unreadable or fits no GLNet variant.
    """
    resolved = Path(path).expanduser()
    if not resolved.is_file():
        raise CheckpointError(f"{resolved}: no such checkpoint file")
    resolved = resolved.resolve()
    stamp = _file_stamp(resolved)
    opened = _load_checkpoint(str(resolved), stamp, variant, device)
    return _describe(opened, f"file:{resolved}:{stamp}:{variant}:{device}", label, trained=True)


@st.cache_resource(max_entries=2, show_spinner="Loading the uploaded checkpoint...")
def _load_uploaded_checkpoint(
    digest: str, name: str, _data: bytes, suffix: str, variant: Optional[str], device: str
) -> Opened:
    # open_checkpoint reads files only; the bytes go to a private temporary file that is deleted right after reading.
    handle, temp_path = tempfile.mkstemp(prefix="glmix-upload-", suffix=suffix)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(_data)
        return _load_safely(temp_path, variant, device, name)  # errors name the upload, not the temporary file
    finally:
        os.remove(temp_path)


def uploaded_model(name: str, data: bytes, variant: Optional[str], device: str) -> LoadedModel:
    """A model from an uploaded checkpoint (read without executing code; the temporary copy is deleted).

    Raises:
        CheckpointError: unsupported suffix, unreadable file, or weights that fit no variant.
    """
    suffix = Path(name).suffix.lower()
    if suffix not in CHECKPOINT_SUFFIXES:
        raise CheckpointError(f"{name}: unsupported checkpoint type {suffix or '(none)'}; "
                              f"expected one of {', '.join(CHECKPOINT_SUFFIXES)}")
    digest = hashlib.sha1(data).hexdigest()
    opened = _load_uploaded_checkpoint(digest, name, data, suffix, variant, device)
    return _describe(opened, f"upload:{digest}:{variant}:{device}", f"{name} (uploaded)", trained=True)


@st.cache_resource(max_entries=3, show_spinner="Building the model...")
def _random_model(variant: str, num_classes: int, label_names: Optional[Tuple[str, ...]], device: str) -> Opened:
    return resolve_model(model_name=variant, num_classes=num_classes, class_names=label_names, device=device)


def random_model(variant: str, device: str) -> LoadedModel:
    """A randomly initialised model (seed 0): ImageNet's 1000 classes, or the 4 shape classes for glnet_tiny."""
    if variant == "glnet_tiny":
        opened = _random_model(variant, len(DEFAULT_SHAPE_CLASSES), tuple(DEFAULT_SHAPE_CLASSES), device)
    else:
        opened = _random_model(variant, 1000, None, device)
    return _describe(opened, f"random:{variant}:{device}", f"{variant} (random weights)", trained=False)


def demo_model(device: str) -> LoadedModel:
    """The bundled demo model, or an untrained glnet_tiny while there is none."""
    path = demo_checkpoint()
    if path is None:
        loaded = random_model("glnet_tiny", device)
        return dataclasses.replace(loaded, label="glnet_tiny (untrained: no demo model bundled yet)")
    return checkpoint_model(path, None, device, label=f"demo model {path.name}")


def demo_benchmark(loaded: LoadedModel) -> Optional[Dict[str, Any]]:
    """The best-grouping block of the bundled demo model on its held-out benchmark
    (:func:`glmix_viz.grouping.benchmark_best_block`) when ``loaded`` is that model, else None."""
    path = demo_checkpoint()
    if path is None or not loaded.key.startswith(f"file:{path.resolve()}:"):
        return None
    return benchmark_best_block()


def checkpoint_files(folder: str | os.PathLike) -> List[Path]:
    """Checkpoint files directly in ``folder`` (sorted by name); empty when the folder does not exist."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if path.is_file() and path.suffix.lower() in CHECKPOINT_SUFFIXES)


def variants() -> List[str]:
    """Registered GLNet variant names."""
    return list(VARIANTS)


# ----------------------------------------------------------------------------------------------------------------------
# Images
# ----------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedImage:
    """An image ready for the model.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB (downscaled to :data:`MAX_IMAGE_SIDE` if it was larger).
        key: hash of the pixels, the image's identity in the result caches.
        name: what the page calls it.
        notice: a line to show (e.g. that it was downscaled), or "".
    """

    image: np.ndarray
    key: str
    name: str
    notice: str = ""


def _image_key(image: np.ndarray) -> str:
    digest = hashlib.sha1(np.ascontiguousarray(image).tobytes())
    digest.update(repr(image.shape).encode())
    return digest.hexdigest()


@st.cache_resource(max_entries=32, show_spinner=False)
def _decode(digest: str, _data: bytes, name: str) -> LoadedImage:
    image, info = load_image_with_info(_data, name=name, max_side=MAX_IMAGE_SIDE)
    check_min_size(image, MIN_IMAGE_SIDE, name=name)
    notice = ""
    if info["downscaled"]:
        (width, height), (new_width, new_height) = info["original_size"], info["size"]
        notice = f"{name} is {width}x{height} pixels; it was downscaled to {new_width}x{new_height} for the explorer."
    image.setflags(write=False)
    return LoadedImage(image, _image_key(image), name, notice)


def decode_upload(name: str, data: bytes) -> LoadedImage:
    """Decode uploaded bytes (in memory) into an image.

    Raises:
        ImageLoadError: corrupt file, unsupported type, or an image smaller than 32x32.
    """
    suffix = Path(name).suffix.lower().lstrip(".")
    if suffix and suffix not in IMAGE_TYPES:
        raise ImageLoadError(f"{name}: unsupported file type .{suffix}; expected one of {', '.join(IMAGE_TYPES)}")
    return _decode(hashlib.sha1(data).hexdigest(), data, name)


@st.cache_resource(show_spinner=False)
def gallery() -> Dict[str, LoadedImage]:
    """Example images: generated shapes images (the demo model's classes) and the photos scikit-image ships."""
    images: Dict[str, LoadedImage] = {}
    for index, draw in enumerate(SHAPES_GALLERY_DRAWS):
        sample = render_shapes_image(np.random.default_rng([2024, draw]), image_size=SHAPES_GALLERY_SIDE)
        shapes = ", ".join(sorted({obj.class_name for obj in sample.objects}))
        name = f"shapes {index + 1} ({shapes})"
        image = np.ascontiguousarray(sample.image)
        image.setflags(write=False)
        images[name] = LoadedImage(image, _image_key(image), name)
    import skimage.data

    for photo in SKIMAGE_PHOTOS:
        try:
            image = np.ascontiguousarray(getattr(skimage.data, photo)()[..., :3]).astype(np.uint8)
        except Exception:  # a photo missing from this scikit-image install is simply left out
            continue
        image.setflags(write=False)
        images[photo] = LoadedImage(image, _image_key(image), f"{photo} (scikit-image)")
    return images


# ----------------------------------------------------------------------------------------------------------------------
# Network results
# ----------------------------------------------------------------------------------------------------------------------


@st.cache_resource(max_entries=16, show_spinner="Running the network...")
def exploration(model_key: str, image_key: str, resolution: int, _model: nn.Module, _image: np.ndarray) -> Exploration:
    """:func:`explore_image` once per (model, image, input resolution); the result is shared, never modified."""
    return explore_image(_model, _image, input_size=resolution)


@st.cache_resource(max_entries=64, show_spinner=False)
def score_maps(
    model_key: str,
    image_key: str,
    settings: Any,
    classes: Tuple[int, ...],
    _model: nn.Module,
    _image: np.ndarray,
) -> Any:
    """Class score maps (:func:`glmix_viz.pseudo.scores.compute_scores`) of one ScoreSettings, cached per settings."""
    from glmix_viz.pseudo.scores import compute_scores

    labels = np.zeros(int(_model.num_classes), dtype=np.float32)
    labels[list(classes)] = 1.0
    return compute_scores(_model, _image, labels, settings)


@st.cache_resource(max_entries=32, show_spinner="Running the dense CRF...")
def pseudo_mask(scores_key: Tuple[Any, ...], params: Any, _image: np.ndarray, _maps: Any) -> Any:
    """The pseudo-mask of cached score maps (:func:`glmix_viz.pseudo.masks.pseudo_mask`), before / after the CRF."""
    from glmix_viz.pseudo.masks import pseudo_mask as make_mask

    return make_mask(_image, _maps, params)


@st.cache_resource(max_entries=16, show_spinner="Running the segmenter...")
def segmenter_prediction(model_key: str, image_key: str, _segmenter: nn.Module, _image: np.ndarray
                         ) -> Tuple[np.ndarray, List[str]]:
    """The segmenter's ``(H, W)`` uint8 label map of the image and its class names (background first)."""
    labels = predict_labels(_segmenter, _image)
    names = segmenter_class_names(_segmenter) or [f"class {index}" for index in range(int(labels.max()) + 1)]
    return labels, list(names)


def method_names() -> Sequence[str]:
    """The score-map methods of the library's registry (:data:`glmix_viz.pseudo.METHODS`)."""
    return tuple(METHODS)
