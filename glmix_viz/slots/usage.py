"""How one GLMix block spends its slots on one image: dispatch entropy, slots used, effective slots, areas.

* :func:`slot_usage` - the entropy of every pixel's dispatch distribution, how many slots own at least one pixel, the
  effective number of slots (perplexity of the hard areas) and the areas themselves
  (from :func:`glmix_viz.slots.explore.slot_areas`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from glmix_viz.slots.explore import slot_areas

__all__ = ["SlotUsage", "slot_usage"]


@dataclass(frozen=True)
class SlotUsage:
    """How one GLMix block spends its slots on one image.

    Attributes:
        num_slots: S.
        dispatch_entropy: mean over pixels of the entropy (nats) of the pixel's dispatch distribution over slots;
            0 for one-hot assignments, ``log(S)`` for uniform ones.
        normalized_entropy: ``dispatch_entropy / log(S)`` in ``[0, 1]`` (0 when S is 1).
        slots_used: number of slots that are the arg-max of at least one pixel.
        effective_slots: ``exp`` of the entropy of the hard areas: the number of equally large groups that would
            have the same entropy (between 1 and ``slots_used``).
        hard_areas: ``(S,)`` share of pixels whose arg-max slot is each slot (sums to 1).
        soft_areas: ``(S,)`` mean dispatch weight of each slot (sums to 1).
    """

    num_slots: int
    dispatch_entropy: float
    normalized_entropy: float
    slots_used: int
    effective_slots: float
    hard_areas: np.ndarray
    soft_areas: np.ndarray


def _entropy(probabilities: np.ndarray, axis: int) -> np.ndarray:
    """Shannon entropy in nats along ``axis`` (0 log 0 = 0)."""
    safe = np.where(probabilities > 0, probabilities, 1.0)
    return -(probabilities * np.log(safe)).sum(axis=axis)


def slot_usage(logits: np.ndarray) -> SlotUsage:
    """Entropy, slot count and areas of one block's grouping of one image.

    Args:
        logits: ``(S, h, w)`` slot-pixel similarity logits of one image (``GroupingRecord.logits[0]``); the dispatch
            weights are their softmax over slots.

    Returns:
        A :class:`SlotUsage`.
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 3 or logits.shape[0] < 1 or logits.shape[1] * logits.shape[2] < 1:
        raise ValueError(f"logits must be (S, h, w) with S, h, w >= 1, got {logits.shape}")
    num_slots = logits.shape[0]
    flat = logits.reshape(num_slots, -1)
    shifted = flat - flat.max(axis=0, keepdims=True)
    dispatch = np.exp(shifted)
    dispatch /= dispatch.sum(axis=0, keepdims=True)
    mean_entropy = float(_entropy(dispatch, axis=0).mean())
    hard, soft = slot_areas(logits)
    return SlotUsage(
        num_slots=num_slots,
        dispatch_entropy=mean_entropy,
        normalized_entropy=mean_entropy / math.log(num_slots) if num_slots > 1 else 0.0,
        slots_used=int((hard > 0).sum()),
        effective_slots=float(np.exp(_entropy(hard, axis=0))),
        hard_areas=hard,
        soft_areas=soft,
    )
