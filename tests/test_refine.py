"""Tests of the refinements (glmix_viz.refine): PAR's invariants, hand-checked small cases, the one entry point."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from glmix_viz.crf import CRFParams, dense_crf
from glmix_viz.refine import (
    REFINEMENTS,
    PARParams,
    _affinity,
    check_device,
    default_params,
    method_of,
    par_refine,
    par_refine_batch,
    refine,
    refined_labels,
)

HEIGHT, WIDTH = 24, 32


def _random(seed: int = 0, classes: int = 3):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
    probs = rng.random((classes, HEIGHT, WIDTH)).astype(np.float32)
    return image, probs


def _two_colours():
    """Left half red, right half blue; class 1 likely (0.9) on the left half only."""
    image = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    image[:, : WIDTH // 2] = [200, 40, 40]
    image[:, WIDTH // 2:] = [40, 60, 200]
    probs = np.empty((2, HEIGHT, WIDTH), dtype=np.float32)
    probs[1] = np.where(np.arange(WIDTH) < WIDTH // 2, 0.9, 0.1)[None, :]
    probs[0] = 1 - probs[1]
    return image, probs


def test_output_is_a_distribution_per_pixel():
    image, probs = _random()
    refined = par_refine(image, probs * 7.0)  # unnormalised scores are made a distribution first
    assert refined.shape == probs.shape and refined.dtype == np.float32
    assert np.all(refined >= 0)
    assert np.allclose(refined.sum(0), 1.0, atol=1e-5)
    assert not np.allclose(refined, probs / probs.sum(0), atol=1e-2)  # it did something


def test_constant_probability_maps_are_unchanged_whatever_the_image():
    image, _ = _random(1)
    probs = np.empty((3, HEIGHT, WIDTH), dtype=np.float32)
    probs[:] = np.array([0.2, 0.5, 0.3], dtype=np.float32)[:, None, None]
    assert np.allclose(par_refine(image, probs), probs, atol=1e-5)


def test_a_constant_image_gives_the_uniform_colour_affinity():
    params = PARParams(dilations=(1, 2), position_weight=0.01)
    images = torch.full((1, 3, 6, 7), 120.0)
    affinity = _affinity(images, params)
    # hand computation: colour logits all 0 -> softmax 1/16; distances d (x4) and d*sqrt(2) (x4) for d = 1, 2
    distance = np.array([math.sqrt(2), 1, math.sqrt(2), 1, 1, math.sqrt(2), 1, math.sqrt(2)] * 1)
    distance = np.concatenate([distance, 2 * distance])
    spread = distance.std(ddof=1)
    logits = -(distance / spread / 0.3) ** 2
    position = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    expected = (1 / 16 + 0.01 * position) / 1.01
    assert np.allclose(affinity[0, :, 3, 3].numpy(), expected, atol=1e-6)
    assert np.allclose(affinity.sum(1).numpy(), 1.0, atol=1e-6)


def test_one_step_on_a_constant_image_is_the_mean_of_the_8_neighbours():
    """Hand case: dilation 1, one step, no position term, full size: the mean of the 8 neighbours (edges repeated)."""
    rng = np.random.default_rng(3)
    probs = rng.random((2, 4, 5)).astype(np.float32)
    probs /= probs.sum(0)
    image = np.full((4, 5, 3), 90, dtype=np.uint8)
    refined = par_refine(image, probs, PARParams(dilations=(1,), iterations=1, position_weight=0.0, scale=1.0))
    padded = np.pad(probs, ((0, 0), (1, 1), (1, 1)), mode="edge")
    expected = np.zeros_like(probs)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                expected += padded[:, 1 + dy:5 + dy, 1 + dx:6 + dx] / 8
    assert np.allclose(refined, expected, atol=1e-6)


def test_the_colour_kernel_by_hand_on_one_pixel():
    """3x3 image, dilation 1: the centre's affinities follow the published formula, computed here in numpy."""
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, size=(3, 3, 3)).astype(np.float32)
    affinity = _affinity(torch.from_numpy(image).permute(2, 0, 1)[None], PARParams(dilations=(1,), position_weight=0))
    centre = image[1, 1]
    ring = [image[y, x] for y, x in ((0, 0), (0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1), (2, 2))]
    std = np.std(np.stack(ring), axis=0, ddof=1)
    logits = np.array([-np.mean((np.abs(n - centre) / (std + 1e-8) / 0.3) ** 2) for n in ring])
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    assert np.allclose(affinity[0, :, 1, 1].numpy(), expected, atol=1e-5)


def test_a_colour_edge_stops_propagation():
    image, probs = _two_colours()
    params = PARParams(scale=1.0)
    across_edge = par_refine(image, probs, params)[1, :, WIDTH // 2:]
    flat = par_refine(np.full_like(image, 128), probs, params)[1, :, WIDTH // 2:]
    assert across_edge.max() < 0.1 + 0.02  # at most the position term's small leak crosses the edge
    assert flat.mean() > 0.3  # without the edge, the left half's class spreads right
    assert (par_refine(image, probs, params).argmax(0) == (np.arange(WIDTH) < WIDTH // 2)[None, :]).all()


def test_a_per_channel_rescaled_image_gives_the_same_refinement():
    image, probs = _random(5)
    params = PARParams(scale=1.0)
    rescaled = image.astype(np.float32) * np.array([0.5, 2.0, 1 / 255]) + np.array([10.0, -3.0, 0.0])
    assert np.allclose(par_refine(image, probs, params), par_refine(rescaled, probs, params), atol=1e-4)


def test_batch_equals_one_by_one_and_zero_iterations_keep_the_input():
    images, maps = zip(*(_random(seed) for seed in (6, 7)))
    batch = par_refine_batch(torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float(),
                             torch.from_numpy(np.stack(maps)))
    for index in range(2):
        assert np.allclose(batch[index].numpy(), par_refine(images[index], maps[index]), atol=1e-5)
    assert np.allclose(par_refine(images[0], maps[0], PARParams(iterations=0)), maps[0] / maps[0].sum(0), atol=1e-6)


def test_refine_dispatches_and_labels_follow_the_confidence_rule():
    image, probs = _random(8)
    assert REFINEMENTS[0] == "crf"
    assert np.allclose(refine("crf", image, probs), dense_crf(image, probs, CRFParams()), atol=1e-6)
    assert np.allclose(refine("par", image, probs), par_refine(image, probs), atol=1e-6)
    assert np.allclose(refine("none", image, probs * 3), probs / probs.sum(0), atol=1e-6)
    labels = refined_labels(image, probs, PARParams(confidence=0.99))
    assert (labels == 255).all()  # no refined probability of 3 classes reaches 0.99 on noise
    assert set(np.unique(refined_labels(image, probs, None))) <= {0, 1, 2}
    assert method_of(None) == "none" and method_of(CRFParams()) == "crf" and method_of(PARParams()) == "par"


@pytest.mark.parametrize("call, message", [
    (lambda: refine("bilateral", *_random()), "unknown refinement 'bilateral'"),
    (lambda: default_params("crff"), "unknown refinement 'crff'"),
    (lambda: PARParams(iterations=-1), "iterations must be an integer >= 0"),
    (lambda: PARParams(dilations=()), "dilations must not be empty"),
    (lambda: PARParams(dilations=(1, 0)), "dilations must be positive"),
    (lambda: PARParams(scale=0), "scale must be in (0, 1]"),
    (lambda: refine("par", *_random(), CRFParams()), "was given CRFParams"),
])
def test_bad_input_is_one_line(call, message):
    with pytest.raises(ValueError) as error:
        call()
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message where CUDA is missing")
def test_cuda_where_none_exists_is_refused_in_one_line():
    with pytest.raises(ValueError, match="CUDA is not available"):
        check_device("cuda")
    with pytest.raises(ValueError, match="CUDA is not available"):
        par_refine(*_random(), PARParams(device="cuda:0"))
    assert check_device(None) == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_and_cpu_agree():
    image, probs = _random(9)
    assert np.allclose(par_refine(image, probs, PARParams(device="cuda")), par_refine(image, probs), atol=1e-4)
