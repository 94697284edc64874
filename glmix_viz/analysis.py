"""Measurements behind the notebooks' plots: slot usage per block, compute cost, and power-law fits.

* :func:`slot_usage` - how a GLMix block spends its slots on one image: the entropy of every pixel's dispatch
  distribution, how many slots own at least one pixel, the effective number of slots (perplexity of the hard areas)
  and the areas themselves (from :func:`glmix_viz.explore.slot_areas`).
* :func:`count_macs` - multiply-accumulates of one forward pass, from ``torch.utils.flop_counter.FlopCounterMode``
  (MACs = FLOPs / 2). PyTorch counts the fused attention kernels of CUDA and the math decomposition of
  ``scaled_dot_product_attention`` (used on the ``meta`` device), but not the CPU flash kernel; a handler for it is
  added here, so the count is the same on every device.
* :func:`peak_activation_bytes` - the largest total size of the tensors that a forward pass creates and holds at
  once (weights and input excluded), tracked exactly storage by storage. Works on the ``meta`` device, so the cost
  of a large model at a large resolution is known without running it.
* :func:`fit_scaling_exponent` - least-squares line in log-log space: ``value ~ prefactor * size ** exponent``.
* :func:`save_figure` - a matplotlib figure or an RGB picture as a PNG of bounded size (for READMEs).
* :func:`load_figure_model` - the model the notebooks draw: a given checkpoint, else the bundled demo model, else an
  untrained ``glnet_tiny`` (said so in its description).
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

from glmix_viz.explore import slot_areas

__all__ = [
    "ScalingFit",
    "SlotUsage",
    "count_macs",
    "fit_scaling_exponent",
    "load_figure_model",
    "peak_activation_bytes",
    "save_figure",
    "slot_usage",
]

InputSize = Union[int, Tuple[int, int]]


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
# Cost: MACs and activation memory
# ----------------------------------------------------------------------------------------------------------------------


def _example_input(model: nn.Module, input_size: InputSize, batch: int) -> torch.Tensor:
    height, width = (input_size, input_size) if isinstance(input_size, int) else input_size
    parameter = next(iter(model.parameters()), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    dtype = parameter.dtype if parameter is not None and parameter.is_floating_point() else torch.float32
    return torch.zeros(batch, 3, int(height), int(width), device=device, dtype=dtype)


def _sdpa_flops(query_shape: Sequence[int], key_shape: Sequence[int], value_shape: Sequence[int], *args: Any,
                **kwargs: Any) -> int:
    """FLOPs of attention softmax(Q K^T) V: (B, h, L, E) x (B, h, S, E) -> 2 B h L S E, then 2 B h L S Ev."""
    *batch, queries, channels = query_shape
    keys = key_shape[-2]
    value_channels = value_shape[-1]
    leading = math.prod(batch)
    return 2 * leading * queries * keys * channels + 2 * leading * queries * keys * value_channels


def _extra_flop_formulas() -> Dict[Any, Any]:
    """Formulas for attention kernels PyTorch's counter leaves out (the CPU flash kernel)."""
    formulas = {}
    cpu_flash = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if cpu_flash is not None:
        formulas[cpu_flash] = _sdpa_flops
    return formulas


@torch.inference_mode()
def count_macs(model: nn.Module, input_size: InputSize, *, batch: int = 1) -> int:
    """Multiply-accumulates of one forward pass of ``model`` on a ``(batch, 3, H, W)`` input.

    Counts convolutions and matrix products (linear layers, attention, the GLMix clustering and dispatching), as
    ``FlopCounterMode`` does; element-wise work (norms, activations, softmax) is not counted, as is usual for GMACs
    tables. A model built on the ``meta`` device is counted without computing anything.

    Args:
        model: any module taking an image batch (put in eval mode for the call).
        input_size: ``H`` (square) or ``(H, W)``.
        batch: batch size.

    Returns:
        MACs (FLOPs / 2) as an int.
    """
    inputs = _example_input(model, input_size, batch)
    counter = FlopCounterMode(display=False, custom_mapping=_extra_flop_formulas())
    was_training = model.training
    model.eval()
    try:
        with counter:
            model(inputs)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops()) // 2


class _LiveStorageBytes(TorchDispatchMode):
    """Tracks the total bytes of storages created by operators while the mode is active, and their peak."""

    def __init__(self, known: Sequence[torch.Tensor]) -> None:
        super().__init__()
        self.known = {id(tensor.untyped_storage()) for tensor in known}
        self.live: Dict[int, int] = {}
        self.current = 0
        self.peak = 0

    def _release(self, key: int) -> None:
        self.current -= self.live.pop(key, 0)

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for value in tree_flatten(out)[0]:
            if not isinstance(value, torch.Tensor):
                continue
            storage = value.untyped_storage()
            key = id(storage)
            if key in self.known or key in self.live:
                continue
            self.live[key] = storage.nbytes()
            self.current += self.live[key]
            weakref.finalize(storage, self._release, key)
        self.peak = max(self.peak, self.current)
        return out


@torch.inference_mode()
def peak_activation_bytes(model: nn.Module, input_size: InputSize, *, batch: int = 1) -> int:
    """The most bytes that tensors created by one forward pass occupy at the same time.

    Every operator's output storage is counted from its creation until it is freed; the weights, buffers and the
    input are excluded. Runs on the model's device; on the ``meta`` device nothing is computed and the result is the
    same as on the CPU (for the same operators).

    Args:
        model: any module taking an image batch (put in eval mode for the call).
        input_size: ``H`` (square) or ``(H, W)``.
        batch: batch size.

    Returns:
        Peak bytes as an int.
    """
    inputs = _example_input(model, input_size, batch)
    known = [inputs, *model.parameters(), *model.buffers()]
    was_training = model.training
    model.eval()
    tracker = _LiveStorageBytes(known)
    try:
        with tracker:
            output = model(inputs)
        del output
    finally:
        model.train(was_training)
    return int(tracker.peak)


# ----------------------------------------------------------------------------------------------------------------------
# Scaling fits
# ----------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScalingFit:
    """``value ~ prefactor * size ** exponent``, fitted by least squares on ``log(value)`` against ``log(size)``.

    Attributes:
        exponent: slope in log-log space.
        prefactor: ``exp`` of the intercept.
        r_squared: coefficient of determination of the log-log fit (1 for an exact power law).
    """

    exponent: float
    prefactor: float
    r_squared: float

    def __call__(self, size: Union[float, np.ndarray]) -> Union[float, np.ndarray]:
        """The fitted value at ``size``."""
        return self.prefactor * np.asarray(size, dtype=np.float64) ** self.exponent


def fit_scaling_exponent(sizes: Sequence[float], values: Sequence[float]) -> ScalingFit:
    """Fit a power law to measurements, e.g. latency against input side.

    Args:
        sizes: ``(N,)`` positive sizes, at least two distinct.
        values: ``(N,)`` positive measurements.

    Returns:
        A :class:`ScalingFit`.
    """
    x = np.asarray(sizes, dtype=np.float64).reshape(-1)
    y = np.asarray(values, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"{x.size} sizes but {y.size} values")
    if np.unique(x).size < 2:
        raise ValueError("need at least two distinct sizes to fit an exponent")
    if (x <= 0).any() or (y <= 0).any() or not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("sizes and values must be positive and finite for a log-log fit")
    log_x, log_y = np.log(x), np.log(y)
    slope, intercept = np.polyfit(log_x, log_y, 1)
    residual = log_y - (slope * log_x + intercept)
    spread = ((log_y - log_y.mean()) ** 2).sum()
    r_squared = 1.0 - float((residual**2).sum() / spread) if spread > 0 else 1.0
    return ScalingFit(exponent=float(slope), prefactor=float(np.exp(intercept)), r_squared=r_squared)


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
) -> Tuple[nn.Module, str]:
    """The model a figure is drawn with, and a one-line description of it for captions.

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
        ``(model in eval mode, description)``.

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
