"""Slot interventions: no edit changes nothing (bit for bit), an edit matches the equations of the definition written
out naively here, the batched effects match single edits, approx ranks slots like exact, bad input is one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr

import glmix_viz
from glmix_viz.errors import GlmixVizError
from glmix_viz.slots import InterventionError, intervene, slot_effect_map, slot_effects
from glmix_viz.slots.interventions import block_input, edited_block_outputs, resolve_block, resolve_class

DEMO = Path(glmix_viz.__file__).parent / "assets" / "demo" / "glnet_tiny_shapes.safetensors"


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = timm.create_model("glnet_tiny", num_classes=3, slot_scale_init=10.0).eval()  # sharp slots, as trained
    return model


@pytest.fixture(scope="module")
def demo():
    return glmix_viz.load_model(str(DEMO)).eval()


@pytest.fixture(scope="module")
def image():
    from glmix_viz.data.shapes import render_shapes_image

    return render_shapes_image(np.random.default_rng(5)).image  # 128 x 128, objects of the demo model's classes


def _x(seed: int = 1, size=(64, 96)) -> torch.Tensor:
    return torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(seed))


def test_no_edit_and_keep_all_are_bit_identical_to_a_plain_forward(tiny):
    x = _x()
    with torch.inference_mode():
        plain = tiny(x)[0].double().numpy()
    for block in ("stages.0.blocks.0", 2, -1):
        assert np.array_equal(intervene(tiny, x, block).logits_after, plain)
        assert np.array_equal(intervene(tiny, x, block, remove=[]).logits_after, plain)
        assert np.array_equal(intervene(tiny, x, block, keep=list(range(16))).logits_after, plain)
        assert np.array_equal(intervene(tiny, x, block, remove=[], replace="mean").logits_after, plain)


def _naive_block(block, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """GLMIX_REFERENCE 1.3 with the removal of the definition, written out on (C, H, W) maps with plain ops."""
    z0 = F.adaptive_avg_pool2d(x, block.slot_grid).flatten(2)[0].T  # (S, C)
    x = x + block.pos_conv(x)
    u = x
    xn = block.norm1(x)  # LayerNorm2d on the map
    feats = xn.flatten(2)[0].T  # (L, C)
    logits = block.slot_scale * F.normalize(z0, dim=-1) @ F.normalize(feats, dim=-1).T  # (S, L)
    slots = torch.softmax(logits, dim=1) @ feats
    mha = block.relation_mha
    heads, d = mha.num_heads, mha.head_dim
    q, k, v = (slots @ mha.in_proj_weight.T + mha.in_proj_bias).split(slots.shape[1], dim=1)
    outs = []
    for h in range(heads):
        part = slice(h * d, (h + 1) * d)
        scores = q[:, part] @ k[:, part].T / d**0.5
        scores[:, ~keep] = float("-inf")  # removed slots are no keys
        outs.append(torch.softmax(scores, dim=1) @ v[:, part])
    slots_out = mha.out_proj(torch.cat(outs, dim=1))
    dispatch = torch.softmax(logits, dim=0) * keep[:, None]
    dispatch = dispatch / dispatch.sum(dim=0, keepdim=True)  # renormalised over the kept slots
    g = (dispatch.T @ slots_out).T.reshape_as(x[0])[None]
    x1 = u + g + block.feature_conv(xn)
    return x1 + block.mlp(block.norm2(x1))


def test_removal_follows_the_definition(demo, image):
    name, block = resolve_block(demo, "stages.1.blocks.0")
    with torch.inference_mode():
        x = block_input(demo, glmix_viz.images.to_tensor(image), name)
        with glmix_viz.GroupingProbe(demo, [name]) as probe:
            unedited = block(x)
        mass = probe[name].dispatch[0].flatten(1).sum(1)
        keep = torch.ones(9, dtype=torch.bool)
        keep[mass.argsort(descending=True)[:2]] = False  # the two slots holding the most pixels
        edited = edited_block_outputs(block, x, keep[None])
        expected = _naive_block(block, x, keep)
    torch.testing.assert_close(edited, expected, atol=1e-4, rtol=1e-4)
    assert (edited - unedited).abs().max() > 0.1  # the edit does something


def test_batched_effects_equal_single_edits(tiny):
    x = _x(2)
    effects = slot_effects(tiny, x, 1)
    assert effects.shape == (16, 3)
    for slot in (0, 7, 15):
        single = intervene(tiny, x, 1, remove=[slot])
        np.testing.assert_allclose(effects[slot], single.change, atol=1e-6)
    mean_effects = slot_effects(tiny, x, 1, replace="mean")
    np.testing.assert_allclose(mean_effects[4], intervene(tiny, x, 1, remove=[4], replace="mean").change, atol=1e-6)
    assert not np.allclose(mean_effects, effects)  # the two ablations differ


def test_identical_slots_carry_nothing(tiny):
    """A constant image: every pooled slot is the same vector, so removing or mean-replacing one changes nothing."""
    x = torch.full((1, 3, 64, 64), 0.3)
    for replace in ("remove", "mean"):
        effects = slot_effects(tiny, x, 0, replace=replace)
        assert np.abs(effects).max() < 1e-6


def test_keep_only_is_the_removal_of_the_complement(tiny):
    x = _x(4)
    kept = intervene(tiny, x, 3, keep=[2, 9])
    removed = intervene(tiny, x, 3, remove=[s for s in range(16) if s not in (2, 9)])
    assert kept.kept == removed.kept == (2, 9) and np.array_equal(kept.logits_after, removed.logits_after)


def test_approx_ranks_slots_like_exact_on_the_demo_model(demo, image):
    probs = intervene(demo, image, 0).before
    present = int(np.argmax(probs))
    correlations = []
    for block in range(len(glmix_viz.glmix_block_names(demo))):
        exact = slot_effects(demo, image, block)
        approx = slot_effects(demo, image, block, method="approx")
        assert approx.shape == exact.shape == (9, 4)
        correlations.append(spearmanr(exact[:, present], approx[:, present])[0])
    assert np.median(correlations) >= 0.8, correlations


def test_effect_map_reads_the_effect_of_each_pixels_argmax_slot():
    effects = np.array([[-0.5, 0.1], [0.2, -0.3], [0.0, 0.0]])
    logits = np.zeros((3, 2, 2))
    logits[0, 0, 0] = logits[1, 0, 1] = logits[2, 1, :] = 5.0
    np.testing.assert_array_equal(slot_effect_map(effects, logits, 1), [[0.1, -0.3], [0.0, 0.0]])


@pytest.mark.parametrize("call, words", [
    (lambda m, x: intervene(m, x, 0, remove=list(range(16))), "cannot remove every slot of stages.0.blocks.0"),
    (lambda m, x: intervene(m, x, 0, keep=[]), "cannot remove every slot"),
    (lambda m, x: intervene(m, x, 0, remove=[16]), "slot 16 is out of range: stages.0.blocks.0 has 16 slots"),
    (lambda m, x: intervene(m, x, 0, remove=[-1]), "slot -1 is out of range"),
    (lambda m, x: intervene(m, x, "stages.2.blocks.1"), "stages.2.blocks.1 is a MHSABlockNCHW, not a GLMix block"),
    (lambda m, x: slot_effects(m, x, "stages.9"), "'stages.9' is not a block of this model"),
    (lambda m, x: slot_effects(m, x, 7), "GLMix block index 7 is out of range"),
    (lambda m, x: slot_effects(m, x, 0, method="fast"), "method must be one of exact, approx"),
    (lambda m, x: resolve_class(m, "zebra"), "unknown class 'zebra'"),
])
def test_bad_input_is_one_clear_line(tiny, call, words):
    with pytest.raises(InterventionError) as caught:
        call(tiny, _x())
    assert isinstance(caught.value, GlmixVizError)
    message = str(caught.value)
    assert words in message and "\n" not in message
