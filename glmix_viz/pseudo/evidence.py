"""The building blocks of the score maps: normalisation, slot pooling, superpixel averaging, the background score.

Tensors (or arrays) in, tensors out; no model, no registry. The built-in methods (:mod:`glmix_viz.pseudo.methods`)
are made of these, and the scoring (:mod:`glmix_viz.pseudo.scores`) normalises views and stacks the background with
them.

Normalisation (see ``EXPERIMENTS.md`` in the project's shared notes for why it matters): a block's pooled map is
smooth, so its minimum is far above zero; max-normalising it alone makes nearly flat maps that label everything
foreground. Slot methods therefore min-max normalise each block's map per class and view (a map whose range is under
:data:`SLOT_MIN_CONTRAST` of its peak is not stretched to full range: such contrast is rounding noise), then average
the blocks.

Background: rule ``"threshold"`` gives a constant background score ``t`` (each method's own ``bg_threshold``: there is
no project-wide fallback), rule ``"power"`` gives ``(1 - max_c score_c) ** alpha`` (default :data:`DEFAULT_POWER_ALPHA`,
AffinityNet's "low alpha").
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "BG_RULES",
    "DEFAULT_POWER_ALPHA",
    "SLOT_MIN_CONTRAST",
    "apply_background",
    "check_background",
    "max_normalize",
    "minmax_normalize",
    "slot_pooled_evidence",
    "slot_voted_evidence",
    "superpixel_average",
]

_EPS = 1e-8
SLOT_MIN_CONTRAST = 0.01
"""Slot methods' per-block min-max normalisation stretches a map by at most 1 / (this fraction of its peak)."""
BG_RULES: Tuple[str, ...] = ("threshold", "power")
DEFAULT_POWER_ALPHA = 4.0
"""Default exponent of the ``"power"`` background rule (AffinityNet's "low alpha"); the threshold is per method."""


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


def check_background(rule: str, param: Optional[float]) -> Optional[float]:
    """``param`` as a float after checking it fits ``rule`` (``None`` stays ``None``); one-line ``ValueError``."""
    if rule not in BG_RULES:
        raise ValueError(f"bg_rule must be one of {BG_RULES}, got {rule!r}")
    if param is None:
        return None
    param = float(param)
    if rule == "threshold" and not 0.0 <= param <= 1.0:
        raise ValueError(f"the threshold background score must be in [0, 1], got {param}")
    if rule == "power" and not param > 0.0:
        raise ValueError(f"the power rule's exponent must be positive, got {param}")
    return param


def apply_background(class_maps: np.ndarray, rule: str = "threshold", param: Optional[float] = None) -> np.ndarray:
    """Stack a background score on top of normalised class maps.

    Args:
        class_maps: ``(K, H, W)`` class maps in ``[0, 1]`` (``K`` may be 0).
        rule: ``"threshold"``: background = ``param`` everywhere; ``"power"``: background =
            ``(1 - max_k class_maps[k]) ** param``.
        param: the rule's parameter. Required for ``"threshold"`` (each method has its own: ``bg_threshold`` of its
            registry entry); default :data:`DEFAULT_POWER_ALPHA` for ``"power"``.

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
