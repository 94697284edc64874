"""`glmix-viz train` then `glmix-viz finetune` from the command line, on a tiny generated set."""

from __future__ import annotations

import json

import pytest

from glmix_viz import class_names, load_model
from glmix_viz.cli import main
from glmix_viz.data.shapes import ShapesConfig, make_shapes


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    make_shapes(root, ShapesConfig(image_size=64), num_train=12, num_val=6, seed=3, progress=False)
    return root


def test_train_then_finetune_writes_loadable_checkpoints(shapes, tmp_path, capsys):
    common = ["--epochs", "1", "--batch-size", "6", "--input-size", "64", "--workers", "0", "--no-progress",
              "--device", "cpu", "--threads", "1"]
    assert main(["train", "--data", str(shapes), "--out", str(tmp_path / "run"), "--model", "glnet_tiny",
                 *common]) == 0
    assert "done: 1 epochs" in capsys.readouterr().out
    trained = load_model(tmp_path / "run" / "last.safetensors", device="cpu")
    assert class_names(trained) == ["circle", "square", "triangle", "cross"]

    assert main(["finetune", "--voc-root", str(shapes), "--split", "train", "--init",
                 str(tmp_path / "run" / "last.safetensors"), "--out", str(tmp_path / "ft"), *common]) == 0
    config = json.loads((tmp_path / "ft" / "last.json").read_text())
    assert config["variant"] == "glnet_tiny" and config["class_names"] == class_names(trained)
    assert load_model(tmp_path / "ft" / "last.safetensors", device="cpu").num_classes == 4


def test_train_reports_a_missing_data_folder_in_one_line(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run"), "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "nowhere" in err and len(err.splitlines()) == 1


def test_train_grouping_flags_reach_the_checkpoint_and_the_log(shapes, tmp_path, capsys):
    assert main(["train", "--data", str(shapes), "--out", str(tmp_path / "run"), "--model", "glnet_tiny",
                 "--epochs", "1", "--batch-size", "6", "--input-size", "64", "--workers", "0", "--no-progress",
                 "--device", "cpu", "--threads", "1", "--augment", "flips", "--recon-weight", "10",
                 "--potts-weight", "1", "--potts-sigma-rgb", "0.2", "--potts-sigma-xy", "1.5",
                 "--grouping-blocks", "stages.0.blocks.0"]) == 0
    out = capsys.readouterr().out
    assert "potts_loss" in out and "recon_loss" in out
    recorded = json.loads((tmp_path / "run" / "last.json").read_text())["train"]
    assert (recorded["potts_weight"], recorded["potts_sigma_rgb"], recorded["potts_sigma_xy"]) == (1.0, 0.2, 1.5)
    assert recorded["recon_weight"] == 10.0 and recorded["grouping_blocks"] == ["stages.0.blocks.0"]


def test_train_refuses_a_block_that_is_not_glmix(shapes, tmp_path, capsys):
    code = main(["train", "--data", str(shapes), "--out", str(tmp_path / "run"), "--model", "glnet_tiny",
                 "--epochs", "1", "--batch-size", "6", "--input-size", "64", "--workers", "0", "--no-progress",
                 "--device", "cpu", "--recon-weight", "1", "--grouping-blocks", "stages.9.blocks.0"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and "stages.9.blocks.0" in err and len(err.splitlines()) == 1
