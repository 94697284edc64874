"""Parameter groups, the optimiser and the per-step schedules of both training loops, on timm's factories.

* Parameter groups: timm's weight-decay filter (:func:`timm.optim.param_groups_weight_decay`: tensors of one
  dimension or fewer and biases never decay), with names, extra keys (e.g. an ``lr_ratio``) and groups of our own
  split off by name pattern (the GLMix slot temperature and learned slots, :func:`decay_groups`).
* The optimiser: AdamW through :func:`timm.optim.create_optimizer_v2` (:func:`create_adamw`).
* Schedules: :class:`timm.scheduler.CosineLRScheduler` (linear warm-up, then a half-cosine to a floor) and
  :class:`timm.scheduler.PolyLRScheduler` (linear warm-up, then ``lr * (1 - t / T) ** power`` over all steps), both
  per optimiser step. :class:`StepSchedule` sets the learning rate of step ``s`` (0-based): during the warm-up the
  rate timm gives after ``s + 1`` updates (``peak * (s + 1) / W``, so the first step learns and the last warm-up step
  is at the peak), afterwards timm's rate at ``s``. Groups keep their ratio to the peak (each group's own base rate).
"""

from __future__ import annotations

import fnmatch
from typing import Any, Dict, List, Optional, Sequence

import torch
import torch.nn as nn
from timm.optim import create_optimizer_v2, param_groups_weight_decay
from timm.scheduler import CosineLRScheduler, PolyLRScheduler
from timm.scheduler.scheduler import Scheduler

__all__ = ["StepSchedule", "create_adamw", "cosine_schedule", "decay_groups", "in_first_use_order", "poly_schedule"]

Group = Dict[str, Any]


def decay_groups(module: nn.Module, weight_decay: float, *, prefix: str = "",
                 own: Optional[Dict[str, Sequence[str]]] = None, own_decay: Optional[Dict[str, float]] = None,
                 **extra: Any
                 ) -> List[Group]:
    """AdamW groups of a module's trainable tensors: ``decay`` / ``no_decay`` by timm's filter, plus groups of our own.

    Args:
        module: the module (a :class:`torch.nn.ModuleList` for several; shared tensors count once).
        weight_decay: decay of the ``decay`` group.
        prefix: put before every group's name (``encoder_`` gives ``encoder_decay``, ``encoder_no_decay``).
        own: group name -> parameter name patterns (fnmatch) taken out of timm's groups into a group of that name.
        own_decay: each own group's weight decay (default 0).
        extra: keys added to every group (e.g. ``lr_ratio``).

    Returns:
        The non-empty groups, ``decay``, ``no_decay``, then the own ones; each with ``params``, ``weight_decay``,
        ``name`` and ``extra``. Tensors keep the module's order inside each group.
    """
    own, own_decay = dict(own or {}), dict(own_decay or {})
    owner = {}
    for name, param in module.named_parameters():
        for group_name, patterns in own.items():
            if param.requires_grad and any(fnmatch.fnmatch(name, pattern) for pattern in patterns):
                owner.setdefault(id(param), group_name)
    filtered = param_groups_weight_decay(module, weight_decay, no_weight_decay_list=())
    groups: Dict[str, Group] = {key: dict(params=[], weight_decay=value, name=prefix + key, **extra)
                                for key, value in (("decay", weight_decay), ("no_decay", 0.0))}
    for group_name in own:
        groups[group_name] = dict(params=[], weight_decay=own_decay.get(group_name, 0.0), name=prefix + group_name,
                                  **extra)
    for group in filtered:
        target = "decay" if group["weight_decay"] > 0 else "no_decay"
        for param in group["params"]:
            groups[owner.get(id(param), target)]["params"].append(param)
    return [group for group in groups.values() if group["params"]]


def in_first_use_order(groups: Sequence[Group], module: nn.Module) -> List[Group]:
    """The groups ordered by where their first tensor comes in ``module.parameters()`` (a stable layout for resume)."""
    position = {id(param): index for index, param in enumerate(module.parameters())}
    return sorted(groups, key=lambda group: min(position[id(param)] for param in group["params"]))


def create_adamw(groups: Sequence[Group], lr: float, betas=(0.9, 0.999)) -> torch.optim.Optimizer:
    """AdamW over the groups (:func:`timm.optim.create_optimizer_v2`); a group's ``lr_ratio`` scales its rate."""
    groups = [dict(group, lr=lr * group.get("lr_ratio", 1.0)) for group in groups]
    return create_optimizer_v2(groups, opt="adamw", lr=lr, betas=betas)


class StepSchedule:
    """Sets the learning rates of an optimiser step by step from a timm scheduler (see the module docstring).

    Args:
        scheduler: a timm scheduler built with ``t_in_epochs=False`` and ``warmup_t=warmup_steps``.
        warmup_steps: its warm-up length W.
    """

    def __init__(self, scheduler: Scheduler, warmup_steps: int) -> None:
        self.scheduler = scheduler
        self.warmup_steps = warmup_steps

    def set(self, step: int) -> float:
        """Set every group's rate for step ``step`` (0-based); return the largest (the peak group's)."""
        self.scheduler.step_update(step + 1 if step < self.warmup_steps else step)
        return max(group["lr"] for group in self.scheduler.optimizer.param_groups)


def cosine_schedule(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int,
                    floor: float) -> StepSchedule:
    """Linear warm-up from 0 over ``warmup_steps``, then a half-cosine from each group's rate to ``floor`` at
    ``total_steps`` (:class:`timm.scheduler.CosineLRScheduler`, the warm-up as a prefix)."""
    scheduler = CosineLRScheduler(optimizer, t_initial=max(total_steps - warmup_steps, 1), lr_min=floor,
                                  warmup_t=warmup_steps, warmup_lr_init=0.0, warmup_prefix=True, t_in_epochs=False)
    return StepSchedule(scheduler, warmup_steps)


def poly_schedule(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int,
                  power: float = 0.9) -> StepSchedule:
    """Linear warm-up from 0 over ``warmup_steps``, then each group's ``rate * (1 - step / total_steps) ** power``
    (:class:`timm.scheduler.PolyLRScheduler`; 0 from ``total_steps`` on)."""
    scheduler = PolyLRScheduler(optimizer, t_initial=max(total_steps, 1), power=power, lr_min=0.0,
                                warmup_t=warmup_steps, warmup_lr_init=0.0, t_in_epochs=False)
    return StepSchedule(scheduler, warmup_steps)
