"""The held-out evaluation: the report of a tiny model and the comparison of two reports (the bootstrap itself:
tests/scoring/test_stats.py)."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch

import glmix_viz.models  # noqa: F401
from glmix_viz.data.shapes import ShapesConfig, make_shapes
from glmix_viz.grouping import block_grouping_scores, load_grouping_samples
from glmix_viz.heldout import compare_models, heldout_evaluation
from glmix_viz.models.loading import load_model, save_checkpoint
from glmix_viz.scoring.classification import mean_average_precision


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
    assert all(b["instance"]["mean"] == 0.0 for b in same["mbo"].values())
    assert all(b is None or b["mean"] == 0.0 for b in same["semantic"].values())
    other = dict(report, per_image=dict(report["per_image"], ids=report["per_image"]["ids"][::-1]))
    with pytest.raises(ValueError, match="same images"):
        compare_models(report, other)


def test_heldout_report_carries_the_object_centric_metrics(heldout, tmp_path):
    from glmix_viz.grouping import object_scores_summary, per_image_object_scores

    model = _tiny(tmp_path, 2)
    report = heldout_evaluation(model, str(heldout), "val", input_size=64, resamples=100)
    objects = report["objects"]
    assert objects["images"] == 12 and objects["clusters"] == 5  # background + 4 shapes
    expected = object_scores_summary(per_image_object_scores(model, load_grouping_samples(str(heldout), "val"),
                                                             input_size=64, num_classes=5))
    for name, block in objects["blocks"].items():
        assert block["slots"] == 4
        for level in ("instance", "class"):
            entry = block["mbo"][level]
            assert entry["trained"] == pytest.approx(expected[name]["mbo"][level])
            assert entry["grid"] == pytest.approx(expected[name]["grid_mbo"][level])
            assert entry["vs_untrained"]["mean"] == pytest.approx(entry["trained"] - entry["untrained"])
            assert block["merged"][level]["2"]["regions"] <= 2.0
        semantic = block["semantic"]
        assert semantic["trained"] == pytest.approx(expected[name]["semantic"]["miou"])
        assert semantic["vs_untrained"]["mean"] == pytest.approx(semantic["trained"] - semantic["untrained"])
    assert "per_image" not in objects and len(report["per_image"]["objects"]["ids"]) == 12


def _report(map_value: float, scores: list, block_values: dict) -> dict:
    """A hand-made report of four images (two classes) and three grouping images, as heldout_evaluation writes it."""
    targets = [[1, 0], [0, 1], [1, 1], [0, 0]]
    return {"map": map_value, "per_image": {
        "ids": ["a", "b", "c", "d"], "scores": scores, "targets": targets,
        "grouping": {"ids": ["g0", "g1", "g2"], "trained": block_values}}}


def test_two_different_models_compared_by_hand():
    # Model A ranks every positive first: AP 1 for both classes. Model B, class 0 scores (0.2, 0.9, 0.5, 0.1): the
    # positives c, a rank 2nd and 3rd, AP = (1/2 + 2/3) / 2 = 7/12; class 1 (0.8, 0.3, 0.6, 0.7): the positives c, b
    # rank 3rd and 4th, AP = (1/3 + 2/4) / 2 = 5/12; mAP (7/12 + 5/12) / 2 = 1/2.
    model_a = _report(1.0, [[0.9, 0.1], [0.1, 0.9], [0.8, 0.8], [0.2, 0.2]],
                      {"stages.0.blocks.0": [0.5, float("nan"), 0.75], "stages.1.blocks.0": [0.1, 0.2, 0.3]})
    model_b = _report(0.5, [[0.2, 0.8], [0.9, 0.3], [0.5, 0.6], [0.1, 0.7]],
                      {"stages.0.blocks.0": [0.25, 0.1, 0.5], "stages.2.blocks.0": [0.0, 0.0, 0.0]})
    assert mean_average_precision(np.array(model_b["per_image"]["scores"]),
                                  np.array(model_b["per_image"]["targets"]))[0] == pytest.approx(0.5)
    result = compare_models(model_a, model_b, resamples=200, seed=1)
    assert result["map"]["difference"] == pytest.approx(0.5)
    low, high = result["map"]["ci95"]
    assert 0.0 <= low <= 0.5 <= high <= 1.0  # A's AP is the highest possible on every resample: never below B
    # only the block both reports have; the pair with a NaN is dropped: differences 0.25 and 0.25
    assert list(result["blocks"]) == ["stages.0.blocks.0"]
    block = result["blocks"]["stages.0.blocks.0"]
    assert block["mean"] == pytest.approx(0.25) and block["images"] == 2
    assert block["ci95"] == pytest.approx([0.25, 0.25])
    reverse = compare_models(model_b, model_a, resamples=200, seed=1)
    assert reverse["map"]["difference"] == pytest.approx(-0.5) and reverse["map"]["ci95"][1] <= 0.0
    assert reverse["blocks"]["stages.0.blocks.0"]["mean"] == pytest.approx(-0.25)
