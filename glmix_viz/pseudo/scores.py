"""Per-class score maps at full image resolution, from a classifier and an image's image-level labels.

Every method turns the network's evidence for the classes present in an image into one map per present class, at
the image's exact size, by name (:data:`METHODS`):

* ``"cam"`` - the classic class activation map (Zhou et al. 2016): the classifier's weights dotted with the final
  feature map at every position, ReLU. The baseline.
* ``"slic_cam"`` - training-free refinement: the CAM averaged within SLIC colour superpixels of the image
  (``skimage.segmentation.slic``), so evidence follows colour edges.
* ``"slot_pool"`` - the GLMix grouping as a soft region prior. For each probed GLMix block (pixel grid h_b x w_b with
  S slots), the CAM is resized to the block's grid; every slot pools it with its clustering weights (softmax of the
  logits over pixels: each slot a distribution over pixels) and every pixel reads it back with its dispatch weights
  (softmax over slots). Per block that is one step of a random walk over the pixel-pixel affinity ``D^T C`` the
  block itself uses to mix features.
* ``"slot_vote"`` - hard grouping: every pixel joins its arg-max slot; a slot's value is the mean CAM of its pixels.
* ``"slot_walk"`` - several steps (option ``steps``) of the same random walk ``v <- D^T C v``: evidence spreads further
  within groups; ``slot_pool`` is the one-step case. The affinity is never formed (it would be L x L); each step costs
  two (S x L) products.

Slot methods take option ``sharpen`` (multiplies the block's logits before both softmaxes: > 1 makes the grouping
harder, which helps when a trained block's temperature has drifted towards uniform assignments).

Normalisation (see /work/shared/EXPERIMENTS.md for why it matters): a block's pooled map is smooth, so its minimum is
far above zero; max-normalising it alone makes nearly flat maps that label everything foreground. Slot methods
therefore min-max normalise each block's map per class and view (a map whose range is under 1% of its peak is not
stretched to full range: such contrast is rounding noise), then average the blocks. Every method then sums its
maps over scales and flips (after resizing to the image size and un-flipping) and max-normalises each class, so every
class map peaks at 1.

Background: rule ``"threshold"`` gives a constant background score ``t`` (default 0.15, IRN's CAM threshold), rule
``"power"`` gives ``(1 - max_c score_c) ** alpha`` (default alpha 4, AffinityNet's "low alpha"). Scores are not a
softmax: ``scores[0]`` is the background, ``scores[1:]`` the normalised class maps, all in ``[0, 1]``; the arg-max is
the label, and the dense CRF only needs them up to a per-pixel factor. Only classes present in the image get a
channel, so an absent class can never be labelled.

Inference is batched: all views (scales x flips) of all images given to :func:`compute_scores_batch` that share an
input size run through the network together.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from glmix_viz.images import resolve_size, to_tensor
from glmix_viz.probe import GroupingProbe, GroupingRecord

__all__ = [
    "BG_RULES",
    "DEFAULT_BG_PARAM",
    "METHOD_BG_THRESHOLDS",
    "BEST_METHOD",
    "default_bg_param",
    "METHODS",
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

BG_RULES: Tuple[str, ...] = ("threshold", "power")
DEFAULT_BG_PARAM: Dict[str, float] = {"threshold": 0.15, "power": 4.0}
# Background thresholds that measured best for each method (bench/wsss_shapes.py: demo model, make-shapes tuning split
# seed 2001); the slot methods' maps are flatter than CAM's and want a higher threshold. A starting point: tune on your
# data. Methods not listed use DEFAULT_BG_PARAM (IRN's 0.15 for CAM on VOC).
METHOD_BG_THRESHOLDS: Dict[str, float] = {"cam": 0.50, "slic_cam": 0.60, "slot_pool": 0.70, "slot_vote": 0.70,
                                          "slot_walk": 0.70}
BEST_METHOD = "slot_vote"  # best mIoU with and without CRF in bench/wsss_shapes.py (CAM stays as the baseline)


def default_bg_param(rule: str, method: Optional[str] = None) -> float:
    """The background parameter used when none is given: per method for the threshold rule, else per rule."""
    if rule == "threshold" and method in METHOD_BG_THRESHOLDS:
        return METHOD_BG_THRESHOLDS[method]
    return DEFAULT_BG_PARAM[rule]
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

    For a token-labelling model (one with ``tklb_aux_head``) the per-token head is added with its evaluation weight
    0.5, as in its logits. The classifier bias is left out (it does not depend on the position).

    Args:
        model: a GLNet with a linear ``head`` of ``num_classes`` outputs.
        features: ``(N, C, h, w)`` final feature map (``model.forward_features``).
        classes: model class indices (0-based, background excluded) to compute maps for, ``K`` of them.

    Returns:
        ``(N, K, h, w)`` non-negative maps.
    """
    head = getattr(model, "head", None)
    if not isinstance(head, nn.Linear):
        raise ValueError(f"{type(model).__name__} has no linear classifier head; class maps need one")
    index = torch.as_tensor(list(classes), dtype=torch.long, device=features.device)
    weight = head.weight.index_select(0, index).to(features.dtype)
    aux = getattr(model, "tklb_aux_head", None)
    if isinstance(aux, nn.Linear):
        weight = weight + 0.5 * aux.weight.index_select(0, index).to(features.dtype)
    return torch.relu(torch.einsum("kc,nchw->nkhw", weight, features))


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
        param: the rule's parameter; default :data:`DEFAULT_BG_PARAM` of the rule.

    Returns:
        ``(K + 1, H, W)`` float32, channel 0 the background.
    """
    if rule not in BG_RULES:
        raise ValueError(f"bg_rule must be one of {BG_RULES}, got {rule!r}")
    param = DEFAULT_BG_PARAM[rule] if param is None else float(param)
    if rule == "threshold" and not 0.0 <= param <= 1.0:
        raise ValueError(f"the threshold background score must be in [0, 1], got {param}")
    if rule == "power" and not param > 0.0:
        raise ValueError(f"the power rule's exponent must be positive, got {param}")
    class_maps = np.asarray(class_maps, dtype=np.float32)
    height, width = class_maps.shape[-2:]
    if rule == "threshold":
        background = np.full((1, height, width), param, dtype=np.float32)
    else:
        peak = class_maps.max(axis=0) if class_maps.shape[0] else np.zeros((height, width), np.float32)
        background = (np.clip(1.0 - peak, 0.0, 1.0) ** param)[None].astype(np.float32)
    return np.concatenate([background, class_maps], axis=0)


# ----------------------------------------------------------------------------------------------------------------------
# Methods
# ----------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreMethod:
    """A score-map method of the registry.

    Attributes:
        name: registry name.
        description: one line for help texts.
        block_maps: ``(model, features (N, C, h, w), classes, records, options) -> list of (N, K, h_i, w_i)`` maps,
            averaged after resizing to the image size. ``records`` is ``None`` unless ``uses_probe``.
        uses_probe: whether the method reads the GLMix groupings (runs the network inside a probe).
        options: the method's options and their defaults.
        postprocess: optional ``(image (H, W, 3) uint8, maps (K, H, W), options) -> maps`` run at full resolution.
    """

    name: str
    description: str
    block_maps: Callable[..., List[torch.Tensor]]
    uses_probe: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)
    postprocess: Optional[Callable[[np.ndarray, np.ndarray, Mapping[str, Any]], np.ndarray]] = None

    def resolve_options(self, options: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
        """The defaults updated with ``options``; unknown names are refused."""
        unknown = sorted(set(options or {}) - set(self.options))
        if unknown:
            known = ", ".join(self.options) or "none"
            raise ValueError(f"method {self.name!r} has no option(s) {unknown}; its options: {known}")
        return {**self.options, **(options or {})}


def _cam_maps(model, features, classes, records, options) -> List[torch.Tensor]:
    return [class_activation_maps(model, features, classes)]


def _slot_maps(pool: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]):
    def block_maps(model, features, classes, records: Dict[str, GroupingRecord], options) -> List[torch.Tensor]:
        cams = class_activation_maps(model, features, classes)
        sharpen = float(options.get("sharpen", 1.0))
        maps = []
        for record in records.values():
            height, width = record.size
            evidence = F.interpolate(cams, size=(height, width), mode="bilinear", align_corners=False).clamp_min(0)
            logits = record.logits.to(cams.dtype).flatten(2) * sharpen
            pooled = pool(evidence.flatten(2), logits, options).view_as(evidence)
            maps.append(minmax_normalize(pooled, min_contrast=SLOT_MIN_CONTRAST))
        return maps

    return block_maps


def _slic_postprocess(image: np.ndarray, maps: np.ndarray, options: Mapping[str, Any]) -> np.ndarray:
    from skimage.segmentation import slic

    segments = slic(
        image, n_segments=int(options["segments"]), compactness=float(options["compactness"]), start_label=0,
        channel_axis=-1,
    )
    return superpixel_average(maps, segments)


METHODS: Dict[str, ScoreMethod] = {
    method.name: method
    for method in (
        ScoreMethod("cam", "classic CAM of the final feature map (baseline)", _cam_maps),
        ScoreMethod(
            "slic_cam", "CAM averaged within SLIC colour superpixels (training-free)", _cam_maps,
            options={"segments": 100, "compactness": 10.0}, postprocess=_slic_postprocess,
        ),
        ScoreMethod(
            "slot_pool", "CAM pooled in each GLMix block's soft slots and dispatched back; mean over blocks",
            _slot_maps(lambda evidence, logits, options: slot_pooled_evidence(evidence, logits, steps=1)),
            uses_probe=True, options={"sharpen": 1.0},
        ),
        ScoreMethod(
            "slot_vote", "mean CAM of each pixel's arg-max slot; mean over blocks",
            _slot_maps(lambda evidence, logits, options: slot_voted_evidence(evidence, logits)),
            uses_probe=True, options={"sharpen": 1.0},
        ),
        ScoreMethod(
            "slot_walk", "random walk of the CAM over the slot affinity D^T C for several steps; mean over blocks",
            _slot_maps(
                lambda evidence, logits, options: slot_pooled_evidence(evidence, logits, steps=int(options["steps"]))
            ),
            uses_probe=True, options={"sharpen": 1.0, "steps": 3},
        ),
    )
}
"""Registry of score-map methods by name."""


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
    with _eval_mode(model), torch.inference_mode(), probe:
        for size, views in _plan_views(images, present, settings).items():
            for chunk in _chunks(views, batch_size):
                inputs: Dict[int, torch.Tensor] = {}
                batch = []
                for position, flipped in chunk:
                    if position not in inputs:
                        inputs[position] = to_tensor(images[position], size=size)
                    batch.append(inputs[position].flip(-1) if flipped else inputs[position])
                features = model.forward_features(torch.cat(batch).to(device))
                chunk_classes = sorted({index for position, _ in chunk for index in present[position]})
                records = probe.records if spec.uses_probe else None
                maps = spec.block_maps(model, features, chunk_classes, records, settings.options)
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
        **fields: :class:`ScoreSettings` fields instead of ``settings`` (e.g. ``method="cam", flip=False``).

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
        **fields: :class:`ScoreSettings` fields instead of ``settings`` (e.g. ``method="slot_walk",
            options={"steps": 5}``).

    Returns:
        :class:`ScoreMaps` with ``scores`` of shape ``(K + 1, H, W)`` (background first, then the ``K`` present classes
        in class order) and their ``class_indices``.
    """
    return compute_scores_batch(model, [image], [labels], resolve_settings(settings, fields))[0]


from glmix_viz.pseudo.settings import ScoreSettings  # noqa: E402  (the settings module reads this module's METHODS)
