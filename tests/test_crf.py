"""Tests of the dense CRF wrapper: it cleans a noisy unary on a two-region image; outputs are probabilities."""

from __future__ import annotations

import numpy as np
import pydensecrf.densecrf  # noqa: F401  (a required dependency: imported plainly, never skipped)
import pytest

from glmix_viz.crf import CRFParams, confident_labels, crf_labels, dense_crf

HEIGHT, WIDTH = 40, 60


def _two_regions(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An image with a red left part and a blue right part, its true labels and a noisy (K=2) unary."""
    rng = np.random.default_rng(seed)
    truth = np.zeros((HEIGHT, WIDTH), dtype=np.int64)
    truth[:, 25:] = 1
    image = np.where(truth[..., None] == 0, np.array([200, 40, 40]), np.array([40, 60, 200]))
    image = np.clip(image + rng.normal(0, 4, size=image.shape), 0, 255).astype(np.uint8)
    confidence = rng.uniform(0.55, 0.75, size=(HEIGHT, WIDTH))
    flipped = rng.random((HEIGHT, WIDTH)) < 0.2
    noisy_label = np.where(flipped, 1 - truth, truth)
    probs = np.empty((2, HEIGHT, WIDTH))
    probs[1] = np.where(noisy_label == 1, confidence, 1 - confidence)
    probs[0] = 1 - probs[1]
    return image, truth, probs


def test_crf_cleans_a_noisy_unary():
    image, truth, probs = _two_regions()
    before = (probs.argmax(0) == truth).mean()
    refined = dense_crf(image, probs)
    after = (refined.argmax(0) == truth).mean()
    assert 0.75 < before < 0.85
    assert after > 0.98
    assert refined.shape == (2, HEIGHT, WIDTH) and refined.dtype == np.float32
    assert np.allclose(refined.sum(0), 1.0, atol=1e-4)
    assert np.array_equal(crf_labels(image, probs), refined.argmax(0).astype(np.uint8))


def test_crf_parameters_matter_and_zero_iterations_keep_the_unary():
    image, _, probs = _two_regions(1)
    unchanged = dense_crf(image, probs, CRFParams(iterations=0))
    assert np.allclose(unchanged, probs, atol=1e-4)  # inference(0) is the softmax of -log(p): p itself
    weak = dense_crf(image, probs, CRFParams(gaussian_compat=0.0, bilateral_compat=0.1, iterations=5))
    strong = dense_crf(image, probs)
    assert not np.allclose(weak, strong, atol=1e-3)


def test_single_class_and_non_contiguous_inputs():
    image, truth, probs = _two_regions(2)
    assert np.array_equal(dense_crf(image, probs[:1] * 0 + 1), np.ones((1, HEIGHT, WIDTH), dtype=np.float32))
    flipped_image = np.ascontiguousarray(image[:, ::-1])[:, ::-1]  # a non-contiguous view of the same pixels
    flipped_probs = np.ascontiguousarray(probs[:, :, ::-1])[:, :, ::-1]
    assert not flipped_image.flags.c_contiguous
    assert np.allclose(dense_crf(flipped_image, flipped_probs), dense_crf(image, probs), atol=1e-5)


def test_confidence_rule_marks_uncertain_pixels():
    probs = np.array([[[0.9, 0.5, 0.2]], [[0.1, 0.5, 0.8]]])  # (K=2, H=1, W=3)
    assert confident_labels(probs, None).tolist() == [[0, 0, 1]]
    assert confident_labels(probs, 0.6).tolist() == [[0, 255, 1]]
    assert confident_labels(probs, 0.85).tolist() == [[0, 255, 255]]
    image, truth, noisy = _two_regions(3)
    labels = crf_labels(image, noisy, CRFParams(confidence=0.999999))
    refined = dense_crf(image, noisy)
    assert np.array_equal(labels == 255, refined.max(0) < 0.999999)


def test_bad_inputs_raise():
    image, _, probs = _two_regions()
    with pytest.raises(ValueError, match="uint8"):
        dense_crf(image.astype(np.float32), probs)
    with pytest.raises(ValueError, match="H, W"):
        dense_crf(image, probs[:, :-1])
    with pytest.raises(ValueError, match="NaN"):
        dense_crf(image, probs * np.nan)
    with pytest.raises(ValueError, match="confidence"):
        CRFParams(confidence=1.5)


def test_read_only_and_strided_images_are_accepted():
    """Images from caches or views are often read-only or strided; pydensecrf needs a writable C buffer."""
    image = np.zeros((6, 10, 3), np.uint8)
    image[:, 5:] = 200
    probs = np.zeros((2, 6, 10), np.float32)
    probs[0, :, :5], probs[1, :, :5] = 0.8, 0.2
    probs[0, :, 5:], probs[1, :, 5:] = 0.3, 0.7
    frozen = image.copy()
    frozen.flags.writeable = False
    strided = np.zeros((6, 20, 3), np.uint8)[:, ::2]
    strided[...] = image
    expected = dense_crf(image, probs)
    np.testing.assert_allclose(dense_crf(frozen, probs), expected)
    np.testing.assert_allclose(dense_crf(strided, probs), expected)
