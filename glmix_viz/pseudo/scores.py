"""Per-class score maps at full image resolution, from a classifier and an image's image-level labels.

Every method (a :class:`~glmix_viz.pseudo.registry.ScoreMethod` of :data:`METHODS`; the built-in ones in
:mod:`glmix_viz.pseudo.methods`, the pytorch-grad-cam baselines in :mod:`glmix_viz.pseudo.gradcam`) turns the
network's evidence for the classes present in an image into one map per present class, at the image's exact size.
This module holds the building blocks the methods share (CAM, slot pooling, normalisation, superpixel averaging,
background rules) and the scoring itself (:func:`compute_scores`, :func:`compute_scores_batch`), which takes one
:class:`~glmix_viz.pseudo.settings.ScoreSettings`.

Normalisation (see /work/shared/EXPERIMENTS.md for why it matters): a block's pooled map is smooth, so its minimum is
far above zero; max-normalising it alone makes nearly flat maps that label everything foreground. Slot methods
therefore min-max normalise each block's map per class and view (a map whose range is under 1% of its peak is not
stretched to full range: such contrast is rounding noise), then average the blocks. Every method then sums its
maps over scales and flips (after resizing to the image size and un-flipping) and max-normalises each class, so every
class map peaks at 1.

Background: rule ``"threshold"`` gives a constant background score ``t`` (each method's own ``bg_threshold`` by
default), rule ``"power"`` gives ``(1 - max_c score_c) ** alpha`` (default alpha 4, AffinityNet's "low alpha").
Scores are not a softmax: ``scores[0]`` is the background, ``scores[1:]`` the normalised class maps, all in
``[0, 1]``; the arg-max is the label, and the dense CRF only needs them up to a per-pixel factor. Only classes
present in the image get a channel, so an absent class can never be labelled.

Inference is batched: all views (scales x flips) of all images given to :func:`compute_scores_batch` that share an
input size run through the network together.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from glmix_viz.images import resolve_size, to_tensor
from glmix_viz.probe import GroupingProbe

__all__ = [
    "BG_RULES",
    "METHODS",
    "MapContext",
    "ScoreMaps",
    "ScoreMethod",
    "ScoreSettings",
    "apply_background",
    "class_activation_maps",
    "compute_scores",
    "compute_scores_batch",
    "max_normalize",
    "minmax_normalize",
    "resolve_settings",
    "slot_pooled_evidence",
    "slot_voted_evidence",
    "superpixel_average",
]

_EPS = 1e-8
SLOT_MIN_CONTRAST = 0.01
"""Slot methods' per-block min-max normalisation stretches a map by at most 1 / (this fraction of its peak)."""
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
# Building blocks (tensors in, tensors out)
# ----------------------------------------------------------------------------------------------------------------------


def max_normalize(maps: torch.Tensor) -> torch.Tensor:
    """Divide every map by its maximum (maps that are all zero stay zero).

    Args:
        maps: ``(..., H, W)`` non-negative maps.

    Returns:
        Same shape, each ``(H, W)`` map peaking at 1.
    """
    peak = maps.flatten(-2).amax(dim=-1)[..., None, None]
    return maps / peak.clamp_min(_EPS)


def minmax_normalize(maps: torch.Tensor, *, min_contrast: float = 0.0) -> torch.Tensor:
    """Rescale every map to ``[0, 1]`` by its minimum and maximum (a constant map becomes zero).

    Args:
        maps: ``(..., H, W)`` maps.
        min_contrast: the divisor is at least ``min_contrast * |max|``: a map whose range is a smaller fraction of
            its peak is not stretched to full range (its differences are rounding noise, not evidence).

    Returns:
        Same shape, ``(maps - min) / max(max - min, min_contrast * |max|)`` per ``(H, W)`` map.
    """
    flat = maps.flatten(-2)
    low = flat.amin(dim=-1)[..., None, None]
    high = flat.amax(dim=-1)[..., None, None]
    divisor = torch.maximum(high - low, min_contrast * high.abs()).clamp_min(_EPS)
    return (maps - low) / divisor


def class_activation_maps(model: nn.Module, features: torch.Tensor, classes: Sequence[int]) -> torch.Tensor:
    """Classic CAM: the classifier's weights dotted with the feature map at every position, then ReLU.

    Taken model-side (``glmix_viz.models.cam``, through ``get_classifier()``): a token-labelling model adds its
    per-token head with its evaluation weight 0.5, as in its logits. The classifier bias is left out.

    Args:
        model: a GLNet with a linear classifier of ``num_classes`` outputs.
        features: ``(N, C, h, w)`` final feature map (``model.forward_features``).
        classes: model class indices (0-based, background excluded) to compute maps for, ``K`` of them.

    Returns:
        ``(N, K, h, w)`` non-negative maps.
    """
    from glmix_viz.models.cam import class_activation_maps as model_class_activation_maps

    return model_class_activation_maps(model, features, classes)


def slot_pooled_evidence(evidence: torch.Tensor, logits: torch.Tensor, *, steps: int = 1) -> torch.Tensor:
    """Pool evidence within soft slots and spread it back, ``steps`` times: ``v <- D^T (C v)``.

    ``C = softmax over pixels(logits)`` (each slot a distribution over pixels) and ``D = softmax over slots(logits)``
    (each pixel a distribution over slots), so ``D^T C`` is a row-stochastic pixel-pixel affinity: a constant map is
    left unchanged.

    Args:
        evidence: ``(N, K, L)`` per-pixel class evidence on the block's grid (row-major pixels).
        logits: ``(N, S, L)`` the block's slot-pixel similarity logits.
        steps: number of pool-and-spread steps (>= 1).

    Returns:
        ``(N, K, L)`` pooled evidence.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    cluster = torch.softmax(logits, dim=-1)  # (N, S, L)
    dispatch = torch.softmax(logits, dim=1)  # (N, S, L)
    pixels = evidence
    for _ in range(steps):
        per_slot = pixels @ cluster.transpose(1, 2)  # (N, K, S)
        pixels = per_slot @ dispatch  # (N, K, L)
    return pixels


def slot_voted_evidence(evidence: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Hard slots: every pixel joins its arg-max slot and takes the mean evidence of that slot's pixels.

    Args:
        evidence: ``(N, K, L)`` per-pixel class evidence on the block's grid.
        logits: ``(N, S, L)`` the block's slot-pixel similarity logits.

    Returns:
        ``(N, K, L)`` piecewise-constant evidence.
    """
    membership = F.one_hot(logits.argmax(dim=1), logits.shape[1]).to(evidence.dtype)  # (N, L, S)
    counts = membership.sum(dim=1).clamp_min(1.0)  # (N, S)
    per_slot = (evidence @ membership) / counts[:, None, :]  # (N, K, S)
    return per_slot @ membership.transpose(1, 2)


def superpixel_average(maps: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """Replace every map's values by their mean within each superpixel.

    Args:
        maps: ``(K, H, W)`` float maps.
        segments: ``(H, W)`` non-negative integer superpixel ids.

    Returns:
        ``(K, H, W)`` float32 maps, constant within each superpixel.
    """
    flat_segments = segments.reshape(-1).astype(np.int64)
    counts = np.bincount(flat_segments).astype(np.float64)
    counts[counts == 0] = 1.0
    out = np.empty(maps.shape, dtype=np.float32)
    for channel, single in enumerate(maps):
        sums = np.bincount(flat_segments, weights=single.reshape(-1).astype(np.float64), minlength=counts.size)
        out[channel] = (sums / counts)[flat_segments].reshape(single.shape)
    return out


def apply_background(class_maps: np.ndarray, rule: str = "threshold", param: Optional[float] = None) -> np.ndarray:
    """Stack a background score on top of normalised class maps.

    Args:
        class_maps: ``(K, H, W)`` class maps in ``[0, 1]`` (``K`` may be 0).
        rule: ``"threshold"``: background = ``param`` everywhere; ``"power"``: background =
            ``(1 - max_k class_maps[k]) ** param``.
        param: the rule's parameter. Required for ``"threshold"`` (each method has its own: ``bg_threshold`` of its
            registry entry); default :data:`~glmix_viz.pseudo.settings.DEFAULT_POWER_ALPHA` for ``"power"``.

    Returns:
        ``(K + 1, H, W)`` float32, channel 0 the background.
    """
    param = check_background(rule, param)
    if param is None:
        if rule == "threshold":
            raise ValueError("the threshold rule needs its threshold (each method has its own: "
                             "METHODS[name].bg_threshold)")
        param = DEFAULT_POWER_ALPHA
    class_maps = np.asarray(class_maps, dtype=np.float32)
    height, width = class_maps.shape[-2:]
    if rule == "threshold":
        background = np.full((1, height, width), param, dtype=np.float32)
    else:
        peak = class_maps.max(axis=0) if class_maps.shape[0] else np.zeros((height, width), np.float32)
        background = (np.clip(1.0 - peak, 0.0, 1.0) ** param)[None].astype(np.float32)
    return np.concatenate([background, class_maps], axis=0)


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


def resolve_settings(settings: Optional[ScoreSettings], loose: Mapping[str, Any]) -> ScoreSettings:
    """``settings``, or one made from loose keyword fields (``method=..., scales=...``); never both."""
    if settings is not None and loose:
        raise ValueError(f"give a ScoreSettings or its fields ({', '.join(sorted(loose))}), not both")
    if settings is None:
        return ScoreSettings(**loose)
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
    **fields: Any,
) -> List[ScoreMaps]:
    """Score maps of several images; views of equal input size run through the network together.

    Args:
        model, settings: as :func:`compute_scores`.
        images: ``(H_i, W_i, 3)`` uint8 RGB images.
        labels: one ``(num_classes,)`` multi-hot vector per image.
        batch_size: the most views per forward pass.
        **fields: :class:`ScoreSettings` fields instead of ``settings`` (e.g. ``flip=False, scales=(1.0, 0.5)``).

    Returns:
        One :class:`ScoreMaps` per image, in order.
    """
    settings = resolve_settings(settings, fields)
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
    **fields: Any,
) -> ScoreMaps:
    """Per-class score maps of one image at its full resolution, for the classes its image-level labels name.

    Args:
        model: a GLNet classifier (its ``head`` a linear layer over ``num_classes`` classes). Put in eval mode for the
            call (its mode is restored afterwards); moved to ``settings.device`` if that is given.
        image: ``(H, W, 3)`` uint8 RGB.
        labels: ``(num_classes,)`` multi-hot vector over the model's classes (background excluded), e.g.
            ``VOCDataset.image_labels(id)``.
        settings: method, options, scales, flip, background rule and parameter, blocks, input size, device
            (:class:`ScoreSettings`; its defaults when None).
        **fields: :class:`ScoreSettings` fields instead of ``settings`` (e.g. ``method=name,
            options={"steps": 5}``).

    Returns:
        :class:`ScoreMaps` with ``scores`` of shape ``(K + 1, H, W)`` (background first, then the ``K`` present classes
        in class order) and their ``class_indices``.
    """
    return compute_scores_batch(model, [image], [labels], resolve_settings(settings, fields))[0]


# Imported last: the registry's built-in methods are made of this module's building blocks (defined above).
from glmix_viz.pseudo.registry import METHODS, MapContext, ScoreMethod  # noqa: E402
from glmix_viz.pseudo.settings import BG_RULES, DEFAULT_POWER_ALPHA, ScoreSettings, check_background  # noqa: E402
