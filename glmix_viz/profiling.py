"""Cost of a network: multiply-accumulates, peak activation memory, and power-law fits of measurements.

* :func:`count_macs` - multiply-accumulates of one forward pass, from ``torch.utils.flop_counter.FlopCounterMode``
  (MACs = FLOPs / 2). PyTorch counts the fused attention kernels of CUDA and the math decomposition of
  ``scaled_dot_product_attention`` (used on the ``meta`` device), but not the CPU flash kernel; a handler for it is
  added here, so the count is the same on every device.
* :func:`peak_activation_bytes` - the largest total size of the tensors that a forward pass creates and holds at
  once (weights and input excluded), tracked exactly storage by storage. Works on the ``meta`` device, so the cost
  of a large model at a large resolution is known without running it.
* :func:`fit_scaling_exponent` - least-squares line in log-log space: ``value ~ prefactor * size ** exponent``.
* :func:`time_round_robin` - latency of several callables timed one after another in every round, so that load from
  elsewhere hits them alike (median per callable, and every sample).

Used by ``bench/`` and the notebooks (which never import from ``bench/``).
"""

from __future__ import annotations

import math
import statistics
import time
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["ScalingFit", "count_macs", "fit_scaling_exponent", "peak_activation_bytes", "time_round_robin"]

InputSize = Union[int, Tuple[int, int]]


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
# Latency
# ----------------------------------------------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_round_robin(
    runs: Mapping[str, Callable[[torch.Tensor], Any]],
    x: torch.Tensor,
    warmup: int,
    repeats: int,
    *,
    samples: Optional[Dict[str, List[float]]] = None,
) -> Dict[str, float]:
    """Median seconds per callable, the callables timed one after another in each round (inference mode).

    A burst of load from elsewhere then hits every callable alike, so ratios of medians from one call are fairer
    than medians from separate calls. CUDA work is synchronised around every timing.

    Args:
        runs: name -> callable taking the input.
        x: the input, e.g. an image batch (B, 3, H, W).
        warmup: untimed rounds first.
        repeats: timed rounds (at least 1).
        samples: if given, filled with every timed sample per name (seconds).

    Returns:
        name -> median seconds.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    times: Dict[str, List[float]] = {name: [] for name in runs}
    with torch.inference_mode():
        for round_index in range(warmup + repeats):
            for name, fn in runs.items():
                _sync(x.device)
                start = time.perf_counter()
                fn(x)
                _sync(x.device)
                if round_index >= warmup:
                    times[name].append(time.perf_counter() - start)
    if samples is not None:
        samples.update(times)
    return {name: statistics.median(values) for name, values in times.items()}
