"""glmix_viz.slots.usage: dispatch entropy, slots used and effective slots, against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from glmix_viz.slots.usage import slot_usage


def test_slot_usage_of_uniform_logits_has_full_entropy():
    usage = slot_usage(np.zeros((9, 4, 5)))
    assert usage.dispatch_entropy == pytest.approx(math.log(9))
    assert usage.normalized_entropy == pytest.approx(1.0)
    assert usage.soft_areas == pytest.approx(np.full(9, 1 / 9))
    assert usage.slots_used == 1  # ties go to the first slot
    assert usage.effective_slots == pytest.approx(1.0)


def test_slot_usage_of_a_confident_two_way_split():
    logits = np.zeros((4, 2, 2))
    logits[1, 0, :] = 50.0  # top row -> slot 1
    logits[3, 1, :] = 50.0  # bottom row -> slot 3
    usage = slot_usage(logits)
    assert usage.num_slots == 4
    assert usage.dispatch_entropy == pytest.approx(0.0, abs=1e-12)
    assert usage.slots_used == 2
    assert usage.effective_slots == pytest.approx(2.0)
    assert usage.hard_areas == pytest.approx([0.0, 0.5, 0.0, 0.5])


def test_slot_usage_refuses_a_flat_array():
    with pytest.raises(ValueError):
        slot_usage(np.zeros((4, 4)))
