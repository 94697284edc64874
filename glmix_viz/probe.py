"""GroupingProbe: read what every GLMix block groups, by module path, without touching the model's outputs.

Every GLMix block passes its grouping tensors through a parameter-free ``GroupingTap`` (``glmix_viz.models.tap``,
which also defines the record contract); this module is the only place that hooks into it. Usage::

    with GroupingProbe(model) as probe:          # optional: blocks=[...], slot_attention=True
        logits = model(x)
    rec = probe["stages.2.blocks.0"]
    rec.logits     # (B, S, h, w) slot-to-pixel similarity logits A (pre-softmax)
    rec.dispatch   # (B, S, h, w) softmax over slots: each pixel's distribution over slots
    rec.cluster    # (B, S, h, w) softmax over pixels: each slot's distribution over pixels
    rec.slots_in, rec.slots_out   # (B, S, C) slot features before / after slot attention
    rec.width, rec.slot_grid, rec.size   # what the block is: C, side of the initial-slot grid, (h, w)

Hooks are released on exit, also after an exception. A probe keeps the records of the latest forward pass;
``probe.history`` keeps every pass when ``keep_history=True`` (multi-scale inference).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Union

import torch
import torch.nn as nn

from glmix_viz.models.tap import TapInfo, grouping_taps

__all__ = ["GroupingProbe", "GroupingRecord", "glmix_block_names"]


def glmix_block_names(model: nn.Module) -> List[str]:
    """Module paths of the GLMix blocks of ``model`` in network order, e.g. ``["stages.0.blocks.0", ...]``."""
    return list(grouping_taps(model))


@dataclass
class GroupingRecord:
    """The grouping tensors of one GLMix block for one forward pass (detached unless the probe says otherwise).

    Attributes:
        name: module path of the block.
        logits: (B, S, h, w) similarity logits A = tau * cos(initial slot, normalised pixel feature).
        slots_in: (B, S, C) slots after soft clustering, before slot attention.
        slots_out: (B, S, C) slots after slot attention.
        slot_attention: (B, heads, S, S) slot-attention weights, or None unless the probe asked for them.
        info: what the block is (width, slot count, heads, initial-slot grid; ``glmix_viz.models.tap.TapInfo``).
    """

    name: str
    logits: torch.Tensor
    slots_in: torch.Tensor
    slots_out: torch.Tensor
    slot_attention: Optional[torch.Tensor] = None
    info: Optional[TapInfo] = None
    _cache: Dict[str, torch.Tensor] = field(default_factory=dict, repr=False, compare=False)

    @property
    def num_slots(self) -> int:
        return self.logits.shape[1]

    @property
    def width(self) -> int:
        """Channels C of the block's pixels and slots."""
        return self.info.width if self.info is not None else int(self.slots_in.shape[-1])

    @property
    def slot_grid(self) -> int:
        """Side g of the g x g grid the block's initial slots are pooled on (see ``TapInfo.slot_grid``)."""
        if self.info is not None:
            return self.info.slot_grid
        return math.isqrt(self.num_slots)

    @property
    def num_heads(self) -> Optional[int]:
        """Heads of the block's slot attention (None when the record carries no block description)."""
        return self.info.num_heads if self.info is not None else None

    @property
    def size(self) -> tuple:
        """(h, w) of the block's pixel grid."""
        return tuple(self.logits.shape[-2:])

    @property
    def dispatch(self) -> torch.Tensor:
        """(B, S, h, w) dispatching weights: softmax over slots, each pixel's distribution over slots."""
        if "dispatch" not in self._cache:
            self._cache["dispatch"] = torch.softmax(self.logits, dim=1)
        return self._cache["dispatch"]

    @property
    def cluster(self) -> torch.Tensor:
        """(B, S, h, w) clustering weights: softmax over pixels, each slot's distribution over pixels."""
        if "cluster" not in self._cache:
            flat = self.logits.flatten(2)
            self._cache["cluster"] = torch.softmax(flat, dim=-1).view_as(self.logits)
        return self._cache["cluster"]

    @property
    def hard(self) -> torch.Tensor:
        """(B, h, w) int64 hard grouping: for each pixel, the slot with the largest dispatch weight."""
        return self.logits.argmax(dim=1)

    def to(self, device: Union[str, torch.device]) -> "GroupingRecord":
        """A copy with every tensor on ``device``."""
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return GroupingRecord(self.name, move(self.logits), move(self.slots_in), move(self.slots_out),
                              move(self.slot_attention), self.info)


class GroupingProbe:
    """Context manager that records the grouping tensors of GLMix blocks during forward passes.

    Args:
        model: any module containing GLMix blocks (a GLNet, a timm feature wrapper, a DDP wrapper...).
        blocks: block paths or indices into the network-ordered GLMix blocks to record; all when None.
        slot_attention: also compute and record the slot-attention weights (un-fused attention: slower).
        detach: store detached tensors (default); False keeps the autograd graph, e.g. for gradient attributions.
        to_cpu: move records to the CPU as they are made (saves accelerator memory on long runs).
        keep_history: keep the records of every forward pass in ``history`` (one dict per pass).
    """

    def __init__(
        self,
        model: nn.Module,
        blocks: Optional[Sequence[Union[str, int]]] = None,
        *,
        slot_attention: bool = False,
        detach: bool = True,
        to_cpu: bool = False,
        keep_history: bool = False,
    ) -> None:
        taps = grouping_taps(model)
        if not taps:
            raise ValueError(f"{type(model).__name__} has no GLMix blocks to probe")
        names = list(taps)
        if blocks is None:
            chosen = names
        else:
            chosen = []
            for block in blocks:
                if isinstance(block, int):
                    if not -len(names) <= block < len(names):
                        raise ValueError(f"GLMix block index {block} is out of range: the model has {len(names)}")
                    chosen.append(names[block])
                elif block in taps:
                    chosen.append(block)
                else:
                    raise ValueError(f"{block!r} is not a GLMix block; the model's GLMix blocks are {names}")
        self._taps = {name: taps[name] for name in dict.fromkeys(chosen)}
        self.slot_attention = slot_attention
        self.detach = detach
        self.to_cpu = to_cpu
        self.keep_history = keep_history
        self.records: Dict[str, GroupingRecord] = {}
        self.history: List[Dict[str, GroupingRecord]] = []
        self._handles: List[Any] = []

    @property
    def block_names(self) -> List[str]:
        """Paths of the probed blocks, in network order."""
        return list(self._taps)

    def _hook(self, name: str):
        def record(module: nn.Module, args: Any, output: Dict[str, Any]) -> None:
            def keep(tensor: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
                if tensor is None:
                    return None
                tensor = tensor.detach() if self.detach else tensor
                return tensor.cpu() if self.to_cpu else tensor

            height, width = output["size"]
            logits = output["logits"]
            rec = GroupingRecord(
                name=name,
                logits=keep(logits.reshape(logits.shape[0], logits.shape[1], height, width)),
                slots_in=keep(output["slots_in"]),
                slots_out=keep(output["slots_out"]),
                slot_attention=keep(output["slot_attention"]),
                info=output["info"],
            )
            if name in self.records and self.keep_history:
                self.history.append(self.records)
                self.records = {}
            self.records[name] = rec

        return record

    def __enter__(self) -> "GroupingProbe":
        if self._handles:
            raise RuntimeError("this GroupingProbe is already active")
        self.records = {}
        self.history = []
        for name, tap in self._taps.items():
            self._handles.append(tap.register_forward_hook(self._hook(name)))
            tap.want_slot_attention = self.slot_attention
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()
        if self.keep_history and self.records:
            self.history.append(self.records)

    def remove(self) -> None:
        """Release every hook and restore the blocks' fused attention."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        for tap in self._taps.values():
            tap.want_slot_attention = False

    def clear(self) -> None:
        """Forget the records made so far."""
        self.records = {}
        self.history = []

    def __getitem__(self, name: Union[str, int]) -> GroupingRecord:
        if isinstance(name, int):
            name = self.block_names[name]
        if name not in self.records:
            if name in self._taps:
                raise KeyError(f"no forward pass recorded for {name!r} yet: run the model inside the probe")
            raise KeyError(f"{name!r} is not a probed GLMix block; probed blocks: {self.block_names}")
        return self.records[name]

    def __contains__(self, name: object) -> bool:
        return name in self.records

    def __iter__(self) -> Iterator[str]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def items(self) -> Iterable[tuple]:
        return self.records.items()
