"""Grouping losses on a two-region image whose values are known in closed form, and their place in the loop."""

from __future__ import annotations

import json
import math

import pytest
import torch

from glmix_viz.train.losses import (
    GroupingLosses,
    assignment_entropy,
    bilateral_potts_loss,
    neighbour_offsets,
    slot_reconstruction_loss,
    usage_entropy,
)


def two_regions(height: int = 2, width: int = 4):
    """A black left half and a white right half, and the one-hot dispatch that puts each half in its own slot.

    Returns image (1, 3, h, w), dispatch (1, 2, h, w), cluster (1, 2, h, w) (each slot uniform over its half).
    """
    image = torch.zeros(1, 3, height, width)
    image[..., width // 2:] = 1.0
    dispatch = torch.zeros(1, 2, height, width)
    dispatch[:, 0, :, : width // 2] = 1.0
    dispatch[:, 1, :, width // 2:] = 1.0
    cluster = dispatch / dispatch.sum((2, 3), keepdim=True)
    return image, dispatch, cluster


def test_neighbour_offsets_cover_each_pair_once():
    assert sorted(neighbour_offsets(1)) == [(0, 1), (1, -1), (1, 0), (1, 1)]
    assert len(neighbour_offsets(2)) == (5 * 5 - 1) // 2


def test_potts_of_the_region_split_counts_only_the_boundary_pairs():
    # 2x4 map: 16 8-neighbour pairs (6 horizontal, 4 vertical, 3 + 3 diagonal); 4 of them cross the boundary
    # (2 horizontal, 2 diagonal), each with colour distance^2 = 3 and cut probability 1.
    image, dispatch, _ = two_regions()
    sigma = 0.5
    expected = 4 * math.exp(-3 / (2 * sigma ** 2)) / 16
    assert float(bilateral_potts_loss(dispatch, image, sigma)) == pytest.approx(expected, rel=1e-6)
    # colour-blind kernel (huge sigma): 4 cut pairs out of 16
    assert float(bilateral_potts_loss(dispatch, image, 1e4)) == pytest.approx(4 / 16, rel=1e-6)


def test_potts_of_uniform_assignments_is_half_the_mean_pair_weight():
    image, _, _ = two_regions()
    uniform = torch.full((1, 2, 2, 4), 0.5)  # <D_p, D_q> = 1/2 for every pair
    sigma = 0.5
    boundary = math.exp(-3 / (2 * sigma ** 2))
    assert float(bilateral_potts_loss(uniform, image, sigma)) == pytest.approx((12 * 0.5 + 4 * boundary * 0.5) / 16)


def test_potts_position_kernel_weights_axis_and_diagonal_pairs():
    image, dispatch, _ = two_regions()
    # sigma_xy 0.5 -> window radius 1; colour-blind; the 2 cut horizontal pairs weigh exp(-1/(2*0.25)) = e^-2 and
    # the 2 cut diagonal pairs exp(-2/(2*0.25)) = e^-4
    value = float(bilateral_potts_loss(dispatch, image, 1e4, sigma_xy=0.5))
    assert value == pytest.approx((2 * math.exp(-2) + 2 * math.exp(-4)) / 16, rel=1e-5)


def test_potts_area_averages_the_image_to_the_map():
    image, dispatch, _ = two_regions()
    big = torch.nn.functional.interpolate(image, scale_factor=4, mode="nearest")
    assert float(bilateral_potts_loss(dispatch, big, 0.5)) == pytest.approx(
        float(bilateral_potts_loss(dispatch, image, 0.5)))


def test_assignment_and_usage_entropy():
    _, dispatch, _ = two_regions()
    assert float(assignment_entropy(dispatch)) == pytest.approx(0.0, abs=1e-6)
    assert float(assignment_entropy(torch.full((1, 4, 2, 2), 0.25))) == pytest.approx(math.log(4))
    assert float(usage_entropy(dispatch)) == pytest.approx(math.log(2))  # each slot takes half the pixels
    collapsed = torch.zeros(1, 2, 2, 4)
    collapsed[:, 0] = 1.0
    assert float(usage_entropy(collapsed)) == pytest.approx(0.0, abs=1e-6)
    # three quarters of the pixels in slot 0: H(3/4, 1/4)
    mixed = collapsed.clone()
    mixed[:, :, :, 3] = torch.tensor([0.0, 1.0]).view(1, 2, 1)
    assert float(usage_entropy(mixed)) == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))


def test_reconstruction_through_the_slots():
    image, dispatch, cluster = two_regions()
    # slots that follow the regions rebuild the image exactly
    assert float(slot_reconstruction_loss(cluster, dispatch, image)) == pytest.approx(0.0, abs=1e-7)
    # every pixel split evenly between the two slots: rebuilt grey 0.5 everywhere, squared error 0.25
    assert float(slot_reconstruction_loss(cluster, torch.full_like(dispatch, 0.5), image)) == pytest.approx(0.25)
    # slots that average the whole image (C uniform) also give grey 0.5
    assert float(slot_reconstruction_loss(torch.full_like(cluster, 1 / 8), dispatch, image)) == pytest.approx(0.25)


def test_reconstruction_gradient_flows_to_the_logits_only():
    image, dispatch, _ = two_regions()
    logits = (dispatch * 2.0).requires_grad_(True)
    target = image.clone().requires_grad_(True)
    loss = slot_reconstruction_loss(torch.softmax(logits.flatten(2), -1).view_as(logits), logits.softmax(1), target)
    loss.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    assert target.grad is None


class _FakeRecord:
    def __init__(self, dispatch, cluster):
        self.dispatch, self.cluster = dispatch, cluster


def test_grouping_losses_weight_and_average_over_blocks():
    image, dispatch, cluster = two_regions()
    uniform = torch.full_like(dispatch, 0.5)
    probe = {"a": _FakeRecord(dispatch, cluster), "b": _FakeRecord(uniform, cluster)}
    losses = GroupingLosses(blocks=["a", "b"], potts_weight=2.0, sigma_rgb=1e4, entropy_weight=1.0,
                            usage_weight=0.5, recon_weight=10.0)
    terms = losses.terms(probe, image)
    assert float(terms["potts"]) == pytest.approx((4 / 16 + 0.5) / 2)
    assert float(terms["entropy"]) == pytest.approx(math.log(2) / 2)
    assert float(terms["usage_entropy"]) == pytest.approx(math.log(2))
    assert float(terms["recon"]) == pytest.approx(0.25 / 2)
    expected = 2.0 * terms["potts"] + terms["entropy"] - 0.5 * terms["usage_entropy"] + 10.0 * terms["recon"]
    assert float(losses.total(terms)) == pytest.approx(float(expected))
    off = GroupingLosses(blocks=["a"])
    assert not off.active and off.terms(probe, image) == {} and float(off.total({})) == 0.0


# ------------------------------------------------------------------------------------------- in the training loop
@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from glmix_viz.data.shapes import ShapesConfig, make_shapes

    root = tmp_path_factory.mktemp("shapes")
    make_shapes(root, ShapesConfig(image_size=64), num_train=32, num_val=8, seed=4, progress=False)
    return root


def _run(data, out, **overrides):
    from glmix_viz.train import TrainConfig, train

    settings = dict(data=str(data), out=str(out), model="glnet_tiny", model_args={"num_slots": 4}, epochs=1,
                    batch_size=16, warmup_epochs=0, input_size=64, augment="flips", seed=0, device="cpu", workers=0,
                    progress=False, threads=1)
    config = TrainConfig.from_flat(**dict(settings, **overrides))  # the grouping losses by their flat names
    train(config)
    from safetensors.torch import load_file

    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return load_file(str(out / "last.safetensors")), log, json.loads((out / "last.json").read_text())


def test_grouping_losses_are_off_by_default_and_change_the_weights_when_on(tiny_data, tmp_path):
    default, default_log, _ = _run(tiny_data, tmp_path / "default")
    zero, _, _ = _run(tiny_data, tmp_path / "zero", potts_weight=0.0, recon_weight=0.0, potts_sigma_rgb=0.3)
    assert all(torch.equal(default[k], zero[k]) for k in default)  # zero weights: the published recipe, unchanged
    assert "recon_loss" not in default_log[-1] and "potts_loss" not in default_log[-1]

    blocks = ["stages.0.blocks.0", "stages.1.blocks.1"]
    weights, log, sidecar = _run(tiny_data, tmp_path / "grouping", recon_weight=10.0, potts_weight=1.0,
                                 entropy_weight=0.1, usage_entropy_weight=0.1, grouping_blocks=blocks)
    assert any(not torch.equal(default[k], weights[k]) for k in default)
    for entry in log:  # every term logged, each epoch, within its range
        assert 0.0 <= entry["potts_loss"] <= 1.0 and 0.0 <= entry["recon_loss"] <= 1.0
        assert 0.0 <= entry["entropy"] <= math.log(4) + 1e-6 and 0.0 <= entry["usage_entropy"] <= math.log(4) + 1e-6
    recorded = sidecar["train"]
    assert recorded["recon_weight"] == 10.0 and recorded["potts_weight"] == 1.0
    assert recorded["grouping_blocks"] == blocks and recorded["potts_sigma_rgb"] == 0.12
    assert recorded["potts_sigma_xy"] is None and recorded["augment"] == "flips"


def test_flips_augmentation_is_exact():
    from glmix_viz.train import augment_batch

    images = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    out = augment_batch(images, torch.Generator().manual_seed(0), "flips")
    for before, after in zip(images, out):
        assert any(torch.equal(after, candidate) for candidate in
                   (before, before.flip(-1), before.flip(-2), before.flip(-1).flip(-2)))
