"""The one bootstrap of glmix-viz: confidence intervals over images, built on :func:`scipy.stats.bootstrap`.

Every interval the package reports (the explorer's run comparison, ``evaluate --compare``, the held-out reports,
the atlas's purity, the benches) comes from :func:`bootstrap` below, with the same defaults:
:data:`DEFAULT_RESAMPLES` resamples, :data:`DEFAULT_CONFIDENCE` coverage and the :data:`DEFAULT_METHOD` interval
(bias-corrected and accelerated). The unit resampled is always the image; paired comparisons draw the same images
for both sides, so a difference's interval is that of the paired difference.

* :func:`bootstrap` - interval of any statistic of one or more per-image series (``paired=True``: the same images
  for every series).
* :func:`image_bootstrap` - interval of a statistic of per-image *counts* (confusion matrices, contingency tables):
  images are resampled by index and the statistic receives how often each image was drawn, so it can sum the
  counts of a resample and recompute a ratio (mIoU, purity, mAP) instead of averaging per-image ratios.
* :func:`mean_interval`, :func:`paired_difference` (mean of ``a - b`` per image), :func:`paired_miou_difference`
  (data-set mIoU of ``a`` minus that of ``b`` from per-image confusion matrices).

BCa needs a jackknife; where it is undefined (a statistic that does not vary: identical inputs, constant values)
the percentile interval of the same resamples is returned instead, which then is the constant itself.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Dict, Sequence, Tuple

import numpy as np

__all__ = [
    "DEFAULT_RESAMPLES",
    "DEFAULT_CONFIDENCE",
    "DEFAULT_METHOD",
    "Interval",
    "bootstrap",
    "image_bootstrap",
    "draw_counts",
    "mean_interval",
    "paired_difference",
    "paired_miou_difference",
    "class_counts",
    "miou_of_counts",
    "miou_difference_statistic",
]

DEFAULT_RESAMPLES = 2000
"""Bootstrap resamples of every interval, unless a caller asks for another number."""
DEFAULT_CONFIDENCE = 0.95
"""Coverage of every interval."""
DEFAULT_METHOD = "BCa"
"""Interval method of :func:`scipy.stats.bootstrap`: ``"BCa"`` (default) or ``"percentile"``."""

_ELEMENTS_PER_BATCH = 1 << 22  # resamples x images held at once (bounds memory on large sets)


@dataclass(frozen=True)
class Interval:
    """A bootstrap interval: ``low``, ``high``, the ``method`` that gave it and the resampled statistic values
    (``distribution``, (R,); empty when the interval needed no resampling)."""

    low: float
    high: float
    method: str
    distribution: np.ndarray

    def pair(self) -> Tuple[float, float]:
        return self.low, self.high


def _percentile(distribution: np.ndarray, confidence: float) -> Tuple[float, float]:
    finite = distribution[np.isfinite(distribution)]
    if finite.size == 0:
        return math.nan, math.nan
    low, high = np.quantile(finite, [(1 - confidence) / 2, 1 - (1 - confidence) / 2])
    return float(low), float(high)


def bootstrap(
    data: Sequence[np.ndarray],
    statistic: Callable[..., np.ndarray],
    *,
    paired: bool = True,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    method: str = DEFAULT_METHOD,
    seed: int = 0,
) -> Interval:
    """Bootstrap interval of ``statistic(*data, axis=-1)`` (:func:`scipy.stats.bootstrap`, vectorised).

    Args:
        data: one or more ``(N,)`` per-image series (with ``paired``, of one length: image ``i`` of every series is
            drawn together).
        statistic: vectorised statistic; takes the series and ``axis`` and reduces that axis.
        paired: resample the images of all series together.
        resamples: bootstrap resamples.
        confidence: coverage.
        method: ``"BCa"`` or ``"percentile"``; BCa falls back to the percentile interval of the same resamples
            where it is undefined.
        seed: seed of the resampling (same seed, same data: same interval).

    Returns:
        :class:`Interval`; with a single image, the statistic itself at both ends; without images, NaN.
    """
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if method not in ("BCa", "percentile"):
        raise ValueError(f"method must be 'BCa' or 'percentile', got {method!r}")
    data = tuple(np.asarray(series) for series in data)
    count = min(len(series) for series in data)
    if count == 0:
        return Interval(math.nan, math.nan, method, np.zeros(0))
    if count == 1:
        value = float(statistic(*data, axis=-1))
        return Interval(value, value, method, np.zeros(0))
    from scipy import stats as scipy_stats  # here: importing this module stays cheap (command-line help)

    batch = max(1, _ELEMENTS_PER_BATCH // count)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate BCa and NaN statistics: handled below
        result = scipy_stats.bootstrap(data, statistic, n_resamples=int(resamples), batch=batch, vectorized=True,
                                       paired=paired, axis=-1, confidence_level=confidence, method=method,
                                       rng=np.random.default_rng(seed))
    distribution = np.asarray(result.bootstrap_distribution, dtype=np.float64)
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    if not (math.isfinite(low) and math.isfinite(high)):
        low, high = _percentile(distribution, confidence)
        method = "percentile"
    return Interval(low, high, method, distribution)


def draw_counts(indices: np.ndarray, count: int) -> np.ndarray:
    """How often each of ``count`` images occurs in resampled index arrays: ``(..., n)`` ints -> ``(..., count)``."""
    indices = np.asarray(indices, dtype=np.int64)
    rows = indices.reshape(-1, indices.shape[-1])
    offsets = (np.arange(len(rows)) * count)[:, None]
    counts = np.bincount((rows + offsets).reshape(-1), minlength=len(rows) * count)
    return counts.reshape(indices.shape[:-1] + (count,)).astype(np.float64)


def image_bootstrap(count: int, statistic: Callable[[np.ndarray], np.ndarray], **options: Any) -> Interval:
    """Bootstrap interval of a statistic of per-image counts, resampling the ``count`` images by index.

    Args:
        count: number of images.
        statistic: ``(..., count)`` weights (how often each image was drawn; all ones for the data set itself) ->
            ``(...)`` values; e.g. ``lambda w: miou(w @ per_image_counts)``.
        options: as :func:`bootstrap` (``resamples``, ``confidence``, ``method``, ``seed``).
    """
    def of_indices(indices: np.ndarray, axis: int = -1) -> np.ndarray:
        return statistic(draw_counts(np.moveaxis(indices, axis, -1), count))

    return bootstrap((np.arange(count),), of_indices, paired=True, **options)


def _finite(values: Sequence[float]) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    return values[~np.isnan(values)]


def mean_interval(values: Sequence[float], **options: Any) -> Tuple[float, float]:
    """``(low, high)`` interval of the mean of per-image values (NaNs dropped; NaN, NaN without values)."""
    return bootstrap((_finite(values),), np.mean, **options).pair()


def paired_difference(a: Sequence[float], b: Sequence[float], **options: Any) -> Dict[str, Any]:
    """Mean of the per-image differences ``a - b`` with its paired bootstrap interval (pairs with a NaN dropped).

    Returns:
        ``{"mean": mean(a - b), "ci95": [low, high], "images": pairs used}``.
    """
    a, b = np.asarray(a, dtype=np.float64).reshape(-1), np.asarray(b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"paired series differ in length: {a.size} and {b.size}")
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    interval = bootstrap((a, b), lambda x, y, axis=-1: np.mean(x - y, axis=axis), paired=True, **options)
    return {"mean": float(np.mean(a - b)) if a.size else math.nan, "ci95": [interval.low, interval.high],
            "images": int(a.size)}


def class_counts(confusions: np.ndarray) -> np.ndarray:
    """``(N, C, C)`` per-image confusion matrices -> ``(N, 3, C)`` true positives, false positives, false negatives."""
    confusions = np.asarray(confusions, dtype=np.float64)
    tp = np.diagonal(confusions, axis1=1, axis2=2)
    return np.stack([tp, confusions.sum(axis=1) - tp, confusions.sum(axis=2) - tp], axis=1)


def miou_of_counts(counts: np.ndarray) -> np.ndarray:
    """mIoU of ``(..., 3, C)`` summed counts over the classes with a non-empty union (NaN when none)."""
    counts = np.asarray(counts, dtype=np.float64)
    tp, fp, fn = counts[..., 0, :], counts[..., 1, :], counts[..., 2, :]
    union = tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / np.where(union > 0, union, 1.0), np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: NaN
            return np.nanmean(iou, axis=-1)


def miou_difference_statistic(counts_a: np.ndarray, counts_b: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """The statistic of :func:`image_bootstrap` for ``mIoU(a) - mIoU(b)`` of per-image ``(N, 3, C)`` counts."""
    flat_a = counts_a.reshape(len(counts_a), -1)
    flat_b = counts_b.reshape(len(counts_b), -1)
    shape = counts_a.shape[1:]

    def statistic(weights: np.ndarray) -> np.ndarray:
        sums_a = (weights @ flat_a).reshape(weights.shape[:-1] + shape)
        sums_b = (weights @ flat_b).reshape(weights.shape[:-1] + shape)
        return miou_of_counts(sums_a) - miou_of_counts(sums_b)

    return statistic


def paired_miou_difference(confusion_a: np.ndarray, confusion_b: np.ndarray, **options: Any) -> Dict[str, Any]:
    """Data-set mIoU of ``a`` minus that of ``b`` with a paired bootstrap interval: the images are resampled and the
    mIoU recomputed from the summed confusion matrices of each resample (the same images for both).

    Args:
        confusion_a, confusion_b: ``(N, C, C)`` per-image confusion matrices of the same N images.
        options: as :func:`bootstrap`.

    Returns:
        ``{"mean": mIoU(a) - mIoU(b) on all images, "ci95": [low, high], "images": N}``.
    """
    a, b = np.asarray(confusion_a), np.asarray(confusion_b)
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"per-image confusions must be (N, C, C) of the same shape, got {a.shape} and {b.shape}")
    statistic = miou_difference_statistic(class_counts(a), class_counts(b))
    interval = image_bootstrap(len(a), statistic, **options)
    mean = float(statistic(np.ones(len(a)))) if len(a) else math.nan
    return {"mean": mean, "ci95": [interval.low, interval.high], "images": int(len(a))}

