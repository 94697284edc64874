"""Tests of the confusion matrix and mIoU against hand-computed values and an independent per-class computation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from glmix_viz.scoring.segmentation import (
    SegmentationMetric,
    confusion_matrix,
    format_scores,
    per_class_iou,
    scores_from_confusion,
)

GT = np.array([[0, 0, 1], [1, 2, 255]])
PRED = np.array([[0, 1, 1], [1, 255, 2]])


def test_tiny_example_background_convention():
    # Pixel (1, 1): gt 2, predicted 255 -> background. Pixel (1, 2): gt 255 -> left out.
    conf = confusion_matrix(PRED, GT, 3)
    assert conf.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    scores = scores_from_confusion(conf, ["bg", "a", "b"])
    assert scores["iou"] == pytest.approx({"bg": 1 / 3, "a": 2 / 3, "b": 0.0})
    assert scores["miou"] == pytest.approx(1 / 3)
    assert scores["pixel_accuracy"] == pytest.approx(3 / 5)
    assert scores["mean_accuracy"] == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert scores["num_pixels"] == 5


def test_tiny_example_ignore_convention():
    conf = confusion_matrix(PRED, GT, 3, pred_ignore="ignore")
    assert conf.tolist() == [[1, 1, 0], [0, 2, 0], [0, 0, 0]]
    scores = scores_from_confusion(conf, ["bg", "a", "b"])
    assert scores["iou"]["b"] is None  # absent from ground truth and prediction: undefined, not in the mean
    assert scores["miou"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert scores["pixel_accuracy"] == pytest.approx(3 / 4)
    assert scores["mean_accuracy"] == pytest.approx((1 / 2 + 1) / 2)
    assert np.isnan(per_class_iou(conf)[2])
    json.dumps(scores, allow_nan=False)  # strict JSON: undefined values are null, not NaN


def _brute_force(preds, gts, num_classes, pred_ignore):
    """Per-class loop over boolean masks, written without the confusion matrix."""
    iou, accuracy = [], []
    correct = total = 0
    for cls in range(num_classes):
        tp = fp = fn = 0
        for pred, gt in zip(preds, gts):
            valid = gt != 255
            if pred_ignore == "ignore":
                valid &= pred != 255
            mapped = np.where(pred == 255, 0, pred)
            tp += int(np.sum(valid & (gt == cls) & (mapped == cls)))
            fp += int(np.sum(valid & (gt != cls) & (mapped == cls)))
            fn += int(np.sum(valid & (gt == cls) & (mapped != cls)))
        iou.append(tp / (tp + fp + fn) if tp + fp + fn else np.nan)
        accuracy.append(tp / (tp + fn) if tp + fn else np.nan)
        correct += tp
    for pred, gt in zip(preds, gts):
        valid = gt != 255
        if pred_ignore == "ignore":
            valid &= pred != 255
        total += int(valid.sum())
    return np.array(iou), np.nanmean(iou), correct / total, np.nanmean(accuracy)


@pytest.mark.parametrize("pred_ignore", ["background", "ignore"])
def test_matches_brute_force_on_random_maps(pred_ignore):
    rng = np.random.default_rng(0)
    num_classes = 6
    preds, gts = [], []
    metric = SegmentationMetric(num_classes, pred_ignore=pred_ignore)
    for _ in range(4):
        height, width = rng.integers(5, 30, size=2)
        gt = rng.integers(0, num_classes - 1, size=(height, width))  # the last class never occurs in the truth
        pred = rng.integers(0, num_classes - 1, size=(height, width))
        gt[rng.random((height, width)) < 0.1] = 255
        pred[rng.random((height, width)) < 0.15] = 255
        preds.append(pred.astype(np.uint8))
        gts.append(gt.astype(np.uint8))
        metric.update(preds[-1], gts[-1])
    expected_iou, expected_miou, expected_pixel_accuracy, expected_mean_accuracy = _brute_force(
        preds, gts, num_classes, pred_ignore)
    scores = metric.compute()
    assert np.isnan(expected_iou[-1]) and scores["per_class"][-1]["iou"] is None
    assert np.allclose(per_class_iou(metric.confusion), expected_iou, equal_nan=True)
    assert scores["miou"] == pytest.approx(expected_miou)
    assert scores["pixel_accuracy"] == pytest.approx(expected_pixel_accuracy)
    assert scores["mean_accuracy"] == pytest.approx(expected_mean_accuracy)
    assert scores["num_images"] == 4 and scores["pred_ignore"] == pred_ignore
    whole = confusion_matrix(np.concatenate([p.ravel() for p in preds]), np.concatenate([g.ravel() for g in gts]),
                             num_classes, pred_ignore=pred_ignore)
    assert np.array_equal(metric.confusion, whole)


def test_merge_and_reset():
    first, second, both = SegmentationMetric(3), SegmentationMetric(3), SegmentationMetric(3)
    first.update(PRED, GT)
    second.update(GT.clip(0, 2), GT.clip(0, 2))
    both.update(PRED, GT)
    both.update(GT.clip(0, 2), GT.clip(0, 2))
    first.merge(second)
    assert np.array_equal(first.confusion, both.confusion) and first.num_images == 2
    first.reset()
    assert first.confusion.sum() == 0 and first.compute()["miou"] is None


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(np.zeros((2, 2)), np.zeros((2, 3)), 3)
    with pytest.raises(ValueError, match=r"predicted labels \[7\]"):
        confusion_matrix(np.full((2, 2), 7), np.zeros((2, 2)), 3)
    with pytest.raises(ValueError, match=r"ground-truth labels \[3\]"):
        confusion_matrix(np.zeros((2, 2)), np.full((2, 2), 3), 3)
    with pytest.raises(ValueError, match="pred_ignore"):
        confusion_matrix(PRED, GT, 3, pred_ignore="drop")


def test_format_scores_prints_percentages():
    text = format_scores(scores_from_confusion(confusion_matrix(PRED, GT, 3), ["bg", "a", "b"]))
    assert "mIoU" in text and "33.33" in text and "66.67" in text and "60.00" in text
