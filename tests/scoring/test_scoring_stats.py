"""glmix_viz.scoring.stats: the one bootstrap (scipy.stats.bootstrap), paired differences, the mIoU difference."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from glmix_viz.scoring import stats
from glmix_viz.scoring.stats import (
    DEFAULT_RESAMPLES,
    bootstrap,
    draw_counts,
    image_bootstrap,
    mean_interval,
    paired_difference,
    paired_miou_difference,
)


def test_one_default_number_of_resamples():
    assert DEFAULT_RESAMPLES == 2000
    import inspect

    for function in (bootstrap, image_bootstrap, mean_interval, paired_difference, paired_miou_difference):
        source = inspect.getsource(function)
        assert "1000" not in source and "9999" not in source


def test_interval_of_constant_values_is_the_value():
    assert mean_interval([0.3] * 20) == pytest.approx((0.3, 0.3))


def test_interval_brackets_the_mean_and_narrows_with_more_images():
    rng = np.random.default_rng(0)
    small = rng.normal(0.1, 1.0, 25)
    large = np.tile(small, 16)  # same mean, 16x the images: interval about 4x narrower
    low, high = mean_interval(small)
    assert low < small.mean() < high
    low2, high2 = mean_interval(large)
    assert (high2 - low2) == pytest.approx((high - low) / 4, rel=0.25)
    # the 95% interval of a mean is about +-1.96 standard errors
    assert (high - low) / 2 == pytest.approx(1.96 * small.std() / np.sqrt(small.size), rel=0.2)


def test_the_interval_is_scipys_bca_with_the_same_seed():
    values = np.random.default_rng(3).exponential(1.0, 40)
    ours = bootstrap((values,), np.mean, resamples=500, seed=7)
    theirs = scipy_stats.bootstrap((values,), np.mean, n_resamples=500, method="BCa",
                                   rng=np.random.default_rng(7)).confidence_interval
    assert ours.method == "BCa" and ours.pair() == pytest.approx((theirs.low, theirs.high))
    percentile = bootstrap((values,), np.mean, resamples=500, seed=7, method="percentile")
    assert percentile.pair() != ours.pair()  # BCa corrects the skew of an exponential's mean


def test_same_seed_same_interval_other_seed_other_interval():
    values = np.random.default_rng(1).normal(size=30)
    assert mean_interval(values, seed=4) == mean_interval(values, seed=4)
    assert mean_interval(values, seed=4) != mean_interval(values, seed=5)


def test_paired_difference_drops_pairs_with_nan():
    result = paired_difference([1.0, 0.5, np.nan, 0.25], [0.5, 0.5, 0.0, 0.0])
    assert result["images"] == 3
    assert result["mean"] == pytest.approx((0.5 + 0.0 + 0.25) / 3)
    assert result["ci95"][0] <= result["mean"] <= result["ci95"][1]


def test_paired_difference_sign_is_a_minus_b_and_pairing_narrows_the_interval():
    rng = np.random.default_rng(2)
    image_effect = rng.normal(0, 1.0, 60)  # images differ a lot, the models little
    a = image_effect + 0.2 + rng.normal(0, 0.05, 60)
    b = image_effect
    forward, backward = paired_difference(a, b), paired_difference(b, a)
    assert forward["mean"] == pytest.approx(0.2, abs=0.03) and forward["ci95"][0] > 0
    assert backward["mean"] == pytest.approx(-forward["mean"]) and backward["ci95"][1] < 0
    assert backward["ci95"] == pytest.approx([-forward["ci95"][1], -forward["ci95"][0]], abs=0.01)
    # unpaired (the difference of two independent means) would be about image_effect's spread wide
    assert forward["ci95"][1] - forward["ci95"][0] < 0.1


def test_draw_counts_counts_each_image():
    counts = draw_counts(np.array([[0, 0, 2], [1, 2, 2]]), 4)
    assert counts.tolist() == [[2, 0, 1, 0], [0, 1, 2, 0]]


def test_image_bootstrap_resamples_images_and_recomputes_a_ratio():
    # per image: (hits, trials); the statistic is the pooled ratio, not the mean of ratios
    hits, trials = np.array([1.0, 9.0, 0.0, 5.0]), np.array([10.0, 10.0, 1.0, 5.0])
    interval = image_bootstrap(4, lambda w: (w @ hits) / (w @ trials), resamples=400, method="percentile")
    assert interval.distribution.shape == (400,)
    assert interval.low < 15 / 26 < interval.high
    assert set(np.round(interval.distribution, 6)) <= {round(v, 6) for v in _all_pooled_ratios(hits, trials)}


def _all_pooled_ratios(hits, trials):
    import itertools

    for draw in itertools.product(range(4), repeat=4):
        weights = np.bincount(draw, minlength=4)
        yield float(weights @ hits / (weights @ trials))


def test_paired_miou_difference_of_identical_confusions_is_zero_and_known_otherwise():
    perfect = np.zeros((6, 2, 2))
    perfect[:, 0, 0], perfect[:, 1, 1] = 3, 1
    assert paired_miou_difference(perfect, perfect, resamples=50) == {"mean": 0.0, "ci95": [0.0, 0.0], "images": 6}
    half = perfect.copy()
    half[:, 1, 1], half[:, 1, 0] = 0, 1  # every foreground pixel called background: IoU bg 3/4, fg 0
    result = paired_miou_difference(perfect, half, resamples=50)
    assert result["mean"] == pytest.approx(1.0 - 3 / 8) and result["ci95"] == pytest.approx([5 / 8, 5 / 8])
    reverse = paired_miou_difference(half, perfect, resamples=50)
    assert reverse["mean"] == pytest.approx(-(1.0 - 3 / 8))


def test_paired_miou_difference_recomputes_the_miou_of_each_resample():
    # image 0: A perfect, B wrong on everything; image 1: both perfect. The data-set mIoU is not the mean of images.
    a = np.array([[[4, 0], [0, 4]], [[2, 0], [0, 2]]], float)
    b = np.array([[[0, 4], [4, 0]], [[2, 0], [0, 2]]], float)
    result = paired_miou_difference(a, b, resamples=300, method="percentile")
    pooled_b = b.sum(0)  # bg: tp 2, fp 4, fn 4 -> 0.2; fg the same
    assert result["mean"] == pytest.approx(1.0 - 0.2)
    # resamples hold image 0 twice (difference 1), once (0.8) or never (0)
    assert result["ci95"][0] == pytest.approx(0.0) and result["ci95"][1] == pytest.approx(1.0)
    assert stats.miou_of_counts(stats.class_counts(pooled_b[None]))[0] == pytest.approx(0.2)


def test_no_images_gives_nan_and_one_image_its_value():
    assert all(np.isnan(mean_interval([])))
    assert mean_interval([0.4]) == (0.4, 0.4)
    assert np.isnan(paired_difference([np.nan], [1.0])["mean"])
