"""Cross-view prototype consistency of GLMix slots: a training objective that asks a slot to mean the same thing in
every image, in the spirit of SlotCon (Wen et al., "Self-Supervised Visual Representation Learning with Semantic
Grouping", NeurIPS 2022) with the clustering objective of SCAN (Van Gansbeke et al., ECCV 2020).

Each chosen GLMix block gets K learned prototypes (unit vectors in the block's channel space, shared by every image).
A slot is softly assigned to them, ``q_s = softmax_k(<slot_s, proto_k> / T)`` on L2-normalised slot features
(``slots_in``, the features the data-set-level semantic mIoU clusters). Through the block's dispatch weights D every
pixel inherits a prototype distribution ``P_p = sum_s D_{s,p} q_s``.

Two views of a batch are seen: the training view and a second one with other flips and other colours (a random
channel permutation and, for half the images, inverted colours). The classes of ``make-shapes`` differ by shape only
and the colours are random, so a prototype code that survives the colour change has to come from shape and layout.
The loss makes the two views agree pixel by pixel, after undoing the second view's flips:

    consistency = mean_p -log sum_k P1_{k,p} P2_{k,p}

The training loop runs the second view without gradients (a target, as the teacher view of SlotCon and DINO, but
without a moving-average teacher): it costs one extra forward pass, not a forward and a backward pass.
    loss        = consistency - entropy_weight * H(mean over the slots of the batch of q)

The entropy term keeps every prototype in use (without it, one prototype for everything satisfies the consistency).
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from glmix_viz.models.tap import tap_infos

__all__ = ["SlotPrototypes", "colour_flip_view", "undo_flips", "pixel_prototypes", "consistency_loss",
           "usage_entropy_of"]

_EPS = 1e-8


def colour_flip_view(images: torch.Tensor, generator: torch.Generator) -> Tuple[torch.Tensor, torch.Tensor,
                                                                                   torch.Tensor]:
    """A second view of a batch of colours in [0, 1]: random h/v flips, channel permutation, inversion (p = 0.5).

    Args:
        images: (B, 3, H, W) colours in [0, 1].
        generator: CPU generator (the parameters are drawn on the CPU).

    Returns:
        ``(view (B, 3, H, W), flip_x (B,) bool, flip_y (B,) bool)``.
    """
    batch = images.shape[0]
    draws = torch.rand(batch, 3, generator=generator)
    flip_x, flip_y, invert = draws[:, 0] < 0.5, draws[:, 1] < 0.5, draws[:, 2] < 0.5
    order = torch.stack([torch.randperm(3, generator=generator) for _ in range(batch)]).to(images.device)
    view = torch.gather(images, 1, order.view(batch, 3, 1, 1).expand_as(images))
    view = torch.where(invert.view(-1, 1, 1, 1).to(images.device), 1.0 - view, view)
    view = undo_flips(view, flip_x, flip_y)
    return view, flip_x, flip_y


def undo_flips(maps: torch.Tensor, flip_x: torch.Tensor, flip_y: torch.Tensor) -> torch.Tensor:
    """Flip every map (B, C, h, w) whose image was flipped (a flip is its own inverse)."""
    fx = flip_x.view(-1, 1, 1, 1).to(maps.device)
    fy = flip_y.view(-1, 1, 1, 1).to(maps.device)
    maps = torch.where(fx, maps.flip(-1), maps)
    return torch.where(fy, maps.flip(-2), maps)


def pixel_prototypes(dispatch: torch.Tensor, slot_probs: torch.Tensor) -> torch.Tensor:
    """(B, K, h, w) each pixel's prototype distribution, ``sum_s D_{s,p} q_{s,k}``.

    Args:
        dispatch: (B, S, h, w) per-pixel slot distributions.
        slot_probs: (B, S, K) per-slot prototype distributions.
    """
    return torch.einsum("bshw,bsk->bkhw", dispatch.float(), slot_probs.float())


def consistency_loss(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Mean over pixels of ``-log sum_k first_k second_k`` of two aligned (B, K, h, w) distributions (0 when both
    put all their mass on one and the same prototype)."""
    return -(first * second).sum(1).clamp_min(_EPS).log().mean()


def usage_entropy_of(slot_probs: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of the mean prototype distribution over all slots of a (..., S, K) tensor (ln K at most)."""
    mean = slot_probs.float().reshape(-1, slot_probs.shape[-1]).mean(0)
    return -(mean * mean.clamp_min(_EPS).log()).sum()


class SlotPrototypes(nn.Module):
    """K learned prototypes for each chosen GLMix block, and the cross-view loss on them (module docstring).

    Args:
        model: the network (for the blocks' channel widths).
        blocks: GLMix block paths.
        count: K prototypes per block.
        temperature: T of the slot-to-prototype softmax (on cosines).
        entropy_weight: weight of the usage entropy (subtracted).
    """

    def __init__(self, model: nn.Module, blocks: Sequence[str], count: int = 8, temperature: float = 0.1,
                 entropy_weight: float = 1.0) -> None:
        super().__init__()
        if count < 2:
            raise ValueError(f"prototype count must be at least 2, got {count}")
        if temperature <= 0:
            raise ValueError(f"prototype temperature must be positive, got {temperature}")
        infos = tap_infos(model)
        self.blocks: List[str] = list(blocks)
        for name in self.blocks:
            if name not in infos:
                raise ValueError(f"{name!r} is not a GLMix block of the model")
        generator = torch.Generator().manual_seed(0)
        self.prototypes = nn.ParameterList(
            [nn.Parameter(torch.randn(count, infos[name].width, generator=generator)) for name in self.blocks])
        self.temperature = float(temperature)
        self.entropy_weight = float(entropy_weight)

    def slot_probs(self, index: int, slots: torch.Tensor) -> torch.Tensor:
        """(B, S, K) prototype distributions of the slots (B, S, C) of block ``self.blocks[index]``."""
        cosine = F.normalize(slots.float(), dim=-1) @ F.normalize(self.prototypes[index].float(), dim=-1).t()
        return torch.softmax(cosine / self.temperature, dim=-1)

    def forward(self, first: Dict[str, Tuple[torch.Tensor, torch.Tensor]],
                second: Dict[str, Tuple[torch.Tensor, torch.Tensor]], flip_x: torch.Tensor,
                flip_y: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The loss terms, averaged over the blocks.

        Args:
            first, second: block -> (dispatch (B, S, h, w), slots_in (B, S, C)) of the two views.
            flip_x, flip_y: (B,) the second view's flips (undone on its pixel maps before comparing).

        Returns:
            ``{"proto": consistency - entropy_weight * usage entropy, "proto_consistency": ...,
            "proto_usage": ...}`` (scalars).
        """
        consistency, usage = 0.0, 0.0
        for index, name in enumerate(self.blocks):
            (d1, s1), (d2, s2) = first[name], second[name]
            q1, q2 = self.slot_probs(index, s1), self.slot_probs(index, s2)
            p1 = pixel_prototypes(d1, q1)
            p2 = undo_flips(pixel_prototypes(d2, q2), flip_x, flip_y)
            consistency = consistency + consistency_loss(p1, p2)
            usage = usage + usage_entropy_of(torch.cat([q1, q2], 1))
        consistency, usage = consistency / len(self.blocks), usage / len(self.blocks)
        return {"proto": consistency - self.entropy_weight * usage, "proto_consistency": consistency,
                "proto_usage": usage}
