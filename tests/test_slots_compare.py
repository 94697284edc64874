"""``compare_groupings(model_a, model_b, image)`` keeps the two models in their places: A's blocks, slots, grouping
and probabilities are A's, B's are B's (checked against each model explored on its own)."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch

import glmix_viz.models  # noqa: F401  (registers the GLNet variants with timm)
from glmix_viz.slots.compare import compare_groupings
from glmix_viz.slots.explore import explore_image
from glmix_viz.slots.resize import upsample_labels


def test_model_a_stays_a_and_model_b_stays_b():
    torch.manual_seed(0)
    model_a = timm.create_model("glnet_tiny", num_classes=3, num_slots=4).eval()
    torch.manual_seed(1)
    model_b = timm.create_model("glnet_tiny", num_classes=3, num_slots=9).eval()
    image = np.random.default_rng(2).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    alone_a = explore_image(model_a, image, input_size=64)
    alone_b = explore_image(model_b, image, input_size=96)

    comparison = compare_groupings(model_a, model_b, image, input_size_a=64, input_size_b=96)

    block = comparison.blocks[0]
    assert (block.num_slots_a, block.num_slots_b) == (4, 9)
    np.testing.assert_array_equal(block.labels_a, upsample_labels(alone_a.hard(block.block_a), block.labels_a.shape))
    # B's grouping is relabelled onto A's slots, so compare partitions: same pixels together, whatever the names
    own_b = upsample_labels(alone_b.hard(block.block_b), block.labels_b.shape)
    pairs = set(zip(own_b.reshape(-1).tolist(), block.labels_b.reshape(-1).tolist()))
    assert len(pairs) == len({b for b, _ in pairs}) == len({r for _, r in pairs})
    by_name = {change.name: change for change in comparison.classes}
    assert sorted(by_name) == sorted(alone_a.class_names)
    for name, p_a, p_b in zip(alone_a.class_names, alone_a.probabilities, alone_b.probabilities):
        assert by_name[name].a == pytest.approx(float(p_a), abs=1e-6)
        assert by_name[name].b == pytest.approx(float(p_b), abs=1e-6)
        assert by_name[name].change == pytest.approx(float(p_b) - float(p_a), abs=1e-6)
    assert any(abs(change.change) > 1e-4 for change in comparison.classes)  # the two models do differ


def test_class_changes_come_largest_first_and_small_images_are_not_enlarged():
    torch.manual_seed(0)
    model_a = timm.create_model("glnet_tiny", num_classes=4, num_slots=4).eval()
    torch.manual_seed(3)
    model_b = timm.create_model("glnet_tiny", num_classes=4, num_slots=4).eval()
    image = np.random.default_rng(4).integers(0, 255, (40, 56, 3), dtype=np.uint8)
    comparison = compare_groupings(model_a, model_b, image, input_size_a=64, input_size_b=64, max_side=256)
    sizes = [abs(change.change) for change in comparison.classes]
    assert len(sizes) == 4 and sizes == sorted(sizes, reverse=True) and sizes[0] > sizes[-1]
    assert comparison.image.shape == (40, 56, 3)  # the common grid is the image itself when it is small enough
    assert comparison.blocks[0].labels_a.shape == (40, 56)


def test_a_model_without_classifier_is_named_and_its_classes_are_not_compared():
    from glmix_viz.slots.compare import compare_explorations

    torch.manual_seed(0)
    classifier = timm.create_model("glnet_tiny", num_classes=3, num_slots=4).eval()
    encoder = timm.create_model("glnet_tiny", num_classes=0, num_slots=4).eval()
    image = np.random.default_rng(5).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    with_head, headless = explore_image(classifier, image, input_size=32), explore_image(encoder, image, input_size=32)
    forward = compare_explorations(with_head, headless)
    backward = compare_explorations(headless, with_head)
    assert forward.classes == [] and forward.class_note.startswith("model B has no classifier")
    assert backward.classes == [] and backward.class_note.startswith("model A has no classifier")
    assert forward.blocks and backward.blocks  # the groupings are still compared


def test_block_order_skips_names_without_a_stage_and_goes_on():
    from glmix_viz.slots.compare import block_stage_order

    order = block_stage_order(["stages.0.blocks.0", "head.mixer", "stages.1.blocks.2", "stages.1.blocks.3"])
    assert order == {"stages.0.blocks.0": (0, 0), "stages.1.blocks.2": (1, 0), "stages.1.blocks.3": (1, 1)}
