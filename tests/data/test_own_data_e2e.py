"""The issue's "Done when": a user's own copy of a make-shapes set, in both folder formats, through the commands.

The segmentation-folder copy has its class ids permuted (the background at id 2, not 0), the same JPEG images and
masks with 255 borders; pseudo-label with the demo model then evaluate must give the same per-class IoU, by class
name, as the same commands on the VOC-layout original; atlas, segment-train and segment run on it. The labelled-folder
copy (image-level tags only) trains and pseudo-labels, and evaluate refuses it in one line.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import glmix_viz
from glmix_viz.cli import main
from glmix_viz.data.registry import open_split
from glmix_viz.data.shapes import ShapesConfig, make_shapes
from glmix_viz.labels import load_label_png

ORIGINAL = ("background", "circle", "square", "triangle", "cross")
PERMUTED = ("triangle", "cross", "background", "circle", "square")   # background at id 2
COMMON = ["--device", "cpu", "--no-progress"]


def _permute(mask: np.ndarray) -> np.ndarray:
    lookup = np.arange(256, dtype=np.uint8)
    for old, name in enumerate(ORIGINAL):
        lookup[old] = PERMUTED.index(name)
    return lookup[mask]


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("own")
    voc = root / "voc"
    make_shapes(voc, ShapesConfig(image_size=64, boundary_width=1), num_train=4, num_val=4, seed=5,
                image_format="jpg", progress=False)
    seg, tagged = root / "seg", root / "tagged"
    for folder in (seg, tagged):
        (folder / "images").mkdir(parents=True)
        (folder / "splits").mkdir()
        (folder / "classes.txt").write_text("\n".join(PERMUTED) + "\n")
    (seg / "masks").mkdir()
    rows = []
    for split in ("train", "val"):
        original = open_split(voc, split)
        for folder in (seg, tagged):
            (folder / "splits" / f"{split}.txt").write_text("\n".join(original.ids) + "\n")
        for image_id in original.ids:
            for folder in (seg, tagged):
                shutil.copyfile(original.image_path(image_id), folder / "images" / f"{image_id}.jpg")  # same bytes
            mask = original.mask(image_id)
            assert (mask == 255).any()
            Image.fromarray(_permute(mask), mode="L").save(seg / "masks" / f"{image_id}.png")
            names = [ORIGINAL[k] for k in np.unique(mask) if 0 < k < 255]
            rows.append([f"{image_id}.jpg", " ".join(names)])
    with open(tagged / "labels.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([["image", "labels"], *rows])
    return {"voc": voc, "seg": seg, "tagged": tagged, "root": root}


def _pseudo_then_evaluate(data: Path, out: Path) -> dict:
    assert main(["pseudo-label", "--data", str(data), "--split", "val", "--out", str(out / "pseudo"), "--no-crf",
                 "--workers", "0", *COMMON]) == 0
    assert main(["evaluate", "--data", str(data), "--split", "val", "--pred", str(out / "pseudo"),
                 "--out", str(out / "eval.json"), "--no-progress"]) == 0
    return json.loads((out / "eval.json").read_text())


def test_segmentation_folder_with_permuted_ids_scores_like_the_original(sets, tmp_path):
    split = open_split(sets["seg"], "val")
    assert type(split).__name__ == "SegmentationFolder" and split.background == 2
    original = _pseudo_then_evaluate(sets["voc"], tmp_path / "voc")
    copy = _pseudo_then_evaluate(sets["seg"], tmp_path / "seg")
    for image_id in split.ids:   # the same pseudo-masks, written in each data set's own numbering
        assert np.array_equal(_permute(load_label_png(tmp_path / "voc" / "pseudo" / f"{image_id}.png")),
                              load_label_png(tmp_path / "seg" / "pseudo" / f"{image_id}.png"))
    assert set(original["iou"]) == set(copy["iou"]) == set(ORIGINAL)
    assert any(value not in (None, 0.0, 1.0) for value in original["iou"].values())
    for name in ORIGINAL:
        assert copy["iou"][name] == pytest.approx(original["iou"][name], abs=1e-6), name
    assert copy["miou"] == pytest.approx(original["miou"], abs=1e-6)


def test_atlas_segment_train_and_segment_run_on_the_segmentation_folder(sets, tmp_path):
    seg, demo = str(sets["seg"]), str(glmix_viz.demo_checkpoint())
    assert main(["pseudo-label", "--data", seg, "--split", "train", "--out", str(tmp_path / "pseudo"), "--no-crf",
                 "--workers", "0", *COMMON]) == 0
    assert main(["atlas", "--data", seg, "--split", "val", "--block", "-1", "--clusters", "2", "--out",
                 str(tmp_path / "atlas"), "--input-size", "64", "--examples", "1", "--resamples", "10", *COMMON]) == 0
    atlas = json.loads((tmp_path / "atlas" / "atlas.json").read_text())
    assert atlas["class_names"] == list(PERMUTED) and atlas["plan"]["background"] == 2
    assert "object_purity" in atlas["blocks"][0]
    assert main(["segment-train", "--data", seg, "--split", "train", "--labels", str(tmp_path / "pseudo"),
                 "--init", demo, "--epochs", "1", "--max-steps", "1", "--batch-size", "2", "--input-size", "64",
                 "--decoder-channels", "16", "--workers", "0", "--out", str(tmp_path / "run"), *COMMON]) == 0
    assert main(["segment", "--data", seg, "--split", "val", "--checkpoint", str(tmp_path / "run" / "best.safetensors"),
                 "--out", str(tmp_path / "pred"), *COMMON]) == 0
    for image_id in open_split(seg, "val").ids:
        values = np.unique(load_label_png(tmp_path / "pred" / f"{image_id}.png"))
        assert set(values.tolist()) <= set(range(len(PERMUTED)))


def test_labelled_folder_trains_pseudo_labels_maps_concepts_and_evaluate_refuses(sets, tmp_path, capsys):
    tagged = str(sets["tagged"])
    assert main(["train", "--data", tagged, "--split", "train", "--val-split", "val", "--out", str(tmp_path / "run"),
                 "--model", "glnet_tiny", "--epochs", "1", "--batch-size", "4", "--input-size", "64", "--workers", "0",
                 "--threads", "1", *COMMON]) == 0
    config = json.loads((tmp_path / "run" / "last.json").read_text())
    assert config["class_names"] == ["triangle", "cross", "circle", "square"]   # every class but the background
    assert main(["pseudo-label", "--data", tagged, "--split", "val", "--out", str(tmp_path / "pseudo"), "--no-crf",
                 "--workers", "0", *COMMON]) == 0
    ids = open_split(tagged, "val").ids
    for image_id in ids:
        assert set(np.unique(load_label_png(tmp_path / "pseudo" / f"{image_id}.png")).tolist()) <= {0, 1, 2, 3, 4}
    assert main(["atlas", "--data", tagged, "--split", "val", "--block", "-1", "--clusters", "2", "--out",
                 str(tmp_path / "atlas"), "--input-size", "64", "--examples", "1", "--resamples", "10", *COMMON]) == 0
    atlas = json.loads((tmp_path / "atlas" / "atlas.json").read_text())
    assert atlas["class_names"] is None and "purity" not in atlas["blocks"][0]   # no masks: no purity
    capsys.readouterr()
    assert main(["evaluate", "--data", tagged, "--split", "val", "--pred", str(tmp_path / "pseudo"),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "evaluate needs ground-truth masks" in err and tagged in err


def test_a_segmenter_trained_on_one_numbering_segments_another(sets, tmp_path):
    """segment-train on the VOC original (ground truth), segment both copies: the same masks, each in its own ids."""
    voc, seg = str(sets["voc"]), str(sets["seg"])
    assert main(["segment-train", "--data", voc, "--split", "train", "--val-split", "none", "--epochs", "1",
                 "--backbone", "glnet_tiny",
                 "--max-steps", "1", "--batch-size", "2", "--input-size", "64", "--decoder-channels", "16",
                 "--workers", "0", "--out", str(tmp_path / "run"), *COMMON]) == 0
    checkpoint = str(tmp_path / "run" / "last.safetensors")
    for name, data in (("voc", voc), ("seg", seg)):
        assert main(["segment", "--data", data, "--split", "val", "--checkpoint", checkpoint,
                     "--out", str(tmp_path / name), *COMMON]) == 0
    for image_id in open_split(seg, "val").ids:
        assert np.array_equal(_permute(load_label_png(tmp_path / "voc" / f"{image_id}.png")),
                              load_label_png(tmp_path / "seg" / f"{image_id}.png"))
