"""Sources and caches of the explorer: models, images and network results, each computed once.

Streamlit reruns the whole script on every interaction; everything slow lives here behind a cache:

* models: one bounded least-recently-used cache for every session (:data:`glmix_viz.app.modelcache.MODELS`), keyed by
  where they come from (path + file stamp, upload hash, variant) and the device;
* decoded images: keyed by the hash of the file's bytes;
* network results (:func:`glmix_viz.slots.explore.explore_image`, class maps, dense CRF): keyed by the
  :class:`LoadedModel` and :class:`LoadedImage` themselves (:data:`HASH_FUNCS` hashes each by its ``key``) and the
  settings that change them, never by display settings, so moving an opacity slider redraws pictures only. The
  class maps are cached without their background channel: moving the background threshold replaces that channel
  and never reruns the network.

Results shared between sessions cannot be changed by one of them: an :class:`Exploration` is frozen with read-only
arrays (``st.cache_resource``: one object for everyone), score maps and pseudo-masks are ``st.cache_data`` (every
reader gets its own copy). Nothing here draws; the tabs (:mod:`glmix_viz.app.tabs`) do.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import skimage.data
import streamlit as st
import torch
import torch.nn as nn

import glmix_viz.models  # noqa: F401  (registers the GLNet variants with timm)
from glmix_viz.app import options, store
from glmix_viz.app.modelcache import MODELS
from glmix_viz import CheckpointError, ImageLoadError
from glmix_viz.app.threads import interactive_threads
from glmix_viz.data.shapes import DEFAULT_SHAPE_CLASSES, render_shapes_image
from glmix_viz.errors import one_line
from glmix_viz.grouping import benchmark_best_block, untrained_copy
from glmix_viz.images import check_min_size, load_image_with_info
from glmix_viz.open import Opened, demo_checkpoint, open_checkpoint, resolve_model
from glmix_viz.models.info import describe_model
from glmix_viz.models.registry import VARIANTS
from glmix_viz.pseudo import METHODS, PseudoMask, ScoreMaps, ScoreSettings, compute_scores, default_method
from glmix_viz.crf import CRFParams
from glmix_viz.pseudo.masks import pseudo_mask as make_pseudo_mask
from glmix_viz.pseudo.evidence import apply_background
from glmix_viz.segment.model import segmenter_class_names
from glmix_viz.segment.predict import predict_labels
from glmix_viz.slots.explore import Exploration, explore_image, predicted_classes

MAX_IMAGE_SIDE = 1024  # larger images are downscaled on loading (with a notice)
MIN_IMAGE_SIDE = 32
CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
IMAGE_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "gif"]
SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
# Generated gallery images: draws [2024, index] of make-shapes. The first is the one the app opens on: the bundled demo
# model names all three of its objects' classes and every block's grouping follows them (foreground ARI 0.56-0.84).
SHAPES_GALLERY_DRAWS = (7, 0, 2, 6)
SHAPES_GALLERY_SIDE = 256


def configure_torch() -> int:
    """Set torch's CPU threads (:func:`interactive_threads`) on every run, in case something in the process changed
    them since (a per-process setting: with as many threads as cores a busy machine is many times slower)."""
    threads = interactive_threads()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


# ----------------------------------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedModel:
    """A model and what the page says about it.

    Attributes:
        model: the GLNet, in eval mode on its device.
        key: identifies the weights (and device) in the result caches.
        label: one line naming the model for the page.
        variant: the GLNet variant.
        trained: False for randomly initialised weights.
        class_names: the classifier's class names.
        default_resolution: the input size the model was made for (longer side, pixels).
        ref: how a link names the model (:mod:`glmix_viz.app.links`), or "" when no link can name it.
        segmenter: the whole segmenter of a ``segment-train`` checkpoint, else None.
    """

    model: nn.Module
    key: str
    label: str
    variant: str
    trained: bool
    class_names: Tuple[str, ...]
    default_resolution: int
    ref: str = ""
    segmenter: Optional[nn.Module] = None


def available_devices() -> List[str]:
    """``["cuda", "cpu"]`` when CUDA is available, else ``["cpu"]`` (the first is the default)."""
    return ["cuda", "cpu"] if torch.cuda.is_available() else ["cpu"]


def _describe(opened: Opened, key: str, label: str, trained: bool, ref: str = "") -> LoadedModel:
    info = opened.info
    return LoadedModel(opened.model, key, label, info.variant, trained, info.class_names, info.input_size[-1], ref,
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


def _log(message: str) -> None:
    """One line in the server's log (the app's own events: a model loaded)."""
    print(f"glmix-viz app: {message}", file=sys.stderr, flush=True)


def configure_models() -> None:
    """Bound the model cache by the app's options (``--models-cached``, ``--model-cache-mb``), on every run."""
    MODELS.configure(int(options.limit("models_cached")), int(options.limit("model_cache_mb") * 2**20))


def _cached(key: Tuple[Any, ...], spinner: str, load: Any) -> Opened:
    """A model of :data:`MODELS`, loaded (with a spinner) when it is not held."""
    def loading() -> Opened:
        with st.spinner(spinner):
            return load()
    return MODELS.get(key, loading)


def _load_checkpoint(path: str, stamp: str, variant: Optional[str], device: str, name: str) -> Opened:
    def load() -> Opened:
        opened = _load_safely(path, variant, device, name)
        _log(f"loaded model {name} on {device}")
        return opened
    return _cached(("file", path, stamp, variant, device, name), "Loading the model...", load)


def checkpoint_model(path: str | os.PathLike, variant: Optional[str], device: str, *, label: str,
                     name: Optional[str] = None, ref: str = "") -> LoadedModel:
    """A model from a checkpoint file, loaded once per (path, file stamp, variant, device).

    Args:
        name: how errors name the file (default: its path).
        ref: how a link names the model (:mod:`glmix_viz.app.links`), "" when none can.

    Raises:
        CheckpointError: the file is missing, unreadable or fits no GLNet variant.
    """
    resolved = Path(path).expanduser()
    if not resolved.is_file():
        raise CheckpointError(f"{name or resolved}: no such checkpoint file")
    resolved = resolved.resolve()
    stamp = _file_stamp(resolved)
    opened = _load_checkpoint(str(resolved), stamp, variant, device, name or str(resolved))
    return _describe(opened, f"file:{resolved}:{stamp}:{variant}:{device}", label, trained=True, ref=ref)


def uploaded_model(name: str, data: bytes, variant: Optional[str], device: str, folder: Path,
                   cap: int = store.DEFAULT_CAP_BYTES) -> LoadedModel:
    """A model from an uploaded checkpoint, kept in the upload store ``folder`` (:mod:`glmix_viz.app.store`, at most
    ``cap`` bytes) under its digest, so that a link can name it; read without executing code. A file that does not
    load is taken out of the store again.

    Raises:
        CheckpointError: unsupported suffix, unreadable file, or weights that fit no variant.
        UploadError: larger than the store.
    """
    suffix = Path(name).suffix.lower()
    if suffix not in CHECKPOINT_SUFFIXES:
        raise CheckpointError(f"{name}: unsupported checkpoint type {suffix or '(none)'}; "
                              f"expected one of {', '.join(CHECKPOINT_SUFFIXES)}")
    stored = store.put(folder, name, data, cap=cap)
    try:
        return stored_model(stored, variant, device, name=name)
    except CheckpointError:
        store.remove(folder, stored.digest)
        raise


def stored_model(stored: store.Stored, variant: Optional[str], device: str, *, name: Optional[str] = None
                 ) -> LoadedModel:
    """A model from a checkpoint of the upload store."""
    name = name or stored.name
    return checkpoint_model(stored.path, variant, device, label=f"{name} (uploaded)", name=name,
                            ref=f"upload:{stored.digest}")


def _random_model(variant: str, num_classes: int, label_names: Optional[Tuple[str, ...]], device: str) -> Opened:
    def load() -> Opened:
        opened = resolve_model(model_name=variant, num_classes=num_classes, class_names=label_names, device=device)
        _log(f"built model {variant} (random weights) on {device}")
        return opened
    return _cached(("random", variant, num_classes, label_names, device), "Building the model...", load)


def random_model(variant: str, device: str) -> LoadedModel:
    """A randomly initialised model (seed 0): ImageNet's 1000 classes, or the 4 shape classes for glnet_tiny."""
    if variant == "glnet_tiny":
        opened = _random_model(variant, len(DEFAULT_SHAPE_CLASSES), tuple(DEFAULT_SHAPE_CLASSES), device)
    else:
        opened = _random_model(variant, 1000, None, device)
    return _describe(opened, f"random:{variant}:{device}", f"{variant} (random weights)", trained=False,
                     ref=f"random:{variant}")


def demo_model(device: str) -> LoadedModel:
    """The bundled demo model, or an untrained glnet_tiny while there is none."""
    path = demo_checkpoint()
    if path is None:
        loaded = random_model("glnet_tiny", device)
        return dataclasses.replace(loaded, label="glnet_tiny (untrained: no demo model bundled yet)", ref="demo")
    return checkpoint_model(path, None, device, label=f"demo model {path.name}", name=path.name, ref="demo")


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


def random_variants() -> List[str]:
    """The variants random weights may be built for (``--random-variants``; default the small ones)."""
    return options.random_variants(variants())


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
        labels: the class names of the objects it is known to hold (the generated gallery images), else empty.
        ref: how a link names the image (:mod:`glmix_viz.app.links`), or "" when no link can name it.
    """

    image: np.ndarray
    key: str
    name: str
    notice: str = ""
    labels: Tuple[str, ...] = ()
    ref: str = ""
    segmenter: Optional[nn.Module] = None


def _image_key(image: np.ndarray) -> str:
    digest = hashlib.sha1(np.ascontiguousarray(image).tobytes())
    digest.update(repr(image.shape).encode())
    return digest.hexdigest()


@st.cache_resource(max_entries=32, show_spinner=False)
def _decode(digest: str, _data: bytes, name: str, ref: str) -> LoadedImage:
    image, info = load_image_with_info(_data, name=name, max_side=MAX_IMAGE_SIDE)
    check_min_size(image, MIN_IMAGE_SIDE, name=name)
    notice = ""
    if info["downscaled"]:
        (width, height), (new_width, new_height) = info["original_size"], info["size"]
        notice = f"{name} is {width}x{height} pixels; it was downscaled to {new_width}x{new_height} for the explorer."
    image.setflags(write=False)
    return LoadedImage(image, _image_key(image), name, notice, ref=ref)


def decode_upload(name: str, data: bytes, ref: str = "") -> LoadedImage:
    """Decode uploaded bytes (in memory) into an image; ``ref`` is how a link names it.

    Raises:
        ImageLoadError: corrupt file, unsupported type, or an image smaller than 32x32.
    """
    suffix = Path(name).suffix.lower().lstrip(".")
    if suffix and suffix not in IMAGE_TYPES:
        raise ImageLoadError(f"{name}: unsupported file type .{suffix}; expected one of {', '.join(IMAGE_TYPES)}")
    return _decode(hashlib.sha1(data).hexdigest(), data, name, ref)


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
        images[name] = LoadedImage(image, _image_key(image), name, labels=tuple(shapes.split(", ")),
                                   ref=f"gallery:{name}")

    for photo in SKIMAGE_PHOTOS:
        try:
            image = np.ascontiguousarray(getattr(skimage.data, photo)()[..., :3]).astype(np.uint8)
        except Exception:  # a photo missing from this scikit-image install is simply left out
            continue
        image.setflags(write=False)
        images[photo] = LoadedImage(image, _image_key(image), f"{photo} (scikit-image)", ref=f"gallery:{photo}")
    return images


# ----------------------------------------------------------------------------------------------------------------------
# Network results
# ----------------------------------------------------------------------------------------------------------------------


HASH_FUNCS = {
    LoadedModel: lambda loaded: loaded.key,  # the weights and the device
    LoadedImage: lambda image: image.key,  # the pixels
    ScoreSettings: lambda settings: json.dumps(settings.to_dict(), sort_keys=True, default=str),
}
"""How the result caches key a model, an image and score settings: by what they stand for, never by hand."""


def _untrained_copy(loaded: LoadedModel) -> Opened:
    def load() -> Opened:
        model = untrained_copy(loaded.model, seed=0)
        return Opened(model, None, describe_model(model))
    return _cached(("untrained", loaded.key), "Building the untrained copy...", load)


def untrained_copy_model(loaded: LoadedModel) -> LoadedModel:
    """An untrained copy of ``loaded`` (seed 0; :func:`glmix_viz.grouping.untrained_copy`): the same variant,
    constructor arguments and classes, random weights. What the Compare view sets beside a model."""
    return _describe(_untrained_copy(loaded), f"untrained:{loaded.key}", f"untrained copy of {loaded.label}",
                     trained=False)


@st.cache_resource(max_entries=16, show_spinner="Running the network...", hash_funcs=HASH_FUNCS)
def exploration(model: LoadedModel, image: LoadedImage, resolution: int) -> Exploration:
    """:func:`explore_image` once per (model, image, input resolution); frozen, shared by every session."""
    return explore_image(model.model, image.image, input_size=resolution)


@dataclass(frozen=True)
class MaskRequest:
    """What a pseudo-mask depends on besides the model and the image.

    Attributes:
        classes: the model's class indices present in the image (its image-level labels), increasing.
        score: the score settings (method, background rule and parameter, flip, input size).
        crf: the dense CRF's parameters.
    """

    classes: Tuple[int, ...]
    score: ScoreSettings
    crf: CRFParams = CRFParams()

    @property
    def method(self) -> str:
        return self.score.method


def network_settings(score: ScoreSettings) -> ScoreSettings:
    """``score`` with the background at its method's default: the part of the settings the network passes see."""
    return dataclasses.replace(score, bg_rule="threshold", bg_param=None)


@st.cache_data(max_entries=64, show_spinner="Computing the class maps...", hash_funcs=HASH_FUNCS)
def class_maps(model: LoadedModel, image: LoadedImage, score: ScoreSettings, classes: Tuple[int, ...]) -> ScoreMaps:
    """Class score maps (:func:`compute_scores`) of ``classes``, computed once per :func:`network_settings`."""
    labels = np.zeros(int(model.model.num_classes), dtype=np.float32)
    labels[list(classes)] = 1.0
    return compute_scores(model.model, image.image, labels, network_settings(score))


def score_maps(model: LoadedModel, image: LoadedImage, score: ScoreSettings, classes: Tuple[int, ...]) -> ScoreMaps:
    """:func:`class_maps` with the background channel of ``score``'s rule and parameter (no network pass)."""
    maps = class_maps(model, image, network_settings(score), tuple(classes))
    background = apply_background(maps.scores[1:], score.bg_rule, score.bg_param)
    return dataclasses.replace(maps, scores=background, settings=score)


@st.cache_data(max_entries=32, show_spinner="Running the dense CRF...", hash_funcs=HASH_FUNCS)
def pseudo_mask(model: LoadedModel, image: LoadedImage, request: MaskRequest) -> PseudoMask:
    """The pseudo-mask (:func:`glmix_viz.pseudo.masks.pseudo_mask`) of a request, before / after the CRF."""
    maps = score_maps(model, image, request.score, request.classes)
    return make_pseudo_mask(image.image, maps, request.crf)


def default_classes(exploration: Exploration, image: LoadedImage) -> Tuple[int, ...]:
    """The classes a pseudo-mask starts from: the image's known labels when the model names them all, else every class
    predicted above 0.5, else the most probable one (:func:`predicted_classes`); empty without a classifier."""
    names = list(exploration.class_names)
    if image.labels and all(label in names for label in image.labels):
        return tuple(sorted(names.index(label) for label in image.labels))
    return predicted_classes(exploration.probabilities)


def default_mask_request(exploration: Exploration, image: LoadedImage, resolution: int) -> Optional[MaskRequest]:
    """The request before the user changes anything: :func:`default_classes`, the library's default method with its
    own background threshold, the CRF's defaults; None when the model has no classifier."""
    classes = default_classes(exploration, image)
    if not classes:
        return None
    return MaskRequest(classes, ScoreSettings(method=default_method(), input_size=resolution), CRFParams())


@st.cache_data(max_entries=16, show_spinner="Running the segmenter...", hash_funcs=HASH_FUNCS)
def segmenter_prediction(model: LoadedModel, image: LoadedImage) -> Tuple[np.ndarray, List[str]]:
    """The segmenter's ``(H, W)`` uint8 label map of the image and its class names (background first)."""
    labels = predict_labels(model.segmenter, image.image)
    names = segmenter_class_names(model.segmenter) or [f"class {index}" for index in range(int(labels.max()) + 1)]
    return labels, list(names)


def method_names() -> Sequence[str]:
    """The score-map methods of the library's registry (:data:`glmix_viz.pseudo.METHODS`), in its order."""
    return tuple(METHODS)
