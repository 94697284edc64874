"""Tests of the class-free grouping score (adjusted Rand index against instance masks, and its controls)."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch

import glmix_viz.models  # noqa: F401
from glmix_viz.grouping import GroupingSample, block_grouping_scores, slot_grid_labels
from glmix_viz.scoring.grouping import adjusted_rand_index, foreground_ari
from glmix_viz.slots.resize import upsample_labels


def test_ari_hand_computed_split_of_one_group():
    # contingency [[2,0,0],[0,1,1]]: sum C(n_ij,2)=1, rows 1+1=2, cols 1, C(4,2)=6, E=1/3, max=1.5 -> 4/7
    assert adjusted_rand_index([0, 0, 1, 1], [0, 0, 1, 2]) == pytest.approx(4 / 7)


def test_ari_hand_computed_crossed_partitions_is_negative():
    # every cell 1: index 0, rows 2, cols 2, E=4/6, max=2 -> (0 - 2/3) / (2 - 2/3) = -0.5
    assert adjusted_rand_index([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(-0.5)


def test_ari_identical_partitions_with_other_names_is_one():
    assert adjusted_rand_index([3, 3, 7, 7, 9], [0, 0, 5, 5, 1]) == pytest.approx(1.0)


def test_ari_invariant_to_label_permutation_and_symmetric():
    rng = np.random.default_rng(0)
    true = rng.integers(0, 4, size=200)
    pred = np.where(rng.random(200) < 0.7, true, rng.integers(0, 5, size=200))
    value = adjusted_rand_index(true, pred)
    permutation = np.array([4, 2, 0, 1, 3])
    assert adjusted_rand_index(true, permutation[pred]) == pytest.approx(value)
    assert adjusted_rand_index(pred, true) == pytest.approx(value)
    assert 0.2 < value < 1.0


def test_ari_of_one_true_group_split_is_zero():
    assert adjusted_rand_index([1, 1, 1, 1], [0, 0, 1, 1]) == pytest.approx(0.0)
    assert adjusted_rand_index([1, 1, 1, 1], [2, 2, 2, 2]) == pytest.approx(1.0)


def test_foreground_ari_ignores_background_pixels():
    instances = np.zeros((4, 4), np.uint8)
    instances[:2, :2] = 1
    instances[2:, 2:] = 2
    groups = np.arange(16).reshape(4, 4)  # every background pixel its own group
    groups[:2, :2] = 100
    groups[2:, 2:] = 200
    assert foreground_ari(groups, instances) == pytest.approx(1.0)
    # a 2x2 grouping up-sampled to the mask: quadrants match the two objects; unresized, it is refused
    assert foreground_ari(upsample_labels(np.array([[5, 6], [7, 8]]), (4, 4)), instances) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="differ in size"):
        foreground_ari(np.array([[5, 6], [7, 8]]), instances)
    assert np.isnan(foreground_ari(groups, np.zeros((4, 4), np.uint8)))


def test_slot_grid():
    grid = slot_grid_labels(6, 6, 3)
    assert grid[0].tolist() == [0, 0, 1, 1, 2, 2]
    assert grid[:, 0].tolist() == [0, 0, 3, 3, 6, 6]


def test_block_scores_of_a_tiny_model():
    torch.manual_seed(0)
    model = timm.create_model("glnet_tiny", num_classes=4, num_slots=4).eval()
    instances = np.zeros((64, 64), np.uint8)
    instances[:32, :32] = 1  # one object per quadrant of the 2x2 slot grid: the grid control scores 1
    instances[32:, 32:] = 2
    rng = np.random.default_rng(0)
    sample = GroupingSample("a", rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), instances)
    lone = GroupingSample("b", sample.image, (instances == 1).astype(np.uint8))
    scores = block_grouping_scores(model, [sample, lone], input_size=64)
    assert list(scores) == glmix_viz.glmix_block_names(model)
    for value in scores.values():
        assert value["images"] == 1  # the one-object image is skipped
        assert value["grid_ari"] == pytest.approx(1.0)
        assert -1.0 <= value["ari"] <= 1.0


def test_benchmark_best_block_averages_the_held_out_sets():
    from glmix_viz.grouping import benchmark_best_block

    def report(a, b):
        return {"grouping": {"images": 10, "blocks": {
            "s0": {"trained": a, "untrained": 0.4, "grid": 0.3},
            "s1": {"trained": b, "untrained": 0.5, "grid": 0.3}}}}

    results = {"sets": {"x": {"reports": {"grouping": report(0.7, 0.6)}},
                        "y": {"reports": {"grouping": report(0.5, 0.8)}}}}
    best = benchmark_best_block(results)
    assert best["block"] == "s1" and best["ari"] == pytest.approx(0.7)  # (0.6 + 0.8) / 2 beats (0.7 + 0.5) / 2
    assert best["best_control"] == "untrained s1" and best["best_control_ari"] == pytest.approx(0.5)
    assert best["images"] == 20 and best["sets"] == ["x", "y"]
    assert benchmark_best_block(results, run="bce") is None
    assert benchmark_best_block("/nonexistent/results.json") is None
