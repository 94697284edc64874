"""Tests of ``glmix-viz grouping-scores`` (glmix_viz.grouping_scores) and the purity functions it adds to
glmix_viz.grouping."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import timm
import torch

import glmix_viz.models  # noqa: F401
from glmix_viz.cli import main
from glmix_viz.data.shapes import ShapesConfig, make_shapes
from glmix_viz.errors import DataError, GlmixVizError
from glmix_viz.grouping import load_grouping_samples, per_image_object_scores
from glmix_viz.scoring.grouping import cluster_class_regions, object_purity, object_table, purity_draws
from glmix_viz.grouping_scores import GroupingScoreSettings, compare_runs, run_grouping_scores
from glmix_viz.models.loading import save_checkpoint

ARGS = dict(downsample_strides=(2, 2, 1), num_slots=4, mixing_modes=("glmix", "glmix", "glmix.mha_nchw", "glmix"))


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("gs") / "shapes"
    make_shapes(root, ShapesConfig(image_size=48), num_train=0, num_val=6, seed=5, progress=False)
    return root


def _model(**overrides):
    torch.manual_seed(0)
    model = timm.create_model("glnet_tiny", num_classes=4, **dict(ARGS, **overrides))
    model.pretrained_cfg = dict(model.pretrained_cfg, input_size=(3, 48, 48))
    model.checkpoint_config = {"variant": "glnet_tiny", "model_args": dict(ARGS, **overrides)}
    return model.eval()


# ---------------------------------------------------------------------------------------------- purity functions
def test_cluster_class_regions_and_object_purity_by_hand():
    labels = np.array([0, 0, 1, 1, 1, 0])
    overlaps = np.array([[10, 2, 0], [0, 5, 1], [0, 0, 7], [1, 3, 0], [0, 0, 0], [9, 0, 0]])
    # majority classes: 0, 1, 2, 1, (no pixels: left out), 0
    table = cluster_class_regions(labels, overlaps, 2)
    assert table.tolist() == [[2, 1, 0], [0, 1, 1]]
    # without the background column: cluster 0 [1, 0] -> 1, cluster 1 [1, 1] -> 1; 2 of 3 object regions
    assert object_purity(table, background=0) == pytest.approx(2 / 3)
    # with the background: (2 + 1) / 5
    assert object_purity(table, background=None) == pytest.approx(3 / 5)
    per_image = cluster_class_regions(labels, overlaps, 2, slot_image=np.array([0, 0, 1, 1, 1, 1]), num_images=2)
    assert per_image.shape == (2, 2, 3) and per_image.sum(axis=0).tolist() == table.tolist()
    assert per_image[0].tolist() == [[1, 1, 0], [0, 0, 0]]
    assert np.allclose(purity_draws(object_table(np.stack([table, per_image[0]]), 0)), [2 / 3, 1.0])
    assert np.isnan(object_purity(np.array([[3, 0], [2, 0]]), 0))


# ----------------------------------------------------------------------------------------------------- the job
def test_scores_match_the_heldout_functions_and_resume(shapes, tmp_path):
    model = _model()
    settings = GroupingScoreSettings(clusters=2, chunk_size=4, control="untrained", resamples=50, batch_size=4)
    out = tmp_path / "scores"
    results = run_grouping_scores(shapes, "val", model, out, settings, progress=False)
    names = list(results["blocks"])
    assert len(names) == 6 and results["images"] == 6 and results["merge_k"] == 5
    # the same numbers as the held-out bench's functions on all images at once
    reference = per_image_object_scores(model, load_grouping_samples(str(shapes), "val"), input_size=48,
                                        num_classes=5, merge_sizes=(5,))
    for name in names:
        entry, block = results["blocks"][name], reference.blocks[name]
        assert entry["mbo_instance"] == pytest.approx(np.nanmean(block.mbo["instance"]))
        assert entry["mbo_class"] == pytest.approx(np.nanmean(block.mbo["class"]))
        assert entry["slots_clustered"] == len(block.features)
        low, high = entry["mbo_instance_ci95"]
        assert 0 <= low <= entry["mbo_instance"] <= high <= 1
        for key in ("semantic_miou", "semantic_miou_2x", "object_purity", "object_purity_2x", "slot_identity_purity"):
            assert 0 <= entry[key] <= 1
        assert entry["clusters"] == 2 and entry["clusters_2x"] == 4
        assert (out / entry["figure"]).is_file()
        paired = results["vs_control"][name]["mbo_instance"]["mean"]
        assert paired == pytest.approx(entry["mbo_instance"] - results["control"]["blocks"][name]["mbo_instance"])
    assert json.loads((out / "grouping_scores.json").read_text())["blocks"] == json.loads(json.dumps(
        results["blocks"]))
    # resume: one chunk lost, the other kept; the results come back the same
    (out / "chunks" / "control" / "chunk-00001.npz").unlink()
    again = run_grouping_scores(shapes, "val", model, out, settings, progress=False)
    assert again["summary"]["skipped"] == 4 and again["summary"]["done"] == 2
    assert again["blocks"] == results["blocks"]
    # a finished run with the same settings is read back, not recomputed
    (out / "chunks" / "model" / "chunk-00000.npz").write_bytes(b"not read")
    assert run_grouping_scores(shapes, "val", model, out, settings, progress=False)["blocks"] == results["blocks"]
    (out / "chunks" / "model" / "chunk-00000.npz").unlink()
    run_grouping_scores(shapes, "val", model, out, settings, progress=False)
    # a folder paired with itself: every difference is zero
    same = compare_runs(out, out, resamples=20)
    for name in names:
        assert same[name]["mbo_instance"]["mean"] == pytest.approx(0.0, abs=1e-12)
        assert same[name]["semantic_miou"]["mean"] == pytest.approx(0.0, abs=1e-12)
        assert same[name]["object_purity"]["mean"] == pytest.approx(0.0, abs=1e-12)
    assert "semantic_miou" not in compare_runs(out, out, resamples=20, clustered=False)[names[0]]
    # another run's settings in the same folder: one line, not a silent mix
    with pytest.raises(GlmixVizError, match="another run"):
        run_grouping_scores(shapes, "val", model, out, GroupingScoreSettings(clusters=2, chunk_size=3),
                            progress=False)


def test_bad_inputs_one_line_each(shapes, tmp_path):
    model = _model()
    settings = GroupingScoreSettings(clusters=2, resamples=20)
    no_masks = tmp_path / "no_masks"
    shutil.copytree(shapes, no_masks)
    shutil.rmtree(no_masks / "SegmentationClass")
    with pytest.raises(DataError, match="no class masks"):
        run_grouping_scores(no_masks, "val", model, tmp_path / "a", settings, progress=False)
    empty = tmp_path / "empty"
    shutil.copytree(shapes, empty)
    (empty / "ImageSets" / "Segmentation" / "val.txt").write_text("")
    with pytest.raises(DataError, match="empty"):
        run_grouping_scores(empty, "val", model, tmp_path / "b", settings, progress=False)
    with pytest.raises(GlmixVizError, match="no GLMix block"):
        run_grouping_scores(shapes, "val", _model(mixing_modes=("mha_nchw",) * 4), tmp_path / "c", settings,
                            progress=False)
    with pytest.raises(GlmixVizError, match="larger than the 4 slots"):
        run_grouping_scores(shapes, "val", model, tmp_path / "d", GroupingScoreSettings(merge_k=5),
                            progress=False)
    with pytest.raises(GlmixVizError, match="fewer than the 200 clusters"):
        run_grouping_scores(shapes, "val", model, tmp_path / "e", GroupingScoreSettings(clusters=100),
                            progress=False)


def test_cli_exit_codes(shapes, tmp_path, capsys):
    checkpoint = tmp_path / "tiny.safetensors"
    save_checkpoint(_model(), checkpoint, variant="glnet_tiny", model_args={k: list(v) if isinstance(v, tuple) else v
                                                                           for k, v in ARGS.items()},
                    class_names=["circle", "square", "triangle", "cross"], extra={"input_size": [3, 48, 48]})
    code = main(["grouping-scores", "--data", str(shapes), "--split", "val", "--checkpoint", str(checkpoint),
                 "--out", str(tmp_path / "ok"), "--clusters", "2", "--resamples", "20", "--no-progress"])
    assert code == 0
    assert "stages.0.blocks.0: mBO inst" in capsys.readouterr().out
    code = main(["grouping-scores", "--data", str(shapes), "--split", "val", "--checkpoint", str(checkpoint),
                 "--out", str(tmp_path / "bad"), "--merge-k", "9", "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "larger than the 4 slots" in err[-1]
