"""Tests of glmix_viz.analysis against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from glmix_viz.analysis import load_figure_model, save_figure, slot_usage


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


def test_figure_model_without_any_checkpoint_is_labelled_untrained(monkeypatch):
    import glmix_viz.models.loading as loading

    monkeypatch.setattr(loading, "demo_checkpoint", lambda: None)
    model, description = load_figure_model(num_classes=3)
    assert "UNTRAINED" in str(description) and not description.trained and description.source == "untrained"
    assert model.num_classes == 3 and not model.training


def test_save_figure_keeps_a_noisy_picture_under_the_size_limit(tmp_path):
    from PIL import Image

    noise = np.random.default_rng(0).integers(0, 256, size=(400, 400, 3), dtype=np.uint8)  # ~480 KB as plain PNG
    path = save_figure(noise, tmp_path / "deep" / "noise.png", max_bytes=100_000)
    assert path.stat().st_size <= 100_000
    with Image.open(path) as picture:
        assert picture.format == "PNG" and picture.size[0] <= 400


def test_save_figure_writes_a_matplotlib_figure(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(2, 2))
    axis.plot([0, 1], [0, 1])
    path = save_figure(figure, tmp_path / "line.png")
    plt.close(figure)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_save_figure_refuses_a_gray_array(tmp_path):
    with pytest.raises(ValueError):
        save_figure(np.zeros((8, 8), np.uint8), tmp_path / "gray.png")
