"""Optimiser set-up: AdamW parameter groups (which tensors decay) and the warm-up + cosine learning rate."""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence

import torch.nn as nn

__all__ = ["build_param_groups", "learning_rate_at"]


def build_param_groups(
    modules: Sequence[nn.Module], weight_decay: float, slot_scale_wd: Optional[float] = None, recipe: str = "ndim"
) -> List[Dict[str, Any]]:
    """AdamW parameter groups.

    Tensors with more than one dimension decay with ``weight_decay``; biases, norms and other 1-dim tensors never
    decay. ``slot_scale`` (0-dim) and learned ``init_slots``: ``slot_scale_wd`` if given, else ``weight_decay`` under
    the "official" recipe (as the GLMix ImageNet training does) and 0 under "ndim".

    Returns:
        Up to three groups, each with ``params``, ``weight_decay`` and ``name``.
    """
    slot_decay = slot_scale_wd if slot_scale_wd is not None else (weight_decay if recipe == "official" else 0.0)
    groups: Dict[str, Dict[str, Any]] = {
        "decay": dict(params=[], weight_decay=weight_decay, name="decay"),
        "no_decay": dict(params=[], weight_decay=0.0, name="no_decay"),
        "slots": dict(params=[], weight_decay=slot_decay, name="slots"),
    }
    seen = set()
    for module in modules:
        for name, param in module.named_parameters():
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            if name.endswith("slot_scale") or name.endswith("init_slots"):
                groups["slots"]["params"].append(param)
            elif param.ndim > 1:
                groups["decay"]["params"].append(param)
            else:
                groups["no_decay"]["params"].append(param)
    return [group for group in groups.values() if group["params"]]


def learning_rate_at(step: int, total_steps: int, warmup_steps: int, peak: float, floor: float) -> float:
    """Linear warm-up from 0 to ``peak`` over ``warmup_steps``, then a half-cosine from ``peak`` to ``floor``."""
    if warmup_steps > 0 and step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
    progress = min(max(progress, 0.0), 1.0)
    return floor + 0.5 * (peak - floor) * (1.0 + math.cos(math.pi * progress))

