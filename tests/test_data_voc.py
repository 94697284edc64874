"""Tests of the PASCAL VOC layout reader, the palette, label PNGs, cls_labels files."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from glmix_viz.data.voc import VOC_CLASSES, VOCDataset, read_cls_labels
from glmix_viz.errors import DataError, ImageLoadError
from glmix_viz.labels import label_to_pil

HEIGHT, WIDTH = 12, 16


def _xml(objects: list[tuple[str, int, int]]) -> str:
    """VOC XML with objects ``(name, difficult, truncated)``, plus a person part that must not count as an object."""
    body = "".join(
        f"<object><name>{name}</name><pose>Left</pose><truncated>{truncated}</truncated>"
        f"<difficult>{difficult}</difficult><bndbox><xmin>2</xmin><ymin>3</ymin><xmax>10</xmax><ymax>9</ymax></bndbox>"
        "<part><name>head</name><bndbox><xmin>2</xmin><ymin>3</ymin><xmax>4</xmax><ymax>5</ymax></bndbox></part>"
        "</object>"
        for name, difficult, truncated in objects
    )
    return f"<annotation><filename>x.jpg</filename><size><width>{WIDTH}</width><height>{HEIGHT}</height>" \
           f"<depth>3</depth></size>{body}</annotation>"


def _mask(values: list[int]) -> np.ndarray:
    """A (HEIGHT, WIDTH) mask: vertical bands with the given labels."""
    mask = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    for index, value in enumerate(values):
        mask[:, index * 4:(index + 1) * 4] = value
    return mask


@pytest.fixture()
def voc_tree(tmp_path: Path) -> Path:
    """``tmp/data/VOCdevkit/VOC2012`` with three images; returns the ``data`` folder."""
    root = tmp_path / "data" / "VOCdevkit" / "VOC2012"
    for folder in ("JPEGImages", "Annotations", "SegmentationClass", "SegmentationClassAug",
                   "ImageSets/Segmentation", "ImageSets/Main"):
        (root / folder).mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = {"2007_000032": ".jpg", "2007_000039": ".jpg", "2008_000002": ".png"}
    for image_id, extension in images.items():
        pixels = rng.integers(0, 256, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "JPEGImages" / f"{image_id}{extension}")
    (root / "Annotations" / "2007_000032.xml").write_text(_xml([("aeroplane", 0, 0), ("person", 1, 0)]))
    (root / "Annotations" / "2007_000039.xml").write_text(_xml([("dog", 0, 1), ("dog", 0, 0)]))
    (root / "Annotations" / "2008_000002.xml").write_text(_xml([("cat", 0, 1)]))
    label_to_pil(_mask([0, 1, 15, 255])).save(root / "SegmentationClass" / "2007_000032.png")
    label_to_pil(_mask([0, 12, 12, 0])).save(root / "SegmentationClass" / "2007_000039.png")
    label_to_pil(_mask([3, 3, 3, 3])).save(root / "SegmentationClassAug" / "2007_000032.png")  # must not win
    label_to_pil(_mask([0, 8, 255, 8])).save(root / "SegmentationClassAug" / "2008_000002.png")
    (root / "ImageSets/Segmentation/train.txt").write_text("2007_000032\n2007_000039\n")
    (root / "ImageSets/Segmentation/val.txt").write_text("2008_000002\n")
    (root / "ImageSets/Main/trainval_cls.txt").write_text("2007_000032  1\n2008_000002 -1\n")
    (root / "train_aug.txt").write_text(
        "/JPEGImages/2007_000039.jpg /SegmentationClassAug/2007_000039.png\n"
        "/JPEGImages/2008_000002.png /SegmentationClassAug/2008_000002.png\n\n"
    )
    return tmp_path / "data"


# -- layout --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("level", ["data", "data/VOCdevkit", "data/VOCdevkit/VOC2012"])
def test_root_is_found_from_three_levels(voc_tree: Path, level: str):
    dataset = VOCDataset(voc_tree.parent / level, "train")
    assert dataset.root == voc_tree / "VOCdevkit" / "VOC2012"
    assert dataset.ids == ["2007_000032", "2007_000039"]
    assert dataset.class_names == VOC_CLASSES and dataset.num_classes == 21


def test_missing_root_and_missing_split_name_the_path(tmp_path: Path, voc_tree: Path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty.*JPEGImages"):
        VOCDataset(tmp_path / "empty", "train")
    with pytest.raises(DataError, match="does not exist"):
        VOCDataset(tmp_path / "nowhere", "train")
    with pytest.raises(DataError, match="'test'.*not found"):
        VOCDataset(voc_tree, "test")


def test_split_lists_in_other_places(voc_tree: Path):
    assert VOCDataset(voc_tree, "train_aug").ids == ["2007_000039", "2008_000002"]  # root-level, path-like lines
    assert VOCDataset(voc_tree, "trainval_cls").ids == ["2007_000032", "2008_000002"]  # ImageSets/Main, "id  1" lines
    assert VOCDataset(voc_tree, None).ids == ["2007_000032", "2007_000039", "2008_000002"]


def test_image_labels_from_xml(voc_tree: Path):
    dataset = VOCDataset(voc_tree, "train")
    labels = dataset.image_labels("2007_000032")
    assert labels.shape == (20,) and labels.dtype == np.float32
    expected = np.zeros(20, dtype=np.float32)
    expected[[VOC_CLASSES.index("aeroplane") - 1, VOC_CLASSES.index("person") - 1]] = 1
    assert np.array_equal(labels, expected)  # the difficult person counts; the "head" part does not
    strict = VOCDataset(voc_tree, "train", include_difficult=False)
    assert np.flatnonzero(strict.image_labels("2007_000032")).tolist() == [0]
    dog = dataset.image_labels("2007_000039")
    assert np.flatnonzero(dog).tolist() == [VOC_CLASSES.index("dog") - 1]
    objects = dataset.objects("2007_000039")
    assert [(obj.name, obj.truncated, obj.bbox) for obj in objects] == [("dog", True, (2, 3, 10, 9)),
                                                                       ("dog", False, (2, 3, 10, 9))]


def test_masks_prefer_segmentation_class_and_fall_back_to_aug(voc_tree: Path):
    dataset = VOCDataset(voc_tree, "train")
    assert np.array_equal(dataset.load_mask("2007_000032"), _mask([0, 1, 15, 255]))
    assert np.array_equal(dataset.load_mask("2008_000002"), _mask([0, 8, 255, 8]))
    (dataset.root / "SegmentationClass" / "2007_000039.png").unlink()
    assert dataset.load_mask("2007_000039") is None


def test_samples_and_images(voc_tree: Path):
    dataset = VOCDataset(voc_tree, "val")
    assert len(dataset) == 1
    sample = dataset[0]
    assert sample.id == "2008_000002"
    assert sample.image.shape == (HEIGHT, WIDTH, 3) and sample.image.dtype == np.uint8
    # PNG is lossless: the decoded image equals what the fixture wrote.
    written = np.asarray(Image.open(dataset.root / "JPEGImages" / "2008_000002.png"))
    assert np.array_equal(sample.image, written)
    assert np.flatnonzero(sample.labels).tolist() == [VOC_CLASSES.index("cat") - 1]
    assert sample.mask.shape == (HEIGHT, WIDTH)
    (dataset.root / "JPEGImages" / "2008_000002.png").unlink()
    with pytest.raises(ImageLoadError, match="2008_000002"):
        dataset[0]


def test_missing_or_bad_annotation_names_id_and_file(voc_tree: Path):
    dataset = VOCDataset(voc_tree, "train")
    (dataset.root / "Annotations" / "2007_000039.xml").unlink()
    with pytest.raises(DataError, match=r"2007_000039\.xml.*'2007_000039'"):
        dataset.image_labels("2007_000039")
    (dataset.root / "Annotations" / "2007_000032.xml").write_text(_xml([("unicorn", 0, 0)]))
    with pytest.raises(DataError, match="unknown class 'unicorn'"):
        dataset.image_labels("2007_000032")
    (dataset.root / "Annotations" / "2007_000032.xml").write_text("<annotation><object>")
    with pytest.raises(DataError, match="cannot parse"):
        dataset.image_labels("2007_000032")


def test_class_list_file_overrides_voc_names(voc_tree: Path):
    root = voc_tree / "VOCdevkit" / "VOC2012"
    (root / "classes.json").write_text(json.dumps({"classes": ["background", "dog", "cat"]}))
    dataset = VOCDataset(voc_tree, "train_aug")
    assert dataset.class_names == ("background", "dog", "cat")
    assert dataset.image_labels("2007_000039").tolist() == [1.0, 0.0]
    assert dataset.image_labels("2008_000002").tolist() == [0.0, 1.0]


# -- cls_labels files ----------------------------------------------------------------------------------------------

def _vector(*classes: str) -> np.ndarray:
    vector = np.zeros(20, dtype=np.float32)
    for name in classes:
        vector[VOC_CLASSES.index(name) - 1] = 1
    return vector


def test_cls_labels_npy_irn_style_is_used_without_xml(voc_tree: Path):
    root = voc_tree / "VOCdevkit" / "VOC2012"
    # IRN keys VOC ids as integers (2007_000039 -> 2007000039).
    np.save(root / "cls_labels.npy", {2007000039: _vector("bus"), 2008000002: _vector("cow", "sheep")})
    dataset = VOCDataset(voc_tree, "train_aug")
    assert np.array_equal(dataset.image_labels("2007_000039"), _vector("dog"))  # XML wins when it exists
    (root / "Annotations" / "2007_000039.xml").unlink()
    assert np.array_equal(dataset.image_labels("2007_000039"), _vector("bus"))
    only_file = VOCDataset(voc_tree, "train_aug", label_source="cls_labels")
    assert np.array_equal(only_file.image_labels("2008_000002"), _vector("cow", "sheep"))


def test_cls_labels_json_and_npz(tmp_path: Path):
    (tmp_path / "l.json").write_text(json.dumps({"a": [0, 1, 0]}))
    assert read_cls_labels(tmp_path / "l.json")["a"].tolist() == [0.0, 1.0, 0.0]
    np.savez(tmp_path / "l.npz", b=np.array([1, 0], dtype=np.float32))
    assert read_cls_labels(tmp_path / "l.npz")["b"].tolist() == [1.0, 0.0]


def _create_marker(path: str) -> None:
    Path(path).write_text("code ran")


class _Malicious:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (_create_marker, (str(self.marker),))


def test_cls_labels_npy_never_runs_code_from_the_file(tmp_path: Path):
    marker = tmp_path / "marker"
    np.save(tmp_path / "cls_labels.npy", {"a": _Malicious(marker)}, allow_pickle=True)
    assert not marker.exists()
    with pytest.raises(DataError, match="refusing to load"):
        read_cls_labels(tmp_path / "cls_labels.npy")
    assert not marker.exists()
    # The same file really is a code-running pickle: plain np.load(allow_pickle=True) runs it.
    np.load(tmp_path / "cls_labels.npy", allow_pickle=True)
    assert marker.exists()


def test_cls_labels_npy_from_older_numpy_and_other_pickle_protocols(tmp_path: Path):
    labels = np.array({"x": np.arange(3, dtype=np.float32)}, dtype=object)
    for protocol in (2, 3, 4, 5):
        payload = pickle.dumps(labels, protocol=protocol)
        variants = {"new": payload}
        if protocol == 2:  # numpy 1.x (which wrote IRN's files) names its module numpy.core instead of numpy._core
            variants["legacy"] = payload.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
            assert variants["legacy"] != payload
        for name, data in variants.items():
            path = tmp_path / f"p{protocol}_{name}.npy"
            with open(path, "wb") as handle:
                np.lib.format.write_array_header_1_0(handle, {"descr": "|O", "fortran_order": False, "shape": ()})
                handle.write(data)
            assert read_cls_labels(path)["x"].tolist() == [0.0, 1.0, 2.0]
