"""Semantic segmentation scores from a confusion matrix: per-class IoU, mIoU, pixel and mean class accuracy, and
the per-image scores of one image.

Conventions (those of PASCAL VOC evaluation and CAM-based WSSS code such as IRN):

* The confusion matrix has ground truth in rows and prediction in columns, ``conf[g, p]`` = number of pixels.
* Ground-truth pixels equal to ``ignore`` (255 by default, object borders in VOC) are left out.
* A predicted ``ignore`` (a pseudo-mask's "uncertain" pixel) is counted as the background class by default, the
  stricter IRN convention (``pred_ignore="background"``); ``pred_ignore="ignore"`` leaves those pixels out instead.
  Which class is the background is a parameter (``background``, the data set's); no class id is assumed. A data set
  without a background class (``background=None``) has nothing to count them as: they are left out.
* The IoU of a class that occurs neither in the ground truth nor in the prediction is undefined (NaN in arrays,
  ``None`` in the JSON-friendly dicts) and left out of the mean; a class predicted but absent from the ground truth
  has IoU 0 and counts.

Scores are fractions in ``[0, 1]``; :func:`format_scores` prints them as percentages.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np

__all__ = [
    "PRED_IGNORE_RULES",
    "confusion_matrix",
    "per_class_iou",
    "scores_from_confusion",
    "format_scores",
    "SegmentationMetric",
    "image_scores",
    "rows_confusion",
    "row_confusions",
]

PRED_IGNORE_RULES: tuple[str, ...] = ("background", "ignore")
"""What to do with predicted ``ignore`` pixels: count them as the background class, or leave them out."""


def confusion_matrix(
    pred: np.ndarray,
    gt: np.ndarray,
    num_classes: int = 21,
    *,
    background: Optional[int] = 0,
    ignore: int = 255,
    pred_ignore: str = "background",
) -> np.ndarray:
    """Confusion matrix of one label map against its ground truth.

    Args:
        pred: ``(H, W)`` integer predicted labels in ``0 .. num_classes - 1`` or ``ignore``.
        gt: ``(H, W)`` integer ground-truth labels in ``0 .. num_classes - 1`` or ``ignore``.
        num_classes: Number of classes ``K``, background included.
        background: The background class id (the data set's), or None when it has none.
        ignore: Label that marks pixels to ignore.
        pred_ignore: ``"background"``: predicted ``ignore`` counts as ``background`` (left out when there is
            none); ``"ignore"``: such pixels are left out.

    Returns:
        ``(K, K)`` int64 matrix, rows ground truth, columns prediction.

    Raises:
        ValueError: Shapes differ, or a label is outside ``0 .. K - 1`` and not ``ignore``.
    """
    if pred_ignore not in PRED_IGNORE_RULES:
        raise ValueError(f"pred_ignore must be one of {PRED_IGNORE_RULES}, got {pred_ignore!r}")
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from ground-truth shape {gt.shape}")
    pred = pred.reshape(-1).astype(np.int64)
    gt = gt.reshape(-1).astype(np.int64)
    keep = gt != ignore
    pred_ignored = pred == ignore
    if pred_ignore == "background" and background is not None:
        pred = np.where(pred_ignored, background, pred)
    else:
        keep &= ~pred_ignored
    pred = pred[keep]
    gt = gt[keep]
    for name, values in (("ground-truth", gt), ("predicted", pred)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            bad = np.unique(values[(values < 0) | (values >= num_classes)])
            raise ValueError(
                f"{name} labels {bad[:5].tolist()} are outside 0..{num_classes - 1} and not {ignore}"
            )
    counts = np.bincount(gt * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def per_class_iou(conf: np.ndarray) -> np.ndarray:
    """``(K,)`` float64 IoU per class, ``TP / (TP + FP + FN)``; NaN where the class is absent from both."""
    conf = np.asarray(conf, dtype=np.float64)
    true_positive = np.diag(conf)
    union = conf.sum(axis=0) + conf.sum(axis=1) - true_positive
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, true_positive / np.where(union > 0, union, 1.0), np.nan)


def _finite_or_none(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def scores_from_confusion(conf: np.ndarray, class_names: Sequence[str] | None = None) -> dict:
    """Scores of a confusion matrix, as a JSON-friendly dict.

    Args:
        conf: ``(K, K)`` confusion matrix, rows ground truth, columns prediction.
        class_names: ``K`` names; default ``"class_0"`` ... .

    Returns:
        Dict with ``miou``, ``pixel_accuracy``, ``mean_accuracy`` (mean over classes present in the ground truth),
        ``num_pixels``, ``num_classes``, ``class_names``, ``iou`` (name -> IoU or ``None``), and ``per_class``: a
        list of ``{"name", "iou", "accuracy", "gt_pixels", "pred_pixels"}``. Undefined values are ``None``.
    """
    conf = np.asarray(conf)
    if conf.ndim != 2 or conf.shape[0] != conf.shape[1]:
        raise ValueError(f"confusion matrix must be square, got shape {conf.shape}")
    num_classes = conf.shape[0]
    names = list(class_names) if class_names is not None else [f"class_{index}" for index in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f"{len(names)} class names for a {num_classes}-class confusion matrix")
    conf = conf.astype(np.float64)
    total = conf.sum()
    true_positive = np.diag(conf)
    gt_pixels = conf.sum(axis=1)
    pred_pixels = conf.sum(axis=0)
    iou = per_class_iou(conf)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(gt_pixels > 0, true_positive / np.where(gt_pixels > 0, gt_pixels, 1.0), np.nan)
    defined_iou = iou[np.isfinite(iou)]
    defined_accuracy = accuracy[np.isfinite(accuracy)]
    return {
        "miou": _finite_or_none(float(defined_iou.mean())) if defined_iou.size else None,
        "pixel_accuracy": _finite_or_none(float(true_positive.sum() / total)) if total > 0 else None,
        "mean_accuracy": _finite_or_none(float(defined_accuracy.mean())) if defined_accuracy.size else None,
        "num_pixels": int(total),
        "num_classes": num_classes,
        "class_names": names,
        "iou": {name: _finite_or_none(float(value)) for name, value in zip(names, iou)},
        "per_class": [
            {
                "name": name,
                "iou": _finite_or_none(float(iou[index])),
                "accuracy": _finite_or_none(float(accuracy[index])),
                "gt_pixels": int(gt_pixels[index]),
                "pred_pixels": int(pred_pixels[index]),
            }
            for index, name in enumerate(names)
        ],
    }


def format_scores(scores: dict) -> str:
    """A plain-text table of :func:`scores_from_confusion` output, values in percent."""

    def percent(value: float | None) -> str:
        return "   n/a" if value is None else f"{100.0 * value:6.2f}"

    width = max(len(name) for name in scores["class_names"]) if scores["class_names"] else 5
    width = max(width, len("pixel accuracy"))
    lines = [f"{'class':<{width}}  IoU %   acc %"]
    for row in scores["per_class"]:
        lines.append(f"{row['name']:<{width}}  {percent(row['iou'])}  {percent(row['accuracy'])}")
    lines.append("-" * (width + 17))
    lines.append(f"{'mIoU':<{width}}  {percent(scores['miou'])}")
    lines.append(f"{'pixel accuracy':<{width}}  {percent(scores['pixel_accuracy'])}")
    lines.append(f"{'mean accuracy':<{width}}  {percent(scores['mean_accuracy'])}")
    return "\n".join(lines)


class SegmentationMetric:
    """Accumulates a confusion matrix over many images.

    Args:
        num_classes: Number of classes ``K``, background included.
        class_names: Names for the report; default ``"class_0"`` ... .
        background: The background class id, or None (see :func:`confusion_matrix`).
        ignore: Label that marks pixels to ignore.
        pred_ignore: See :func:`confusion_matrix`.

    Example:
        >>> metric = SegmentationMetric(21)
        >>> for pred, gt in pairs:
        ...     metric.update(pred, gt)
        >>> metric.compute()["miou"]
    """

    def __init__(
        self,
        num_classes: int = 21,
        class_names: Sequence[str] | None = None,
        *,
        background: Optional[int] = 0,
        ignore: int = 255,
        pred_ignore: str = "background",
    ) -> None:
        if pred_ignore not in PRED_IGNORE_RULES:
            raise ValueError(f"pred_ignore must be one of {PRED_IGNORE_RULES}, got {pred_ignore!r}")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
        self.num_classes = num_classes
        self.class_names = list(class_names) if class_names is not None else None
        self.background = background
        self.ignore = ignore
        self.pred_ignore = pred_ignore
        self.confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
        self.num_images = 0

    def reset(self) -> None:
        """Forget everything accumulated."""
        self.confusion[:] = 0
        self.num_images = 0

    def update(self, pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
        """Add one image; returns its own ``(K, K)`` confusion matrix."""
        conf = confusion_matrix(
            pred, gt, self.num_classes, background=self.background, ignore=self.ignore, pred_ignore=self.pred_ignore
        )
        self.confusion += conf
        self.num_images += 1
        return conf

    def merge(self, other: "SegmentationMetric") -> None:
        """Add another metric's counts (e.g. from a worker process or another shard)."""
        if other.confusion.shape != self.confusion.shape:
            raise ValueError("cannot merge metrics with different numbers of classes")
        self.confusion += other.confusion
        self.num_images += other.num_images

    def compute(self) -> dict:
        """Scores so far (see :func:`scores_from_confusion`), plus ``num_images`` and ``pred_ignore``."""
        scores = scores_from_confusion(self.confusion, self.class_names)
        scores["num_images"] = self.num_images
        scores["pred_ignore"] = self.pred_ignore
        return scores


# ----------------------------------------------------------------------------------------------------------------------
# One image
# ----------------------------------------------------------------------------------------------------------------------


def image_scores(image_id: str, conf: np.ndarray, class_names: Sequence[str], *,
                 unsure_share: float) -> Dict[str, Any]:
    """The per-image scores of one image from its ``(K, K)`` confusion matrix (fractions, ``None`` if undefined).

    * ``pixel_accuracy``: correct pixels / scored pixels;
    * ``miou``: mean IoU over the classes present in the image's ground truth or prediction (a class present in
      neither has no IoU, ``None``, and is left out);
    * ``predicted_absent``: classes the prediction holds but the ground truth does not; ``missed``: classes the
      ground truth holds but the prediction has nowhere (image-level errors, names);
    * ``unsure_share``: as given (share of the image's pixels predicted ``ignore``);
    * ``confusion``: the confusion matrix as sparse ``[ground truth, prediction, pixels]`` triplets.
    """
    conf = np.asarray(conf, dtype=np.int64)
    gt_pixels, pred_pixels = conf.sum(axis=1), conf.sum(axis=0)
    iou = per_class_iou(conf)
    defined = iou[np.isfinite(iou)]
    total = int(conf.sum())
    rows, cols = np.nonzero(conf)
    return {
        "id": image_id,
        "miou": float(defined.mean()) if defined.size else None,
        "pixel_accuracy": float(np.trace(conf) / total) if total else None,
        "iou": {name: _finite_or_none(float(value)) for name, value in zip(class_names, iou)},
        "predicted_absent": [class_names[k] for k in np.flatnonzero((pred_pixels > 0) & (gt_pixels == 0))],
        "missed": [class_names[k] for k in np.flatnonzero((gt_pixels > 0) & (pred_pixels == 0))],
        "unsure_share": float(unsure_share),
        "num_pixels": total,
        "confusion": [[int(g), int(p), int(conf[g, p])] for g, p in zip(rows, cols)],
    }


def row_confusions(rows: Sequence[Mapping[str, Any]], num_classes: int) -> np.ndarray:
    """``(N, K, K)`` the confusion matrices of :func:`image_scores` rows, one per row."""
    conf = np.zeros((len(rows), num_classes, num_classes), dtype=np.int64)
    for index, row in enumerate(rows):
        for g, p, pixels in row["confusion"]:
            conf[index, g, p] += pixels
    return conf


def rows_confusion(rows: Sequence[Mapping[str, Any]], num_classes: int) -> np.ndarray:
    """The ``(K, K)`` sum of the rows' confusion matrices (equal to the split's for all rows of an evaluation)."""
    return row_confusions(rows, num_classes).sum(axis=0)
