"""`glmix-viz train` then `glmix-viz finetune` from the command line, on a tiny generated set."""

from __future__ import annotations

import json

import pytest

from glmix_viz import class_names, load_model
from glmix_viz.cli import main
from glmix_viz.data.shapes import make_shapes


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    make_shapes(root, num_train=12, num_val=6, seed=3, image_size=64, progress=False)
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
