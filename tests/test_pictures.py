"""glmix_viz.pictures: the explorer's pictures, usable without the app (hand-built explorations and masks)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from glmix_viz.data.voc import voc_palette
from glmix_viz.pictures import (
    all_blocks_picture,
    block_title,
    hard_overlay,
    mask_label_ids,
    png_bytes,
    pseudo_mask_legend,
    pseudo_mask_overlay,
    slot_legend,
    soft_maps,
    thumbnail,
)
from glmix_viz.probe import GroupingRecord
from glmix_viz.slots.explore import Exploration

# Two slots on a 2x2 grid: slot 0 on the left column, slot 1 on the right one.
LEFT_RIGHT = np.array([[[50.0, 0.0], [50.0, 0.0]], [[0.0, 50.0], [0.0, 50.0]]])


def _exploration(size=(8, 8)) -> Exploration:
    records = {name: GroupingRecord(name, torch.tensor(LEFT_RIGHT, dtype=torch.float32)[None],
                                    torch.zeros(1, 2, 2), torch.zeros(1, 2, 2))
               for name in ("stages.0.blocks.0", "stages.1.blocks.0")}
    return Exploration(np.full((*size, 3), 100, np.uint8), size, records, np.zeros(0, np.float32), None, [])


def test_block_title_and_soft_maps_of_each_kind() -> None:
    exploration = _exploration()
    assert block_title(exploration, "stages.1.blocks.0") == "#2 stages.1.blocks.0 (2x2, 2 slots)"
    np.testing.assert_array_equal(soft_maps(exploration, "stages.0.blocks.0", "logits"), LEFT_RIGHT)
    np.testing.assert_allclose(soft_maps(exploration, "stages.0.blocks.0", "dispatch")[0], [[1, 0], [1, 0]],
                               atol=1e-6)
    np.testing.assert_allclose(soft_maps(exploration, "stages.0.blocks.0", "clustering")[1], [[0, 0.5], [0, 0.5]],
                               atol=1e-6)  # each slot spreads over its column's two pixels
    with pytest.raises(ValueError, match="unknown kind"):
        soft_maps(exploration, "stages.0.blocks.0", "weights")


def test_hard_overlay_colours_each_half_by_its_slot_and_opacity_zero_is_the_image() -> None:
    exploration = _exploration()
    picture = hard_overlay(exploration, "stages.0.blocks.0", alpha=1.0, boundaries=False)
    assert picture.shape == (8, 8, 3)
    assert len({tuple(picture[row, 1]) for row in range(8)}) == 1 and tuple(picture[0, 1]) != tuple(picture[0, 6])
    np.testing.assert_array_equal(hard_overlay(exploration, "stages.0.blocks.0", alpha=0.0, boundaries=False),
                                  exploration.image)


def test_all_blocks_picture_holds_the_input_and_one_panel_per_block() -> None:
    exploration = _exploration((40, 40))
    picture = all_blocks_picture(exploration, alpha=0.5)
    assert picture.dtype == np.uint8 and picture.shape[1] >= 3 * 40  # input + 2 blocks side by side


def test_slot_legend_lists_the_slots_that_win_pixels() -> None:
    legend, left_out = slot_legend(_exploration(), "stages.0.blocks.0")
    assert legend.ndim == 3 and left_out == 0
    _, left_out = slot_legend(_exploration(), "stages.0.blocks.0", max_entries=1)
    assert left_out == 1


def test_thumbnail_and_png_round_trip() -> None:
    image = np.arange(300 * 200 * 3, dtype=np.uint8).reshape(300, 200, 3)
    assert thumbnail(image, 150).shape == (150, 100, 3)
    assert thumbnail(image, 400) is not None and thumbnail(image, 400).shape == image.shape
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png_bytes(image)))), image)


def test_pseudo_mask_pictures_leave_the_background_and_name_the_classes() -> None:
    image = np.full((4, 4, 3), 50, np.uint8)
    channels = np.array([[0, 1, 1, 255], [0, 2, 2, 0], [0, 0, 0, 0], [1, 1, 2, 2]], np.uint8)
    class_indices = np.array([0, 3, 5])  # background, model classes 2 and 4
    np.testing.assert_array_equal(mask_label_ids(channels, class_indices)[0], [0, 3, 3, 255])
    big = np.array([0, 300, 301])  # label ids that do not fit a palette PNG: the channels themselves
    np.testing.assert_array_equal(mask_label_ids(channels, big), channels)
    picture = pseudo_mask_overlay(image, channels, class_indices, alpha=1.0)
    np.testing.assert_array_equal(picture[channels == 0], image[channels == 0])
    np.testing.assert_array_equal(picture[1, 1], voc_palette(256)[5])
    legend = pseudo_mask_legend(class_indices, ["a", "b", "cat", "d", "dog"])
    assert legend.ndim == 3 and legend.shape[2] == 3
