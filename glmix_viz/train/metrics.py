"""Multi-label classification metrics: average precision per class and its mean (mAP)."""

from __future__ import annotations

from typing import Tuple

import numpy as np

__all__ = ["average_precision", "mean_average_precision"]


def average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Average precision of one class: the mean, over the positives, of the precision at each positive's rank.

    Ties are broken pessimistically (a negative with the same score ranks first), so the value does not depend on
    the input order.

    Args:
        scores: (N,) scores (higher = more confident).
        targets: (N,) 0/1 ground truth.

    Returns:
        AP in [0, 1]; NaN if there is no positive.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    targets = np.asarray(targets).reshape(-1) > 0.5
    if scores.shape != targets.shape:
        raise ValueError(f"scores {scores.shape} and targets {targets.shape} differ in shape")
    num_positive = int(targets.sum())
    if num_positive == 0:
        return float("nan")
    order = np.lexsort((targets, -scores))  # by descending score, negatives first among ties
    hits = targets[order]
    precision_at_rank = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision_at_rank[hits].sum() / num_positive)


def mean_average_precision(scores: np.ndarray, targets: np.ndarray) -> Tuple[float, np.ndarray]:
    """Multi-label mAP: the mean over classes (with at least one positive) of :func:`average_precision`.

    Args:
        scores: (N, K) scores.
        targets: (N, K) 0/1 labels.

    Returns:
        (mAP, per-class AP (K,), NaN for classes without positives).
    """
    scores = np.asarray(scores)
    targets = np.asarray(targets)
    if scores.ndim != 2 or scores.shape != targets.shape:
        raise ValueError(f"need (N, K) scores and targets of one shape, got {scores.shape} and {targets.shape}")
    per_class = np.array([average_precision(scores[:, k], targets[:, k]) for k in range(scores.shape[1])])
    valid = ~np.isnan(per_class)
    return (float(per_class[valid].mean()) if valid.any() else float("nan")), per_class

