"""The grouping tap: where a clustering block shows its grouping, and the contract of what it shows.

A block that groups pixels into slots (today the GLMix block; any later clustering backbone the same way) owns one
parameter-free :class:`GroupingTap`, built with a :class:`TapInfo` that describes the block (width, slot count, slot
grid, heads). In its forward the block calls ``tap(logits, slots_in, slots_out, slot_attention, size)`` only while
something listens (:attr:`GroupingTap.active`), so an unprobed model does no extra work at all. Tools read the
description and the tensors from here and from :class:`glmix_viz.probe.GroupingRecord`, never from block attributes.

Record contract, the tap's output (a dict, the same keys for every block type):

* ``logits``: (B, S, L) slot-pixel similarity logits, pixels row-major over ``size``;
* ``size``: (h, w) of the block's pixel grid (L = h * w);
* ``slots_in``: (B, S, C) slots after soft clustering; ``slots_out``: (B, S, C) after slot mixing;
* ``slot_attention``: (B, heads, S, S) slot-attention weights, or None unless :attr:`want_slot_attention` is set;
* ``info``: the block's :class:`TapInfo`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence

import torch
import torch.nn as nn

__all__ = ["TapInfo", "GroupingTap", "grouping_taps", "tap_infos", "RECORD_KEYS"]

RECORD_KEYS = ("logits", "size", "slots_in", "slots_out", "slot_attention", "info")


@dataclass(frozen=True)
class TapInfo:
    """What a clustering block is, as tools need to know it.

    Attributes:
        width: channels C of the block's pixels and slots.
        num_slots: slots S.
        num_heads: heads of the slot attention.
        slot_grid: side g of the g x g grid the initial slots are pooled on (``isqrt(S)``; for learned initial
            slots, the side of the square grid with as many cells, which tools use as a positional baseline).
        slot_init: how the initial slots are made: ``"ada_avgpool"`` (pooled from the input) or ``"param"``.
    """

    width: int
    num_slots: int
    num_heads: int
    slot_grid: int
    slot_init: str


class GroupingTap(nn.Module):
    """Parameter-free hook point through which a clustering block passes its grouping tensors.

    A forward hook on the tap (installed by ``glmix_viz.probe.GroupingProbe``) sees the record dict of the module
    docstring. The block calls the tap only when :attr:`active`, i.e. while a hook is registered: without a probe the
    tap costs nothing. ``want_slot_attention`` asks the block to also compute the slot-attention weights, which the
    fused attention kernel does not return; it is False unless a probe sets it.

    Args:
        info: the description of the owning block.
    """

    def __init__(self, info: TapInfo) -> None:
        super().__init__()
        self.info = info
        self.want_slot_attention = False

    @property
    def active(self) -> bool:
        """True while any forward hook listens on this tap."""
        return bool(self._forward_hooks) or bool(self._forward_pre_hooks)

    def forward(
        self,
        logits: torch.Tensor,
        slots_in: torch.Tensor,
        slots_out: torch.Tensor,
        slot_attention: Optional[torch.Tensor],
        size: Sequence[int],
    ) -> Dict[str, Any]:
        """Bundle the grouping tensors into the record dict (shapes in the module docstring)."""
        return {
            "logits": logits,
            "size": (int(size[0]), int(size[1])),
            "slots_in": slots_in,
            "slots_out": slots_out,
            "slot_attention": slot_attention,
            "info": self.info,
        }

    def extra_repr(self) -> str:
        info = self.info
        return f"width={info.width}, num_slots={info.num_slots}, slot_init={info.slot_init!r}"


def grouping_taps(model: nn.Module) -> Dict[str, GroupingTap]:
    """Block path -> tap, for every clustering block of ``model`` (any wrapper) in network order."""
    return {
        name.rpartition(".")[0]: module for name, module in model.named_modules() if isinstance(module, GroupingTap)
    }


def tap_infos(model: nn.Module) -> Dict[str, TapInfo]:
    """Block path -> :class:`TapInfo` of every clustering block of ``model``, in network order (no forward pass)."""
    return {name: tap.info for name, tap in grouping_taps(model).items()}
