"""The held-out evaluation: bootstrap intervals, paired differences, and the report of a tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch

import glmix_viz  # noqa: F401
from glmix_viz.data.shapes import ShapesConfig, make_shapes
from glmix_viz.grouping import block_grouping_scores, load_grouping_samples
from glmix_viz.heldout import bootstrap_interval, compare_models, heldout_evaluation, paired_difference
from glmix_viz.models.loading import save_checkpoint, load_model


def test_bootstrap_interval_of_constant_values_is_the_value():
    assert bootstrap_interval([0.3] * 20) == pytest.approx((0.3, 0.3))


def test_bootstrap_interval_brackets_the_mean_and_narrows_with_more_images():
    rng = np.random.default_rng(0)
    small = rng.normal(0.1, 1.0, 25)
    large = np.tile(small, 16)  # same mean, 16x the images: interval about 4x narrower
    low, high = bootstrap_interval(small)
    assert low < small.mean() < high
    low2, high2 = bootstrap_interval(large)
    assert (high2 - low2) == pytest.approx((high - low) / 4, rel=0.25)
    # the 95% interval of a mean is about +-1.96 standard errors
    assert (high - low) / 2 == pytest.approx(1.96 * small.std() / np.sqrt(small.size), rel=0.2)


def test_paired_difference_drops_pairs_with_nan():
    result = paired_difference([1.0, 0.5, np.nan, 0.25], [0.5, 0.5, 0.0, 0.0])
    assert result["images"] == 3
    assert result["mean"] == pytest.approx((0.5 + 0.0 + 0.25) / 3)
    assert result["ci95"][0] <= result["mean"] <= result["ci95"][1]


@pytest.fixture(scope="module")
def heldout(tmp_path_factory):
    root = tmp_path_factory.mktemp("heldout") / "shapes"
    make_shapes(root, ShapesConfig(image_size=64), num_train=0, num_val=12, seed=77, overwrite=True, progress=False)
    return root


def _tiny(tmp_path, seed):
    torch.manual_seed(seed)
    model = timm.create_model("glnet_tiny", num_classes=4, num_slots=4)
    path = tmp_path / f"m{seed}.safetensors"
    save_checkpoint(model, path, variant="glnet_tiny", model_args={"num_slots": 4},
                    class_names=["circle", "square", "triangle", "cross"], extra={"input_size": [3, 64, 64]})
    return load_model(path, device="cpu")


def test_heldout_report_agrees_with_the_grouping_scores(heldout, tmp_path):
    model = _tiny(tmp_path, 1)
    report = heldout_evaluation(model, str(heldout), "val", input_size=64, resamples=200)
    assert 0.0 <= report["map"] <= 1.0 and report["images"] == 12
    expected = block_grouping_scores(model, load_grouping_samples(str(heldout), "val"), input_size=64)
    grouping = report["grouping"]
    assert list(grouping["blocks"]) == list(expected)
    for name, block in grouping["blocks"].items():
        assert block["trained"] == pytest.approx(expected[name]["ari"])
        assert block["grid"] == pytest.approx(expected[name]["grid_ari"])
        assert block["vs_untrained"]["mean"] == pytest.approx(block["trained"] - block["untrained"])
    best = grouping["blocks"][grouping["best_block"]]["trained"]
    assert best == max(b["trained"] for b in grouping["blocks"].values())
    controls = [b["untrained"] for b in grouping["blocks"].values()] + [b["grid"] for b in grouping["blocks"].values()]
    assert grouping["best_control"]["ari"] == pytest.approx(max(controls))
    assert grouping["margin"]["mean"] == pytest.approx(best - max(controls))


def test_a_model_against_itself_differs_by_zero_and_other_images_are_refused(heldout, tmp_path):
    model = _tiny(tmp_path, 1)
    report = heldout_evaluation(model, str(heldout), "val", input_size=64, resamples=100)
    same = compare_models(report, report, resamples=100)
    assert same["map"]["difference"] == 0.0 and same["map"]["ci95"] == [0.0, 0.0]
    assert all(b["mean"] == 0.0 for b in same["blocks"].values())
    other = dict(report, per_image=dict(report["per_image"], ids=report["per_image"]["ids"][::-1]))
    with pytest.raises(ValueError, match="same images"):
        compare_models(report, other)
