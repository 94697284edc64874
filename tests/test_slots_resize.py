"""glmix_viz.slots.resize: nearest resizing of label maps, bilinear resizing of score maps, hard slot labels."""

from __future__ import annotations

import numpy as np

from glmix_viz.slots.resize import slot_labels, upsample_labels, upsample_maps


def test_upsample_labels_nearest() -> None:
    labels = np.array([[1, 2], [3, 4]], dtype=np.uint8)
    upsampled = upsample_labels(labels, (4, 4))
    assert upsampled.dtype == np.uint8
    np.testing.assert_array_equal(upsampled, np.kron(labels, np.ones((2, 2), dtype=np.uint8)))
    # 3 → 5 columns: source column of x is floor((x + 0.5) * 3 / 5) = 0, 0, 1, 2, 2.
    np.testing.assert_array_equal(upsample_labels(np.array([[5, 6, 7]]), (1, 5)), [[5, 5, 6, 7, 7]])


def test_upsample_maps_bilinear_half_pixel() -> None:
    maps = np.array([[[0.0, 1.0]], [[2.0, 2.0]]], dtype=np.float32)  # (S=2, h=1, w=2).
    upsampled = upsample_maps(maps, (1, 4))
    assert upsampled.shape == (2, 1, 4) and upsampled.dtype == np.float32
    np.testing.assert_allclose(upsampled[0, 0], [0.0, 0.25, 0.75, 1.0])
    np.testing.assert_allclose(upsampled[1], 2.0)


def test_slot_labels_is_the_argmax_slot_resized_by_nearest_neighbour() -> None:
    dispatch = np.zeros((3, 2, 2), dtype=np.float32)
    dispatch[2, 0, 0] = dispatch[1, 0, 1] = dispatch[0, 1, 0] = dispatch[2, 1, 1] = 1.0
    np.testing.assert_array_equal(slot_labels(dispatch), [[2, 1], [0, 2]])
    np.testing.assert_array_equal(slot_labels(dispatch, (4, 4)), np.kron([[2, 1], [0, 2]], np.ones((2, 2), int)))
