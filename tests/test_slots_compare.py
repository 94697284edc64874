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
