"""Each reader as a Split: segmentation folder, labelled folder, plain folder, VOC layout (make-shapes), COCO."""

from __future__ import annotations

import numpy as np
import pytest

from glmix_viz.data.base import Split, object_ids, object_names
from glmix_viz.data.registry import open_split
from glmix_viz.errors import DataError


def test_segmentation_folder_reads_ids_classes_masks_and_labels(segfolder):
    split = open_split(segfolder)
    assert isinstance(split, Split) and type(split).__name__ == "SegmentationFolder"
    assert split.split == "all" and split.ids == ["a", "b", "c"]
    assert split.class_names == ("cat", "background", "dog")
    assert split.background == 1 and split.ignore == 255       # background wherever it stands
    assert object_ids(split) == [0, 2] and object_names(split) == ["cat", "dog"]
    assert split.image("a").shape == (6, 8, 3) and split.image("a").dtype == np.uint8   # JPEG read
    mask = split.mask("b")
    assert mask.shape == (6, 8) and (mask[0] == 255).all() and (mask[1:, :3] == 0).all()
    assert split.labels("a").tolist() == [0.0, 1.0]     # dog only
    assert split.labels("b").tolist() == [1.0, 0.0]     # cat; 255 and background say nothing
    assert split.labels("c").tolist() == [1.0, 0.0]


def test_segmentation_folder_without_background_line(tmp_path, make_segfolder):
    split = open_split(make_segfolder(tmp_path / "s", classes=("cat", "grass", "dog")))
    assert split.background is None and object_names(split) == ["cat", "grass", "dog"]
    assert split.labels("a").tolist() == [0.0, 1.0, 1.0]


def test_segmentation_folder_splits(tmp_path, make_segfolder):
    root = make_segfolder(tmp_path / "s", splits={"train": ["a", "c"], "val": ["b"]})
    assert open_split(root, "train").ids == ["a", "c"]
    assert open_split(root, "val").ids == ["b"]
    assert open_split(root).split == "train"           # the default when there is a train list
    with pytest.raises(DataError, match=r"no such split list \(this folder has: train, val\)"):
        open_split(root, "test")


def test_all_is_the_only_split_without_split_lists(segfolder):
    with pytest.raises(DataError, match="this folder has: all"):
        open_split(segfolder, "val")


def test_labelled_folder(tagged):
    split = open_split(tagged)
    assert type(split).__name__ == "LabelledFolder" and not split.has_masks and split.has_labels
    assert split.ids == ["a", "b", "c"] and split.background == 1
    assert split.mask("a") is None
    assert split.labels("a").tolist() == [0.0, 1.0]
    assert split.labels("b").tolist() == [1.0, 1.0]
    assert split.labels("c").tolist() == [0.0, 0.0]


def test_plain_image_folder(tmp_path):
    from PIL import Image

    (tmp_path / "pics" / "sub").mkdir(parents=True)
    Image.new("RGB", (40, 30)).save(tmp_path / "pics" / "sub" / "x.png")
    split = open_split(tmp_path / "pics")
    assert split.ids == ["sub/x.png"] and split.class_names == () and split.background is None
    assert split.mask("sub/x.png") is None and not split.has_masks and not split.has_labels
    assert split.image("sub/x.png").shape == (30, 40, 3)
    with pytest.raises(DataError, match="no image-level labels"):
        split.labels("sub/x.png")


def test_voc_layout_of_make_shapes_and_the_folder_copy_agree(tmp_path):
    from glmix_viz.data.shapes import ShapesConfig, make_shapes

    config = ShapesConfig(image_size=40)
    make_shapes(tmp_path / "voc", config, num_train=2, num_val=2, seed=3, progress=False)
    make_shapes(tmp_path / "fold", config, num_train=2, num_val=2, seed=3, progress=False, layout="folder")
    voc, fold = open_split(tmp_path / "voc", "val"), open_split(tmp_path / "fold", "val")
    assert type(voc).__name__ == "VOCDataset" and type(fold).__name__ == "SegmentationFolder"
    assert voc.ids == fold.ids and voc.class_names == fold.class_names and voc.background == fold.background == 0
    for image_id in voc.ids:
        assert np.array_equal(voc.image(image_id), fold.image(image_id))
        assert np.array_equal(voc.mask(image_id), fold.mask(image_id))
        assert np.array_equal(voc.labels(image_id), fold.labels(image_id))   # from XML vs from the mask
    assert sorted(p.name for p in (tmp_path / "fold").iterdir()) == [
        "classes.txt", "images", "masks", "shapes_meta.json", "splits"]


def test_make_shapes_format_folder_command(tmp_path):
    from glmix_viz.cli import main

    assert main(["make-shapes", "--out", str(tmp_path / "f"), "--num-train", "2", "--num-val", "1", "--seed", "0",
                 "--image-size", "32", "--format", "folder"]) == 0
    split = open_split(tmp_path / "f", "train")
    assert type(split).__name__ == "SegmentationFolder" and len(split.ids) == 2


def test_coco_is_a_split():
    from glmix_viz.data.coco import COCODataset

    for name in ("image", "mask", "labels", "image_path"):
        assert callable(getattr(COCODataset, name))
    assert COCODataset.ignore == 255
