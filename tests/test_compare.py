"""Two models side by side: blocks paired by stage, slots matched by overlap, agreement, class changes, figure."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch

import glmix_viz.models  # noqa: F401
from glmix_viz.figures import comparison_figure
from glmix_viz.grouping import untrained_copy
from glmix_viz.slots.compare import block_stage_order, compare_explorations, compare_groupings, match_blocks, match_slots
from glmix_viz.slots.explore import explore_image


def test_slots_matched_by_iou_share_an_index_and_the_rest_come_after():
    a = np.array([[0, 0, 1, 1],
                  [0, 0, 1, 1]])
    b = np.array([[5, 5, 2, 2],
                  [5, 5, 2, 3]])
    relabelled, matches = match_slots(a, b)
    # B's slot 5 is A's 0 (IoU 1), B's 2 is A's 1 (IoU 3/4); B's 3 is left over and takes the first free index, 2
    assert matches == [(0, 5, 1.0), (1, 2, 0.75)]
    assert relabelled.tolist() == [[0, 0, 1, 1], [0, 0, 1, 2]]
    assert match_slots(a, b, first_free=9)[0][1, 3] == 9


def test_blocks_pair_by_stage_and_order_and_the_rest_is_explained():
    a = ["stages.0.blocks.0", "stages.1.blocks.0", "stages.1.blocks.1", "stages.2.blocks.0"]
    b = ["stages.0.blocks.0", "stages.1.blocks.1", "stages.3.blocks.0", "head.mixer"]
    assert block_stage_order(b)["stages.1.blocks.1"] == (1, 0)  # the first GLMix block of stage 1 in model B
    pairs, unmatched = match_blocks(a, b)
    assert pairs == [("stages.0.blocks.0", "stages.0.blocks.0"), ("stages.1.blocks.0", "stages.1.blocks.1")]
    assert set(unmatched) == {"A: stages.1.blocks.1", "A: stages.2.blocks.0", "B: stages.3.blocks.0", "B: head.mixer"}
    assert "no GLMix block number 2 in stage 1" in unmatched["A: stages.1.blocks.1"]
    assert "names no stage" in unmatched["B: head.mixer"]


def test_a_model_against_itself_agrees_everywhere():
    torch.manual_seed(0)
    model = timm.create_model("glnet_tiny", num_classes=3, num_slots=4).eval()
    image = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    comparison = compare_groupings(model, model, image, input_size_a=64, input_size_b=64)
    assert [b.block_a for b in comparison.blocks] == glmix_viz.glmix_block_names(model) and not comparison.unmatched
    for block in comparison.blocks:
        assert block.agreement == pytest.approx(1.0)
        assert block.labels_b.tolist() == block.labels_a.tolist()
        assert all(iou == 1.0 for _, _, iou in block.matches)
    assert all(change.change == 0.0 for change in comparison.classes) and len(comparison.classes) == 3


def test_models_of_other_slot_counts_and_sizes_compare_and_draw(tmp_path):
    torch.manual_seed(0)
    small = timm.create_model("glnet_tiny", num_classes=3, num_slots=4).eval()
    other = timm.create_model("glnet_tiny", num_classes=2, num_slots=9).eval()
    image = np.random.default_rng(1).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    first, second = explore_image(small, image, input_size=64), explore_image(other, image, input_size=96)
    comparison = compare_explorations(first, second, max_side=30)
    assert comparison.image.shape == (20, 30, 3)
    block = comparison.blocks[0]
    assert block.num_slots_a == 4 and block.num_slots_b == 9 and block.labels_a.shape == (20, 30)
    assert -1.0 <= block.agreement <= 1.0
    assert set(np.unique(block.labels_b)) <= set(range(4 + 9))
    assert comparison.classes == [] and "different class lists" in comparison.class_note
    picture = comparison_figure(comparison, names=("small", "other"))
    assert picture.dtype == np.uint8 and picture.shape[1] >= 2 * 30
    untrained = untrained_copy(small)
    assert compare_explorations(first, explore_image(untrained, image, input_size=64)).classes


def test_images_of_other_sizes_are_refused():
    torch.manual_seed(0)
    model = timm.create_model("glnet_tiny", num_classes=3, num_slots=4).eval()
    first = explore_image(model, np.zeros((32, 32, 3), np.uint8), input_size=32)
    second = explore_image(model, np.zeros((32, 48, 3), np.uint8), input_size=32)
    with pytest.raises(ValueError, match="different images"):
        compare_explorations(first, second)


def test_block_pictures_colour_matched_slots_alike():
    from glmix_viz.figures import compared_block_pictures
    from glmix_viz.slots.compare import BlockComparison

    labels_a = np.array([[0, 0, 1, 1]] * 4)
    labels_b = np.array([[0, 0, 9, 9]] * 4)  # B's slot 9 matches nothing in A: a colour of its own
    block = BlockComparison("a", "b", 0, 0, labels_a, labels_b, num_slots_a=9, num_slots_b=12, agreement=1.0,
                            matches=[])
    image = np.zeros((8, 8, 3), np.uint8)
    first, second = compared_block_pictures(image, block, alpha=1.0, boundaries=False)
    assert first.shape == second.shape == (8, 8, 3)
    assert (first[:, :4] == second[:, :4]).all() and not (first[:, 4:] == second[:, 4:]).all()
