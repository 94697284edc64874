"""Multi-label classification scores: average precision per class and its mean (mAP).

The definition is scikit-learn's ``average_precision_score``: ``AP = sum_n (R_n - R_{n-1}) P_n`` over the distinct
score thresholds, highest first (tied scores form one threshold, so the value does not depend on the input order).
It is written here with optional per-image ``weights`` and vectorised over a stack of them, so that a bootstrap
(:func:`glmix_viz.scoring.stats.image_bootstrap`: weights = how often each image was drawn) computes thousands of
resampled mAPs in one pass; the tests check it against scikit-learn.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

__all__ = ["average_precision", "mean_average_precision"]


def average_precision(scores: np.ndarray, targets: np.ndarray, weights: Optional[np.ndarray] = None) -> np.ndarray:
    """Average precision of one class.

    Args:
        scores: (N,) scores (higher = more confident).
        targets: (N,) 0/1 ground truth.
        weights: optional (..., N) non-negative weights of the images (a stack of them gives a stack of APs).

    Returns:
        AP in [0, 1] as a float (or (...) array with stacked weights); NaN where there is no (weighted) positive.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    targets = np.asarray(targets).reshape(-1) > 0.5
    if scores.shape != targets.shape:
        raise ValueError(f"scores {scores.shape} and targets {targets.shape} differ in shape")
    single = weights is None
    weights = np.ones(scores.shape) if single else np.asarray(weights, dtype=np.float64)
    if weights.shape[-1] != scores.size:
        raise ValueError(f"weights {weights.shape} do not match {scores.size} scores")
    order = np.argsort(-scores, kind="stable")
    ranked, hits = scores[order], targets[order]
    ends = np.append(np.flatnonzero(np.diff(ranked) != 0), scores.size - 1)  # last index of each threshold
    w = weights[..., order]
    true_pos = np.cumsum(w * hits, axis=-1)[..., ends]
    false_pos = np.cumsum(w * ~hits, axis=-1)[..., ends]
    positives = true_pos[..., -1:] if true_pos.size else np.zeros(weights.shape[:-1] + (1,))
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(true_pos + false_pos > 0, true_pos / (true_pos + false_pos), 0.0)
        recall = true_pos / positives
    gain = np.diff(np.concatenate([np.zeros(recall.shape[:-1] + (1,)), recall], axis=-1), axis=-1)
    ap = np.where(positives[..., 0] > 0, np.sum(np.nan_to_num(gain) * precision, axis=-1), np.nan)
    return float(ap) if single else ap


def mean_average_precision(scores: np.ndarray, targets: np.ndarray,
                           weights: Optional[np.ndarray] = None) -> Tuple[float, np.ndarray]:
    """Multi-label mAP: the mean over classes (with at least one positive) of :func:`average_precision`.

    Args:
        scores: (N, K) scores.
        targets: (N, K) 0/1 labels.
        weights: optional (..., N) image weights (see :func:`average_precision`).

    Returns:
        (mAP, per-class AP (K,), NaN for classes without positives); with stacked weights, ((...) mAPs, (..., K)).
    """
    scores = np.asarray(scores)
    targets = np.asarray(targets)
    if scores.ndim != 2 or scores.shape != targets.shape:
        raise ValueError(f"need (N, K) scores and targets of one shape, got {scores.shape} and {targets.shape}")
    per_class = np.stack([np.asarray(average_precision(scores[:, k], targets[:, k], weights))
                          for k in range(scores.shape[1])], axis=-1)
    valid = ~np.isnan(per_class)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(valid.any(axis=-1), np.nansum(per_class, axis=-1) / valid.sum(axis=-1), np.nan)
    return (float(value) if weights is None else value), per_class
