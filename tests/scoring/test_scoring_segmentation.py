"""glmix_viz.scoring.segmentation: no class is assumed to be the background; ignore is a parameter."""

from __future__ import annotations

import numpy as np
import pytest

from glmix_viz.scoring.segmentation import (
    SegmentationMetric,
    confusion_matrix,
    image_scores,
    row_confusions,
    rows_confusion,
    scores_from_confusion,
)


def test_a_predicted_ignore_counts_as_the_data_sets_background_wherever_it_stands():
    gt = np.array([[2, 2, 0, 1]])
    pred = np.array([[255, 2, 0, 255]])
    conf = confusion_matrix(pred, gt, 3, background=2)
    # (2 -> 2) twice (one of them the unsure pixel), (0 -> 0), (1 -> 2: the unsure pixel called background)
    assert conf.tolist() == [[1, 0, 0], [0, 0, 1], [0, 0, 2]]
    # the old convention, background 0, gives another matrix: the test sees where the background is
    assert confusion_matrix(pred, gt, 3, background=0).tolist() == [[1, 0, 0], [1, 0, 0], [1, 0, 1]]


def test_without_a_background_class_unsure_pixels_are_left_out():
    gt = np.array([[0, 1, 1]])
    pred = np.array([[255, 1, 0]])
    assert confusion_matrix(pred, gt, 2, background=None).tolist() == [[0, 0], [1, 1]]
    assert confusion_matrix(pred, gt, 2, pred_ignore="ignore").tolist() == [[0, 0], [1, 1]]


def test_the_ignore_value_is_a_parameter():
    gt = np.array([[7, 0, 1]])
    pred = np.array([[1, 7, 1]])
    conf = confusion_matrix(pred, gt, 2, background=1, ignore=7)
    # gt 7 left out; predicted 7 (unsure) counts as the background, class 1
    assert conf.tolist() == [[0, 1], [0, 1]]
    with pytest.raises(ValueError, match="not 7"):
        confusion_matrix(np.array([[255]]), np.array([[0]]), 2, ignore=7)


def test_the_metric_passes_background_and_ignore_on():
    metric = SegmentationMetric(3, ["a", "b", "background"], background=2, ignore=9)
    metric.update(np.array([[9, 0]]), np.array([[2, 9]]))
    assert metric.confusion.tolist() == [[0, 0, 0], [0, 0, 0], [0, 0, 1]]
    assert metric.compute()["iou"] == {"a": None, "b": None, "background": 1.0}


def test_image_scores_by_hand_and_rows_add_up():
    names = ["background", "a", "b", "c"]
    gt = np.array([[0, 0, 1, 1], [0, 2, 2, 255]])
    pred = np.array([[0, 1, 1, 1], [0, 2, 0, 255]])
    row = image_scores("x", confusion_matrix(pred, gt, 4), names, unsure_share=1 / 8)
    # background: TP 2, FP 1, FN 1 -> 1/2; a: TP 2, FP 1 -> 2/3; b: TP 1, FN 1 -> 1/2; c absent from both
    assert row["iou"] == {"background": 0.5, "a": pytest.approx(2 / 3), "b": 0.5, "c": None}
    assert row["miou"] == pytest.approx((0.5 + 2 / 3 + 0.5) / 3)
    other = image_scores("y", confusion_matrix(np.array([[3, 1]]), np.array([[0, 1]]), 4), names, unsure_share=0)
    stacked = row_confusions([row, other], 4)
    assert stacked.shape == (2, 4, 4) and stacked[1, 0, 3] == 1
    total = rows_confusion([row, other], 4)
    assert total.sum() == row["num_pixels"] + other["num_pixels"]
    assert scores_from_confusion(total, names)["num_pixels"] == 9
