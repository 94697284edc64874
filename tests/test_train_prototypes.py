"""Tests of the cross-view prototype consistency loss of the slots (glmix_viz.train.prototypes)."""

from __future__ import annotations

import json
import math

import pytest
import timm
import torch

import glmix_viz.models  # noqa: F401
from glmix_viz.data.shapes import ShapesConfig, make_shapes
from glmix_viz.train import TrainConfig, train
from glmix_viz.train.prototypes import (
    SlotPrototypes,
    colour_flip_view,
    consistency_loss,
    pixel_prototypes,
    undo_flips,
    usage_entropy_of,
)

TINY_ARGS = {"downsample_strides": [2, 2, 1], "num_slots": 4, "mixing_modes": ["glmix", "glmix", "glmix.mha_nchw",
                                                                               "glmix"]}


def test_colour_flip_view_permutes_channels_and_flips_back():
    torch.manual_seed(0)
    images = torch.rand(6, 3, 5, 7)
    view, flip_x, flip_y = colour_flip_view(images, torch.Generator().manual_seed(1))
    assert view.shape == images.shape
    back = undo_flips(view, flip_x, flip_y)
    for i in range(6):
        # every channel of the view is some channel of the image, inverted or not, at the same (unflipped) pixels
        for c in range(3):
            matches = [torch.allclose(back[i, c], images[i, k]) or torch.allclose(back[i, c], 1 - images[i, k])
                       for k in range(3)]
            assert sum(matches) == 1
    # over 6 images the draws are not all "no flip"
    assert bool(flip_x.any() or flip_y.any())


def test_undo_flips_by_hand():
    maps = torch.arange(4.0).view(1, 1, 2, 2)  # [[0, 1], [2, 3]]
    assert undo_flips(maps, torch.tensor([True]), torch.tensor([False]))[0, 0].tolist() == [[1, 0], [3, 2]]
    assert undo_flips(maps, torch.tensor([False]), torch.tensor([True]))[0, 0].tolist() == [[2, 3], [0, 1]]
    assert undo_flips(maps, torch.tensor([False]), torch.tensor([False]))[0, 0].tolist() == [[0, 1], [2, 3]]


def test_pixel_prototypes_mix_slot_distributions():
    dispatch = torch.tensor([[[[1.0, 0.5]], [[0.0, 0.5]]]])  # (1, 2 slots, 1, 2)
    slot_probs = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])  # slot 0 -> proto 0, slot 1 -> proto 2
    pixels = pixel_prototypes(dispatch, slot_probs)
    assert pixels.shape == (1, 3, 1, 2)
    assert pixels[0, :, 0, 0].tolist() == [1.0, 0.0, 0.0]
    assert pixels[0, :, 0, 1].tolist() == [0.5, 0.0, 0.5]


def test_consistency_loss_values():
    one_hot = torch.zeros(1, 4, 1, 1)
    one_hot[0, 2] = 1
    assert float(consistency_loss(one_hot, one_hot)) == pytest.approx(0.0, abs=1e-6)
    uniform = torch.full((1, 4, 1, 1), 0.25)
    assert float(consistency_loss(uniform, uniform)) == pytest.approx(math.log(4))
    assert float(consistency_loss(one_hot, uniform)) == pytest.approx(math.log(4))


def test_usage_entropy_of():
    probs = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    assert float(usage_entropy_of(probs)) == pytest.approx(math.log(2))
    assert float(usage_entropy_of(torch.tensor([[[1.0, 0.0], [1.0, 0.0]]]))) == pytest.approx(0.0, abs=1e-6)


def test_slot_prototypes_loss_rewards_agreement():
    model = timm.create_model("glnet_tiny", num_classes=2, **{k: tuple(v) if isinstance(v, list) else v
                                                             for k, v in TINY_ARGS.items()})
    protos = SlotPrototypes(model, ["stages.0.blocks.0"], count=2, temperature=0.05, entropy_weight=1.0)
    p = torch.nn.functional.normalize(protos.prototypes[0].detach(), dim=-1)
    dispatch = torch.zeros(1, 2, 2, 2)
    dispatch[0, 0, :, 0] = 1  # slot 0 owns the left column, slot 1 the right
    dispatch[0, 1, :, 1] = 1
    slots = p.unsqueeze(0) * 5  # slot k sits on prototype k
    same = protos({"stages.0.blocks.0": (dispatch, slots)}, {"stages.0.blocks.0": (dispatch, slots)},
                  torch.tensor([False]), torch.tensor([False]))
    # the second view flipped left-right: after undoing the flip the same pixels carry the same prototypes
    flipped = protos({"stages.0.blocks.0": (dispatch, slots)}, {"stages.0.blocks.0": (dispatch.flip(-1), slots)},
                     torch.tensor([True]), torch.tensor([False]))
    swapped = protos({"stages.0.blocks.0": (dispatch, slots)}, {"stages.0.blocks.0": (dispatch, slots.flip(1))},
                     torch.tensor([False]), torch.tensor([False]))
    assert float(same["proto_consistency"]) < 0.05
    assert float(flipped["proto_consistency"]) == pytest.approx(float(same["proto_consistency"]), abs=1e-6)
    assert float(swapped["proto_consistency"]) > 2.0  # the views disagree on every pixel
    assert float(same["proto_usage"]) == pytest.approx(math.log(2), abs=0.05)


def test_train_with_prototypes_paramslot_and_mil(tmp_path):
    root = tmp_path / "shapes"
    make_shapes(root, ShapesConfig(image_size=48), num_train=8, num_val=4, seed=0, progress=False)
    config = TrainConfig.from_flat(
        data=str(root), out=str(tmp_path / "run"), model_args=dict(TINY_ARGS, slot_init="param"), epochs=1,
        batch_size=4, input_size=48, augment="flips", recon_weight=10.0, potts_weight=1.0, proto_weight=1.0,
        proto_count=3, slot_mil_weight=0.5, slot_mil_blocks=["stages.0.blocks.0"], device="cpu", workers=0,
        progress=False, threads=1)
    train(config)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    entry = log[-1]
    for key in ("proto_loss", "proto_consistency", "proto_usage", "slot_mil_loss", "recon_loss"):
        assert math.isfinite(entry[key]), key
    assert 0 < entry["proto_usage"] <= math.log(3) + 1e-6
    record = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert record["proto_weight"] == 1.0 and len(record["proto_blocks"]) == 6
    state = torch.load(tmp_path / "run" / "last_state.pt", weights_only=True)
    assert state["proto"]["prototypes.0"].shape == (3, 32)
