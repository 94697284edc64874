"""The one pseudo-mask function: arg-max or dense CRF, label ids, 255 for unsure, the palette-PNG limit."""

from __future__ import annotations

import numpy as np
import pydensecrf.densecrf  # noqa: F401  (a required dependency: imported plainly, never skipped)
import pytest

from glmix_viz.crf import CRFParams, dense_crf
from glmix_viz.pseudo.masks import channels_to_labels, pseudo_mask
from glmix_viz.pseudo.scores import ScoreMaps


def _maps(seed: int = 0) -> tuple:
    """A two-colour image and noisy scores for background + label ids 3 and 7 (channels 0, 1, 2)."""
    rng = np.random.default_rng(seed)
    image = np.zeros((30, 40, 3), np.uint8)
    image[:, :20] = (200, 40, 40)
    image[:, 20:] = (40, 60, 200)
    scores = rng.uniform(0.0, 0.3, size=(3, 30, 40)).astype(np.float32)
    scores[1, :, :20] += 0.6
    scores[2, :, 20:] += 0.6
    scores[0, :, 17:23] = 0.95  # a background strip in the middle
    return image, ScoreMaps(scores, np.array([0, 3, 7]), "hand-made")


def test_without_crf_the_mask_is_the_arg_max_in_label_ids():
    image, maps = _maps()
    mask = pseudo_mask(image, maps)
    assert mask.refined is None and np.array_equal(mask.channels, mask.before)
    labels = mask.labels()
    assert labels.dtype == np.uint8 and np.array_equal(labels, maps.labels())
    assert set(np.unique(labels[:, :17]).tolist()) == {3} and set(np.unique(labels[:, 23:]).tolist()) == {7}
    assert not labels[:, 17:23].any()


def test_with_crf_the_refined_probabilities_decide_and_unsure_pixels_are_255():
    image, maps = _maps(1)
    frozen = image.copy()
    frozen.flags.writeable = False  # e.g. a cached image in the app
    refined = dense_crf(image, maps.scores, CRFParams(iterations=5))
    confidence = float(np.median(refined.max(0)))  # about half the pixels are unsure
    mask = pseudo_mask(frozen, maps, CRFParams(iterations=5, confidence=confidence))
    np.testing.assert_allclose(mask.refined, refined, atol=1e-6)
    expected = np.array([0, 3, 7], np.uint8)[refined.argmax(0)]
    expected[refined.max(0) < confidence] = 255
    assert np.array_equal(mask.labels(), expected) and (expected == 255).any() and (expected != 255).any()
    assert np.array_equal(mask.labels_before(), maps.labels())


def test_label_ids_that_do_not_fit_a_palette_png():
    channels = np.array([[0, 1], [2, 255]], np.uint8)
    assert channels_to_labels(channels, np.array([0, 5, 9])).tolist() == [[0, 5], [9, 255]]
    with pytest.raises(ValueError, match="palette"):
        channels_to_labels(channels, np.array([0, 5, 981]))
    assert channels_to_labels(channels, np.array([0, 5, 981]), fallback_to_channels=True).tolist() == [[0, 1],
                                                                                                      [2, 255]]
