"""Resizing of label maps and score maps: numpy in, numpy out, no plotting library.

The pictures (:mod:`glmix_viz.viz`), the grouping score (:mod:`glmix_viz.grouping`) and one-image exploration
(:mod:`glmix_viz.slots.explore`) all resize maps the same way, through these functions:

* :func:`upsample_labels` - nearest neighbour for label maps (pixel centres aligned);
* :func:`upsample_maps` - bilinear for stacks of float maps (``torch.nn.functional.interpolate``,
  ``align_corners=False``);
* :func:`slot_labels` - the hard grouping (arg-max slot of every pixel), optionally resized.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["slot_labels", "upsample_labels", "upsample_maps"]


def upsample_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a label map (pixel centres aligned, like ``align_corners=False``).

    Args:
        labels: ``(h, w)`` label map of any dtype.
        size: Target ``(H, W)``.

    Returns:
        ``(H, W)`` array of the same dtype; output pixel ``(y, x)`` takes input pixel
        ``(floor((y + 0.5) * h / H), floor((x + 0.5) * w / W))``.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be (h, w), got {labels.shape}")
    height, width = int(size[0]), int(size[1])
    rows = np.minimum(((np.arange(height) + 0.5) * labels.shape[0] / height).astype(np.intp), labels.shape[0] - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * labels.shape[1] / width).astype(np.intp), labels.shape[1] - 1)
    return labels[rows[:, None], cols[None, :]]


def upsample_maps(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a stack of maps (``torch.nn.functional.interpolate``, ``align_corners=False``).

    Args:
        maps: ``(S, h, w)`` float maps.
        size: Target ``(H, W)``.

    Returns:
        ``(S, H, W)`` ``float32``.
    """
    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim != 3:
        raise ValueError(f"maps must be (S, h, w), got {maps.shape}")
    target = (int(size[0]), int(size[1]))
    if maps.shape[1:] == target:
        return maps.copy()
    tensor = torch.from_numpy(np.require(maps, requirements=("C", "W")))[None]  # read-only maps: copied
    return F.interpolate(tensor, size=target, mode="bilinear", align_corners=False)[0].numpy()


def slot_labels(dispatch: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """Hard grouping: the slot each pixel is dispatched to most (argmax over slots), optionally upsampled.

    Args:
        dispatch: ``(S, h, w)`` dispatch weights (any per-pixel scores over slots).
        size: Optional target ``(H, W)``; labels are upsampled with nearest neighbour.

    Returns:
        ``(h, w)`` or ``(H, W)`` ``int64`` slot indices.
    """
    dispatch = np.asarray(dispatch)
    if dispatch.ndim != 3:
        raise ValueError(f"dispatch must be (S, h, w), got {dispatch.shape}")
    labels = np.argmax(dispatch, axis=0).astype(np.int64)
    return labels if size is None else upsample_labels(labels, size)
