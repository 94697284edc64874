"""glmix_viz.scoring.classification: AP and mAP by hand, against scikit-learn, and with bootstrap weights."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from glmix_viz.scoring.classification import average_precision, mean_average_precision


def test_average_precision_hand_computed():
    # positives at ranks 1 and 3: (1/1 + 2/3) / 2
    assert average_precision([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0]) == pytest.approx((1 + 2 / 3) / 2)
    # positives at ranks 2 and 3: (1/2 + 2/3) / 2
    assert average_precision([0.1, 0.9, 0.5, 0.3], [0, 0, 1, 1]) == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert average_precision([0.2, 0.1], [1, 1]) == pytest.approx(1.0)


def test_average_precision_ties_form_one_threshold_and_are_order_free():
    assert average_precision([0.5, 0.5], [1, 0]) == pytest.approx(0.5)
    assert average_precision([0.5, 0.5], [0, 1]) == pytest.approx(0.5)


def test_mean_average_precision_skips_classes_without_positives():
    scores = np.array([[0.9, 0.1, 0.3], [0.2, 0.8, 0.4], [0.7, 0.3, 0.5]])
    targets = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 0]])
    value, per_class = mean_average_precision(scores, targets)
    assert per_class[0] == pytest.approx(1.0)
    assert per_class[1] == pytest.approx(1.0)
    assert math.isnan(per_class[2])
    assert value == pytest.approx(1.0)
    targets[2, 1] = 1  # class 1 positives at ranks 1 and 2 of scores [0.1, 0.8, 0.3] -> ranks 1 (0.8) and 2 (0.3)
    assert mean_average_precision(scores, targets)[1][1] == pytest.approx(1.0)
    targets[0, 1] = 1  # class 1 now has positives at ranks 1, 2, 3 -> AP 1; add a negative above: use class 0
    targets[2, 0] = 0
    scores[1, 0] = 0.95  # negative ranked first for class 0: AP = 1/2
    assert mean_average_precision(scores, targets)[1][0] == pytest.approx(0.5)


def test_average_precision_is_scikit_learns_with_ties_and_weights():
    rng = np.random.default_rng(0)
    for _ in range(100):
        n = int(rng.integers(2, 25))
        scores, targets = rng.integers(0, 4, n) / 3, rng.integers(0, 2, n)
        weights = rng.integers(0, 3, (2, n)).astype(float)
        if targets.sum() == 0:
            assert math.isnan(average_precision(scores, targets))
            continue
        assert average_precision(scores, targets) == pytest.approx(average_precision_score(targets, scores))
        stacked = average_precision(scores, targets, weights)
        for row, value in zip(weights, stacked):
            if (row * targets).sum() > 0:
                assert value == pytest.approx(average_precision_score(targets, scores, sample_weight=row))
            else:
                assert math.isnan(value)


def test_weights_of_a_resample_equal_the_resampled_images():
    rng = np.random.default_rng(1)
    scores, targets = rng.random((12, 3)), rng.integers(0, 2, (12, 3))
    draw = rng.integers(0, 12, 12)
    weights = np.bincount(draw, minlength=12).astype(float)
    weighted = mean_average_precision(scores, targets, weights[None])[0][0]
    assert weighted == pytest.approx(mean_average_precision(scores[draw], targets[draw])[0])
