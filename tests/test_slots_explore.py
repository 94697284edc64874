"""glmix_viz.slots.explore: the answers the explorer and the notebooks show, checked against hand-computed values."""

from __future__ import annotations

import io

import numpy as np
import pytest
import timm
import torch

from glmix_viz.slots.explore import (
    Exploration,
    assignment_arrays,
    explore_image,
    map_cell,
    pixel_distributions,
    predicted_classes,
    slot_areas,
    slot_class_evidence,
    slot_flow,
    top_predictions,
)
from glmix_viz.files import npz_bytes
from glmix_viz.images import to_tensor
from glmix_viz.probe import GroupingRecord


def _exploration(blocks: dict, image_size=(4, 4)) -> Exploration:
    """An Exploration from hand-written logits ``{name: (S, h, w)}``."""
    records = {
        name: GroupingRecord(name, torch.tensor(logits, dtype=torch.float32)[None], torch.zeros(1, len(logits), 2),
                             torch.zeros(1, len(logits), 2))
        for name, logits in blocks.items()
    }
    image = np.zeros((*image_size, 3), dtype=np.uint8)
    return Exploration(image, image_size, records, np.zeros(0, np.float32), None, [])


# Two slots on a 2x2 grid: slot 0 certain on the left column, slot 1 on the right column (logit gap 50: softmax ~1/0).
LEFT_RIGHT = np.array([[[50.0, 0.0], [50.0, 0.0]], [[0.0, 50.0], [0.0, 50.0]]])


def test_slot_areas_hard_share_and_soft_mass() -> None:
    # 3 slots on 1x4 pixels; pixel logits chosen so that the dispatch weights are easy: equal logits -> 1/3 each.
    logits = np.array([[[9.0, 9.0, 0.0, 0.0]], [[0.0, 0.0, 9.0, 0.0]], [[0.0, 0.0, 0.0, 0.0]]])
    hard, soft = slot_areas(logits)
    np.testing.assert_allclose(hard, [0.75, 0.25, 0.0])  # the last pixel ties 0/1/2: arg-max picks slot 0
    near_one = 1 / (1 + 2 * np.exp(-9.0))
    expected_soft = np.array([2 * near_one + (1 - near_one) / 2 + 1 / 3, near_one + 2 * (1 - near_one) / 2 + 1 / 3,
                              2 * (1 - near_one) / 2 + (1 - near_one) / 2 + 1 / 3]) / 4
    np.testing.assert_allclose(soft, expected_soft, rtol=1e-6)
    assert soft.sum() == pytest.approx(1.0)


def test_slot_class_evidence_is_the_cluster_weighted_mean_of_the_cam() -> None:
    cam = np.array([[[1.0, 3.0], [1.0, 3.0]], [[2.0, 2.0], [0.0, 0.0]]])  # class 0 grows to the right; class 1 on top
    evidence = slot_class_evidence(cam, LEFT_RIGHT)
    np.testing.assert_allclose(evidence, [[1.0, 1.0], [3.0, 1.0]], atol=1e-6)


def test_slot_flow_follows_the_pixels_into_the_next_block() -> None:
    # Next block: 3 slots on a 1x2 grid; the left pixel belongs to slot 2, the right one to slot 0.
    later = np.array([[[0.0, 50.0]], [[0.0, 0.0]], [[50.0, 0.0]]])
    exploration = _exploration({"a": LEFT_RIGHT, "b": later})
    flows = slot_flow(exploration, "a", 0)
    assert list(flows) == ["b"]
    np.testing.assert_allclose(flows["b"], [0.0, 0.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(slot_flow(exploration, 0, 1)["b"], [1.0, 0.0, 0.0], atol=1e-6)
    assert slot_flow(exploration, "b", 2) == {}
    with pytest.raises(ValueError, match="slot 5 is out of range"):
        slot_flow(exploration, "a", 5)


def test_pixel_distributions_read_the_cell_covering_the_pixel() -> None:
    exploration = _exploration({"a": LEFT_RIGHT}, image_size=(4, 4))
    np.testing.assert_allclose(pixel_distributions(exploration, 3, 1)["a"], [1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(pixel_distributions(exploration, 0, 2)["a"], [0.0, 1.0], atol=1e-6)
    with pytest.raises(ValueError, match="outside"):
        pixel_distributions(exploration, 4, 0)
    assert map_cell((2, 3), (4, 6), 3, 5) == (1, 2)
    assert map_cell((7, 7), (224, 224), 31, 32) == (0, 1)  # 32 image pixels per cell


def test_top_predictions_order_names_and_ties() -> None:
    top = top_predictions(np.array([0.1, 0.4, 0.1, 0.4]), ["a", "b", "c", "d"], k=3)
    assert [(p.index, p.name) for p in top] == [(1, "b"), (3, "d"), (0, "a")]
    assert top[0].probability == pytest.approx(0.4)
    assert len(top_predictions(np.array([1.0]), ["only"], k=5)) == 1


def test_explore_image_on_a_small_glnet_and_npz_round_trip() -> None:
    torch.manual_seed(0)
    model = timm.create_model("glnet_tiny", num_classes=3).eval()
    image = np.random.default_rng(0).integers(0, 256, (70, 100, 3), dtype=np.uint8)
    exploration = explore_image(model, image, input_size=64)
    assert exploration.input_size == (32, 64)  # 100 -> 64 wide, 70 -> 44.8 -> rounded to 32
    assert exploration.block_names[0] == "stages.0.blocks.0"
    assert exploration.dispatch(0).shape == (16, 8, 16)
    np.testing.assert_allclose(exploration.dispatch(0).sum(axis=0), 1.0, atol=1e-5)
    with torch.inference_mode():
        expected_logits = model(to_tensor(image, size=64))[0].numpy()
    np.testing.assert_allclose(exploration.logits, expected_logits, rtol=1e-5, atol=1e-6)
    assert exploration.probabilities.sum() == pytest.approx(1.0, abs=1e-6)
    assert exploration.cam is not None and exploration.cam.shape[0] == 3 and (exploration.cam >= 0).all()
    assert exploration.class_names == ["class 0", "class 1", "class 2"]
    arrays = assignment_arrays(exploration)
    loaded = np.load(io.BytesIO(npz_bytes(arrays)))
    np.testing.assert_array_equal(loaded["stages.0.blocks.0.logits"], exploration.record(0).logits[0].numpy())
    np.testing.assert_array_equal(loaded["stages.0.blocks.0.hard"], exploration.hard(0))
    np.testing.assert_array_equal(loaded["input_size"], [32, 64])


def test_predicted_classes_are_those_above_one_half_and_never_none() -> None:
    assert predicted_classes(np.array([0.9, 0.2, 0.7, 0.5])) == (0, 2)  # 0.5 itself is not above one half
    assert predicted_classes(np.array([0.3, 0.45, 0.1])) == (1,)  # none above: the most probable one
    assert predicted_classes(np.array([0.97, 0.99, 0.98]), threshold=0.985) == (1,)
    assert predicted_classes(np.zeros(0)) == ()


def test_an_exploration_is_frozen_and_its_arrays_are_read_only() -> None:
    import dataclasses

    torch.manual_seed(0)
    model = timm.create_model("glnet_tiny", num_classes=3).eval()
    image = np.full((64, 64, 3), 120, np.uint8)
    exploration = explore_image(model, image, input_size=64)
    with pytest.raises(dataclasses.FrozenInstanceError):
        exploration.logits = np.zeros(3, np.float32)
    with pytest.raises(TypeError):
        exploration.records["another"] = exploration.record(0)
    arrays = {"image": exploration.image, "logits": exploration.logits, "cam": exploration.cam,
              "dispatch": exploration.dispatch(0), "cluster": exploration.cluster(0), "hard": exploration.hard(0),
              "block_logits": exploration.block_logits(0)}
    for name, array in arrays.items():
        with pytest.raises(ValueError, match="read-only"):
            array[...] = 0
    assert image.flags.writeable  # the caller's own array keeps its flags
    np.testing.assert_array_equal(exploration.block_logits(0), exploration.record(0).logits[0].numpy())
