"""``--shard auto`` end to end: the part from torchrun or a SLURM array; shards share a folder that ``evaluate`` reads as
one (the environment parsing itself: ``test_runtime_distributed.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import timm

import glmix_viz.models  # noqa: F401
from glmix_viz.cli import main
from glmix_viz.data.shapes import ShapesConfig, make_shapes
from glmix_viz.data.voc import VOCDataset
from glmix_viz.models.loading import save_checkpoint
from glmix_viz.runtime.distributed import shard_ids

LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT",
                      "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_MAX", "SLURM_ARRAY_TASK_STEP", "SLURM_PROCID",
                      "SLURM_NTASKS", "SLURM_LOCALID")


@pytest.fixture()
def clean_env(monkeypatch):
    for name in LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture(scope="module")
def shapes_and_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    make_shapes(root / "data", ShapesConfig(image_size=64), num_train=1, num_val=5, seed=11, progress=False)
    checkpoint = root / "model.safetensors"
    save_checkpoint(timm.create_model("glnet_tiny", num_classes=4), checkpoint, variant="glnet_tiny")
    return root / "data", checkpoint


def _pseudo_label(data: Path, checkpoint: Path, out: Path, *extra: str) -> int:
    return main(["pseudo-label", "--voc-root", str(data), "--split", "val", "--out", str(out), "--checkpoint",
                 str(checkpoint), "--device", "cpu", "--workers", "0", "--no-progress", "--no-crf", *extra])


@pytest.mark.parametrize("launcher", ["torchrun", "slurm"])
def test_auto_shards_share_a_folder_that_evaluate_reads_as_one(shapes_and_model, tmp_path, clean_env, capsys,
                                                               launcher):
    data, checkpoint = shapes_and_model
    shared, whole = tmp_path / "shared", tmp_path / "whole"
    for index in range(2):
        if launcher == "torchrun":
            clean_env.setenv("RANK", str(index))
            clean_env.setenv("WORLD_SIZE", "2")
        else:  # sbatch --array=1-2
            clean_env.setenv("SLURM_ARRAY_TASK_ID", str(index + 1))
            clean_env.setenv("SLURM_ARRAY_TASK_COUNT", "2")
            clean_env.setenv("SLURM_ARRAY_TASK_MIN", "1")
        assert _pseudo_label(data, checkpoint, shared, "--shard", "auto") == 0
        summary = json.loads((shared / f"summary.shard-{index + 1}-of-2.json").read_text())
        ids = shard_ids(VOCDataset(data, "val").ids, f"{index + 1}/2")
        assert summary["dataset"]["shard"] == f"{index + 1}/2" and summary["counts"]["done"] == len(ids)
    for name in LAUNCHER_VARIABLES:
        clean_env.delenv(name, raising=False)
    assert _pseudo_label(data, checkpoint, whole) == 0
    capsys.readouterr()
    assert main(["evaluate", "--voc-root", str(data), "--split", "val", "--pred", str(shared), "--no-progress"]) == 0
    printed = capsys.readouterr()
    assert "5 of 5 images evaluated" in printed.out and "2 shard runs read as one folder: 1/2, 2/2" in printed.out
    sharded = json.loads((shared / "eval.json").read_text())
    assert main(["evaluate", "--voc-root", str(data), "--split", "val", "--pred", str(whole), "--no-progress"]) == 0
    single = json.loads((whole / "eval.json").read_text())
    assert sharded["num_images"] == 5 and sharded["runs"]["missing_shards"] == []
    for key in ("miou", "pixel_accuracy", "mean_accuracy", "iou"):
        assert sharded[key] == single[key]


def test_evaluate_warns_about_a_missing_shard(shapes_and_model, tmp_path, clean_env, capsys):
    data, checkpoint = shapes_and_model
    assert _pseudo_label(data, checkpoint, tmp_path / "out", "--shard", "1/2") == 0
    capsys.readouterr()
    main(["evaluate", "--voc-root", str(data), "--split", "val", "--pred", str(tmp_path / "out"), "--missing", "skip",
          "--no-progress"])
    assert "no summary of shard(s) 2/2" in capsys.readouterr().err


def test_auto_without_a_launcher_is_one_clear_line(shapes_and_model, tmp_path, clean_env, capsys):
    data, checkpoint = shapes_and_model
    assert _pseudo_label(data, checkpoint, tmp_path / "out", "--shard", "auto") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--shard auto: neither torchrun's RANK/WORLD_SIZE" in err[0]
    assert not (tmp_path / "out").exists()
