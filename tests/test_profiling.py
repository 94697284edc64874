"""Tests of glmix_viz.profiling (MACs, activation memory, scaling fits, round-robin timing) against hand-computed
values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from glmix_viz.profiling import count_macs, fit_scaling_exponent, peak_activation_bytes, time_round_robin


class FlattenLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


class TwoLayers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(3 * 8 * 8, 1000)
        self.second = nn.Linear(1000, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(torch.relu(self.first(x.flatten(1))))


class Attention(nn.Module):
    """Self-attention of the 16 pixels of an (1, 3, 4, 4) input, 2 heads of 8 channels (a 1x1 conv makes q = k = v)."""

    def __init__(self) -> None:
        super().__init__()
        self.project = nn.Conv2d(3, 16, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.project(x).flatten(2).transpose(1, 2).reshape(1, 16, 2, 8).transpose(1, 2)  # (1, 2, 16, 8)
        return F.scaled_dot_product_attention(tokens, tokens, tokens)


def test_macs_of_a_linear_layer_are_batch_in_out():
    assert count_macs(FlattenLinear(3 * 8 * 8, 10), 8, batch=2) == 2 * 192 * 10


def test_macs_of_a_convolution_are_pixels_out_channels_in_channels_kernel():
    conv = nn.Conv2d(3, 4, kernel_size=3, padding=1)
    assert count_macs(conv, (8, 6)) == 8 * 6 * 4 * 3 * 9


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_macs_count_scaled_dot_product_attention_on_every_device(device):
    model = Attention().to(device)
    projection = 16 * 16 * 3  # 1x1 conv: pixels x out x in
    attention = 2 * 16 * 16 * 8 + 2 * 16 * 16 * 8  # heads x L x S x E for Q K^T, and again for the product with V
    assert count_macs(model, 4) == projection + attention


def test_count_macs_restores_training_mode():
    model = FlattenLinear(12, 2).train()
    count_macs(model, (2, 2))
    assert model.training


def test_peak_activation_bytes_of_one_linear_layer_is_its_output():
    assert peak_activation_bytes(FlattenLinear(3 * 8 * 8, 10), 8, batch=2) == 2 * 10 * 4


def test_peak_activation_bytes_counts_tensors_alive_together_and_frees_the_rest():
    # first output (1000 floats) and its ReLU (1000 floats) are alive together; then the first one is freed before
    # the second layer's 10 floats appear
    assert peak_activation_bytes(TwoLayers(), 8) == 2 * 1000 * 4


def test_peak_activation_bytes_is_the_same_on_meta():
    torch.manual_seed(0)
    model = TwoLayers()
    assert peak_activation_bytes(model.to("meta"), 8, batch=3) == 3 * 2 * 1000 * 4


def test_exponent_of_an_exact_power_law():
    sizes = np.array([64, 128, 256, 512])
    fit = fit_scaling_exponent(sizes, 3.0 * sizes**2.5)
    assert fit.exponent == pytest.approx(2.5)
    assert fit.prefactor == pytest.approx(3.0)
    assert fit.r_squared == pytest.approx(1.0)
    assert fit(1024) == pytest.approx(3.0 * 1024**2.5)


def test_exponent_fit_of_noisy_data_has_r_squared_below_one():
    fit = fit_scaling_exponent([1, 2, 4, 8], [1.0, 5.0, 14.0, 70.0])
    assert 0.0 < fit.r_squared < 1.0
    assert 1.5 < fit.exponent < 2.5


@pytest.mark.parametrize("sizes,values", [([2, 2], [1, 2]), ([1, 2], [1, 0]), ([1, 2, 3], [1, 2])])
def test_exponent_fit_refuses_bad_input(sizes, values):
    with pytest.raises(ValueError):
        fit_scaling_exponent(sizes, values)


def test_time_round_robin_interleaves_the_callables_and_reports_medians():
    calls = []
    runs = {"a": lambda x: calls.append("a"), "b": lambda x: calls.append("b")}
    samples = {}
    medians = time_round_robin(runs, torch.zeros(1), warmup=1, repeats=3, samples=samples)
    assert calls == ["a", "b"] * 4  # one call of each per round, warm-up round included
    assert set(medians) == {"a", "b"} and all(len(samples[name]) == 3 for name in runs)
    assert medians["a"] == sorted(samples["a"])[1]
    with pytest.raises(ValueError):
        time_round_robin(runs, torch.zeros(1), warmup=0, repeats=0)
