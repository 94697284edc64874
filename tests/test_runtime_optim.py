"""Parameter groups (timm's weight-decay filter), AdamW through timm's factory, and the per-step schedules."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from glmix_viz.runtime.optim import create_adamw, cosine_schedule, decay_groups, in_first_use_order, poly_schedule


def _rates(schedule_of, steps, peak=1.0, ratios=(1.0,)):
    """The rate of every group at each step, set by the schedule on a throwaway AdamW."""
    params = [nn.Parameter(torch.zeros(2, 2)) for _ in ratios]
    optimizer = create_adamw([dict(params=[p], weight_decay=0.0, lr_ratio=r) for p, r in zip(params, ratios)],
                             lr=peak)
    schedule = schedule_of(optimizer)
    rates = []
    for step in steps:
        schedule.set(step)
        rates.append([group["lr"] for group in optimizer.param_groups])
    return rates


def test_cosine_schedule_by_hand():
    # warm-up: peak * (s + 1) / W; then floor + (peak - floor) * (1 + cos(pi * (s - W) / (T - W))) / 2
    rates = _rates(lambda opt: cosine_schedule(opt, 100, 10, 0.1), [0, 4, 9, 10, 55, 99, 100, 150])
    expected = [0.1, 0.5, 1.0, 1.0, 0.1 + 0.9 * 0.5, 0.1 + 0.45 * (1 + math.cos(math.pi * 89 / 90)), 0.1, 0.1]
    assert [r[0] for r in rates] == pytest.approx(expected, rel=1e-12, abs=1e-12)
    no_warmup = _rates(lambda opt: cosine_schedule(opt, 4, 0, 0.0), [0, 1, 2, 3])
    assert [r[0] for r in no_warmup] == pytest.approx([1.0, 0.5 * (1 + math.cos(math.pi / 4)), 0.5,
                                                       0.5 * (1 + math.cos(3 * math.pi / 4))], abs=1e-12)


def test_poly_schedule_by_hand_and_group_ratios_kept():
    # warm-up: rate * (s + 1) / W for s < W - 1; then rate * (1 - s / T) ** 0.9 (0 from T on)
    rates = _rates(lambda opt: poly_schedule(opt, 100, 10), [0, 4, 8, 9, 50, 100], peak=2.0, ratios=(1.0, 0.1))
    decoder = [r[0] for r in rates]
    assert decoder == pytest.approx([0.2, 1.0, 1.8, 2.0 * 0.9 ** 0.9, 2.0 * 0.5 ** 0.9, 0.0], abs=1e-12)
    assert [r[1] for r in rates] == pytest.approx([0.1 * value for value in decoder], rel=1e-12, abs=1e-15)


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3)
        self.norm = nn.LayerNorm(4)
        self.slot_scale = nn.Parameter(torch.tensor(1.0))
        self.init_slots = nn.Parameter(torch.zeros(3, 4))
        self.frozen = nn.Linear(4, 4)
        self.frozen.requires_grad_(False)


def test_decay_groups_follow_timms_filter_and_take_out_own_patterns():
    model = _Tiny()
    groups = {g["name"]: g for g in decay_groups(model, 0.05, own={"slots": ("*slot_scale", "*init_slots")},
                                                 own_decay={"slots": 0.3}, lr_ratio=0.5)}
    assert list(groups) == ["decay", "no_decay", "slots"]
    assert groups["decay"]["params"] == [model.stem.weight] and groups["decay"]["weight_decay"] == 0.05
    assert groups["no_decay"]["params"] == [model.stem.bias, model.norm.weight, model.norm.bias]
    assert groups["no_decay"]["weight_decay"] == 0.0
    assert groups["slots"]["params"] == [model.slot_scale, model.init_slots] and groups["slots"]["weight_decay"] == 0.3
    assert all(group["lr_ratio"] == 0.5 for group in groups.values())  # frozen tensors are in no group
    prefixed = decay_groups(model, 0.0, prefix="encoder_")  # no decay at all: one group
    assert [g["name"] for g in prefixed] == ["encoder_no_decay"] and len(prefixed[0]["params"]) == 6


def test_groups_in_first_use_order_and_adamw_through_timm():
    model = nn.Sequential(nn.LayerNorm(4), nn.Linear(4, 4))
    groups = in_first_use_order(decay_groups(model, 0.1), model)
    assert [g["name"] for g in groups] == ["no_decay", "decay"]  # the norm comes first
    optimizer = create_adamw(groups, lr=0.01)
    assert type(optimizer) is torch.optim.AdamW and optimizer.defaults["betas"] == (0.9, 0.999)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.0, 0.1]
