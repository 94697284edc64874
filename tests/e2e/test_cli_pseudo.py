"""``glmix-viz pseudo-label`` and ``glmix-viz evaluate`` from the command line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import timm

import glmix_viz.models  # noqa: F401
from glmix_viz.cli import main
from glmix_viz.data.shapes import ShapesConfig, make_shapes
from glmix_viz.data.voc import VOC_CLASSES, label_to_pil
from glmix_viz.models.loading import save_checkpoint
from glmix_viz.pseudo.settings import ScoreSettings


def _hand_made_voc(root: Path) -> dict:
    """Three 6x8 images with ground truth and predictions (one prediction missing), VOC's 21 classes."""
    gt = {
        "a": np.array([[0] * 8, [0, 1, 1, 1, 0, 0, 15, 15], [0, 1, 1, 1, 0, 0, 15, 15], [0, 255, 255, 0, 0, 0, 0, 0],
                       [0, 0, 0, 0, 0, 7, 7, 0], [0, 0, 0, 0, 0, 7, 7, 0]]),
        "b": np.array([[15] * 8, [15] * 8, [0] * 8, [0] * 8, [12, 12, 0, 0, 0, 0, 0, 0], [12, 12, 0, 0, 0, 0, 0, 0]]),
        "c": np.zeros((6, 8), dtype=np.int64),
    }
    pred = {
        "a": np.array([[0] * 8, [1, 1, 1, 0, 0, 0, 15, 15], [0, 1, 1, 1, 0, 15, 15, 15], [0, 1, 1, 0, 0, 0, 0, 0],
                       [0, 0, 0, 0, 255, 7, 0, 0], [0, 0, 0, 0, 0, 12, 7, 0]]),
        "b": np.array([[15] * 8, [15, 15, 15, 15, 255, 255, 0, 0], [0] * 8, [3] * 8, [12, 12, 0, 0, 0, 0, 0, 0],
                       [0, 12, 0, 0, 0, 0, 0, 0]]),
    }
    for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation", "pred"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for image_id, mask in gt.items():
        (root / "JPEGImages" / f"{image_id}.png").write_bytes(b"")  # never opened by evaluate
        label_to_pil(mask).save(root / "SegmentationClass" / f"{image_id}.png")
    for image_id, labels in pred.items():
        label_to_pil(labels).save(root / "pred" / f"{image_id}.png")
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("a\nb\nc\n")
    return {"gt": gt, "pred": pred}


def _brute_force(pairs, pred_ignore: str) -> dict:
    """Per-class IoU and accuracies by counting pixels one at a time."""
    true_positive, false_positive, false_negative = [0] * 21, [0] * 21, [0] * 21
    correct = total = 0
    for gt, pred in pairs:
        for g, p in zip(gt.reshape(-1).tolist(), pred.reshape(-1).tolist()):
            if g == 255:
                continue
            if p == 255:
                if pred_ignore == "ignore":
                    continue
                p = 0
            total += 1
            if g == p:
                true_positive[g] += 1
                correct += 1
            else:
                false_negative[g] += 1
                false_positive[p] += 1
    iou = {}
    accuracies = []
    for k in range(21):
        union = true_positive[k] + false_positive[k] + false_negative[k]
        iou[VOC_CLASSES[k]] = true_positive[k] / union if union else None
        if true_positive[k] + false_negative[k]:
            accuracies.append(true_positive[k] / (true_positive[k] + false_negative[k]))
    defined = [value for value in iou.values() if value is not None]
    return {"iou": iou, "miou": sum(defined) / len(defined), "pixel_accuracy": correct / total,
            "mean_accuracy": sum(accuracies) / len(accuracies)}


@pytest.mark.parametrize("pred_ignore", ["background", "ignore"])
def test_evaluate_matches_brute_force_counting(tmp_path, capsys, pred_ignore):
    made = _hand_made_voc(tmp_path / "voc")
    out = tmp_path / "eval.json"
    code = main(["evaluate", "--voc-root", str(tmp_path / "voc"), "--split", "val", "--pred",
                 str(tmp_path / "voc" / "pred"), "--out", str(out), "--pred-ignore", pred_ignore, "--missing", "skip",
                 "--no-progress"])
    assert code == 0
    scores = json.loads(out.read_text())
    expected = _brute_force([(made["gt"][i], made["pred"][i]) for i in ("a", "b")], pred_ignore)
    assert scores["miou"] == pytest.approx(expected["miou"])
    assert scores["pixel_accuracy"] == pytest.approx(expected["pixel_accuracy"])
    assert scores["mean_accuracy"] == pytest.approx(expected["mean_accuracy"])
    for name, value in expected["iou"].items():
        assert scores["iou"][name] == (None if value is None else pytest.approx(value))
    assert scores["missing_predictions"] == ["c"] and scores["num_images"] == 2
    printed = capsys.readouterr()
    assert "mIoU" in printed.out and f"{100 * expected['miou']:6.2f}" in printed.out
    assert "missing predictions (1): c" in printed.err


def test_evaluate_fails_on_missing_predictions_by_default(tmp_path):
    _hand_made_voc(tmp_path / "voc")
    code = main(["evaluate", "--voc-root", str(tmp_path / "voc"), "--split", "val", "--pred",
                 str(tmp_path / "voc" / "pred"), "--no-progress"])
    assert code == 1
    assert json.loads((tmp_path / "voc" / "pred" / "eval.json").read_text())["num_failed"] == 1


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shapes")
    make_shapes(root, ShapesConfig(image_size=64), num_train=1, num_val=4, seed=5, progress=False)
    return root


def test_pseudo_label_command_reports_bad_images_and_exits_non_zero(shapes_root, tmp_path, capsys):
    root = Path(shutil.copytree(shapes_root, tmp_path / "data"))
    broken = sorted((root / "JPEGImages").glob("val_*"))[2]
    broken.write_bytes(b"garbage")
    out = tmp_path / "out"
    code = main(["pseudo-label", "--voc-root", str(root), "--split", "val", "--out", str(out), "--model", "glnet_tiny",
                 "--workers", "0", "--no-progress", "--method", "slot_vote", "--scales", "1.0,0.75",
                 "--crf-iterations", "2", "--save-scores"])
    assert code == 1
    printed = capsys.readouterr()
    assert "UNTRAINED" in printed.err and broken.stem in printed.err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"] == {"total": 4, "done": 3, "skipped": 0, "failed": 1}
    assert [failure["id"] for failure in summary["failures"]] == [broken.stem]
    assert summary["settings"]["method"] == "slot_vote" and summary["settings"]["scales"] == [1.0, 0.75]
    recorded = ScoreSettings.from_dict(summary["score_settings"])  # the settings object, recorded whole
    assert recorded == ScoreSettings(method="slot_vote", scales=(1.0, 0.75)) and recorded.flip
    assert summary["model"]["variant"] == "glnet_tiny" and summary["model"]["trained"] is False
    assert len(list((out / "scores").glob("*.npz"))) == 3
    code = main(["evaluate", "--voc-root", str(root), "--split", "val", "--pred", str(out), "--missing", "skip",
                 "--no-progress"])
    assert code == 0


def test_pseudo_label_command_refuses_an_imagenet_checkpoint(shapes_root, tmp_path, capsys):
    checkpoint = tmp_path / "imagenet.safetensors"
    save_checkpoint(timm.create_model("glnet_tiny", num_classes=1000), checkpoint, variant="glnet_tiny")
    code = main(["pseudo-label", "--voc-root", str(shapes_root), "--split", "val", "--out", str(tmp_path / "out"),
                 "--checkpoint", str(checkpoint), "--device", "cpu", "--no-progress"])
    assert code == 2
    assert ("model has a 1000-class ImageNet head; pseudo-label needs a multi-label head for the data set's 4 "
            "classes: fine-tune it first (glmix-viz finetune ...)") in capsys.readouterr().err


def test_pseudo_label_command_one_line_errors(shapes_root, tmp_path, capsys, monkeypatch):
    base = ["pseudo-label", "--voc-root", str(shapes_root), "--split", "val", "--out", str(tmp_path / "out"),
            "--no-progress"]
    assert main(base + ["--model", "glnet_tiny", "--shard", "3/2"]) == 2
    assert "shard" in capsys.readouterr().err
    assert main(base + ["--model", "glnet_tiny", "--method", "slot_walk", "--option", "stepz=2"]) == 2
    assert "no option" in capsys.readouterr().err
    assert main(base + ["--model", "glnet_tiny", "--bg-rule", "power", "--bg-param", "0"]) == 2
    printed = capsys.readouterr().err.strip().splitlines()
    assert len(printed) == 1 and "exponent must be positive" in printed[0]
    import glmix_viz.open as opener

    monkeypatch.setattr(opener, "DEMO_DIR", tmp_path / "no-demo-here")
    assert main(base) == 2
    assert "pass --checkpoint PATH" in capsys.readouterr().err
