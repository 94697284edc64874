"""The whole weak-supervision path from the command line, at tiny sizes: make-shapes, pseudo-label, segment-train
(resumed once), segment, evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import glmix_viz
from glmix_viz.cli import main
from glmix_viz.data.voc import VOCDataset, load_label_png


def test_make_shapes_to_evaluate(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = tmp_path / "shapes"
    demo = str(glmix_viz.demo_checkpoint())
    assert main(["make-shapes", "--out", str(data), "--num-train", "8", "--num-val", "4", "--seed", "21",
                 "--image-size", "64"]) == 0
    common = ["--voc-root", str(data), "--device", "cpu", "--no-progress"]
    assert main(["pseudo-label", *common, "--split", "train", "--checkpoint", demo, "--out", str(tmp_path / "pseudo"),
                 "--workers", "0"]) == 0
    train = ["segment-train", *common, "--labels", str(tmp_path / "pseudo"), "--init", demo, "--batch-size", "4",
             "--max-steps", "1", "--input-size", "64", "--decoder-channels", "32", "--workers", "0",
             "--out", str(tmp_path / "run")]
    assert main([*train, "--epochs", "1"]) == 0
    assert main([*train, "--epochs", "2"]) == 0  # resumes after epoch 1 in the same --out
    assert "resuming" in capsys.readouterr().err
    assert main([*train, "--epochs", "2", "--decoder", "unet"]) == 2  # another run's checkpoints: refused
    assert "a different run" in capsys.readouterr().err
    history = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in history] == [1, 2] and all(0 <= row["val_miou"] <= 1 for row in history)
    best = json.loads((tmp_path / "run" / "best.json").read_text())
    assert best["init"] == demo and best["backbone"]["variant"] == "glnet_tiny" and best["num_classes"] == 5
    assert main(["segment", *common, "--checkpoint", str(tmp_path / "run" / "best.safetensors"), "--split", "val",
                 "--out", str(tmp_path / "pred")]) == 0
    for image_id in VOCDataset(data, "val").ids:
        assert load_label_png(tmp_path / "pred" / f"{image_id}.png").shape == (64, 64)
    assert main(["evaluate", "--voc-root", str(data), "--split", "val", "--pred", str(tmp_path / "pred"),
                 "--no-progress"]) == 0
    scores = json.loads((tmp_path / "pred" / "eval.json").read_text())
    assert scores["num_images"] == 4 and 0.0 <= scores["miou"] <= 1.0
    assert scores["miou"] == pytest.approx(max(row["val_miou"] for row in history))  # the same val split, same rule
