"""Tests of the synthetic shapes generator: determinism, VOC layout, masks consistent with labels, occlusion."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from glmix_viz.data.shapes import (
    DEFAULT_SHAPE_CLASSES,
    SHAPE_CLASSES,
    ShapesConfig,
    make_shapes,
    render_shapes_image,
)
from glmix_viz.data.voc import VOCDataset, load_label_png, palette_bytes
from glmix_viz.errors import DataError

SMALL = dict(num_train=6, num_val=3)
SMALL_CONFIG = ShapesConfig(image_size=64)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shapes") / "set"
    make_shapes(root, SMALL_CONFIG, seed=7, num_test=2, progress=False, **SMALL)
    return root


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path: Path, shapes_root: Path):
    summary = make_shapes(tmp_path / "again", SMALL_CONFIG, seed=7, num_test=2, progress=False, **SMALL)
    assert summary["splits"] == {"train": 6, "val": 3, "test": 2}
    first, second = _files(shapes_root), _files(tmp_path / "again")
    assert first.keys() == second.keys()
    assert all(first[name] == second[name] for name in first)
    make_shapes(tmp_path / "other", SMALL_CONFIG, seed=8, num_test=2, progress=False, **SMALL)
    other = _files(tmp_path / "other")
    images = [name for name in first if name.startswith("JPEGImages")]
    assert len(images) == 11 and all(first[name] != other[name] for name in images)


def test_validation_images_do_not_depend_on_the_training_set_size(tmp_path: Path, shapes_root: Path):
    make_shapes(tmp_path / "bigger", ShapesConfig(image_size=64), seed=7, num_train=9, num_val=3, progress=False)
    for image_id in ("val_000000", "val_000002", "train_000005"):
        name = f"JPEGImages/{image_id}.png"
        assert (tmp_path / "bigger" / name).read_bytes() == (shapes_root / name).read_bytes()


def test_layout_is_read_by_the_voc_reader(shapes_root: Path):
    expected_files = {"classes.txt", "shapes_meta.json", "ImageSets/Segmentation/train.txt",
                      "ImageSets/Segmentation/val.txt", "ImageSets/Segmentation/test.txt",
                      "ImageSets/Segmentation/trainval.txt"}
    assert expected_files <= set(_files(shapes_root))
    train = VOCDataset(shapes_root, "train")
    assert train.class_names == ("background", *DEFAULT_SHAPE_CLASSES)
    assert train.ids == [f"train_{index:06d}" for index in range(6)]
    assert len(VOCDataset(shapes_root, "trainval")) == 9
    meta = json.loads((shapes_root / "shapes_meta.json").read_text())
    assert meta["seed"] == 7 and meta["splits"] == {"train": 6, "val": 3, "test": 2}
    sample = VOCDataset(shapes_root, "test")[1]
    assert sample.image.shape == (64, 64, 3) and sample.mask.shape == (64, 64)


def test_labels_boxes_and_masks_agree(shapes_root: Path):
    dataset = VOCDataset(shapes_root, "trainval")
    for image_id in dataset.ids:
        class_mask = dataset.load_mask(image_id)
        instance_mask = load_label_png(shapes_root / "SegmentationObject" / f"{image_id}.png")
        objects = dataset.objects(image_id)
        assert 1 <= len(objects) <= 3
        labelled = {index + 1 for index in np.flatnonzero(dataset.image_labels(image_id))}
        assert labelled == set(np.unique(class_mask).tolist()) - {0}
        assert set(np.unique(instance_mask).tolist()) == set(range(len(objects) + 1))
        for instance, obj in enumerate(objects, start=1):
            pixels = instance_mask == instance
            assert np.unique(class_mask[pixels]).tolist() == [dataset.class_names.index(obj.name)]
            ys, xs = np.nonzero(pixels)
            assert obj.bbox == (xs.min() + 1, ys.min() + 1, xs.max() + 1, ys.max() + 1)  # 1-based, visible part
        assert np.array_equal(class_mask == 0, instance_mask == 0)


def test_masks_are_palette_pngs_with_the_voc_palette(shapes_root: Path):
    for folder in ("SegmentationClass", "SegmentationObject"):
        with Image.open(shapes_root / folder / "train_000000.png") as image:
            assert image.mode == "P"
            assert image.getpalette()[:768] == palette_bytes()


def test_rendering_objects_counts_occlusion_and_visibility():
    config = ShapesConfig(image_size=96, classes=SHAPE_CLASSES)
    samples = [render_shapes_image(np.random.default_rng(index), config) for index in range(40)]
    counts = [len(sample.objects) for sample in samples]
    assert min(counts) >= 1 and max(counts) <= 3 and len(set(counts)) > 1
    occluded = 0
    for sample in samples:
        assert sample.image.dtype == np.uint8 and sample.image.shape == (96, 96, 3)
        for obj in sample.objects:
            visible = int((sample.instance_mask == obj.instance).sum())
            assert visible == obj.visible_area and visible >= 0.5 * obj.area
            occluded += visible < obj.area
    assert occluded >= 1
    again = render_shapes_image(np.random.default_rng(3), config)
    assert np.array_equal(again.image, samples[3].image) and np.array_equal(again.class_mask, samples[3].class_mask)


def test_shapes_differ_by_outline_not_colour():
    """Every class keeps its area-to-radius ratio across colours and textures; shapes differ from each other."""
    ratios: dict[str, list[float]] = {name: [] for name in SHAPE_CLASSES}
    textures = set()
    for index in range(60):
        sample = render_shapes_image(np.random.default_rng(100 + index), image_size=128, classes=SHAPE_CLASSES,
                                     max_objects=1)
        (obj,) = sample.objects
        textures.add(obj.texture)
        if not obj.truncated:
            ratios[obj.class_name].append(obj.area / obj.radius**2)
    assert len(textures) >= 4
    means = {name: np.mean(values) for name, values in ratios.items() if values}
    assert len(means) >= 5
    for name, values in ratios.items():
        if values:
            assert np.ptp(values) < 0.5, name  # the same outline at every size
    assert means["circle"] == pytest.approx(np.pi, rel=0.1)


def test_boundary_band_and_options():
    plain = render_shapes_image(np.random.default_rng(5), image_size=64)
    banded = render_shapes_image(np.random.default_rng(5), image_size=64, boundary_width=1)
    assert 255 not in plain.class_mask
    band = banded.class_mask == 255
    assert band.any()
    assert np.array_equal(banded.class_mask[~band], plain.class_mask[~band])
    with pytest.raises(ValueError, match="classes"):
        ShapesConfig(classes=("circle", "hexagon"))
    assert ShapesConfig(classes=5).classes == SHAPE_CLASSES[:5]


def test_existing_output_needs_overwrite_and_jpeg_is_readable(tmp_path: Path):
    make_shapes(tmp_path / "d", ShapesConfig(image_size=48), seed=1, num_train=2, num_val=1, progress=False)
    with pytest.raises(DataError, match="overwrite"):
        make_shapes(tmp_path / "d", ShapesConfig(image_size=48), seed=1, num_train=2, num_val=1, progress=False)
    make_shapes(tmp_path / "d", ShapesConfig(image_size=48), seed=1, num_train=3, num_val=0, image_format="jpg",
                overwrite=True, progress=False)
    assert sorted(path.name for path in (tmp_path / "d" / "JPEGImages").iterdir()) == [
        "train_000000.jpg", "train_000001.jpg", "train_000002.jpg"]
    sample = VOCDataset(tmp_path / "d", "train")[2]
    assert sample.image.shape == (48, 48, 3)
