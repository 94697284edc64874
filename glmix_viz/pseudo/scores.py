"""Per-class score maps at full image resolution, from a classifier and an image's image-level labels.

Every method (a :class:`~glmix_viz.pseudo.registry.ScoreMethod` of :data:`~glmix_viz.pseudo.registry.METHODS`; the
built-in ones in :mod:`glmix_viz.pseudo.methods`, the pytorch-grad-cam baselines in :mod:`glmix_viz.pseudo.gradcam`)
turns the network's evidence for the classes present in an image into one map per present class, at the image's exact
size. This module holds the scoring (:func:`compute_scores`, :func:`compute_scores_batch`), which takes one
:class:`~glmix_viz.pseudo.settings.ScoreSettings`; the building blocks the methods share (normalisation, slot
pooling, superpixel averaging, background rules) are in :mod:`glmix_viz.pseudo.evidence`.

Every method's maps are summed over scales and flips (after resizing to the image size and un-flipping) and each
class is max-normalised, so every class map peaks at 1. Then the background score is stacked on top
(:func:`~glmix_viz.pseudo.evidence.apply_background`). Scores are not a softmax: ``scores[0]`` is the background,
``scores[1:]`` the normalised class maps, all in ``[0, 1]``; the arg-max is the label, and the dense CRF only needs
them up to a per-pixel factor. Only classes present in the image get a channel, so an absent class can never be
labelled.

Inference is batched: all views (scales x flips) of all images given to :func:`compute_scores_batch` that share an
input size run through the network together.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from glmix_viz.images import resolve_size, to_tensor
from glmix_viz.probe import GroupingProbe
from glmix_viz.pseudo.evidence import apply_background, max_normalize
from glmix_viz.pseudo.registry import METHODS, MapContext
from glmix_viz.pseudo.settings import ScoreSettings

__all__ = ["ScoreMaps", "compute_scores", "compute_scores_batch"]

InputSize = Union[None, int, Tuple[int, int]]


# ----------------------------------------------------------------------------------------------------------------------
# Result
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class ScoreMaps:
    """Class score maps of one image.

    Attributes:
        scores: ``(K + 1, H, W)`` float32 in ``[0, 1]``: channel 0 the background score, channels ``1..K`` the
            normalised maps of the ``K`` classes present in the image (not a softmax; the arg-max is the label).
        class_indices: ``(K + 1,)`` int64 label id of every channel in the full label space (0 = background, model
            class ``c`` = ``c + 1``); ``class_indices[0] == 0``.
        method: Name of the method that made the maps.
        settings: The :class:`~glmix_viz.pseudo.settings.ScoreSettings` that made them (None when made by hand).
    """

    scores: np.ndarray
    class_indices: np.ndarray
    method: str
    settings: Optional["ScoreSettings"] = None

    @property
    def size(self) -> Tuple[int, int]:
        """``(H, W)`` of the maps (the image's size)."""
        return int(self.scores.shape[1]), int(self.scores.shape[2])

    def labels(self) -> np.ndarray:
        """``(H, W)`` label map: the label id of the highest-scoring channel (ties go to the background).

        uint8 (what palette PNGs hold) when every label id fits, else int32 (e.g. a 1000-class ImageNet head).
        """
        dtype = np.uint8 if int(np.max(self.class_indices)) <= 255 else np.int32
        return self.class_indices.astype(dtype)[self.scores.argmax(axis=0)]


# ----------------------------------------------------------------------------------------------------------------------
# Orchestration
# ----------------------------------------------------------------------------------------------------------------------


def _present_classes(labels: Any, num_classes: int, position: int) -> List[int]:
    vector = np.asarray(labels, dtype=np.float64).reshape(-1)
    if vector.shape[0] != num_classes:
        raise ValueError(
            f"image {position}: labels have {vector.shape[0]} entries but the model has {num_classes} classes "
            "(expected a multi-hot vector over the model's classes, background excluded)"
        )
    if not np.isfinite(vector).all():
        raise ValueError(f"image {position}: labels contain NaN or infinite values")
    return [int(index) for index in np.flatnonzero(vector > 0.5)]


def _input_size(image_size: Tuple[int, int], scale: float, input_size: InputSize) -> Tuple[int, int]:
    """Network input ``(h, w)`` of one scale: the image's own size, a longer side, or an exact size, times ``scale``."""
    height, width = image_size
    if input_size is None:
        size = (round(height * scale), round(width * scale))
    elif isinstance(input_size, (int, np.integer)):
        size = resolve_size(height, width, max(1, round(int(input_size) * scale)))
    else:
        size = (round(int(input_size[0]) * scale), round(int(input_size[1]) * scale))
    return max(32, int(size[0])), max(32, int(size[1]))


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _model_device(model: nn.Module, device: Optional[Union[str, torch.device]]) -> torch.device:
    current = next(model.parameters()).device
    if device is None:
        return current
    target = torch.device(device)
    if target != current:
        model.to(target)
    return next(model.parameters()).device


def _chunks(items: List[Any], size: int) -> Iterator[List[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _checked_settings(settings: Optional[ScoreSettings]) -> ScoreSettings:
    """``settings``, or the defaults for ``None``; anything else is refused (one spelling of a scoring call)."""
    if settings is None:
        return ScoreSettings()
    if not isinstance(settings, ScoreSettings):
        raise ValueError(f"settings must be a ScoreSettings, got {type(settings).__name__}")
    return settings


def _check_inputs(model: nn.Module, images: Sequence[np.ndarray], labels: Sequence[Any]) -> List[List[int]]:
    """The present classes of every image, after checking the images and label vectors."""
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} label vectors")
    num_classes = int(getattr(model, "num_classes", 0))
    for position, image in enumerate(images):
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image {position}: expected an (H, W, 3) uint8 RGB array, got "
                             f"{getattr(image, 'shape', None)} {getattr(image, 'dtype', type(image).__name__)}")
    return [_present_classes(vector, num_classes, position) for position, vector in enumerate(labels)]


def _plan_views(images: Sequence[np.ndarray], present: Sequence[List[int]], settings: ScoreSettings
                ) -> Dict[Tuple[int, int], List[Tuple[int, bool]]]:
    """Views ``(image position, flipped)`` grouped by network input size; images without classes get none."""
    groups: Dict[Tuple[int, int], List[Tuple[int, bool]]] = defaultdict(list)
    for position, image in enumerate(images):
        if not present[position]:
            continue
        for scale in settings.scales:
            size = _input_size(image.shape[:2], scale, settings.input_size)
            for flipped in ((False, True) if settings.flip else (False,)):
                groups[size].append((position, flipped))
    return groups


def _summed_views(model: nn.Module, images: Sequence[np.ndarray], present: Sequence[List[int]],
                  settings: ScoreSettings, batch_size: int, device: torch.device) -> Dict[int, torch.Tensor]:
    """Per image position with classes: ``(K, H, W)`` class maps summed over its views (before normalising)."""
    spec = METHODS[settings.method]
    sums: Dict[int, torch.Tensor] = {}
    probe = GroupingProbe(model, blocks=settings.blocks) if spec.uses_probe else contextlib.nullcontext()
    grad_mode = torch.enable_grad() if spec.gradients else torch.inference_mode()
    with _eval_mode(model), grad_mode, probe:
        for size, views in _plan_views(images, present, settings).items():
            for chunk in _chunks(views, batch_size):
                inputs: Dict[int, torch.Tensor] = {}
                batch = []
                for position, flipped in chunk:
                    if position not in inputs:
                        inputs[position] = to_tensor(images[position], size=size)
                    batch.append(inputs[position].flip(-1) if flipped else inputs[position])
                inputs_batch = torch.cat(batch).to(device)
                chunk_classes = sorted({index for position, _ in chunk for index in present[position]})
                context = MapContext(
                    model=model, inputs=inputs_batch,
                    features=None if spec.gradients else model.forward_features(inputs_batch), classes=chunk_classes,
                    row_classes=[present[position] for position, _ in chunk],
                    records=probe.records if spec.uses_probe else None, options=settings.options,
                )
                maps = spec.maps(context)
                for row, (position, flipped) in enumerate(chunk):
                    rows = torch.as_tensor([chunk_classes.index(c) for c in present[position]], device=device)
                    height, width = images[position].shape[:2]
                    view = sum(
                        F.interpolate(block[row:row + 1, rows].float(), size=(height, width), mode="bilinear",
                                      align_corners=False)[0]
                        for block in maps
                    ) / len(maps)
                    view = view.flip(-1) if flipped else view
                    sums[position] = view if position not in sums else sums[position] + view
    return sums


def _score_maps(image: np.ndarray, summed: Optional[torch.Tensor], present: List[int], settings: ScoreSettings
                ) -> ScoreMaps:
    """Normalise one image's summed class maps, post-process them (the method's), stack the background score."""
    spec = METHODS[settings.method]
    height, width = image.shape[:2]
    if summed is not None:
        class_maps = max_normalize(summed.clamp_min(0)).cpu().numpy().astype(np.float32)
        if spec.postprocess is not None:
            refined = spec.postprocess(image, class_maps, settings.options)
            class_maps = max_normalize(torch.from_numpy(refined)).numpy()
    else:
        class_maps = np.zeros((0, height, width), dtype=np.float32)
    scores = apply_background(class_maps, settings.bg_rule, settings.bg_param)
    class_indices = np.asarray([0] + [index + 1 for index in present], dtype=np.int64)
    return ScoreMaps(scores=scores, class_indices=class_indices, method=settings.method, settings=settings)


def compute_scores_batch(
    model: nn.Module,
    images: Sequence[np.ndarray],
    labels: Sequence[Any],
    settings: Optional[ScoreSettings] = None,
    *,
    batch_size: int = 8,
) -> List[ScoreMaps]:
    """Score maps of several images; views of equal input size run through the network together.

    Args:
        model, settings: as :func:`compute_scores`.
        images: ``(H_i, W_i, 3)`` uint8 RGB images.
        labels: one ``(num_classes,)`` multi-hot vector per image.
        batch_size: the most views per forward pass.

    Returns:
        One :class:`ScoreMaps` per image, in order.
    """
    settings = _checked_settings(settings)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    present = _check_inputs(model, images, labels)
    device = _model_device(model, settings.device)
    sums = _summed_views(model, images, present, settings, batch_size, device)
    return [_score_maps(image, sums.get(position), present[position], settings)
            for position, image in enumerate(images)]


def compute_scores(
    model: nn.Module,
    image: np.ndarray,
    labels: Any,
    settings: Optional[ScoreSettings] = None,
) -> ScoreMaps:
    """Per-class score maps of one image at its full resolution, for the classes its image-level labels name.

    Args:
        model: a GLNet classifier (its ``head`` a linear layer over ``num_classes`` classes). Put in eval mode for the
            call (its mode is restored afterwards); moved to ``settings.device`` if that is given.
        image: ``(H, W, 3)`` uint8 RGB.
        labels: ``(num_classes,)`` multi-hot vector over the model's classes (background excluded), e.g.
            ``Split.labels(id)`` matched to the model (:func:`glmix_viz.data.classes.match_classes`).
        settings: method, options, scales, flip, background rule and parameter, blocks, input size, device
            (:class:`ScoreSettings`; ``None``: its defaults, i.e. the default method).

    Returns:
        :class:`ScoreMaps` with ``scores`` of shape ``(K + 1, H, W)`` (background first, then the ``K`` present classes
        in class order) and their ``class_indices``.
    """
    return compute_scores_batch(model, [image], [labels], settings)[0]
