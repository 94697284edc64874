"""GLNet blocks against the reference equations, for configurations the golden files do not cover.

The expectations are computed here from the equations of the GLMix paper / reference facts with plain tensor ops and
``torch.nn.MultiheadAttention`` (an independent attention implementation), on randomised weights and non-square maps.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from glmix_viz.models import GLMixBlock, GLNet, GLNetTokenLabel
from glmix_viz.models.glnet import MHSABlockNCHW, MHSABlockTokens


def _randomise(module: nn.Module, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.3 + (1.0 if param.ndim == 0 else 0.0))


def _channel_layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    mean = x.mean(dim=1, keepdim=True)
    var = x.var(dim=1, unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + 1e-6) * weight[None, :, None, None] + bias[None, :, None, None]


def _reference_mha(attention, tokens: torch.Tensor, num_heads: int) -> torch.Tensor:
    dim = tokens.shape[-1]
    mha = nn.MultiheadAttention(dim, num_heads, batch_first=True)
    mha.load_state_dict(attention.state_dict())
    return mha(tokens, tokens, tokens, need_weights=False)[0]


def _reference_conv_mlp(mlp: nn.Sequential, x: torch.Tensor, mlp_dw: bool) -> torch.Tensor:
    hidden = F.conv2d(x, mlp[0].weight, mlp[0].bias)
    if mlp_dw:
        hidden = hidden + F.conv2d(hidden, mlp[1].weight, mlp[1].bias, padding=1, groups=hidden.shape[1])
    hidden = 0.5 * hidden * (1 + torch.erf(hidden / 2**0.5))
    return F.conv2d(hidden, mlp[3].weight, mlp[3].bias)


def _reference_glmix(block: GLMixBlock, x: torch.Tensor, *, cpe: bool, mlp_dw: bool, layerscale: bool):
    batch, dim, height, width = x.shape
    if block.slot_init == "param":
        slots0 = block.init_slots.expand(batch, -1, -1)
    else:
        grid = block.slot_grid
        slots0 = F.adaptive_avg_pool2d(x, (grid, grid)).permute(0, 2, 3, 1).reshape(batch, grid * grid, dim)
    if cpe:
        x = x + F.conv2d(x, block.pos_conv.weight, block.pos_conv.bias, padding=1, groups=dim)
    shortcut = x
    normed = _channel_layer_norm(x, block.norm1.weight, block.norm1.bias)
    pixels = normed.permute(0, 2, 3, 1).reshape(batch, height * width, dim)
    logits = block.slot_scale * F.cosine_similarity(slots0[:, :, None, :], pixels[:, None, :, :], dim=-1, eps=1e-12)
    slots = torch.einsum("bsl,blc->bsc", logits.softmax(dim=2), pixels)
    slots_out = _reference_mha(block.relation_mha, slots, block.relation_mha.num_heads)
    dispatched = torch.einsum("bsl,bsc->blc", logits.softmax(dim=1), slots_out)
    dispatched = dispatched.reshape(batch, height, width, dim).permute(0, 3, 1, 2)
    conv = block.feature_conv
    local = F.conv2d(normed, conv[0].weight, conv[0].bias)
    local = F.conv2d(local, conv[1].weight, conv[1].bias, padding=2, groups=dim)
    local = F.conv2d(local, conv[2].weight, conv[2].bias)
    mixed = dispatched + local
    x1 = shortcut + (block.ls1.gamma * mixed if layerscale else mixed)
    mlp_out = _reference_conv_mlp(block.mlp, _channel_layer_norm(x1, block.norm2.weight, block.norm2.bias), mlp_dw)
    return x1 + (block.ls2.gamma * mlp_out if layerscale else mlp_out), logits, slots, slots_out


@pytest.mark.parametrize(
    "slot_init,num_slots,cpe,mlp_dw,layerscale,size",
    [
        ("ada_avgpool", 9, True, True, True, (5, 7)),  # 16g-like block with 9 pooled slots, non-square map
        ("param", 5, False, False, False, (6, 4)),  # learned slots need no perfect square
        ("ada_avgpool", 4, False, True, False, (3, 2)),  # map smaller than the slot grid: pooling replicates
    ],
)
def test_glmix_block_follows_the_equations(slot_init, num_slots, cpe, mlp_dw, layerscale, size):
    from glmix_viz.probe import GroupingProbe

    torch.manual_seed(0)
    block = GLMixBlock(16, 2, num_slots=num_slots, slot_init=slot_init, mlp_ratio=3, cpe_ks=3 if cpe else 0,
                       mlp_dw=mlp_dw, layerscale=0.5 if layerscale else -1.0).eval()
    _randomise(block)
    x = torch.randn(2, 16, *size)
    expected, logits, slots, slots_out = _reference_glmix(block, x, cpe=cpe, mlp_dw=mlp_dw, layerscale=layerscale)
    with torch.no_grad(), GroupingProbe(block) as probe:
        out = block(x)
    torch.testing.assert_close(out, expected.detach(), atol=1e-4, rtol=1e-4)
    rec = probe[""]
    torch.testing.assert_close(rec.logits.flatten(2), logits.detach(), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(rec.slots_in, slots.detach(), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(rec.slots_out, slots_out.detach(), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("mlp_dw,layerscale", [(True, True), (False, False)])
def test_full_attention_nchw_block_follows_the_equations(mlp_dw, layerscale):
    torch.manual_seed(1)
    block = MHSABlockNCHW(16, 4, mlp_ratio=2, cpe_ks=3, mlp_dw=mlp_dw, layerscale=0.3 if layerscale else -1).eval()
    _randomise(block, seed=1)
    x = torch.randn(2, 16, 3, 5)
    y = x + F.conv2d(x, block.pos_conv.weight, block.pos_conv.bias, padding=1, groups=16)
    tokens = y.flatten(2).transpose(1, 2)
    attended = _reference_mha(block.mha_op, F.layer_norm(tokens, (16,), block.norm1.weight, block.norm1.bias, 1e-6), 4)
    tokens = tokens + (block.ls1.gamma * attended if layerscale else attended)
    y = tokens.transpose(1, 2).reshape(2, 16, 3, 5)
    mlp_out = _reference_conv_mlp(block.mlp, _channel_layer_norm(y, block.norm2.weight, block.norm2.bias), mlp_dw)
    expected = y + (block.ls2.gamma * mlp_out if layerscale else mlp_out)
    with torch.no_grad():
        torch.testing.assert_close(block(x), expected.detach(), atol=1e-4, rtol=1e-4)


def test_token_block_follows_the_equations():
    torch.manual_seed(2)
    block = MHSABlockTokens(16, 2, mlp_ratio=4).eval()
    _randomise(block, seed=2)
    tokens = torch.randn(3, 10, 16)
    attended = _reference_mha(block.mha_op, F.layer_norm(tokens, (16,), block.norm1.weight, block.norm1.bias, 1e-6), 2)
    mid = tokens + attended
    hidden = F.gelu(F.linear(F.layer_norm(mid, (16,), block.norm2.weight, block.norm2.bias, 1e-6),
                             block.mlp[0].weight, block.mlp[0].bias))
    expected = mid + F.linear(hidden, block.mlp[2].weight, block.mlp[2].bias)
    with torch.no_grad():
        torch.testing.assert_close(block(tokens), expected.detach(), atol=1e-4, rtol=1e-4)


def test_slot_attention_weights_path_equals_fused_path():
    torch.manual_seed(3)
    block = GLMixBlock(32, 4, num_slots=16).eval()
    _randomise(block, seed=3)
    x = torch.randn(2, 32, 8, 6)
    with torch.no_grad():
        fused, weights_none = block.relation_mha(x.flatten(2).transpose(1, 2), need_weights=False)
        explicit, weights = block.relation_mha(x.flatten(2).transpose(1, 2), need_weights=True)
    assert weights_none is None
    torch.testing.assert_close(fused, explicit, atol=1e-5, rtol=1e-5)
    assert weights.shape == (2, 4, 48, 48)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, 48))


def _tiny_kwargs(**overrides):
    kwargs = dict(num_classes=7, depth=(1, 1, 2, 1), embed_dim=(16, 32, 64, 128), head_dim=16, mlp_ratios=2,
                  norm_layer="BatchNorm2d", mixing_modes=("glmix", "glmix", "glmix.mha_nchw", "mha_nchw"),
                  local_dw_ks=5, slot_init="ada_avgpool", num_slots=4, cpe_ks=3, downsample_style="ovlp",
                  transition_layout="proj.norm", mlp_dw=True, layerscale=-1.0, drop_path_rate=0.0)
    kwargs.update(overrides)
    return kwargs


@pytest.mark.parametrize(
    "style,layout,size,final",
    [
        ("ovlp", "proj.norm", (33, 47), (2, 2)),  # ceil-halving: 33 -> 17 -> 9 -> 5 -> 3 -> 2
        ("ovlp", "norm.proj", (64, 32), (2, 1)),
        ("non_ovlp", "norm.proj", (33, 47), (1, 1)),  # patchify floors: 33 -> 8 -> 4 -> 2 -> 1
        ("non_ovlp", "proj.norm", (96, 64), (3, 2)),
    ],
)
def test_any_layout_runs_on_non_square_inputs(style, layout, size, final):
    torch.manual_seed(0)
    model = GLNet(**_tiny_kwargs(downsample_style=style, transition_layout=layout)).eval()
    with torch.no_grad():
        features = model.forward_features(torch.randn(3, 3, *size))
        logits = model(torch.randn(1, 3, *size))
    assert features.shape == (3, 128, *final)
    assert logits.shape == (1, 7)
    first = model.downsample_layers[1][0 if layout == "proj.norm" else 1]
    assert isinstance(first, nn.Conv2d)


def test_token_label_head_uses_the_official_eval_formula():
    torch.manual_seed(0)
    model = GLNetTokenLabel(**_tiny_kwargs()).eval()
    _randomise(model.tklb_aux_head, seed=4)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        tokens = model.forward_features(x).flatten(2).transpose(1, 2)
        expected = model.head(tokens.mean(1)) + 0.5 * model.tklb_aux_head(tokens).max(dim=1).values
        torch.testing.assert_close(model(x), expected)
    assert "tklb_aux_head.weight" in model.state_dict()


def test_learned_slot_temperature_initialisation_and_option():
    model = GLNet(**_tiny_kwargs())
    scales = [m.slot_scale for m in model.modules() if isinstance(m, GLMixBlock)]
    assert [s.shape for s in scales] == [torch.Size([])] * 3
    torch.testing.assert_close(torch.stack(scales), torch.tensor([16**-0.5, 32**-0.5, 64**-0.5]))
    model = GLNet(**_tiny_kwargs(slot_scale_init=10.0))
    assert all(m.slot_scale.item() == 10.0 for m in model.modules() if isinstance(m, GLMixBlock))


@pytest.mark.parametrize(
    "shape,message",
    [((1, 3, 31, 64), "too small"), ((1, 3, 64, 16), "too small"), ((1, 1, 64, 64), "3 input channels"),
     ((3, 64, 64), "(B, 3, H, W)")],
)
def test_bad_inputs_fail_with_one_line(shape, message):
    model = GLNet(**_tiny_kwargs()).eval()
    with pytest.raises(ValueError) as error:
        model(torch.randn(*shape))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_invalid_configurations_are_refused():
    with pytest.raises(ValueError, match="perfect-square"):
        GLNet(**_tiny_kwargs(num_slots=5))
    with pytest.raises(ValueError, match="mixing mode"):
        GLNet(**_tiny_kwargs(mixing_modes=("glmix", "swin", "glmix", "mha")))
    with pytest.raises(TypeError):
        GLNet(**_tiny_kwargs(qk_scale=1.0))
