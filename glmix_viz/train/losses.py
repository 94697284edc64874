"""Training losses: multi-label BCE, the slot MIL loss, and the class-free grouping losses on GLMix slot weights.

The grouping losses act on the two softmaxes of a GLMix block's slot-to-pixel logits A (B, S, h, w), as a
:class:`~glmix_viz.probe.GroupingRecord` exposes them: the dispatch weights D (softmax over slots, each pixel's
distribution over slots) and the clustering weights C (softmax over pixels, each slot's distribution over pixels).

* :func:`bilateral_potts_loss`: a relaxed Potts model on D with bilateral (colour and position) pair weights, the
  regularised loss of Tang et al., "On Regularized Losses for Weakly-supervised CNN Segmentation" (ECCV 2018),
  restricted to a local neighbourhood: neighbouring pixels of similar colour should go to the same slots.
* :func:`assignment_entropy`: mean entropy of each pixel's slot distribution (low = confident assignments).
* :func:`usage_entropy`: entropy of each image's mean slot usage (high = many slots used, no collapse onto few).
* :func:`slot_reconstruction_loss`: a self-supervised objective in the manner of Slot Attention (Locatello et al.,
  2020) and DINOSAUR (Seitzer et al., 2023), with the block's own weights as encoder and decoder: each slot takes
  the C-weighted mean of a target map (the image's colours), each pixel is rebuilt as the D-weighted mix of its
  slots' values, and the loss is the mean squared error. A slot can only rebuild a pixel well when the pixels it
  averages share that pixel's colour, so the loss rewards slots that follow uniformly coloured regions.

:class:`GroupingLosses` combines them over chosen blocks into the terms the training loop adds to BCE.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from glmix_viz.models.tap import tap_infos
from glmix_viz.probe import GroupingProbe

__all__ = [
    "bilateral_potts_loss",
    "assignment_entropy",
    "usage_entropy",
    "slot_reconstruction_loss",
    "neighbour_offsets",
    "GroupingLosses",
    "SlotMILHeads",
    "slot_mil_loss",
]

_EPS = 1e-8


def neighbour_offsets(radius: int) -> List[Tuple[int, int]]:
    """Offsets (dy, dx) of a square window of ``radius``, each unordered pixel pair once (the half-plane).

    ``radius=1`` gives the four offsets (0, 1), (1, -1), (1, 0), (1, 1) of the 8-neighbourhood.
    """
    if radius < 1:
        raise ValueError(f"radius must be at least 1, got {radius}")
    offsets = [(0, dx) for dx in range(1, radius + 1)]
    offsets += [(dy, dx) for dy in range(1, radius + 1) for dx in range(-radius, radius + 1)]
    return offsets


def _pair_views(tensor: torch.Tensor, dy: int, dx: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Views (..., h - dy, w - |dx|) of ``tensor`` (..., h, w) at pixel p and at q = p + (dy, dx), dy >= 0."""
    height, width = tensor.shape[-2:]
    rows_p, rows_q = slice(0, height - dy), slice(dy, height)
    if dx >= 0:
        cols_p, cols_q = slice(0, width - dx), slice(dx, width)
    else:
        cols_p, cols_q = slice(-dx, width), slice(0, width + dx)
    return tensor[..., rows_p, cols_p], tensor[..., rows_q, cols_q]


def bilateral_potts_loss(dispatch: torch.Tensor, image: torch.Tensor, sigma_rgb: float,
                         sigma_xy: Optional[float] = None) -> torch.Tensor:
    """Relaxed bilateral Potts energy of soft slot assignments over local pixel pairs.

    L = sum_{(p,q)} w_pq (1 - <D_p, D_q>) / #pairs, with w_pq = exp(-|I_p - I_q|^2 / (2 sigma_rgb^2)) *
    exp(-|p - q|^2 / (2 sigma_xy^2)). ``1 - <D_p, D_q>`` is the probability that p and q land in different slots
    when each draws its slot from its distribution, so the loss is the expected cut of similar-coloured neighbours.
    The pairs are the 8-neighbourhood when ``sigma_xy`` is None (position weight 1) and a square window of radius
    ``max(1, ceil(2 sigma_xy))`` otherwise; ``#pairs`` counts the pairs inside the map (not their weights).

    Args:
        dispatch: (B, S, h, w) per-pixel slot distributions (sum 1 over S).
        image: (B, 3, H, W) colours in [0, 1]; area-averaged to (h, w) here.
        sigma_rgb: colour kernel width (RGB distance in [0, 1] units).
        sigma_xy: position kernel width in pixels of the (h, w) map, or None for the flat 8-neighbourhood.

    Returns:
        Scalar loss in [0, 1].
    """
    small = F.adaptive_avg_pool2d(image.float(), dispatch.shape[-2:])
    radius = 1 if sigma_xy is None else max(1, math.ceil(2 * sigma_xy))
    total, count = dispatch.new_zeros((), dtype=torch.float32), 0
    for dy, dx in neighbour_offsets(radius):
        if dy >= dispatch.shape[-2] or abs(dx) >= dispatch.shape[-1]:
            continue
        dp, dq = _pair_views(dispatch.float(), dy, dx)
        ip, iq = _pair_views(small, dy, dx)
        weight = torch.exp(-((ip - iq) ** 2).sum(1) / (2 * sigma_rgb ** 2))  # (B, h', w')
        if sigma_xy is not None:
            weight = weight * math.exp(-(dy * dy + dx * dx) / (2 * sigma_xy ** 2))
        total = total + (weight * (1 - (dp * dq).sum(1))).sum()
        count += weight.numel()
    return total / max(count, 1)


def assignment_entropy(dispatch: torch.Tensor) -> torch.Tensor:
    """Mean over pixels of the entropy (nats) of each pixel's slot distribution; dispatch (B, S, h, w)."""
    dispatch = dispatch.float()
    return -(dispatch * dispatch.clamp_min(_EPS).log()).sum(1).mean()


def usage_entropy(dispatch: torch.Tensor) -> torch.Tensor:
    """Mean over images of the entropy (nats) of the image's mean slot usage; dispatch (B, S, h, w).

    ln S when every slot gets the same share of the pixels, 0 when one slot takes them all.
    """
    usage = dispatch.float().mean((2, 3))
    return -(usage * usage.clamp_min(_EPS).log()).sum(1).mean()


def slot_reconstruction_loss(cluster: torch.Tensor, dispatch: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error of a target map rebuilt through the slots (encode with C, decode with D).

    slot value v_s = sum_p C_{s,p} t_p (C sums to 1 over pixels); rebuilt pixel r_p = sum_s D_{s,p} v_s.

    Args:
        cluster: (B, S, h, w) clustering weights (sum 1 over the pixels of each slot).
        dispatch: (B, S, h, w) dispatch weights (sum 1 over the slots of each pixel).
        target: (B, K, H, W) map to rebuild (e.g. RGB in [0, 1]); area-averaged to (h, w) here, no gradient.

    Returns:
        Scalar: mean over images, channels and pixels of (r_p - t_p)^2.
    """
    small = F.adaptive_avg_pool2d(target.detach().float(), dispatch.shape[-2:]).flatten(2)  # (B, K, P)
    slot_values = torch.einsum("bsp,bkp->bsk", cluster.float().flatten(2), small)
    rebuilt = torch.einsum("bsp,bsk->bkp", dispatch.float().flatten(2), slot_values)
    return F.mse_loss(rebuilt, small)


@dataclass
class GroupingLosses:
    """The grouping terms of a training run, averaged over the chosen GLMix blocks.

    The loop adds ``potts_weight * potts + entropy_weight * entropy - usage_weight * usage_entropy +
    recon_weight * recon`` to the classification loss (:meth:`total`). A positive ``usage_weight`` rewards spreading
    the pixels over many slots; a negative one asks for fewer slots per image.

    Attributes:
        blocks: GLMix block paths the terms act on.
        potts_weight, sigma_rgb, sigma_xy: see :func:`bilateral_potts_loss`.
        entropy_weight: weight of :func:`assignment_entropy`.
        usage_weight: weight of :func:`usage_entropy` (subtracted).
        recon_weight: weight of :func:`slot_reconstruction_loss` on the image colours.
    """

    blocks: Sequence[str]
    potts_weight: float = 0.0
    sigma_rgb: float = 0.12
    sigma_xy: Optional[float] = None
    entropy_weight: float = 0.0
    usage_weight: float = 0.0
    recon_weight: float = 0.0

    @classmethod
    def from_config(cls, config: Any, default_blocks: Sequence[str]) -> "GroupingLosses":
        """The losses a :class:`~glmix_viz.train.config.GroupingConfig` asks for (its blocks, else
        ``default_blocks``)."""
        return cls(blocks=list(config.blocks) or list(default_blocks), potts_weight=config.potts_weight,
                   sigma_rgb=config.potts_sigma_rgb, sigma_xy=config.potts_sigma_xy,
                   entropy_weight=config.entropy_weight, usage_weight=config.usage_entropy_weight,
                   recon_weight=config.recon_weight)

    weight_names = ("potts", "entropy", "usage_entropy", "recon")
    """The terms :meth:`total` weighs (other objectives' terms may share a dict with them)."""

    @property
    def active(self) -> bool:
        """True when any term has a non-zero weight."""
        return any(w != 0 for w in (self.potts_weight, self.entropy_weight, self.usage_weight, self.recon_weight))

    def terms(self, probe: GroupingProbe, image: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Unweighted terms (only those with a non-zero weight), each averaged over the blocks.

        Args:
            probe: a probe (``detach=False``) that recorded the blocks during the forward pass.
            image: (B, 3, H, W) the network's input as colours in [0, 1].

        Returns:
            ``{"potts": ..., "entropy": ..., "usage_entropy": ..., "recon": ...}`` (scalars).
        """
        sums: Dict[str, torch.Tensor] = {}
        for name in self.blocks:
            record = probe[name]
            dispatch = record.dispatch
            parts = {}
            if self.potts_weight:
                parts["potts"] = bilateral_potts_loss(dispatch, image, self.sigma_rgb, self.sigma_xy)
            if self.entropy_weight:
                parts["entropy"] = assignment_entropy(dispatch)
            if self.usage_weight:
                parts["usage_entropy"] = usage_entropy(dispatch)
            if self.recon_weight:
                parts["recon"] = slot_reconstruction_loss(record.cluster, dispatch, image)
            for key, value in parts.items():
                sums[key] = sums[key] + value if key in sums else value
        return {key: value / len(self.blocks) for key, value in sums.items()}

    def total(self, terms: Dict[str, torch.Tensor]) -> torch.Tensor:
        """The weighted sum of :meth:`terms` to add to the classification loss (a 0-dim zero when there are none)."""
        weights = {"potts": self.potts_weight, "entropy": self.entropy_weight, "usage_entropy": -self.usage_weight,
                   "recon": self.recon_weight}
        if not terms:
            return torch.zeros(())
        return sum(weights[key] * value for key, value in terms.items())


class CosineClassifier(nn.Module):
    """Logits = cos(feature, w_k) / temperature for K learned vectors w_k (no bias)."""

    def __init__(self, dim: int, outputs: int, temperature: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(outputs, dim) * dim**-0.5)
        self.temperature = float(temperature)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(features, dim=-1) @ F.normalize(self.weight, dim=-1).t() / self.temperature


class SlotMILHeads(nn.Module):
    """One linear classifier per chosen GLMix block, applied to every slot; the image score pools over the slots.

    Two forms:

    * ``background=False`` (the original): K independent sigmoid logits per slot; the image logit of a class is the
      max over the slots, trained with BCE against the image labels;
    * ``background=True``: K + 1 logits per slot with a softmax over the classes *and the background*, so every slot
      must say which one class (or the background) it holds; the image probability of a class is the max over the
      slots of that class's probability, trained with BCE against the labels, and the background, present in every
      image, must be claimed by at least one slot. Slots that hold no object evidence are pushed to the background
      column, so the background slots of all images share one direction of the feature space (the plain form leaves
      them free to spread with colour and texture, which splits the background over several k-means clusters).

    Args:
        model: the network whose blocks are read (for their channel width).
        blocks: GLMix block paths.
        num_classes: K.
        background: the softmax form with a background column.
        cosine: 0 for a LayerNorm + linear head; > 0 for a cosine classifier at this temperature (the slot feature
            and one learned vector per column, both L2-normalised, their dot product divided by ``cosine``): a slot
            is then scored by its direction alone, so the loss pulls the slots of one class towards one direction
            (as the prototype loss does, but with the image labels saying which), the geometry a data-set-level
            k-means of the slot features can find.
    """

    def __init__(self, model: nn.Module, blocks: Sequence[str], num_classes: int, background: bool = False,
                 cosine: float = 0.0) -> None:
        super().__init__()
        if cosine < 0:
            raise ValueError(f"cosine temperature must be >= 0, got {cosine}")
        infos = tap_infos(model)
        self.blocks = list(blocks)
        self.background = bool(background)
        self.cosine = float(cosine)
        self.heads = nn.ModuleList()
        outputs = num_classes + (1 if self.background else 0)
        for name in self.blocks:
            if name not in infos:
                raise ValueError(f"{name!r} is not a GLMix block of the model")
            dim = infos[name].width
            if self.cosine:
                self.heads.append(CosineClassifier(dim, outputs, self.cosine))
            else:
                self.heads.append(nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, outputs)))

    def forward(self, probe: GroupingProbe) -> List[torch.Tensor]:
        """Per block: (B, K) max-over-slots logits, or with ``background`` the per-slot softmax probabilities
        (B, K + 1, S), the last row the background (:func:`slot_mil_loss` pools them)."""
        out = []
        for name, head in zip(self.blocks, self.heads):
            logits = head(probe[name].slots_in.float())  # (B, S, K[+1])
            out.append(torch.softmax(logits, dim=-1).transpose(1, 2) if self.background else logits.amax(dim=1))
        return out


def slot_mil_loss(heads: nn.Module, probe: GroupingProbe, labels: torch.Tensor,
                  confidence: float = 0.0) -> torch.Tensor:
    """Mean over blocks of the BCE of ``heads``' image scores (SlotMILHeads, or DDP around them) against the image
    labels (B, K); with the background form, a background column of ones is appended to the labels, and
    ``confidence`` > 0 adds, per slot, the loss of its probability mass outside the image's classes and the
    background (``-log`` of the mass inside) plus the entropy of its distribution over those columns, times
    ``confidence``: every slot, not only the one that wins the max, must pick one class of its image or the
    background, so all the background slots are pulled the same way."""
    scores = heads(probe)
    if not getattr(heads, "module", heads).background:
        return sum(F.binary_cross_entropy_with_logits(m.float(), labels) for m in scores) / len(scores)
    target = torch.cat([labels.float(), labels.new_ones(labels.shape[0], 1, dtype=torch.float32)], dim=1)
    total = labels.new_zeros((), dtype=torch.float32)
    for slots in scores:  # (B, K + 1, S)
        slots = slots.float()
        image = slots.amax(dim=2)  # the image's probability of each class: its most confident slot's
        total = total + F.binary_cross_entropy(image.clamp(1e-6, 1 - 1e-6), target)
        if confidence > 0:
            allowed = slots * target.unsqueeze(-1)  # mass on the image's classes and the background
            inside = allowed.sum(dim=1).clamp_min(1e-6)  # (B, S)
            within = allowed / inside.unsqueeze(1)
            entropy = -(within * within.clamp_min(1e-12).log()).sum(dim=1)  # (B, S)
            total = total + confidence * (-inside.log() + entropy).mean()
    return total / len(scores)
