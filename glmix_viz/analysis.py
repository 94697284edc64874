"""Measurements behind the notebooks' plots: slot usage per block (compute cost and power-law fits are in
:mod:`glmix_viz.profiling`).

* :func:`slot_usage` - how a GLMix block spends its slots on one image: the entropy of every pixel's dispatch
  distribution, how many slots own at least one pixel, the effective number of slots (perplexity of the hard areas)
  and the areas themselves (from :func:`glmix_viz.explore.slot_areas`).
* :func:`save_figure` - a matplotlib figure or an RGB picture as a PNG of bounded size (for READMEs).
* :func:`load_figure_model` - the model the notebooks draw: a given checkpoint, else the bundled demo model, else an
  untrained ``glnet_tiny`` (said so in its description).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn as nn

from glmix_viz.explore import slot_areas
from glmix_viz.models.loading import ModelInfo

__all__ = [
    "SlotUsage",
    "load_figure_model",
    "save_figure",
    "slot_usage",
]

# ----------------------------------------------------------------------------------------------------------------------
# Slot usage
# ----------------------------------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------------------------------
# The model of the figures
# ----------------------------------------------------------------------------------------------------------------------


def load_figure_model(
    checkpoint: Optional[Union[str, Path]] = None,
    *,
    device: Union[str, torch.device] = "cpu",
    fallback: str = "glnet_tiny",
    num_classes: int = 4,
    seed: int = 0,
) -> Tuple[nn.Module, ModelInfo]:
    """The model a figure is drawn with, and what it is (``str()`` of it: a one-line description for captions).

    Order: ``checkpoint`` when given (official ``.pth`` or glmix-viz ``.safetensors``), else the bundled demo model
    (:func:`glmix_viz.demo_checkpoint`), else a freshly initialised ``fallback`` variant (seeded), described as
    untrained so that nobody mistakes its groupings for learned ones.

    Args:
        checkpoint: path of a checkpoint, or None.
        device: where to put the model.
        fallback: registered variant built when there is no checkpoint at all.
        num_classes: classes of the fallback's head.
        seed: seed of the fallback's weights.

    Returns:
        ``(model in eval mode, ModelInfo)`` (:func:`glmix_viz.models.loading.resolve_model`).

    Raises:
        CheckpointError: ``checkpoint`` cannot be read or fits no variant.
    """
    from glmix_viz.models.loading import resolve_model

    return resolve_model(checkpoint, num_classes=num_classes, device=device, fallback=fallback, seed=seed)


def save_figure(figure: Any, path: Union[str, Path], *, max_bytes: int = 500_000, dpi: int = 110) -> Path:
    """Write a matplotlib figure or an ``(H, W, 3)`` uint8 RGB picture as a PNG of at most ``max_bytes``.

    A PNG that comes out larger is re-encoded with a 256-colour palette, then halved in size until it fits (figures
    meant for a README must stay small).

    Args:
        figure: a ``matplotlib.figure.Figure`` or an RGB uint8 array.
        path: where to write (``.png``); parent folders are created.
        max_bytes: size limit of the file.
        dpi: resolution of matplotlib figures.

    Returns:
        The path written.
    """
    import io

    from PIL import Image

    from glmix_viz.files import save_bytes_atomic

    if isinstance(figure, np.ndarray):
        if figure.dtype != np.uint8 or figure.ndim != 3 or figure.shape[2] != 3:
            raise ValueError(f"picture must be (H, W, 3) uint8, got {figure.shape} {figure.dtype}")
        picture = Image.fromarray(figure)
    else:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
        picture = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")

    def encode(image: Image.Image) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, format="png", optimize=True)
        return buffer.getvalue()

    data = encode(picture)
    while len(data) > max_bytes:
        data = encode(picture.quantize(colors=256, method=Image.Quantize.FASTOCTREE))
        if len(data) <= max_bytes or min(picture.size) < 64:
            break
        picture = picture.resize((picture.width // 2, picture.height // 2), Image.LANCZOS)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_bytes_atomic(path, data)
    return path
