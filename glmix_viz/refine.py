"""Refinement of soft class maps, in one place: ``refine(method, image, probs, params)`` with ``crf``, ``par``, ``none``.

* ``crf``: the fully connected CRF of :mod:`glmix_viz.crf` (pydensecrf, CPU only, one image at a time).
* ``par``: pixel-adaptive refinement (PAR), the refinement of the WSSS code bases ToCo (Ru et al., CVPR 2023) and
  AFA (Ru et al., CVPR 2022): a few iterations of local affinity propagation, where a pixel's class distribution
  becomes the affinity-weighted mean of its neighbours' over dilated 3x3 neighbourhoods (8 neighbours per dilation),
  the affinity mixing colour similarity and position. Written here from the published description as batched torch
  operations (:func:`par_refine_batch`): it runs on the CPU and on CUDA, several images per call.
* ``none``: the per-pixel normalised scores, unchanged.

PAR, as computed here, for an image ``I`` (per channel) and class maps ``P`` (per pixel a distribution):

* neighbours ``j`` of pixel ``i``: the 8 pixels at offsets ``(+-d, +-d), (+-d, 0), (0, +-d)`` for every dilation
  ``d``; outside the image the edge pixel is repeated (replicate padding);
* colour logit ``k_c(i, j) = -mean over channels of (|I_j - I_i| / (std_j' I_j' + 1e-8) / w1) ** 2``, the std taken
  over the neighbours of ``i`` (per channel; so any per-channel affine rescaling of the image leaves it unchanged:
  RGB in 0..255 and ImageNet-normalised inputs give the same refinement);
* position logit ``k_p(j) = -(|j - i| / std_j' |j' - i| / w1) ** 2`` with ``|j - i|`` = ``d`` or ``d * sqrt(2)``;
* affinity ``A(i, j) = (softmax_j k_c + w2 * softmax_j k_p) / (1 + w2)``;
* ``iterations`` times: ``P_i <- sum_j A(i, j) P_j``.

Where each setting comes from (:class:`PARParams`): ``dilations=(1, 2, 4, 8, 12, 24)`` and ``iterations=10`` are
the values ToCo's and AFA's training scripts build PAR with; ``w1=0.3`` (``kernel_width``) and ``w2=0.01``
(``position_weight``) are the constants of their PAR module; ``scale=0.5`` is ToCo's ``down_scale=2`` in its
pseudo-label refinement (PAR runs on the image and maps resized to half size, bilinear, and the refined maps are
resized back). One change: the published affinity sums to ``1 + w2`` per pixel (its maps grow by that factor each
iteration; only their arg-max is used); here it is divided by ``1 + w2`` so the output stays a distribution per
pixel. The arg-max is the same. Like the published code, the scores are resized to the working scale and then made a
distribution per pixel there (here by dividing by their sum; ToCo takes a softmax of its CAMs); the refined maps are
resized back bilinearly (convex weights: still a distribution).

This module sits beside :mod:`glmix_viz.crf`, outside :mod:`glmix_viz.pseudo`: a worker process that unpickles :class:`PARParams` then imports numpy, pydensecrf and
torch, not every score method of the ``pseudo`` package.

The confidence rule of both refinements is the same: with ``confidence`` set, a pixel whose largest refined
probability is below it is labelled 255 (:func:`refined_labels`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from glmix_viz.crf import CRFParams, confident_labels, dense_crf

__all__ = [
    "REFINEMENTS",
    "PARParams",
    "RefineParams",
    "check_device",
    "default_params",
    "method_of",
    "par_refine",
    "par_refine_batch",
    "refine",
    "refined_labels",
]

REFINEMENTS = ("crf", "par", "none")
"""The refinement names, the default first (the dense CRF stays the default until the benchmark says otherwise)."""


def check_device(device: Optional[str]) -> str:
    """The torch device name for a refinement (``None``: ``"cpu"``); a one-line ``ValueError`` for an unknown device
    or a CUDA device where none exists (checked before any image is processed)."""
    import torch

    name = "cpu" if device is None else str(device)
    try:
        parsed = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {name!r} (cpu, cuda, cuda:N)") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} asked for, but CUDA is not available here (use --device cpu)")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r} asked for, but only {torch.cuda.device_count()} CUDA device(s) exist")
    elif parsed.type != "cpu":
        raise ValueError(f"PAR runs on cpu or cuda, not {name!r}")
    return name


@dataclass(frozen=True)
class PARParams:
    """Settings of pixel-adaptive refinement (sources of the defaults: the module docstring).

    Attributes:
        dilations: neighbourhood dilations (pixels at the working scale), 8 neighbours each. Default
            ``(1, 2, 4, 8, 12, 24)`` (ToCo, AFA).
        iterations: propagation steps; 0 returns the (resized) input. Default 10 (ToCo, AFA).
        kernel_width: ``w1``, width of the colour and position kernels in units of the neighbourhood's std. Default
            0.3 (ToCo's PAR).
        position_weight: ``w2``, weight of the position kernel beside the colour kernel. Default 0.01 (ToCo's PAR).
        scale: working scale (image and maps resized by it, bilinear; refined maps resized back); 1 works at full
            size. Default 0.5 (ToCo's ``down_scale=2``).
        confidence: if set, pixels whose largest refined probability is below it become 255. Default off.
        device: ``cpu``, ``cuda``, ``cuda:N``; ``None`` is the CPU.
    """

    dilations: Tuple[int, ...] = (1, 2, 4, 8, 12, 24)
    iterations: int = 10
    kernel_width: float = 0.3
    position_weight: float = 0.01
    scale: float = 0.5
    confidence: Optional[float] = None
    device: Optional[str] = None

    def __post_init__(self) -> None:
        try:
            dilations = tuple(int(d) for d in (self.dilations if isinstance(self.dilations, (list, tuple))
                                               else [self.dilations]))
        except (TypeError, ValueError):
            raise ValueError(f"PAR dilations must be positive integers, got {self.dilations!r}") from None
        if not dilations:
            raise ValueError("PAR dilations must not be empty (e.g. 1,2,4,8,12,24)")
        if any(d < 1 for d in dilations) or any(float(d) != float(o) for d, o in zip(dilations, self.dilations)):
            raise ValueError(f"PAR dilations must be positive integers, got {list(self.dilations)}")
        object.__setattr__(self, "dilations", dilations)
        if isinstance(self.iterations, bool) or int(self.iterations) != self.iterations or self.iterations < 0:
            raise ValueError(f"PAR iterations must be an integer >= 0, got {self.iterations}")
        object.__setattr__(self, "iterations", int(self.iterations))
        if not (math.isfinite(self.kernel_width) and self.kernel_width > 0):
            raise ValueError(f"PAR kernel width must be positive, got {self.kernel_width}")
        if not (math.isfinite(self.position_weight) and self.position_weight >= 0):
            raise ValueError(f"PAR position weight must be >= 0, got {self.position_weight}")
        if not (math.isfinite(self.scale) and 0 < self.scale <= 1):
            raise ValueError(f"PAR scale must be in (0, 1], got {self.scale}")
        if self.confidence is not None and not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"PAR confidence must be in [0, 1] or None, got {self.confidence}")

    def to_dict(self) -> Dict[str, Any]:
        """The settings as a plain dict (for summaries and JSON), with ``"method": "par"``."""
        return {"method": "par", **asdict(self), "dilations": list(self.dilations)}


RefineParams = Union[CRFParams, PARParams, None]


def method_of(params: RefineParams) -> str:
    """``"crf"``, ``"par"`` or ``"none"`` for a parameter object (``None``: no refinement)."""
    if params is None:
        return "none"
    if isinstance(params, CRFParams):
        return "crf"
    if isinstance(params, PARParams):
        return "par"
    raise ValueError(f"refinement parameters must be CRFParams, PARParams or None, got {type(params).__name__}")


def default_params(method: str, **overrides: Any) -> RefineParams:
    """The default parameters of a refinement name (``none``: ``None``); a one-line ``ValueError`` for an unknown
    name or a bad setting."""
    if method not in REFINEMENTS:
        raise ValueError(f"unknown refinement {method!r}; known: {', '.join(REFINEMENTS)}")
    if method == "none":
        return None
    return (CRFParams if method == "crf" else PARParams)(**overrides)


# ----------------------------------------------------------------------------------------------------------------------
# PAR
# ----------------------------------------------------------------------------------------------------------------------


def _offsets(dilations: Sequence[int]) -> List[Tuple[int, int, float]]:
    """``(dy, dx, distance)`` of the 8 neighbours of every dilation (row-major order of the 3x3 ring)."""
    ring = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]
    return [(dy * d, dx * d, d * math.hypot(dy, dx)) for d in dilations for dy, dx in ring]


def _shift(padded, pad: int, dy: int, dx: int, height: int, width: int):
    """The neighbour at ``(dy, dx)`` of every pixel, from a map padded by ``pad`` on every side (a view)."""
    return padded[..., pad + dy:pad + dy + height, pad + dx:pad + dx + width]


def _affinity(images, params: PARParams):
    """``(B, N, H, W)`` affinities of every pixel to its N neighbours (summing to 1 over N)."""
    import torch
    import torch.nn.functional as F

    batch, _, height, width = images.shape
    offsets = _offsets(params.dilations)
    count = len(offsets)
    pad = max(params.dilations)
    padded = F.pad(images, [pad] * 4, mode="replicate")
    neighbours = [_shift(padded, pad, dy, dx, height, width) for dy, dx, _ in offsets]
    mean = torch.zeros_like(images)
    for neighbour in neighbours:
        mean.add_(neighbour)
    mean.div_(count)
    var = torch.zeros_like(images)
    for neighbour in neighbours:
        centred = neighbour - mean
        var.addcmul_(centred, centred)
    var.div_(max(count - 1, 1))  # unbiased, as torch.std
    scale = (var.sqrt_().add_(1e-8).mul_(params.kernel_width)).reciprocal_()
    logits = torch.empty((batch, count, height, width), dtype=images.dtype, device=images.device)
    for index, neighbour in enumerate(neighbours):
        diff = (neighbour - images).mul_(scale)
        torch.sum(diff.square_(), dim=1, out=logits[:, index])
    logits.mul_(-1.0 / images.shape[1])  # the mean over channels, negated
    affinity = logits.softmax(dim=1)
    if params.position_weight > 0:
        distance = torch.tensor([o[2] for o in offsets], dtype=images.dtype, device=images.device)
        spread = distance.std() if count > 1 else torch.ones((), dtype=images.dtype, device=images.device)
        position = (-(distance / (spread + 1e-8) / params.kernel_width) ** 2).softmax(dim=0)
        affinity = affinity + params.position_weight * position.view(1, count, 1, 1)
        affinity = affinity / (1.0 + params.position_weight)
    return affinity


def par_refine_batch(images, probs, params: Optional[PARParams] = None):
    """PAR on a batch, in torch, on the tensors' device.

    Args:
        images: ``(B, 3, H, W)`` float tensor (any per-channel scaling: RGB 0..255 or normalised).
        probs: ``(B, K, H, W)`` float tensor of non-negative scores (made a distribution per pixel here).
        params: :class:`PARParams` (its ``device`` is not used here: the tensors' device is).

    Returns:
        ``(B, K, H, W)`` float32 tensor, a distribution at every pixel.
    """
    import torch
    import torch.nn.functional as F

    params = params or PARParams()
    if images.ndim != 4 or probs.ndim != 4 or images.shape[0] != probs.shape[0] or images.shape[2:] != probs.shape[2:]:
        raise ValueError(f"PAR needs images (B, C, H, W) and probs (B, K, H, W) of one size, got "
                         f"{tuple(images.shape)} and {tuple(probs.shape)}")
    images = images.float()
    probs = probs.float().clamp_min(0)
    height, width = probs.shape[2:]
    if params.iterations == 0 or probs.shape[1] == 1:
        return probs / probs.sum(dim=1, keepdim=True).clamp_min(1e-12)
    small = (max(1, int(round(height * params.scale))), max(1, int(round(width * params.scale))))
    if small != (height, width):  # resized first, then normalised at the working size (as ToCo's softmax there)
        images = F.interpolate(images.contiguous(), size=small, mode="bilinear", align_corners=False)
        probs = F.interpolate(probs, size=small, mode="bilinear", align_corners=False)
    probs = probs / probs.sum(dim=1, keepdim=True).clamp_min(1e-12)
    with torch.no_grad():
        affinity = _affinity(images, params)
        offsets = _offsets(params.dilations)
        pad = max(params.dilations)
        for _ in range(params.iterations):
            padded = F.pad(probs, [pad] * 4, mode="replicate")
            out = torch.zeros_like(probs)
            for index, (dy, dx, _) in enumerate(offsets):
                out.addcmul_(affinity[:, index:index + 1], _shift(padded, pad, dy, dx, *small))
            probs = out
        if small != (height, width):  # bilinear weights are convex: still a distribution at every pixel
            probs = F.interpolate(probs, size=(height, width), mode="bilinear", align_corners=False)
    return probs


def _check_inputs(image: np.ndarray, probs: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    image, probs = np.asarray(image), np.asarray(probs)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"refinement expects an (H, W, 3) RGB image, got shape {image.shape}")
    if probs.ndim != 3 or probs.shape[1:] != image.shape[:2] or probs.shape[0] < 1:
        raise ValueError(f"probs must be (K, H, W) with H, W = {image.shape[:2]}, got shape {probs.shape}")
    if not np.isfinite(probs).all():
        raise ValueError("probs contain NaN or infinite values")
    return image, probs


def par_refine(image: np.ndarray, probs: np.ndarray, params: Optional[PARParams] = None) -> np.ndarray:
    """PAR on one image (numpy in and out), on ``params.device``.

    Args:
        image: ``(H, W, 3)`` RGB image (uint8 or float).
        probs: ``(K, H, W)`` non-negative scores or probabilities.
        params: :class:`PARParams`.

    Returns:
        ``(K, H, W)`` float32 refined probabilities, summing to 1 at every pixel.
    """
    import torch

    params = params or PARParams()
    image, probs = _check_inputs(image, probs)
    device = check_device(params.device)
    images = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None].to(device)
    maps = torch.from_numpy(np.ascontiguousarray(probs, dtype=np.float32))[None].to(device)
    return par_refine_batch(images, maps, params)[0].cpu().numpy()


# ----------------------------------------------------------------------------------------------------------------------
# One entry point
# ----------------------------------------------------------------------------------------------------------------------


def refine(method: str, image: np.ndarray, probs: np.ndarray, params: RefineParams = None) -> np.ndarray:
    """Refine one image's class maps with ``method`` (``crf``, ``par`` or ``none``).

    Args:
        method: a name of :data:`REFINEMENTS`.
        image: ``(H, W, 3)`` uint8 RGB image.
        probs: ``(K, H, W)`` non-negative scores or probabilities.
        params: the method's parameters (:class:`~glmix_viz.crf.CRFParams` / :class:`PARParams`); ``None``: its
            defaults.

    Returns:
        ``(K, H, W)`` float32 probabilities, summing to 1 at every pixel (``none``: the scores divided by their sum).
    """
    if method not in REFINEMENTS:
        raise ValueError(f"unknown refinement {method!r}; known: {', '.join(REFINEMENTS)}")
    if params is not None and method_of(params) != method:
        raise ValueError(f"refinement {method!r} was given {type(params).__name__}")
    if method == "crf":
        return dense_crf(image, probs, params or CRFParams())
    if method == "par":
        return par_refine(image, probs, params or PARParams())
    image, probs = _check_inputs(image, probs)
    probs = np.clip(probs.astype(np.float32), 0, None)
    return probs / np.maximum(probs.sum(axis=0, keepdims=True), 1e-12)


def refined_labels(image: np.ndarray, probs: np.ndarray, params: RefineParams) -> np.ndarray:
    """The refinement of ``params`` (its kind by type; ``None``: none), then the arg-max with its confidence rule.

    Returns:
        ``(H, W)`` uint8 labels; 255 where the refined maximum is below ``params.confidence``.
    """
    method = method_of(params)
    refined = refine(method, image, probs, params)
    return confident_labels(refined, getattr(params, "confidence", None))
