"""``--shard auto``: the part from torchrun or a SLURM array; shards share a folder that ``evaluate`` reads as one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import timm

import glmix_viz  # noqa: F401
from glmix_viz.cli import main
from glmix_viz.data.shapes import ShapesConfig, make_shapes
from glmix_viz.data.voc import VOCDataset, resolve_shard, shard_from_environment, shard_ids
from glmix_viz.models.loading import save_checkpoint

LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT",
                      "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_MAX", "SLURM_ARRAY_TASK_STEP")


@pytest.fixture()
def clean_env(monkeypatch):
    for name in LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize("environ, expected", [
    ({"RANK": "0", "WORLD_SIZE": "4"}, "1/4"),
    ({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}, "4/4"),
    ({"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_MIN": "0"}, "1/3"),
    ({"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "3"}, "3/3"),  # no MIN: an array from 0
    ({"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "1"}, "1/4"),
    ({"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "1"}, "4/4"),
    ({"SLURM_ARRAY_TASK_ID": "14", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "10",
      "SLURM_ARRAY_TASK_STEP": "2"}, "3/4"),  # --array=10-16:2
    ({"RANK": "1", "WORLD_SIZE": "2", "SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_COUNT": "9"}, "2/2"),
])
def test_shard_from_the_launchers_environment(environ, expected):
    assert shard_from_environment(environ) == expected
    assert resolve_shard("auto", environ) == expected and resolve_shard(" AUTO ", environ) == expected


@pytest.mark.parametrize("environ, message", [
    ({}, "neither torchrun's RANK/WORLD_SIZE nor a SLURM array's"),
    ({"RANK": "2", "WORLD_SIZE": "2"}, "RANK=2 is not in 0..WORLD_SIZE-1"),
    ({"RANK": "x", "WORLD_SIZE": "2"}, "RANK='x' is not an integer"),
    ({"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_MIN": "1"}, "not task 1..3"),
    ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_MIN": "0",
      "SLURM_ARRAY_TASK_STEP": "2"}, "evenly spaced"),
])
def test_missing_or_inconsistent_variables_fail_with_one_line(environ, message):
    with pytest.raises(ValueError) as error:
        shard_from_environment(environ)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_explicit_shards_pass_through():
    assert resolve_shard(None, {}) is None and resolve_shard("2/3", {}) == "2/3" and resolve_shard((1, 2), {}) == (1, 2)
    with pytest.raises(ValueError, match="1-based"):
        resolve_shard("0/3", {})


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


def test_torchrun_processes_get_their_local_gpu_only_when_no_device_is_given(monkeypatch):
    import argparse

    import torch

    from glmix_viz.commands.pseudo_label import launcher_device

    environ = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}
    assert launcher_device(argparse.Namespace(device="cpu", shard="auto"), environ) == "cpu"
    assert launcher_device(argparse.Namespace(device=None, shard="1/4"), environ) is None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert launcher_device(argparse.Namespace(device=None, shard="auto"), environ) == "cuda:1"
    assert launcher_device(argparse.Namespace(device=None, shard="auto"), {}) is None
