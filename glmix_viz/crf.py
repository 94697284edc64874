"""Dense CRF refinement of soft class maps (Krähenbühl & Koltun 2011), through ``pydensecrf``.

The unary term is the negative log of the (clipped) class probabilities; two pairwise terms pull labels together:
a Gaussian kernel on position only (smoothness) and a bilateral kernel on position and colour (appearance). The
defaults are the values used by most CAM-based weakly supervised segmentation code (DeepLab's CRF settings):
Gaussian ``sxy=3, compat=3``, bilateral ``sxy=80, srgb=13, compat=10``, 10 mean-field iterations.

Confidence rule (optional, ``CRFParams.confidence``): a pixel whose largest refined probability is below the
threshold is marked 255 ("ignore"), so a pseudo-mask keeps only the labels the CRF is sure of. (The alternative,
marking pixels where the CRF label disagrees with the label before the CRF, was not chosen: it cannot express "both
agree but neither is sure" and needs the un-refined map carried along.)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pydensecrf.densecrf as dcrf
from pydensecrf.utils import unary_from_softmax

from glmix_viz.labels import IGNORE_INDEX

__all__ = ["CRFParams", "dense_crf", "crf_labels", "confident_labels"]


@dataclass(frozen=True)
class CRFParams:
    """Settings of the dense CRF.

    Attributes:
        gaussian_sxy: Spatial standard deviation (pixels) of the smoothness kernel. Default 3.
        gaussian_compat: Weight of the smoothness kernel (Potts compatibility). Default 3.
        bilateral_sxy: Spatial standard deviation (pixels) of the appearance kernel. Default 80.
        bilateral_srgb: Colour standard deviation (0..255 units) of the appearance kernel. Default 13.
        bilateral_compat: Weight of the appearance kernel. Default 10.
        iterations: Mean-field iterations. Default 10.
        confidence: If set, pixels whose largest refined probability is below it become 255 in
            :func:`crf_labels`. Default ``None`` (off).
        min_prob: Probabilities are clipped to at least this before the log of the unary. Default 1e-5.
    """

    gaussian_sxy: float = 3.0
    gaussian_compat: float = 3.0
    bilateral_sxy: float = 80.0
    bilateral_srgb: float = 13.0
    bilateral_compat: float = 10.0
    iterations: int = 10
    confidence: float | None = None
    min_prob: float = 1e-5

    def __post_init__(self) -> None:
        for name in ("gaussian_sxy", "bilateral_sxy", "bilateral_srgb"):
            if not getattr(self, name) > 0:
                raise ValueError(f"CRFParams.{name} must be positive, got {getattr(self, name)}")
        for name in ("gaussian_compat", "bilateral_compat"):
            if getattr(self, name) < 0:
                raise ValueError(f"CRFParams.{name} must be non-negative, got {getattr(self, name)}")
        if self.iterations < 0:
            raise ValueError(f"CRFParams.iterations must be >= 0, got {self.iterations}")
        if self.confidence is not None and not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"CRFParams.confidence must be in [0, 1] or None, got {self.confidence}")
        if not 0.0 < self.min_prob < 1.0:
            raise ValueError(f"CRFParams.min_prob must be in (0, 1), got {self.min_prob}")

    def to_dict(self) -> dict:
        """The settings as a plain dict (for summaries and JSON)."""
        return asdict(self)


def _check_inputs(image: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    image = np.asarray(image)
    probs = np.asarray(probs)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"dense_crf expects an (H, W, 3) uint8 RGB image, got shape {image.shape} dtype {image.dtype}")
    if probs.ndim != 3 or probs.shape[1:] != image.shape[:2]:
        raise ValueError(f"probs must be (K, H, W) with H, W = {image.shape[:2]}, got shape {probs.shape}")
    if probs.shape[0] < 1:
        raise ValueError("probs must have at least one class")
    if not np.isfinite(probs).all():
        raise ValueError("probs contain NaN or infinite values")
    # pydensecrf needs a writable C-contiguous buffer: copy when the caller's image is read-only or strided
    image = image if image.flags.writeable and image.flags.c_contiguous else np.array(image, order="C")
    return image, probs.astype(np.float32, copy=False)


def dense_crf(image: np.ndarray, probs: np.ndarray, params: CRFParams | None = None) -> np.ndarray:
    """Refine soft class maps with a fully connected CRF.

    Args:
        image: ``(H, W, 3)`` uint8 RGB image.
        probs: ``(K, H, W)`` class probabilities (each pixel summing to 1; non-negative scores that do not sum to 1
            work too, since a per-pixel factor does not change mean-field inference).
        params: CRF settings; default :class:`CRFParams()`.

    Returns:
        ``(K, H, W)`` float32 refined probabilities, summing to 1 at every pixel. With ``K == 1`` (only the
        background) the answer is all ones, without running the CRF.
    """
    params = params or CRFParams()
    image, probs = _check_inputs(image, probs)
    num_classes, height, width = probs.shape
    if num_classes == 1:
        return np.ones((1, height, width), dtype=np.float32)
    unary = np.ascontiguousarray(unary_from_softmax(probs, clip=params.min_prob), dtype=np.float32)
    crf = dcrf.DenseCRF2D(width, height, num_classes)
    crf.setUnaryEnergy(unary)
    crf.addPairwiseGaussian(sxy=params.gaussian_sxy, compat=params.gaussian_compat)
    crf.addPairwiseBilateral(
        sxy=params.bilateral_sxy, srgb=params.bilateral_srgb, rgbim=image, compat=params.bilateral_compat
    )
    refined = np.asarray(crf.inference(params.iterations), dtype=np.float32).reshape(num_classes, height, width)
    return refined


def confident_labels(probs: np.ndarray, threshold: float | None, *, ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """Arg-max labels, with pixels whose largest probability is below ``threshold`` set to ``ignore_index``.

    Args:
        probs: ``(K, H, W)`` probabilities, ``K <= 255``.
        threshold: Minimum accepted probability; ``None`` keeps every pixel.
        ignore_index: Label for uncertain pixels.

    Returns:
        ``(H, W)`` uint8 labels.
    """
    probs = np.asarray(probs)
    if probs.ndim != 3 or not 1 <= probs.shape[0] <= 255:
        raise ValueError(f"probs must be (K, H, W) with 1 <= K <= 255, got shape {probs.shape}")
    labels = probs.argmax(axis=0).astype(np.uint8)
    if threshold is not None:
        labels[probs.max(axis=0) < threshold] = ignore_index
    return labels


def crf_labels(image: np.ndarray, probs: np.ndarray, params: CRFParams | None = None) -> np.ndarray:
    """:func:`dense_crf` followed by the arg-max, with the confidence rule of ``params.confidence``.

    Returns:
        ``(H, W)`` uint8 labels; 255 where the refined maximum is below ``params.confidence``.
    """
    params = params or CRFParams()
    return confident_labels(dense_crf(image, probs, params), params.confidence)
