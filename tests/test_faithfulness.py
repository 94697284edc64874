"""Deletion / insertion curves (RISE): areas by hand, curve ends equal to the model's own outputs, an oracle map beats
its inverse, the batch job resumes and skips a broken image, the CLI refuses bad input in one line; slot_ablate's
maps are the removal effects of each pixel's slot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import glmix_viz
from glmix_viz.cli import main
from glmix_viz.data.shapes import make_shapes, render_shapes_image
from glmix_viz.data.voc import VOCDataset
from glmix_viz.errors import GlmixVizError
from glmix_viz.faithfulness import auc, check_methods, class_curves, image_faithfulness, method_maps, run_faithfulness
from glmix_viz.images import to_tensor

DEMO = Path(glmix_viz.__file__).parent / "assets" / "demo" / "glnet_tiny_shapes.safetensors"


@pytest.fixture(scope="module")
def demo():
    return glmix_viz.load_model(str(DEMO)).eval()


@pytest.fixture(scope="module")
def sample():
    return render_shapes_image(np.random.default_rng(5))  # a triangle and two crosses, 128 px


def test_auc_by_hand():
    assert auc([1, 1, 1]) == 1.0
    assert auc([0, 1]) == 0.5
    assert auc([1, 0, 0]) == 0.25  # (1 + 0) / 2 over the first half, 0 over the second
    with pytest.raises(ValueError):
        auc([1])


def test_curve_ends_are_the_models_outputs(demo, sample):
    inputs = to_tensor(sample.image)
    cross = 3
    curves = class_curves(demo, inputs, cross, np.random.default_rng(0).random((128, 128)), steps=4)
    with torch.inference_mode():
        full = torch.sigmoid(demo(inputs))[0, cross].item()
        empty = torch.sigmoid(demo(torch.zeros_like(inputs)))[0, cross].item()
    assert len(curves["deletion"]) == len(curves["insertion"]) == 5
    assert curves["deletion"][0] == pytest.approx(full, abs=1e-5)
    assert curves["deletion"][-1] == pytest.approx(empty, abs=1e-5)
    assert curves["insertion"][-1] == pytest.approx(full, abs=1e-5)
    assert curves["deletion_auc"] == pytest.approx(auc(curves["deletion"]))


def test_an_oracle_map_is_more_faithful_than_its_inverse(demo, sample):
    inputs = to_tensor(sample.image)
    oracle = (sample.class_mask == 4).astype(float)  # label 4 = cross (model class 3)
    good = class_curves(demo, inputs, 3, oracle, steps=8)
    bad = class_curves(demo, inputs, 3, 1 - oracle, steps=8)
    assert good["deletion_auc"] < bad["deletion_auc"] - 0.1
    assert good["insertion_auc"] > bad["insertion_auc"] + 0.1


def test_random_control_is_seeded_by_image(demo, sample):
    a = method_maps(demo, sample.image, [2, 3], "random", image_id="x")
    assert a.shape == (2, 128, 128)
    assert np.array_equal(a, method_maps(demo, sample.image, [2, 3], "random", image_id="x"))
    assert not np.array_equal(a, method_maps(demo, sample.image, [2, 3], "random", image_id="y"))
    result = image_faithfulness(demo, sample.image, [2, 3], ["cam", "random"], image_id="x", steps=4)
    assert set(result["methods"]) == {"cam", "random"} and result["classes"] == [2, 3]
    assert set(result["methods"]["cam"]["per_class"]) == {"2", "3"}


def test_the_job_resumes_and_skips_a_broken_image(tmp_path, demo):
    root = tmp_path / "shapes"
    make_shapes(root, num_train=0, num_val=3, seed=4990, progress=False)
    dataset = VOCDataset(root, "val")
    broken = dataset.image_path(dataset.ids[1])
    broken.write_bytes(b"not an image")
    out = tmp_path / "out"
    first = run_faithfulness(dataset, demo, out, ["cam", "random"], steps=4, resamples=50, progress=False)
    assert first["images"] == 2 and [f["id"] for f in first["failures"]] == [dataset.ids[1]]
    paired = first["total"]["paired_vs_first"]["random"]["deletion_auc"]
    assert paired["images"] == 2 and paired["ci95"][0] <= paired["mean"] <= paired["ci95"][1]
    assert (out / "faithfulness_curves.png").is_file()
    stamp = (out / "images" / f"{dataset.ids[0]}.json").stat().st_mtime_ns
    second = run_faithfulness(dataset, demo, out, ["cam", "random"], steps=4, resamples=50, progress=False)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["skipped"] == 2 and summary["counts"]["failed"] == 1
    assert (out / "images" / f"{dataset.ids[0]}.json").stat().st_mtime_ns == stamp  # not redone
    assert second["total"]["methods"] == first["total"]["methods"]


def test_bad_methods_are_one_line(tmp_path, capsys):
    with pytest.raises(GlmixVizError, match="unknown method 'nope'"):
        check_methods(["cam", "nope"])
    with pytest.raises(GlmixVizError, match="named twice"):
        check_methods(["cam", "cam"])
    code = main(["faithfulness", "--data", str(tmp_path), "--methods", "cam,nope", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "unknown method 'nope'" in err[0]


def test_slot_ablate_scores_each_pixel_by_its_slots_removal_effect(demo, sample):
    from glmix_viz.probe import GroupingProbe
    from glmix_viz.pseudo import METHODS, MapContext
    from glmix_viz.slots import slot_effects

    inputs = to_tensor(sample.image)
    block = "stages.1.blocks.0"
    with torch.inference_mode(), GroupingProbe(demo, [block]) as probe:
        features = demo.forward_features(inputs)
        context = MapContext(model=demo, inputs=inputs, features=features, classes=[2, 3], row_classes=[[2, 3]],
                             records=probe.records, options={"assign": "hard", "target": "probability"})
        maps = METHODS["slot_ablate"].maps(context)
        logits = probe.records[block].logits  # the probe's records stay those of the plain forward
    assert len(maps) == 1 and maps[0].shape == (1, 2, 16, 16)
    effects = slot_effects(demo, inputs, block)
    expected = np.clip(-effects[:, [2, 3]], 0, None)[logits[0].argmax(0).numpy()]  # (16, 16, 2)
    np.testing.assert_allclose(maps[0][0].permute(1, 2, 0).numpy(), expected, atol=1e-6)
