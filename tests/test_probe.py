"""GroupingProbe: records every GLMix block, changes nothing, and always lets go of the model."""

from __future__ import annotations

import pytest
import timm
import torch

from glmix_viz import GroupingProbe, glmix_block_names
from glmix_viz.models.tap import GroupingTap


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return timm.create_model("glnet_tiny", num_classes=4).eval()


def _hooks(model) -> int:
    return sum(len(m._forward_hooks) for m in model.modules() if isinstance(m, GroupingTap))


def test_records_every_block_with_consistent_shapes(model):
    names = glmix_block_names(model)
    assert names == ["stages.0.blocks.0", "stages.1.blocks.0", "stages.1.blocks.1",
                     "stages.2.blocks.0", "stages.2.blocks.2"]
    x = torch.randn(3, 3, 64, 96)
    with GroupingProbe(model, slot_attention=True) as probe:
        model(x)
    expected_sizes = {"stages.0": (16, 24), "stages.1": (8, 12), "stages.2": (4, 6)}
    for name in names:
        rec = probe[name]
        assert rec.logits.shape == (3, 16, *expected_sizes[name[:8]])
        torch.testing.assert_close(rec.dispatch.sum(dim=1), torch.ones(3, *rec.size))
        torch.testing.assert_close(rec.cluster.flatten(2).sum(-1), torch.ones(3, 16))
        assert rec.hard.shape == (3, *rec.size) and rec.hard.max() < 16
        assert rec.width == {"stages.0": 32, "stages.1": 64, "stages.2": 128}[name[:8]] and rec.slot_grid == 4
        assert rec.slots_in.shape == rec.slots_out.shape == (3, 16, rec.width)
        assert rec.slot_attention.shape[::2] == (3, 16) and rec.slot_attention.shape[-1] == 16
        assert not rec.logits.requires_grad


def test_slot_features_follow_the_clustering_weights(model):
    """slots_in must be the cluster-weighted mean of the block's normalised pixel features."""
    captured = {}
    block = model.stages[1].blocks[0]
    handle = block.register_forward_pre_hook(lambda m, args: captured.__setitem__("input", args[0]))
    with torch.no_grad(), GroupingProbe(model, blocks=["stages.1.blocks.0"]) as probe:
        model(torch.randn(2, 3, 64, 64))
        pixels = block.norm1(captured["input"] + block.pos_conv(captured["input"]))  # (B, C, h, w), as published
    handle.remove()
    rec = probe["stages.1.blocks.0"]
    expected = torch.einsum("bshw,bchw->bsc", rec.cluster, pixels)
    torch.testing.assert_close(rec.slots_in, expected, atol=1e-5, rtol=1e-4)


def test_changes_no_output_and_works_in_train_mode(model):
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        plain = model(x)
        with GroupingProbe(model) as probe:
            probed = model(x)
    torch.testing.assert_close(probed, plain, atol=0, rtol=0)
    model.train()
    try:
        with GroupingProbe(model, blocks=[0, -1], detach=False) as probe:
            out = model(x)
        assert probe.block_names == ["stages.0.blocks.0", "stages.2.blocks.2"]
        assert len(probe) == 2 and probe["stages.0.blocks.0"].logits.requires_grad
        out.sum().backward()
    finally:
        model.eval()
        model.zero_grad(set_to_none=True)


def test_releases_hooks_on_exit_and_after_an_exception(model):
    assert _hooks(model) == 0
    with GroupingProbe(model, slot_attention=True):
        assert _hooks(model) == 5
        assert all(m.want_slot_attention for m in model.modules() if isinstance(m, GroupingTap))
    assert _hooks(model) == 0
    with pytest.raises(ValueError):
        with GroupingProbe(model, slot_attention=True):
            model(torch.randn(1, 3, 8, 8))  # too small: the model raises inside the probe
    assert _hooks(model) == 0
    assert not any(m.want_slot_attention for m in model.modules() if isinstance(m, GroupingTap))


def test_history_keeps_every_forward_pass(model):
    with torch.no_grad(), GroupingProbe(model, blocks=[0], keep_history=True) as probe:
        model(torch.randn(1, 3, 64, 64))
        model(torch.randn(1, 3, 96, 96))
    assert [h["stages.0.blocks.0"].size for h in probe.history] == [(16, 16), (24, 24)]
    assert probe["stages.0.blocks.0"].size == (24, 24)


def test_bad_block_names_are_explained(model):
    with pytest.raises(ValueError, match="not a GLMix block"):
        GroupingProbe(model, blocks=["stages.3.blocks.0"])
    with pytest.raises(ValueError, match="out of range"):
        GroupingProbe(model, blocks=[12])
    probe = GroupingProbe(model)
    with pytest.raises(KeyError, match="no forward pass"):
        probe["stages.0.blocks.0"]
    with pytest.raises(ValueError, match="no GLMix blocks"):
        GroupingProbe(torch.nn.Linear(2, 2))
