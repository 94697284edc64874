"""Pictures of an atlas: the crop of one region, and the figure of a block's concepts (rows) x typical regions.

Numpy pictures built with :mod:`glmix_viz.viz`'s panel stacking; no plotting library.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from PIL import Image

from glmix_viz.slots.resize import upsample_labels
from glmix_viz.viz import hstack_panels, slot_boundaries, vstack_panels

__all__ = ["atlas_figure", "region_crop"]


def region_crop(image: np.ndarray, hard: np.ndarray, slot: int, *, size: int = 72, margin: float = 0.15,
                fade: float = 0.65, outline: Optional[Sequence[int]] = (220, 20, 60)) -> np.ndarray:
    """The part of ``image`` around one slot's region, the rest of the crop faded to white, the region outlined.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        hard: ``(h, w)`` the block's hard grouping of the image (brought to ``(H, W)`` by nearest neighbour).
        slot: the region's slot.
        size: side of the square result.
        margin: share of the region's box added on every side.
        fade: how far pixels outside the region go to white (0: not at all).
        outline: colour of the region's border (pixels of the region next to one outside it), or None.

    Returns:
        ``(size, size, 3)`` uint8 (a white square when the slot holds no pixel).
    """
    region = upsample_labels(hard, image.shape[:2]) == slot
    if not region.any():
        return np.full((size, size, 3), 255, np.uint8)
    rows, cols = np.flatnonzero(region.any(axis=1)), np.flatnonzero(region.any(axis=0))
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    side = max(y1 - y0, x1 - x0) * (1 + 2 * margin)
    cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
    top, left = int(max(0, round(cy - side / 2))), int(max(0, round(cx - side / 2)))
    bottom, right = int(min(image.shape[0], round(cy + side / 2))), int(min(image.shape[1], round(cx + side / 2)))
    picture = image[top:bottom, left:right].astype(np.float32)
    outside = ~region[top:bottom, left:right]
    picture[outside] = picture[outside] * (1 - fade) + 255 * fade
    crop = Image.fromarray(np.clip(picture + 0.5, 0, 255).astype(np.uint8))
    crop = np.array(crop.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)
    if outline is not None:
        inside = upsample_labels(~outside, (size, size))
        crop[slot_boundaries(inside.astype(np.int64)) & inside] = outline
    return crop


def atlas_figure(crops: Sequence[Sequence[np.ndarray]], titles: Sequence[str], *, heading: Optional[str] = None,
                 size: int = 72, min_columns: int = 6) -> np.ndarray:
    """One row per concept (its title above it), its typical regions left to right.

    Args:
        crops: per concept, its crops (``(size, size, 3)`` uint8; a row may be short or empty).
        titles: one line per concept.
        heading: a line above the whole figure.
        size: side of a crop.
        min_columns: rows are padded with blank cells to at least this many (room for the titles).

    Returns:
        ``(H, W, 3)`` uint8 RGB.
    """
    width = max(max((len(row) for row in crops), default=1), min_columns, 1)
    blank = np.full((size, size, 3), 255, np.uint8)
    rows = [hstack_panels(list(row) + [blank] * (width - len(row)), pad=2) for row in crops]
    figure = vstack_panels(rows, titles=list(titles), pad=4, font_size=12)
    return vstack_panels([figure], titles=[heading], font_size=14) if heading else figure
