"""The one error coding of glmix-viz: what a predicted label map got wrong, pixel by pixel.

:func:`error_map` gives every pixel one code of :data:`ERROR_KINDS`; the evaluation's worst-image figure, the
explorer's run browser and the notebooks' mask comparisons all draw these codes (in the colours of
:data:`glmix_viz.viz.ERROR_COLORS`, with :func:`glmix_viz.viz.error_overlay`).
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

__all__ = ["ERROR_KINDS", "error_map"]

ERROR_KINDS: Tuple[str, ...] = ("correct", "missed foreground", "false foreground", "wrong class", "unsure",
                                "ignored")
"""The codes of :func:`error_map`, in order: 0 correct, 1 an object pixel called background, 2 a background pixel
called an object, 3 an object pixel called another object, 4 predicted ``ignore`` (unsure), 5 ground truth
``ignore`` (not scored)."""


def error_map(pred: np.ndarray, gt: np.ndarray, *, background: Optional[int] = 0, ignore: int = 255) -> np.ndarray:
    """``(H, W)`` uint8 codes of :data:`ERROR_KINDS` for a prediction against its ground truth.

    Args:
        pred: ``(H, W)`` predicted class ids (``ignore``: unsure).
        gt: ``(H, W)`` ground-truth class ids (``ignore``: not scored).
        background: the data set's background class id; with None (no background class) every wrong pixel is
            "wrong class".
        ignore: the ignore value.

    A ground-truth ``ignore`` pixel is "ignored" whatever was predicted; else a predicted ``ignore`` is "unsure" (the
    scores count it as background or leave it out, by their ``pred_ignore`` rule).

    Raises:
        ValueError: the shapes differ.
    """
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from ground-truth shape {gt.shape}")
    codes = np.full(gt.shape, 3, dtype=np.uint8)  # wrong class unless one of the cases below
    codes[pred == gt] = 0
    if background is not None:
        codes[(gt != background) & (pred == background)] = 1
        codes[(gt == background) & (pred != background)] = 2
    codes[pred == ignore] = 4
    codes[gt == ignore] = 5
    return codes
