"""GLNet: the GLMix vision backbone, written clean-room for glmix-viz.

Paper: "Revisiting the Integration of Convolution and Attention for Vision Backbone", Zhu et al., NeurIPS 2024
(arXiv 2411.14429). Official code and weights: github.com/rayleizhu/GLMix. This file was written from the published
facts (equations, hyper-parameters, state-dict key names and shapes) and loads the official checkpoints unchanged.

Every GLMix block holds an image two ways: the fine pixel grid, mixed by light convolutions, and a coarse set of
``S`` semantic slots, mixed by multi-head self-attention. A soft clustering step (pixels -> slots, a softmax of
cosine-similarity logits over the pixel axis) and a soft dispatching step (slots -> pixels, a softmax of the same
logits over the slot axis) bridge the two. Each block passes its grouping tensors through a parameter-free
``GroupingTap`` (``tap.py``, with the record contract) so that ``glmix_viz.probe.GroupingProbe`` can read them; the
model itself knows nothing of probes. The variants' hyper-parameters live in ``registry.py``.

Layout of the file, as in timm: building blocks -> ``GLNet`` -> checkpoint filter -> default configs -> one
registered function per variant.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import DropPath, LayerNorm2d, register_notrace_function, trunc_normal_
from timm.models import build_model_with_cfg, checkpoint_seq, generate_default_cfgs, register_model
from timm.models._features import feature_take_indices

from glmix_viz.models.cam import class_activation_maps
from glmix_viz.models.registry import VARIANTS, VariantSpec, get_variant
from glmix_viz.models.tap import GroupingTap, TapInfo

__all__ = ["GLNet", "GLNetTokenLabel", "GLMixBlock", "GroupingTap", "MIN_INPUT_SIZE"]

MIN_INPUT_SIZE = 32
MIXING_MODES = ("glmix", "glmix.mha_nchw", "mha_nchw", "mha")


@register_notrace_function
def check_input(x: torch.Tensor, in_chans: int) -> None:
    """Raise a one-line ValueError unless x is a (B, in_chans, H, W) batch with H, W >= 32.

    Shape checks are Python control flow, so FX tracing (``torch.fx.symbolic_trace``, timm's and torchvision's
    feature extractors) records this function as one call instead of tracing into it; the traced module still
    checks its input when it runs.
    """
    if x.ndim != 4:
        raise ValueError(f"GLNet expects a (B, {in_chans}, H, W) batch, got a tensor of shape {tuple(x.shape)}")
    if x.shape[1] != in_chans:
        raise ValueError(f"GLNet expects {in_chans} input channels, got {x.shape[1]} (shape {tuple(x.shape)})")
    if min(x.shape[-2:]) < MIN_INPUT_SIZE:
        raise ValueError(
            f"input of {x.shape[-1]}x{x.shape[-2]} pixels is too small; GLNet needs at least "
            f"{MIN_INPUT_SIZE}x{MIN_INPUT_SIZE}"
        )


torch.fx.wrap("check_input")


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention with the parameter layout of ``nn.MultiheadAttention``.

    Keys: ``in_proj_weight`` (3C, C) packing the Q, K, V projections row-wise, ``in_proj_bias`` (3C,),
    ``out_proj.{weight,bias}``. The forward uses the fused ``F.scaled_dot_product_attention`` kernel and computes
    explicit attention weights only when asked.
    """

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, x: torch.Tensor, need_weights: bool = False) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Attend among the N tokens of every batch element.

        Args:
            x: tokens (B, N, C).
            need_weights: also return the attention weights.

        Returns:
            The attended tokens (B, N, C) and the weights (B, heads, N, N), or None.
        """
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias).unflatten(-1, (3, self.num_heads, self.head_dim))
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        weights = None
        if need_weights:
            weights = torch.softmax((q * self.head_dim**-0.5) @ k.transpose(-2, -1), dim=-1)
            out = weights @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v)
        return self.out_proj(out.transpose(1, 2).flatten(2)), weights


class ResidualDWConv(nn.Conv2d):
    """Depthwise convolution added to its input: ``t + DWConv(t)`` (keys ``weight``, ``bias``)."""

    def __init__(self, dim: int, kernel_size: int = 3) -> None:
        super().__init__(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + super().forward(x)

    def forward_tokens(self, tokens: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """The same on (B, L, C) tokens of a map shaped like ``like`` (B, *, H, W)."""
        return _tokens(super().forward(_image(tokens, like))).add_(tokens)  # in place on the fresh conv output


class ConvMlp(nn.Sequential):
    """Per-pixel MLP of 1x1 convolutions: ``PW(rC->C) . GELU . [t + DW3x3(t)] . PW(C->rC)``.

    Indices follow the official layout: 0 expand, 1 residual depthwise conv (or a parameter-free identity),
    2 GELU, 3 project.
    """

    def __init__(self, dim: int, mlp_ratio: float, mlp_dw: bool) -> None:
        hidden = int(dim * mlp_ratio)
        super().__init__(
            nn.Conv2d(dim, hidden, 1),
            ResidualDWConv(hidden, 3) if mlp_dw else nn.Identity(),
            nn.GELU(),
            nn.Conv2d(hidden, dim, 1),
        )

    def forward_tokens(self, tokens: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """The MLP on (B, L, C) tokens of a map shaped like ``like``: 1x1 convolutions as matrix products on the
        contiguous channel axis (the same weights and the same products as ``forward``, without layout changes)."""
        # Nested calls, no locals: every hidden (B, L, rC) tensor is freed as soon as the next one exists.
        if isinstance(self[1], ResidualDWConv):
            return _pointwise(self[3], self[2](self[1].forward_tokens(_pointwise(self[0], tokens), like)))
        return _pointwise(self[3], self[2](_pointwise(self[0], tokens)))


class LayerScale(nn.Module):
    """Learnable per-channel scale ``gamma`` of a given shape (``(C,)`` for tokens, ``(1, C, 1, 1)`` for maps)."""

    def __init__(self, shape: Sequence[int], init_value: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full(tuple(shape), float(init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


def _layer_scale(shape: Sequence[int], layerscale: float) -> nn.Module:
    return LayerScale(shape, layerscale) if layerscale > 0 else nn.Identity()


def _flatten_pixels(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H*W, C), pixels in row-major order (a view)."""
    return x.flatten(2).transpose(1, 2)


# Token layout. The blocks run on (B, L, C) tokens, channels contiguous: norms, 1x1 convolutions (as matrix
# products), residual sums and the clustering products need no layout change, and a block's output is handed on as a
# channels-last view of its tokens, so the next block reads its tokens without a copy. Depthwise convolutions see
# the same memory as a channels-last (B, C, H, W) map.
def _tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H*W, C) contiguous tokens, pixels row-major; a view when x is channels-last."""
    return x.permute(0, 2, 3, 1).flatten(1, 2)


def _image(tokens: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B, H*W, C) contiguous tokens -> (B, C, H, W) channels-last view, H and W those of ``like``."""
    return tokens.unflatten(1, like.shape[-2:]).permute(0, 3, 1, 2)


def _pointwise(conv: nn.Conv2d, tokens: torch.Tensor) -> torch.Tensor:
    """A 1x1 convolution applied to (B, L, C_in) tokens -> (B, L, C_out)."""
    return F.linear(tokens, conv.weight.flatten(1), conv.bias)


def _channel_norm(norm: nn.LayerNorm, tokens: torch.Tensor) -> torch.Tensor:
    """A channel LayerNorm (``LayerNorm2d`` or ``nn.LayerNorm``) applied to (B, L, C) tokens."""
    return F.layer_norm(tokens, norm.normalized_shape, norm.weight, norm.bias, norm.eps)


def _scale(layer_scale: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """Layer scale of a map (gamma (1, C, 1, 1)) or of tokens (gamma (C,)) applied to (B, L, C) tokens."""
    if isinstance(layer_scale, LayerScale):
        return tokens * layer_scale.gamma.flatten()
    return layer_scale(tokens)


class GLMixBlock(nn.Module):
    """The GLMix block: local convolutions on the pixel grid, global attention among soft-clustered slots.

    Forward of an input X (B, C, H, W), L = H*W pixels, S slots:
      1. initial slots Z0 (B, S, C): adaptive average pooling of the raw input to a sqrt(S) x sqrt(S) grid, or a
         learned parameter (1, S, C);
      2. optional conv positional encoding X <- X + DW(X); shortcut U = X; F = LN_c(X);
      3. logits A = tau * cos(Z0, F) (B, S, L), tau = ``slot_scale``;
      4. clustering Z = softmax_L(A) F; slot attention Z' = MHSA(Z);
      5. dispatching G = softmax_S(A)^T Z' (B, C, H, W); local branch PW(DW5x5(PW(F)));
      6. X1 = U + DropPath(gamma1 (G + local)); X2 = X1 + DropPath(gamma2 MLP(LN_c(X1))).

    The block computes all of this on (B, L, C) tokens (see ``_tokens``): the logits once, both softmaxes from them,
    the norms and 1x1 convolutions as functions of the sub-modules' weights (so forward hooks on ``norm1``, ``mlp``
    or ``feature_conv`` do not fire; hook the block, or read the grouping through its ``tap``). It returns X2 as a
    channels-last view of its tokens. The tap is called only while a probe listens.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        num_slots: int = 64,
        slot_init: str = "ada_avgpool",
        mlp_ratio: float = 4.0,
        local_dw_ks: int = 5,
        cpe_ks: int = 0,
        mlp_dw: bool = False,
        layerscale: float = -1.0,
        drop_path: float = 0.0,
        slot_scale_init: Optional[float] = None,
    ) -> None:
        super().__init__()
        if slot_init not in ("ada_avgpool", "param"):
            raise ValueError(f"slot_init must be 'ada_avgpool' or 'param', got {slot_init!r}")
        grid = math.isqrt(num_slots)
        if slot_init == "ada_avgpool" and grid * grid != num_slots:
            raise ValueError(f"pooled slot initialisation needs a perfect-square slot count, got {num_slots}")
        self.num_slots = num_slots
        self.slot_grid = grid
        self.slot_init = slot_init
        # Registration order defines the state-dict order of the official checkpoints.
        scale = dim**-0.5 if slot_scale_init is None else float(slot_scale_init)
        self.slot_scale = nn.Parameter(torch.tensor(scale))
        if slot_init == "param":
            self.init_slots = nn.Parameter(torch.randn(1, num_slots, dim) * 0.02)
        self.pos_conv = nn.Conv2d(dim, dim, cpe_ks, padding=cpe_ks // 2, groups=dim) if cpe_ks > 0 else None
        self.norm1 = LayerNorm2d(dim, eps=1e-6)
        self.relation_mha = MultiHeadSelfAttention(dim, num_heads)
        if local_dw_ks > 0:
            self.feature_conv = nn.Sequential(
                nn.Conv2d(dim, dim, 1),
                nn.Conv2d(dim, dim, local_dw_ks, padding=local_dw_ks // 2, groups=dim),
                nn.Conv2d(dim, dim, 1),
            )
        else:
            self.feature_conv = nn.Identity()
        self.norm2 = LayerNorm2d(dim, eps=1e-6)
        self.mlp = ConvMlp(dim, mlp_ratio, mlp_dw)
        self.ls1 = _layer_scale((1, dim, 1, 1), layerscale)
        self.ls2 = _layer_scale((1, dim, 1, 1), layerscale)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.tap = GroupingTap(TapInfo(width=dim, num_slots=num_slots, num_heads=num_heads, slot_grid=grid,
                                       slot_init=slot_init))

    def initial_slots(self, x: torch.Tensor) -> torch.Tensor:
        """Initial slots (B, S, C) from the raw block input x (B, C, H, W)."""
        if self.slot_init == "param":
            return self.init_slots.expand(x.shape[0], -1, -1)
        return _flatten_pixels(F.adaptive_avg_pool2d(x, self.slot_grid))

    def local_branch(self, pixels: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """PW . DW . PW of the normalised pixels (B, L, C) of a map shaped like ``like`` (or the pixels unchanged)."""
        if isinstance(self.feature_conv, nn.Identity):
            return pixels
        first, depthwise, last = self.feature_conv
        return _pointwise(last, _tokens(depthwise(_image(_pointwise(first, pixels), like))))

    def mix(self, x: torch.Tensor) -> torch.Tensor:
        """Steps 1-6a of the class docstring: X (B, C, H, W) -> X1 as (B, L, C) tokens (U + global + local).

        A method of its own so that its intermediates (logits, pixels, slots) are freed before the MLP runs.
        """
        slots_init = self.initial_slots(x)
        if self.pos_conv is not None:
            x = x + self.pos_conv(x)
        shortcut = _tokens(x)  # (B, L, C)
        pixels = _channel_norm(self.norm1, shortcut)
        # tau * cos(slot, pixel): dividing the (S, L) logits by the pixel norms is cheaper than normalising (L, C)
        pixel_norms = torch.linalg.vector_norm(pixels, dim=-1).clamp_min(1e-12).unsqueeze(1)  # (B, 1, L)
        logits = (self.slot_scale * F.normalize(slots_init, dim=-1)) @ pixels.transpose(1, 2) / pixel_norms  # (B,S,L)
        slots = torch.softmax(logits, dim=-1) @ pixels  # (B, S, C)
        slots_out, slot_attention = self.relation_mha(slots, need_weights=self.tap.want_slot_attention)
        dispatched = torch.softmax(logits, dim=1).transpose(1, 2) @ slots_out  # (B, L, C)
        if self.tap.active:
            self.tap(logits, slots, slots_out, slot_attention, x.shape[-2:])
        mixed = dispatched.add_(self.local_branch(pixels, x))  # in place on the fresh product (autograd allows it)
        return shortcut + self.drop_path(_scale(self.ls1, mixed))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.mix(x)
        mlp = self.mlp.forward_tokens(_channel_norm(self.norm2, tokens), x)
        return _image(self.drop_path(_scale(self.ls2, mlp)).add_(tokens), x)


class MHSABlockNCHW(nn.Module):
    """Full multi-head self-attention over all pixels of a channels-first map, then the per-pixel conv MLP."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        mlp_ratio: float = 4.0,
        cpe_ks: int = 0,
        mlp_dw: bool = False,
        layerscale: float = -1.0,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.pos_conv = nn.Conv2d(dim, dim, cpe_ks, padding=cpe_ks // 2, groups=dim) if cpe_ks > 0 else None
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.mha_op = MultiHeadSelfAttention(dim, num_heads)
        self.norm2 = LayerNorm2d(dim, eps=1e-6)
        self.mlp = ConvMlp(dim, mlp_ratio, mlp_dw)
        self.ls1 = _layer_scale((dim,), layerscale)
        self.ls2 = _layer_scale((1, dim, 1, 1), layerscale)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pos_conv is not None:
            x = x + self.pos_conv(x)
        tokens = _tokens(x)
        tokens = tokens + self.drop_path(self.ls1(self.mha_op(self.norm1(tokens))[0]))
        mlp = self.mlp.forward_tokens(_channel_norm(self.norm2, tokens), x)
        return _image(self.drop_path(_scale(self.ls2, mlp)).add_(tokens), x)


class MHSABlockTokens(nn.Module):
    """Transformer block on (B, L, C) tokens: MHSA and a linear MLP, both pre-norm (``glnet_stl`` stage 4)."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        mlp_ratio: float = 4.0,
        layerscale: float = -1.0,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.mha_op = MultiHeadSelfAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.ls1 = _layer_scale((dim,), layerscale)
        self.ls2 = _layer_scale((dim,), layerscale)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        tokens = tokens + self.drop_path(self.ls1(self.mha_op(self.norm1(tokens))[0]))
        return tokens + self.drop_path(self.ls2(self.mlp(self.norm2(tokens))))


class GLNetStage(nn.Module):
    """A sequence of blocks at one resolution; a ``mha`` stage runs its blocks on flattened tokens."""

    def __init__(self, blocks: List[nn.Module], token_layout: bool) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*blocks)
        self.token_layout = token_layout
        self.grad_checkpointing = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = _tokens(x) if self.token_layout else x
        if self.grad_checkpointing and not torch.jit.is_scripting():
            out = checkpoint_seq(self.blocks, out)
        else:
            out = self.blocks(out)
        return _image(out, x) if self.token_layout else out


def _norm_layer(norm_layer: Union[str, Callable[[int], nn.Module]]) -> Callable[[int], nn.Module]:
    if callable(norm_layer):
        return norm_layer
    known = {"BatchNorm2d": nn.BatchNorm2d, "LayerNorm2d": lambda dim: LayerNorm2d(dim, eps=1e-6)}
    if norm_layer not in known:
        raise ValueError(f"norm_layer must be one of {sorted(known)} or a callable, got {norm_layer!r}")
    return known[norm_layer]


def _per_stage(value: Union[float, Sequence[float]], name: str, num_stages: int) -> List[float]:
    values = list(value) if isinstance(value, (list, tuple)) else [value] * num_stages
    if len(values) != num_stages:
        raise ValueError(f"{name} needs {num_stages} values, got {len(values)}")
    return values


def _check_constructor_args(
    depth: Sequence[int], embed_dim: Sequence[int], mixing_modes: Sequence[str], downsample_style: str,
    transition_layout: str,
) -> None:
    """Raise a one-line ValueError for a GLNet configuration the constructor cannot build."""
    if not (len(embed_dim) == len(mixing_modes) == len(depth) == 4):
        raise ValueError("depth, embed_dim and mixing_modes need 4 entries each (four stages)")
    if downsample_style not in ("ovlp", "non_ovlp"):
        raise ValueError(f"downsample_style must be 'ovlp' or 'non_ovlp', got {downsample_style!r}")
    if transition_layout not in ("proj.norm", "norm.proj"):
        raise ValueError(f"transition_layout must be 'proj.norm' or 'norm.proj', got {transition_layout!r}")
    for mode in mixing_modes:
        if mode not in MIXING_MODES:
            raise ValueError(f"unknown mixing mode {mode!r}; expected one of {MIXING_MODES}")


def _downsample_layers(
    in_chans: int, embed_dim: Sequence[int], norm: Callable[[int], nn.Module], style: str, layout: str,
    strides: Sequence[int], kept: Sequence[int] = (),
) -> nn.ModuleList:
    """The stem (stride 4) and the three transitions between stages, with the official module indices.

    ``kept``: indices (1-3) of transitions whose stride is removed for a smaller output stride: they keep their
    kernel (and so their weights) and pad to keep the size ("same" padding).
    """
    layers = nn.ModuleList()
    if style == "ovlp":
        stem = nn.Sequential(
            nn.Identity(),
            nn.Conv2d(in_chans, embed_dim[0] // 2, 3, stride=2, padding=1),
            norm(embed_dim[0] // 2),
            nn.GELU(),
            nn.Conv2d(embed_dim[0] // 2, embed_dim[0], 3, stride=2, padding=1),
            norm(embed_dim[0]),
        )
    else:
        stem = nn.Sequential(nn.Conv2d(in_chans, embed_dim[0], 4, stride=4), norm(embed_dim[0]))
    layers.append(stem)
    for i in range(1, len(embed_dim)):
        stride = strides[i - 1]
        if style == "ovlp":
            proj = nn.Conv2d(embed_dim[i - 1], embed_dim[i], 3, stride=1 if i in kept else stride, padding=1)
        elif i in kept:
            proj = nn.Conv2d(embed_dim[i - 1], embed_dim[i], stride, stride=1, padding="same")
        else:
            proj = nn.Conv2d(embed_dim[i - 1], embed_dim[i], stride, stride=stride)
        if layout == "proj.norm":
            layers.append(nn.Sequential(proj, norm(embed_dim[i])))
        else:
            layers.append(nn.Sequential(norm(embed_dim[i - 1]), proj))
    return layers


def _stages(
    depth: Sequence[int], embed_dim: Sequence[int], head_dim: int, mixing_modes: Sequence[str],
    mlp_ratios: Sequence[float], drop_path_rate: float, block_args: Dict[str, Any],
) -> nn.ModuleList:
    """The four stages; stochastic depth rises linearly over all blocks; ``block_args`` go to the GLMix blocks."""
    total_blocks = sum(depth)
    drop_rates = [drop_path_rate * i / max(total_blocks - 1, 1) for i in range(total_blocks)]
    layerscale = block_args["layerscale"]
    stages = nn.ModuleList()
    block_index = 0
    for i, (dim, mode) in enumerate(zip(embed_dim, mixing_modes)):
        heads = dim // head_dim
        if heads * head_dim != dim:
            raise ValueError(f"stage {i} width {dim} is not a multiple of head_dim {head_dim}")
        common = dict(mlp_ratio=mlp_ratios[i], layerscale=layerscale)
        blocks: List[nn.Module] = []
        for j in range(depth[i]):
            rate = drop_rates[block_index]
            block_index += 1
            if mode == "glmix" or (mode == "glmix.mha_nchw" and j % 2 == 0):
                blocks.append(GLMixBlock(dim, heads, drop_path=rate, mlp_ratio=mlp_ratios[i], **block_args))
            elif mode == "mha":
                blocks.append(MHSABlockTokens(dim, heads, drop_path=rate, **common))
            else:
                nchw_args = dict(cpe_ks=block_args["cpe_ks"], mlp_dw=block_args["mlp_dw"])
                blocks.append(MHSABlockNCHW(dim, heads, drop_path=rate, **nchw_args, **common))
        stages.append(GLNetStage(blocks, token_layout=mode == "mha"))
    return stages


class GLNet(nn.Module):
    """The GLNet backbone: four stages of GLMix and full-attention blocks on channels-first maps.

    Keyword arguments are those of the official constructor. ``slot_scale_init`` (initial slot temperature,
    default ``C**-0.5``) and ``downsample_strides`` (strides of the three transitions, default 2, 2, 2) are
    additions for training small models; the official variants leave them at their defaults. ``output_stride``
    (32, 16 or 8; timm's keyword, used by dense-prediction decoders such as smp's DeepLabV3+) removes the stride of
    the last one or two transitions, keeping their weights, so official checkpoints still load; ``feature_info``
    reports the reductions that result.

    Args:
        num_classes: classifier outputs (0 for none).
        depth: blocks per stage.
        embed_dim: width C of each stage.
        head_dim: channels per attention head.
        mlp_ratios: hidden width of the MLPs as a multiple of C, per stage or one for all.
        norm_layer: norm of the stem, transitions and pre-head: "BatchNorm2d", "LayerNorm2d" or a callable.
        mixing_modes: per stage, one of "glmix", "glmix.mha_nchw" (GLMix on even blocks, full MHSA on odd ones),
            "mha_nchw" (full MHSA), "mha" (full MHSA on tokens).
        local_dw_ks: kernel of the depthwise conv of the local branch (0: identity branch).
        slot_init: "ada_avgpool" (slots pooled from the input) or "param" (learned slots).
        num_slots: slots per GLMix block (a perfect square for pooled slots).
        cpe_ks: kernel of the conv positional encoding (0: none).
        downsample_style: "ovlp" (3x3 stride-2 convs, two in the stem) or "non_ovlp" (patchify convs).
        transition_layout: "proj.norm" (conv then norm) or "norm.proj" (norm then conv) in transitions.
        mlp_dw: residual depthwise 3x3 conv inside the MLP.
        layerscale: initial layer-scale value; <= 0 disables layer scale.
        drop_path_rate: stochastic depth, linearly increasing over all blocks.
        in_chans: input channels.
        global_pool: "avg" or "" (no pooling in ``forward_head``).
        drop_rate: dropout before the classifier.
    """

    def __init__(
        self,
        num_classes: int = 1000,
        depth: Sequence[int] = (2, 2, 6, 2),
        embed_dim: Sequence[int] = (96, 192, 384, 768),
        head_dim: int = 32,
        mlp_ratios: Union[float, Sequence[float]] = 4,
        norm_layer: Union[str, Callable[[int], nn.Module]] = "LayerNorm2d",
        mixing_modes: Sequence[str] = ("glmix", "glmix", "glmix", "mha"),
        local_dw_ks: int = 5,
        slot_init: str = "param",
        num_slots: int = 64,
        cpe_ks: int = 0,
        downsample_style: str = "non_ovlp",
        transition_layout: str = "proj.norm",
        mlp_dw: bool = False,
        layerscale: float = -1.0,
        drop_path_rate: float = 0.0,
        *,
        in_chans: int = 3,
        global_pool: str = "avg",
        drop_rate: float = 0.0,
        slot_scale_init: Optional[float] = None,
        downsample_strides: Sequence[int] = (2, 2, 2),
        output_stride: int = 32,
    ) -> None:
        super().__init__()
        _check_constructor_args(depth, embed_dim, mixing_modes, downsample_style, transition_layout)
        strides = [int(s) for s in downsample_strides]
        if len(strides) != 3 or any(s not in (1, 2) for s in strides):
            raise ValueError(f"downsample_strides must be three values of 1 or 2, got {downsample_strides}")
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        kept = {32: (), 16: (3,), 8: (2, 3)}[output_stride]
        norm = _norm_layer(norm_layer)
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.global_pool = global_pool
        self.drop_rate = drop_rate
        self.embed_dim = list(embed_dim)
        self.num_features = self.head_hidden_size = embed_dim[-1]
        self.downsample_style = downsample_style
        self.downsample_layers = _downsample_layers(in_chans, embed_dim, norm, downsample_style, transition_layout,
                                                    strides, kept)
        block_args = dict(
            num_slots=num_slots, slot_init=slot_init, local_dw_ks=local_dw_ks, cpe_ks=cpe_ks, mlp_dw=mlp_dw,
            layerscale=layerscale, slot_scale_init=slot_scale_init,
        )
        self.stages = _stages(depth, embed_dim, head_dim, mixing_modes, _per_stage(mlp_ratios, "mlp_ratios", 4),
                              drop_path_rate, block_args)
        self.feature_info: List[Dict[str, Any]] = []
        reduction = 4
        for i, dim in enumerate(embed_dim):
            reduction *= strides[i - 1] if i > 0 and i not in kept else 1
            self.feature_info.append(dict(num_chs=dim, reduction=reduction, module=f"stages.{i}"))
        self.norm = norm(embed_dim[-1])
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(embed_dim[-1], num_classes) if num_classes > 0 else nn.Identity()
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    # ----------------------------------------------------------------------------------------------- timm contract
    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict[str, Any]:
        return dict(
            stem=r"^downsample_layers\.0",
            blocks=r"^stages\.(\d+)" if coarse else [(r"^stages\.(\d+)\.blocks\.(\d+)", None), (r"^norm", (99999,))],
        )

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        for stage in self.stages:
            stage.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """Replace the classifier by a fresh one with ``num_classes`` outputs (0: identity)."""
        self.num_classes = num_classes
        if global_pool is not None:
            if global_pool not in ("avg", ""):
                raise ValueError(f"global_pool must be 'avg' or '', got {global_pool!r}")
            self.global_pool = global_pool
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        if num_classes > 0:
            self._init_weights(self.head)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a one-line ValueError unless x is a (B, in_chans, H, W) batch with H, W >= 32."""
        check_input(x, self.in_chans)

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: Optional[Union[int, List[int]]] = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """Forward that also returns the outputs of selected stages.

        Args:
            x: images (B, 3, H, W).
            indices: last n stages if an int, these stages if a sequence, all if None.
            norm: apply the pre-head norm to the last stage's output when it is taken.
            stop_early: stop after the last stage taken.
            output_fmt: "NCHW" or "NHWC".
            intermediates_only: return only the intermediates.

        Returns:
            The stage outputs (B, C_i, H_i, W_i), or (final features, stage outputs).
        """
        if output_fmt not in ("NCHW", "NHWC"):
            raise ValueError(f"output_fmt must be 'NCHW' or 'NHWC', got {output_fmt!r}")
        check_input(x, self.in_chans)
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        last_index = len(self.stages) - 1
        num_run = max_index + 1 if stop_early else len(self.stages)
        intermediates = []
        for i in range(num_run):
            x = self.stages[i](self.downsample_layers[i](x))
            if i in take_indices:
                feature = self.norm(x) if norm and i == last_index else x
                intermediates.append(feature.permute(0, 2, 3, 1).contiguous() if output_fmt == "NHWC" else feature)
        if intermediates_only:
            return intermediates
        if num_run - 1 == last_index:
            x = self.norm(x)
        return x, intermediates

    def prune_intermediate_layers(
        self, indices: Union[int, List[int]] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> List[int]:
        """Drop the stages (and optionally norm and head) that the chosen intermediates do not need."""
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        self.stages = self.stages[: max_index + 1]
        self.downsample_layers = self.downsample_layers[: max_index + 1]
        self.feature_info = self.feature_info[: max_index + 1]
        if prune_norm or max_index < 3:
            self.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0, "")
        return take_indices

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W) -> normed final feature map (B, C3, H/32, W/32)."""
        check_input(x, self.in_chans)
        for downsample, stage in zip(self.downsample_layers, self.stages):
            x = stage(downsample(x))
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Final feature map (B, C3, h, w) -> logits (B, num_classes) (or pooled features if ``pre_logits``)."""
        if self.global_pool == "avg":
            x = x.mean(dim=(2, 3))
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    @torch.jit.ignore
    def class_activation_maps(self, features: torch.Tensor, classes: Optional[Sequence[int]] = None) -> torch.Tensor:
        """Classic CAM (``glmix_viz.models.cam``): (N, C, h, w) final features -> (N, K, h, w) non-negative maps."""
        return class_activation_maps(self, features, classes)


class GLNetTokenLabel(GLNet):
    """GLNet trained with token labelling: an extra per-token classifier ``tklb_aux_head``.

    Output (in both modes): ``head(mean of tokens) + 0.5 * max over tokens of tklb_aux_head(token)``, the
    official evaluation formula. The token-labelling training forward (in-model CutMix) is not reproduced.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tklb_aux_head = nn.Linear(self.num_features, self.num_classes) if self.num_classes > 0 else nn.Identity()
        self._init_weights(self.tklb_aux_head)

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        super().reset_classifier(num_classes, global_pool)
        self.tklb_aux_head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self._init_weights(self.tklb_aux_head)

    @torch.jit.ignore
    def cam_weights(self, index: torch.Tensor) -> torch.Tensor:
        """(K, C) per-position class weights of class indices ``index`` (K,): the main head plus the token head
        with its evaluation weight 0.5, as in the logits (used by ``glmix_viz.models.cam``)."""
        if not isinstance(self.head, nn.Linear):
            raise ValueError(f"{type(self).__name__} has no linear classifier head; class maps need one")
        weight = self.head.weight.index_select(0, index)
        if isinstance(self.tklb_aux_head, nn.Linear):
            weight = weight + 0.5 * self.tklb_aux_head.weight.index_select(0, index)
        return weight

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if pre_logits or self.global_pool != "avg" or self.num_classes == 0:
            return super().forward_head(x, pre_logits)
        tokens = _flatten_pixels(x)
        main = self.head(self.head_drop(tokens.mean(dim=1)))
        return main + 0.5 * self.tklb_aux_head(tokens).amax(dim=1)


# --------------------------------------------------------------------------------------------- checkpoints
def checkpoint_filter_fn(state_dict: Dict[str, torch.Tensor], model: GLNet) -> Dict[str, torch.Tensor]:
    """Map an official or wrapped checkpoint onto this model's keys.

    Accepts the official training files' dict (``model_ema``, ``model``, ``state_dict``) or a bare state dict,
    strips ``module.`` prefixes (DataParallel/DDP), and makes ``slot_scale`` 0-dim.
    """
    for key in ("model_ema", "state_dict_ema", "model", "state_dict"):
        if isinstance(state_dict.get(key), dict):
            state_dict = state_dict[key]
            break
    out = {}
    for key, value in state_dict.items():
        if key.startswith("module."):
            key = key[len("module."):]
        if key.endswith("slot_scale") and value.numel() == 1:
            value = value.reshape(())
        out[key] = value
    return out


# ------------------------------------------------------------------------------------------------- variants
def _cfg(spec: VariantSpec) -> Dict[str, Any]:
    return dict(
        url="", num_classes=1000, input_size=spec.input_size, pool_size=spec.pool_size, crop_pct=spec.crop_pct,
        interpolation="bicubic", mean=IMAGENET_DEFAULT_MEAN, std=IMAGENET_DEFAULT_STD, first_conv=spec.first_conv,
        classifier="head", license="mit", paper_ids="arXiv:2411.14429",
    )


default_cfgs = generate_default_cfgs({name: _cfg(spec) for name, spec in VARIANTS.items()})


def _create_glnet(variant: str, pretrained: bool = False, **kwargs: Any) -> GLNet:
    if pretrained:
        raise RuntimeError(
            f"{variant}: glmix-viz downloads nothing; pass checkpoint_path=<the official .pth you downloaded> to "
            "timm.create_model, or use glmix_viz.load_model(path)"
        )
    spec = get_variant(variant)
    model_cls = GLNetTokenLabel if spec.token_label else GLNet
    return build_model_with_cfg(
        model_cls, variant, pretrained=False, pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(feature_cls="getter", out_indices=(0, 1, 2, 3)),
        **spec.model_args(**kwargs),
    )


@register_model
def glnet_4g(pretrained: bool = False, **kwargs: Any) -> GLNet:
    """glnet_4g: its spec is ``registry.VARIANTS["glnet_4g"]``."""
    return _create_glnet("glnet_4g", pretrained, **kwargs)


@register_model
def glnet_9g(pretrained: bool = False, **kwargs: Any) -> GLNet:
    """glnet_9g: its spec is ``registry.VARIANTS["glnet_9g"]``."""
    return _create_glnet("glnet_9g", pretrained, **kwargs)


@register_model
def glnet_16g(pretrained: bool = False, **kwargs: Any) -> GLNet:
    """glnet_16g: its spec is ``registry.VARIANTS["glnet_16g"]``."""
    return _create_glnet("glnet_16g", pretrained, **kwargs)


@register_model
def glnet_stl(pretrained: bool = False, **kwargs: Any) -> GLNet:
    """glnet_stl: its spec is ``registry.VARIANTS["glnet_stl"]``."""
    return _create_glnet("glnet_stl", pretrained, **kwargs)


@register_model
def glnet_stl_paramslot(pretrained: bool = False, **kwargs: Any) -> GLNet:
    """glnet_stl_paramslot: its spec is ``registry.VARIANTS["glnet_stl_paramslot"]``."""
    return _create_glnet("glnet_stl_paramslot", pretrained, **kwargs)


@register_model
def glnet_4g_tklb(pretrained: bool = False, **kwargs: Any) -> GLNetTokenLabel:
    """glnet_4g_tklb: its spec is ``registry.VARIANTS["glnet_4g_tklb"]``."""
    return _create_glnet("glnet_4g_tklb", pretrained, **kwargs)


@register_model
def glnet_9g_tklb(pretrained: bool = False, **kwargs: Any) -> GLNetTokenLabel:
    """glnet_9g_tklb: its spec is ``registry.VARIANTS["glnet_9g_tklb"]``."""
    return _create_glnet("glnet_9g_tklb", pretrained, **kwargs)


@register_model
def glnet_tiny(pretrained: bool = False, **kwargs: Any) -> GLNet:
    """glnet_tiny: its spec is ``registry.VARIANTS["glnet_tiny"]``."""
    return _create_glnet("glnet_tiny", pretrained, **kwargs)
