"""Slot interventions: remove slots from one GLMix block, run the rest of the network, read what the decision loses.

Everything else glmix-viz shows about slots is correlational (where a slot sits, how much CAM evidence falls in it).
An intervention asks what the classifier's decision *depends on*: a GLMix block's global branch is a small set of
slots, so "remove slot s" is a well-defined edit of the network rather than a blurred patch of the image.

Definition (one GLMix block, notation of :class:`glmix_viz.models.glnet.GLMixBlock` and GLMIX_REFERENCE 1.3). For
an input X of the block, logits A = tau cos(Z0, F) (S, L), clustering Z = softmax_L(A) F, slot attention
Z' = MHSA(Z), dispatch G = softmax_S(A)^T Z'. Removing a set R of slots (``replace="remove"``, the default):

1. the logits A, the clustering of every kept slot, the local branch and everything before the block are unchanged;
2. slot attention runs among the kept slots only: the removed slots are masked out as keys (and values), so no
   kept slot reads from them; their own outputs are never used;
3. dispatching uses only the kept slots: for every pixel p, ``D'[s, p] = D[s, p] / sum_{t not in R} D[t, p]`` for
   s not in R and 0 for s in R (the softmax over the kept slots' logits: each pixel's dispatch weights over the
   remaining slots renormalised), and ``G' = D'^T Z'_kept``;
4. the block finishes as usual (local branch added, residual, MLP) and the rest of the network runs unchanged.

``replace="mean"`` (mean-slot ablation) instead replaces the clustered feature Z_s of every removed slot by the mean
of the image's S clustered slot features, before slot attention; the replaced slots still take part in attention
and dispatch (nothing renormalised). "Keep only K" is the removal of the complement of K.

Removing no slot runs exactly the block's own operations in the block's own order: the logits are bit-identical to
a plain forward (tested). Removing every slot of a block is refused: with ``"remove"`` no pixel would have a slot
to read from (the renormalisation divides by zero).

:func:`slot_effects` answers "how much does each class's probability change when slot s is removed", an ``(S, C)``
array in probability units (multiply by 100 for probability points):

* ``method="exact"``: the network runs once up to the block (its input is kept), then the S edited blocks and the
  rest of the network run as one batch of S + 1 rows (row 0 unedited, the reference), in chunks of ``batch_size``:
  never S whole forwards.
* ``method="approx"``: attribution patching (Nanda 2023; Syed et al. 2023), a first-order estimate from one
  backward pass: ``effect[s, c] ~= <d p_c / d G, G'_s - G>``, where G is the block's global-branch output (the
  dispatched slots, before the local branch is added) and ``G'_s`` the same output with slot s removed (computed
  exactly inside the block, batched over s; cheap: S x L x C). The gradients of all classes come from one batched
  backward (``is_grads_batched``). Captum is not used here: its layer attributions multiply a gradient by the
  layer's own activation (or integrate along a path from an input baseline), while attribution patching needs the
  gradient times S *different* activation changes produced inside the layer; that is one autograd call, and Captum
  would add a dependency for no gain.

Bad input raises :class:`InterventionError` (a :class:`~glmix_viz.errors.GlmixVizError`) with one line: a block
that is not a GLMix block (no slots), an out-of-range slot, removing every slot, an unknown class name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from glmix_viz.errors import GlmixVizError
from glmix_viz.images import to_tensor
from glmix_viz.models.glnet import GLMixBlock, _channel_norm, _image, _scale, _tokens
from glmix_viz.models.info import class_names as model_class_names
from glmix_viz.models.info import class_probabilities, input_mean_std, is_multilabel
from glmix_viz.probe import glmix_block_names

__all__ = [
    "InterventionError",
    "InterventionResult",
    "REPLACE_MODES",
    "block_input",
    "edited_block_outputs",
    "intervene",
    "resolve_block",
    "resolve_class",
    "run_from_block",
    "slot_effect_map",
    "slot_effects",
    "slot_keep_mask",
]

REPLACE_MODES = ("remove", "mean")
METHODS = ("exact", "approx")
OUTPUTS = ("probability", "logit")
Block = Union[str, int]
ImageLike = Union[np.ndarray, torch.Tensor]


class InterventionError(GlmixVizError):
    """A slot intervention that cannot be made: no such GLMix block, slot or class, or every slot removed."""


# ----------------------------------------------------------------------------------------------------------------------
# Checking what is asked
# ----------------------------------------------------------------------------------------------------------------------


def resolve_block(model: nn.Module, block: Block) -> Tuple[str, GLMixBlock]:
    """``(path, module)`` of a GLMix block given by path (``"stages.1.blocks.0"``) or index into the GLMix blocks.

    Raises:
        InterventionError: no such block, or a block without slots (e.g. a full-attention block).
    """
    names = glmix_block_names(model)
    if not names:
        raise InterventionError(f"{type(model).__name__} has no GLMix blocks: there are no slots to intervene on")
    if isinstance(block, (int, np.integer)) and not isinstance(block, bool):
        if not -len(names) <= int(block) < len(names):
            raise InterventionError(f"GLMix block index {block} is out of range: the model has {len(names)} "
                                    f"({', '.join(names)})")
        name = names[int(block)]
    else:
        name = str(block)
    modules = dict(model.named_modules())
    if name not in modules:
        raise InterventionError(f"{name!r} is not a block of this model; its GLMix blocks: {', '.join(names)}")
    module = modules[name]
    if not isinstance(module, GLMixBlock):
        raise InterventionError(f"{name} is a {type(module).__name__}, not a GLMix block: it has no slots to remove "
                                f"(GLMix blocks: {', '.join(names)})")
    return name, module


def slot_keep_mask(num_slots: int, *, remove: Optional[Sequence[int]] = None,
                   keep: Optional[Sequence[int]] = None, block: str = "the block") -> torch.Tensor:
    """``(S,)`` bool mask of the slots that stay: all but ``remove``, or only ``keep`` (give one of the two).

    Raises:
        InterventionError: both or a bad slot index given, or no slot would stay.
    """
    if remove is not None and keep is not None:
        raise InterventionError("give the slots to remove or the slots to keep, not both")
    chosen = list(keep if keep is not None else (remove or ()))
    for slot in chosen:
        if isinstance(slot, bool) or not isinstance(slot, (int, np.integer)):
            raise InterventionError(f"slot {slot!r} is not an integer index")
        if not 0 <= int(slot) < num_slots:
            raise InterventionError(f"slot {int(slot)} is out of range: {block} has {num_slots} slots "
                                    f"(0-{num_slots - 1})")
    mask = torch.zeros(num_slots, dtype=torch.bool) if keep is not None else torch.ones(num_slots, dtype=torch.bool)
    if chosen:
        mask[torch.as_tensor([int(s) for s in chosen])] = keep is not None
    if not mask.any():
        raise InterventionError(f"cannot remove every slot of {block} ({num_slots} slots): at least one must stay")
    return mask


def resolve_class(model: nn.Module, name: Union[str, int]) -> int:
    """Index of a class given by name or index.

    Raises:
        InterventionError: a name the model does not know, or an index out of range.
    """
    count = int(getattr(model, "num_classes", 0))
    names = model_class_names(model) or [f"class {i}" for i in range(count)]
    if isinstance(name, (int, np.integer)) and not isinstance(name, bool):
        if not 0 <= int(name) < count:
            raise InterventionError(f"class index {name} is out of range: the model has {count} classes")
        return int(name)
    if str(name) not in names:
        shown = ", ".join(names[:20]) + (" ..." if len(names) > 20 else "")
        raise InterventionError(f"unknown class {name!r}; the model's classes: {shown}")
    return list(names).index(str(name))


def _check_replace(replace: str) -> None:
    if replace not in REPLACE_MODES:
        raise InterventionError(f"replace must be one of {', '.join(REPLACE_MODES)}, got {replace!r}")


def _inputs(model: nn.Module, image: ImageLike, input_size: Optional[Union[int, Tuple[int, int]]]) -> torch.Tensor:
    """A ``(1, 3, H, W)`` normalised input on the model's device from an ``(H, W, 3)`` uint8 image or a tensor."""
    device = next(model.parameters()).device
    if isinstance(image, torch.Tensor):
        if image.ndim != 4 or image.shape[0] != 1:
            raise InterventionError(f"a tensor input must be one normalised image (1, 3, H, W), got "
                                    f"{tuple(image.shape)}")
        return image.to(device)
    mean, std = input_mean_std(model)
    return to_tensor(np.asarray(image), size=input_size, mean=mean, std=std).to(device)


# ----------------------------------------------------------------------------------------------------------------------
# Running the network in two parts
# ----------------------------------------------------------------------------------------------------------------------


def block_input(model: nn.Module, inputs: torch.Tensor, block: Block) -> torch.Tensor:
    """The input of a GLMix block for a batch of network inputs: the network's own operations up to the block (the
    stem, the earlier stages with their down-sampling, the stage's earlier blocks), nothing after it."""
    name, _ = resolve_block(model, block)
    stage_index, block_index = _block_position(model, name)
    if hasattr(model, "check_input"):
        model.check_input(inputs)
    x = inputs
    for index in range(stage_index):
        x = model.stages[index](model.downsample_layers[index](x))
    x = model.downsample_layers[stage_index](x)
    for earlier in list(model.stages[stage_index].blocks)[:block_index]:
        x = earlier(x)
    return x


def _block_position(model: nn.Module, name: str) -> Tuple[int, int]:
    parts = name.split(".")
    if len(parts) != 4 or parts[0] != "stages" or parts[2] != "blocks" or not hasattr(model, "stages"):
        raise InterventionError(f"{name}: running the network from a block needs a GLNet (stages.<i>.blocks.<j>)")
    return int(parts[1]), int(parts[3])


def run_from_block(model: nn.Module, block: Block, block_output: torch.Tensor) -> torch.Tensor:
    """Logits ``(B, num_classes)`` of the network run from the *output* of a GLMix block onwards.

    The same operations as ``model(x)`` after the block: the stage's later blocks, the later stages with their
    down-sampling, the pre-head norm and the head.
    """
    name, _ = resolve_block(model, block)
    stage_index, block_index = _block_position(model, name)
    stage = model.stages[stage_index]
    if getattr(stage, "token_layout", False):
        raise InterventionError(f"{name} sits in a token-layout stage, which has no GLMix blocks")
    x = block_output
    for later in list(stage.blocks)[block_index + 1:]:
        x = later(x)
    for index in range(stage_index + 1, len(model.stages)):
        x = model.stages[index](model.downsample_layers[index](x))
    return model.forward_head(model.norm(x))


def _block_parts(block: GLMixBlock, x: torch.Tensor) -> Dict[str, torch.Tensor]:
    """The shared, unedited parts of a GLMix block's forward for input x (B, C, H, W): GLMixBlock.mix, steps 1-5."""
    slots_init = block.initial_slots(x)
    if block.pos_conv is not None:
        x = x + block.pos_conv(x)
    shortcut = _tokens(x)
    pixels = _channel_norm(block.norm1, shortcut)
    pixel_norms = torch.linalg.vector_norm(pixels, dim=-1).clamp_min(1e-12).unsqueeze(1)
    logits = (block.slot_scale * F.normalize(slots_init, dim=-1)) @ pixels.transpose(1, 2) / pixel_norms
    slots = torch.softmax(logits, dim=-1) @ pixels
    return {"x": x, "shortcut": shortcut, "pixels": pixels, "logits": logits, "slots": slots}


def _masked_attention(mha: nn.Module, slots: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The block's slot attention (weights of ``mha``) on (K, S, C) slots, keys limited to the kept slots (K, S)."""
    qkv = F.linear(slots, mha.in_proj_weight, mha.in_proj_bias).unflatten(-1, (3, mha.num_heads, mha.head_dim))
    q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=keep[:, None, None, :])
    return mha.out_proj(out.transpose(1, 2).flatten(2))


def _global_outputs(block: GLMixBlock, parts: Dict[str, torch.Tensor], keep: torch.Tensor, replace: str
                    ) -> torch.Tensor:
    """(K, L, C) dispatched slot output G of each edit (a row of ``keep`` (K, S): the slots that stay)."""
    logits, slots = parts["logits"], parts["slots"]
    rows = keep.shape[0]
    edited = not bool(keep.all())
    if replace == "mean" and edited:
        mean = slots.mean(dim=1, keepdim=True)
        slots = torch.where(keep[:, :, None], slots, mean)  # (K, S, C)
        slots_out, _ = block.relation_mha(slots)
        return torch.softmax(logits, dim=1).transpose(1, 2) @ slots_out
    if not edited:  # no slot removed: the block's own operations, bit for bit
        slots_out, _ = block.relation_mha(slots)
        dispatched = torch.softmax(logits, dim=1).transpose(1, 2) @ slots_out
        return dispatched.expand(rows, -1, -1) if dispatched.shape[0] != rows else dispatched
    slots_out = _masked_attention(block.relation_mha, slots.expand(rows, -1, -1), keep)
    dispatch = torch.softmax(logits.masked_fill(~keep[:, :, None], float("-inf")), dim=1)  # renormalised over kept
    return dispatch.transpose(1, 2) @ slots_out


def _finish(block: GLMixBlock, parts: Dict[str, torch.Tensor], dispatched: torch.Tensor) -> torch.Tensor:
    """Steps 6+ of the block from the global output G (K, L, C): local branch, residual, MLP -> (K, C, H, W)."""
    x = parts["x"]
    rows = dispatched.shape[0]
    local = block.local_branch(parts["pixels"], x)
    mixed = dispatched + local  # a new tensor: the caller's G stays as it is (it may carry a gradient)
    tokens = parts["shortcut"] + block.drop_path(_scale(block.ls1, mixed))
    like = x.expand(rows, -1, -1, -1) if x.shape[0] != rows else x
    mlp = block.mlp.forward_tokens(_channel_norm(block.norm2, tokens), like)
    return _image(block.drop_path(_scale(block.ls2, mlp)).add_(tokens), like)


def edited_block_outputs(block: GLMixBlock, x: torch.Tensor, keep: torch.Tensor, *, replace: str = "remove"
                         ) -> torch.Tensor:
    """Outputs (K, C, H, W) of a GLMix block for one input x (1, C, H, W) under K edits ``keep`` (K, S) bool."""
    _check_replace(replace)
    if x.shape[0] != 1:
        raise InterventionError(f"edits run on one image at a time, got a batch of {x.shape[0]}")
    keep = keep.to(x.device)
    if keep.ndim != 2 or keep.shape[1] != block.num_slots:
        raise InterventionError(f"keep masks must be (K, {block.num_slots}), got {tuple(keep.shape)}")
    if not bool(keep.any(dim=1).all()):
        raise InterventionError(f"cannot remove every slot of a block ({block.num_slots} slots): one must stay")
    parts = _block_parts(block, x)
    if bool(keep.all()):  # unedited: exactly GLMixBlock.forward
        return block(x).expand(keep.shape[0], -1, -1, -1)
    return _finish(block, parts, _global_outputs(block, parts, keep, replace))


# ----------------------------------------------------------------------------------------------------------------------
# One edit, all single-slot effects
# ----------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InterventionResult:
    """Class probabilities of one image before and after an edit of one block.

    Attributes:
        block: the block's path.
        kept: indices of the slots that stayed.
        removed: indices of the slots removed (or replaced by the mean slot).
        replace: ``"remove"`` or ``"mean"``.
        logits_before, logits_after: ``(C,)`` float64 class logits.
        before, after: ``(C,)`` float64 class probabilities (sigmoid for multi-label models, else softmax).
        class_names: one name per class.
    """

    block: str
    kept: Tuple[int, ...]
    removed: Tuple[int, ...]
    replace: str
    logits_before: np.ndarray
    logits_after: np.ndarray
    before: np.ndarray
    after: np.ndarray
    class_names: Tuple[str, ...]

    @property
    def change(self) -> np.ndarray:
        """``(C,)`` change of every class probability, in probability units (x 100 = probability points)."""
        return self.after - self.before


def _names(model: nn.Module) -> Tuple[str, ...]:
    count = int(getattr(model, "num_classes", 0))
    return tuple(model_class_names(model) or [f"class {i}" for i in range(count)])


def intervene(model: nn.Module, image: ImageLike, block: Block, *, remove: Optional[Sequence[int]] = None,
              keep: Optional[Sequence[int]] = None, replace: str = "remove",
              input_size: Optional[Union[int, Tuple[int, int]]] = None) -> InterventionResult:
    """Remove slots of one GLMix block (or keep only some) and run the rest of the network.

    Args:
        model: a GLNet classifier in eval mode.
        image: ``(H, W, 3)`` uint8 RGB, or a normalised ``(1, 3, H, W)`` tensor.
        block: GLMix block path or index.
        remove: slots to remove; keep: slots to keep (the others are removed). Neither: no edit.
        replace: ``"remove"`` (default; module docstring) or ``"mean"`` (mean-slot replacement).
        input_size: network input size for an array image (as :func:`glmix_viz.slots.explore_image`).
    """
    _check_replace(replace)
    name, module = resolve_block(model, block)
    mask = slot_keep_mask(module.num_slots, remove=remove, keep=keep, block=name)
    inputs = _inputs(model, image, input_size)
    with torch.inference_mode():
        x = block_input(model, inputs, name)
        before = run_from_block(model, name, module(x))  # the same operations as model(inputs)
        after = run_from_block(model, name, edited_block_outputs(module, x, mask[None], replace=replace))
    multi = is_multilabel(model)
    before64, after64 = before[0].double().cpu(), after[0].double().cpu()
    return InterventionResult(
        block=name, kept=tuple(int(i) for i in np.flatnonzero(mask.numpy())),
        removed=tuple(int(i) for i in np.flatnonzero(~mask.numpy())), replace=replace,
        logits_before=before64.numpy(), logits_after=after64.numpy(),
        before=class_probabilities(before64, multi).numpy(), after=class_probabilities(after64, multi).numpy(),
        class_names=_names(model),
    )


def slot_effects(model: nn.Module, image: ImageLike, block: Block, *, method: str = "exact",
                 replace: str = "remove", input_size: Optional[Union[int, Tuple[int, int]]] = None,
                 batch_size: int = 16, output: str = "probability") -> np.ndarray:
    """Change of every class probability when each slot of a block is removed alone: ``(S, C)`` float64.

    ``effects[s, c] = p_c(slot s removed) - p_c(unedited)``, in probability units (x 100 = probability points);
    negative where the class loses. ``method="exact"`` runs the S edits batched from the block onwards;
    ``"approx"`` is the attribution-patching estimate from one backward pass (module docstring).

    Args:
        model, image, block, replace, input_size: as :func:`intervene`.
        method: ``"exact"`` or ``"approx"``.
        batch_size: rows per batched run of the rest of the network (exact).
        output: ``"probability"`` (default) or ``"logit"``: the change of the class logits instead (a saturated
            probability near 0 or 1 hides changes that the logit still shows).
    """
    if method not in METHODS:
        raise InterventionError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    _check_replace(replace)
    if output not in OUTPUTS:
        raise InterventionError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
    name, module = resolve_block(model, block)
    if module.num_slots < 2:
        raise InterventionError(f"{name} has one slot: removing it would remove every slot")
    inputs = _inputs(model, image, input_size)
    if method == "exact":
        return _exact_effects(model, name, module, inputs, replace, max(1, int(batch_size)), output)
    return _approx_effects(model, name, module, inputs, replace, output)


def _single_removals(num_slots: int, device: torch.device) -> torch.Tensor:
    """(S + 1, S) keep masks: row 0 keeps every slot (the reference), row 1 + s removes slot s."""
    keep = torch.ones(num_slots + 1, num_slots, dtype=torch.bool, device=device)
    keep[1:] = ~torch.eye(num_slots, dtype=torch.bool, device=device)
    return keep


def _outputs(model: nn.Module, logits: torch.Tensor, output: str) -> torch.Tensor:
    return logits if output == "logit" else class_probabilities(logits, is_multilabel(model))


def _exact_effects(model: nn.Module, name: str, module: GLMixBlock, inputs: torch.Tensor, replace: str,
                   batch_size: int, output: str) -> np.ndarray:
    with torch.inference_mode():
        x = block_input(model, inputs, name)
        keep = _single_removals(module.num_slots, x.device)
        parts = _block_parts(module, x)
        global_out = _global_outputs(module, parts, keep, replace)  # (S + 1, L, C): cheap, all rows at once
        probabilities = []
        for start in range(0, keep.shape[0], batch_size):
            out = _finish(module, parts, global_out[start:start + batch_size])
            probabilities.append(_outputs(model, run_from_block(model, name, out).double(), output))
        probs = torch.cat(probabilities).cpu()
    return (probs[1:] - probs[0]).numpy()


def _approx_effects(model: nn.Module, name: str, module: GLMixBlock, inputs: torch.Tensor, replace: str,
                    output: str) -> np.ndarray:
    with torch.inference_mode(False), torch.no_grad():
        x = block_input(model, inputs.clone(), name)
        keep = _single_removals(module.num_slots, x.device)
        parts = _block_parts(module, x)
        global_out = _global_outputs(module, parts, keep, replace)
        delta = global_out[1:] - global_out[:1]  # (S, L, C): exact change of the global output per removal
    with torch.inference_mode(False), torch.enable_grad():
        reference = global_out[:1].clone().requires_grad_(True)
        probs = _outputs(model, run_from_block(model, name, _finish(module, parts, reference)), output)[0]
        count = probs.shape[0]
        eye = torch.eye(count, dtype=probs.dtype, device=probs.device)
        try:
            (grads,) = torch.autograd.grad(probs, reference, grad_outputs=eye, is_grads_batched=True)
        except RuntimeError:  # an op without a batching rule: one backward per class instead
            grads = torch.stack([torch.autograd.grad(probs[c], reference, retain_graph=c < count - 1)[0]
                                 for c in range(count)])
    grads = grads.reshape(count, -1).double()  # (C, L * C_block)
    return (delta.reshape(delta.shape[0], -1).double() @ grads.T).cpu().numpy()


def slot_effect_map(effects: np.ndarray, logits: np.ndarray, class_index: int) -> np.ndarray:
    """``(h, w)`` effect on one class of removing each pixel's arg-max slot: ``effects[argmax_s logits[s, p], c]``.

    Args:
        effects: ``(S, C)`` from :func:`slot_effects`.
        logits: ``(S, h, w)`` the block's slot-pixel logits (e.g. :meth:`Exploration.block_logits`).
        class_index: the class c.
    """
    effects = np.asarray(effects, dtype=np.float64)
    logits = np.asarray(logits)
    if effects.ndim != 2 or logits.ndim != 3 or effects.shape[0] != logits.shape[0]:
        raise InterventionError(f"effects (S, C) and logits (S, h, w) must share S, got {effects.shape} and "
                                f"{logits.shape}")
    if not 0 <= int(class_index) < effects.shape[1]:
        raise InterventionError(f"class index {class_index} is out of range: {effects.shape[1]} classes")
    return effects[logits.argmax(axis=0), int(class_index)]
