"""COCO-2014 reader: ids, class order, image labels, 81-class masks (crowd 255), the cache, and ``--coco-root``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from glmix_viz.errors import DataError


def _rle(mask: np.ndarray) -> dict:
    from pycocotools import mask as mask_utils

    encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": list(encoded["size"]), "counts": encoded["counts"].decode("ascii")}


def _box(height: int, width: int, top: int, left: int, bottom: int, right: int) -> np.ndarray:
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[top:bottom, left:right] = 1
    return mask


def write_coco_fixture(root: Path) -> dict:
    """A COCO-2014 layout by hand: 3 categories with gaps in their ids, 3 val images (one without annotations).

    Image 1 (40x48): a large "dog" (category 18) box, a small "person" (category 1) box inside it, a crowd "kite"
    (category 38) box elsewhere. Image 2 (32x32): one polygon "person". Image 3: no annotation (not in the split).
    Returns the expected masks by id.
    """
    categories = [{"id": 38, "name": "kite"}, {"id": 1, "name": "person"}, {"id": 18, "name": "dog"}]  # unsorted
    files = {1: ("COCO_val2014_000000000001.jpg", 40, 48), 2: ("COCO_val2014_000000000002.jpg", 32, 32),
             3: ("COCO_val2014_000000000003.jpg", 32, 32)}
    dog, person, crowd = _box(40, 48, 5, 5, 35, 30), _box(40, 48, 10, 10, 20, 18), _box(40, 48, 2, 34, 30, 46)
    annotations = [
        {"id": 10, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": float(person.sum()),
         "segmentation": _rle(person), "bbox": [10, 10, 8, 10]},
        {"id": 11, "image_id": 1, "category_id": 18, "iscrowd": 0, "area": float(dog.sum()),
         "segmentation": _rle(dog), "bbox": [5, 5, 25, 30]},
        {"id": 12, "image_id": 1, "category_id": 38, "iscrowd": 1, "area": float(crowd.sum()),
         "segmentation": _rle(crowd), "bbox": [34, 2, 12, 28]},
        {"id": 13, "image_id": 2, "category_id": 1, "iscrowd": 0, "area": 256.0,
         "segmentation": [[8.0, 8.0, 24.0, 8.0, 24.0, 24.0, 8.0, 24.0]], "bbox": [8, 8, 16, 16]},
    ]
    for name in ("train2014", "val2014", "annotations"):
        (root / name).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    images = []
    for image_id, (file_name, height, width) in files.items():
        Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(root / "val2014" / file_name)
        images.append({"id": image_id, "file_name": file_name, "height": height, "width": width})
    instances = {"images": images, "annotations": annotations, "categories": categories}
    (root / "annotations" / "instances_val2014.json").write_text(json.dumps(instances))
    (root / "annotations" / "instances_train2014.json").write_text(json.dumps(
        {"images": [], "annotations": [], "categories": categories}))
    # labels: person 1, dog 2, kite 3 (increasing category id)
    expected_1 = np.zeros((40, 48), dtype=np.uint8)
    expected_1[crowd > 0] = 255
    expected_1[dog > 0] = 2
    expected_1[person > 0] = 1
    return {"COCO_val2014_000000000001": expected_1}


@pytest.fixture()
def coco_root(tmp_path: Path) -> Path:
    write_coco_fixture(tmp_path / "coco")
    return tmp_path / "coco"


def test_ids_classes_and_labels(coco_root: Path) -> None:
    from glmix_viz.data.coco import COCODataset

    dataset = COCODataset(coco_root, "val")
    assert dataset.ids == ["COCO_val2014_000000000001", "COCO_val2014_000000000002"]  # image 3 has no annotation
    assert dataset.class_names == ("background", "person", "dog", "kite")
    assert dataset.num_classes == 4
    np.testing.assert_array_equal(dataset.image_labels("COCO_val2014_000000000001"), [1, 1, 1])  # crowd counts
    np.testing.assert_array_equal(dataset.image_labels("COCO_val2014_000000000002"), [1, 0, 0])
    assert dataset.load_image("COCO_val2014_000000000001").shape == (40, 48, 3)


def test_mask_crowd_ignored_small_object_on_top(coco_root: Path) -> None:
    from glmix_viz.data.coco import COCODataset

    expected = write_coco_fixture(coco_root)
    dataset = COCODataset(coco_root, "val2014")
    mask = dataset.load_mask("COCO_val2014_000000000001")
    np.testing.assert_array_equal(mask, expected["COCO_val2014_000000000001"])
    polygon = dataset.load_mask("COCO_val2014_000000000002")
    assert polygon.shape == (32, 32) and polygon[16, 16] == 1 and polygon[2, 2] == 0 and polygon[28, 28] == 0
    assert set(np.unique(polygon)) == {0, 1}


def test_mask_cache_is_written_and_read_back(coco_root: Path, tmp_path: Path) -> None:
    from glmix_viz.data.coco import COCODataset
    from glmix_viz.data.voc import label_to_pil, load_label_png

    cache = tmp_path / "cache"
    dataset = COCODataset(coco_root, "val", mask_cache=cache)
    built = dataset.load_mask("COCO_val2014_000000000001")
    cached = cache / "COCO_val2014_000000000001.png"
    np.testing.assert_array_equal(load_label_png(cached), built)
    assert dataset.mask_path("COCO_val2014_000000000001") == cached
    label_to_pil(np.full_like(built, 3)).save(cached)  # the cache wins over the annotations once written
    assert (dataset.load_mask("COCO_val2014_000000000001") == 3).all()
    assert not list(cache.glob(".*.tmp"))


def test_bad_root_and_split_are_one_line_errors(tmp_path: Path, coco_root: Path) -> None:
    from glmix_viz.data.coco import COCODataset

    with pytest.raises(DataError, match="instances_val2014.json"):
        COCODataset(tmp_path, "val")
    with pytest.raises(DataError, match="unknown COCO split"):
        COCODataset(coco_root, "test2015")
    with pytest.raises(DataError, match="no annotated image"):
        COCODataset(coco_root, "train")


def test_evaluate_takes_coco_root(coco_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from glmix_viz.cli import main
    from glmix_viz.data.voc import label_to_pil

    expected = write_coco_fixture(coco_root)
    pred = tmp_path / "pred"
    pred.mkdir()
    truth = expected["COCO_val2014_000000000001"]
    guess = np.where(truth == 255, 0, truth).astype(np.uint8)
    guess[:, :5] = 2  # 5 columns of background called dog
    label_to_pil(guess).save(pred / "COCO_val2014_000000000001.png")
    assert main(["evaluate", "--coco-root", str(coco_root), "--split", "val", "--pred", str(pred),
                 "--missing", "skip", "--no-progress"]) == 0
    scores = json.loads((pred / "eval.json").read_text())
    valid = truth != 255
    wrong = int(((guess == 2) & (truth == 0) & valid).sum())
    dog = int(((truth == 2) & valid).sum())
    assert scores["iou"]["dog"] == pytest.approx(dog / (dog + wrong))
    assert scores["iou"]["person"] == pytest.approx(1.0)
    assert scores["iou"]["kite"] is None  # only crowd (ignored) in the ground truth, never predicted
    assert scores["missing_predictions"] == ["COCO_val2014_000000000002"]


def test_open_split_tells_coco_from_voc(coco_root: Path, tmp_path: Path) -> None:
    from glmix_viz.data.coco import COCODataset
    from glmix_viz.data.registry import open_split
    from glmix_viz.data.shapes import ShapesConfig, make_shapes
    from glmix_viz.data.voc import VOCDataset

    coco = open_split(coco_root, "val")
    assert isinstance(coco, COCODataset) and coco.background == 0 and coco.ignore == 255
    make_shapes(tmp_path / "voc", ShapesConfig(image_size=32), num_train=1, num_val=1, seed=0)
    assert isinstance(open_split(tmp_path / "voc", "val"), VOCDataset)


def test_segment_train_and_segment_take_coco_root(coco_root: Path, tmp_path: Path) -> None:
    from glmix_viz.cli import main
    from glmix_viz.data.voc import load_label_png

    common = ["--coco-root", str(coco_root), "--coco-mask-cache", str(tmp_path / "masks"), "--split", "val",
              "--device", "cpu", "--no-progress"]
    assert main(["segment-train", *common, "--backbone", "glnet_tiny", "--epochs", "1", "--batch-size", "2",
                 "--input-size", "32", "--decoder-channels", "16", "--workers", "0", "--val-split", "val",
                 "--out", str(tmp_path / "run")]) == 0
    best = json.loads((tmp_path / "run" / "best.json").read_text())
    assert best["num_classes"] == 4 and best["class_names"] == ["background", "person", "dog", "kite"]
    assert sorted(path.name for path in (tmp_path / "masks").glob("*.png")) == [
        "COCO_val2014_000000000001.png", "COCO_val2014_000000000002.png"]
    assert main(["segment", *common, "--checkpoint", str(tmp_path / "run" / "best.safetensors"),
                 "--out", str(tmp_path / "pred")]) == 0
    assert load_label_png(tmp_path / "pred" / "COCO_val2014_000000000001.png").shape == (40, 48)


def test_pseudo_label_takes_coco_root(coco_root: Path, tmp_path: Path) -> None:
    """`pseudo-label --coco-root`: one palette PNG per annotated image, named after the file stem, at its size."""
    from glmix_viz.cli import main

    out = tmp_path / "masks"
    code = main(["pseudo-label", "--coco-root", str(coco_root), "--split", "val", "--model", "glnet_tiny",
                 "--method", "cam", "--no-crf", "--input-size", "64", "--out", str(out), "--no-progress",
                 "--workers", "0", "--device", "cpu"])
    assert code == 0
    written = sorted(path.name for path in out.glob("*.png"))
    assert written == ["COCO_val2014_000000000001.png", "COCO_val2014_000000000002.png"]
    with Image.open(out / "COCO_val2014_000000000001.png") as mask:
        assert mask.mode == "P" and mask.size == (48, 40)
        assert set(np.unique(np.asarray(mask))) <= {0, 1, 2, 3, 255}
    with Image.open(out / "COCO_val2014_000000000002.png") as mask:  # only "person" is present in image 2
        assert set(np.unique(np.asarray(mask))) <= {0, 1, 255}


def test_training_split_reads_a_coco_root(coco_root: Path) -> None:
    """`finetune --coco-root` trains on `load_split`, which tells a COCO root from a VOC one."""
    from glmix_viz.train import load_split

    split = load_split(str(coco_root), "val", 32, workers=0)
    assert len(split) == 2
    assert split.split.class_names == ("background", "person", "dog", "kite")
