"""Pictures of one explored image: what the explorer shows, for the app, the notebooks and the command line alike.

Every picture is an ``(H, W, 3)`` uint8 RGB array made from an :class:`~glmix_viz.slots.explore.Exploration` (or a
pseudo-mask) with the drawing functions of :mod:`glmix_viz.viz` (one palette for slots, one overlay function);
nothing here knows about Streamlit.

* :func:`block_title`, :func:`soft_maps`, :func:`pooled_for_figure` - naming a block, its maps of one kind, and maps
  small enough for an interactive figure.
* :func:`hard_overlay`, :func:`all_blocks_picture`, :func:`authors_figure`, :func:`slot_legend` - groupings.
* :func:`mask_label_ids`, :func:`pseudo_mask_overlay`, :func:`pseudo_mask_legend` - a pseudo-mask's pictures.
* :func:`png_bytes` - any of them as a PNG file's bytes.
"""

from __future__ import annotations

import io
import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from glmix_viz.labels import voc_palette
from glmix_viz.pseudo.masks import channels_to_labels
from glmix_viz.slots.explore import Exploration, slot_areas
from glmix_viz.slots.medoids import representative_slots
from glmix_viz.viz import (
    REPRESENTATIVE_FRAME_COLORS,
    grouping_overlay,
    hstack_panels,
    label_legend,
    map_colorbar,
    masked_slot_view,
    overlay,
    slot_palette,
    soft_map_grid,
    vstack_panels,
)

__all__ = [
    "MAX_FIGURE_CELLS",
    "SOFT_MAP_KINDS",
    "THUMBNAIL_SIDE",
    "all_blocks_picture",
    "authors_figure",
    "block_title",
    "hard_overlay",
    "mask_label_ids",
    "png_bytes",
    "pooled_for_figure",
    "pseudo_mask_legend",
    "pseudo_mask_overlay",
    "slot_legend",
    "soft_maps",
    "thumbnail",
]

THUMBNAIL_SIDE = 224
MAX_FIGURE_CELLS = 200_000  # soft-map figures above this many cells (S * h * w) are pooled: ~3.5 MB of JSON at most
SOFT_MAP_KINDS: Dict[str, str] = {
    "dispatch": "dispatch weights: softmax over slots (each pixel's distribution over slots; the authors' maps)",
    "clustering": "clustering weights: softmax over pixels (each slot's distribution over pixels)",
    "logits": "similarity logits before any softmax",
}


def block_title(exploration: Exploration, block: str) -> str:
    """``"#3 stages.1.blocks.1 (16x16, 16 slots)"``."""
    record = exploration.record(block)
    height, width = record.size
    return f"#{exploration.block_names.index(block) + 1} {block} ({height}x{width}, {record.num_slots} slots)"


def soft_maps(exploration: Exploration, block: str, kind: str) -> np.ndarray:
    """``(S, h, w)`` maps of one block of a kind of :data:`SOFT_MAP_KINDS`."""
    if kind == "clustering":
        return exploration.cluster(block)
    if kind == "logits":
        return exploration.block_logits(block)
    if kind != "dispatch":
        raise ValueError(f"unknown kind of soft map {kind!r}; known: {', '.join(SOFT_MAP_KINDS)}")
    return exploration.dispatch(block)


def pooled_for_figure(maps: np.ndarray, max_cells: int = MAX_FIGURE_CELLS) -> Tuple[np.ndarray, int]:
    """Average ``(S, h, w)`` maps over ``k x k`` cells when they hold more than ``max_cells`` values; returns ``k`` too.

    Interactive figures send every value to the browser; a 64-slot block at 128x128 would be 17 MB of JSON.
    """
    num_maps, height, width = maps.shape
    factor = max(1, math.ceil(math.sqrt(num_maps * height * width / max_cells)))
    if factor == 1:
        return maps, 1
    rows, cols = height // factor, width // factor
    cropped = maps[:, : rows * factor, : cols * factor]
    return cropped.reshape(num_maps, rows, factor, cols, factor).mean(axis=(2, 4)), factor


def thumbnail(image: np.ndarray, side: int = THUMBNAIL_SIDE) -> np.ndarray:
    """The image with its longer side at most ``side`` pixels (area-averaged), for side-by-side views."""
    height, width = image.shape[:2]
    scale = side / max(height, width)
    if scale >= 1:
        return np.asarray(image)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(np.asarray(image)).resize(size, Image.Resampling.BOX))


def hard_overlay(exploration: Exploration, block: str, *, alpha: float = 0.55, boundaries: bool = True,
                 image: Optional[np.ndarray] = None) -> np.ndarray:
    """The hard grouping of a block over the image (or over ``image``, e.g. a thumbnail), slot colours of the block."""
    dispatch = exploration.dispatch(block)
    return grouping_overlay(exploration.image if image is None else image, dispatch, alpha=alpha,
                            boundaries=boundaries, palette=slot_palette(dispatch.shape[0]))


def all_blocks_picture(exploration: Exploration, *, alpha: float = 0.55, boundaries: bool = True) -> np.ndarray:
    """Hard groupings of every block side by side over a thumbnail of the image."""
    small = thumbnail(exploration.image)
    panels = [small] + [hard_overlay(exploration, block, alpha=alpha, boundaries=boundaries, image=small)
                        for block in exploration.block_names]
    titles = ["input"] + [f"#{index + 1} {block}" for index, block in enumerate(exploration.block_names)]
    return hstack_panels(panels, titles=titles, font_size=12)


def _framed(picture: np.ndarray, color: Sequence[int], width: int = 3) -> np.ndarray:
    framed = np.empty((picture.shape[0] + 2 * width, picture.shape[1] + 2 * width, 3), dtype=np.uint8)
    framed[:] = np.asarray(color, dtype=np.uint8)
    framed[width:-width, width:-width] = picture
    return framed


def authors_figure(exploration: Exploration, block: str, scale: str = "shared",
                   value_range: Optional[Tuple[float, float]] = None) -> Tuple[np.ndarray, List[int]]:
    """The authors' figure for one block: input | grid of dispatch maps | the 4 k-medoids slots shown through the image.

    The grid is drawn on ``scale`` (one colour scale for all maps, or each its own) with its labelled colour bar;
    ``value_range``: the shared scale's range when it is shared with other figures (e.g. every block shown).

    Returns:
        ``(picture, representative slots)``.
    """
    maps = exploration.dispatch(block)
    representatives = representative_slots(maps, k=len(REPRESENTATIVE_FRAME_COLORS))
    frames = {slot: REPRESENTATIVE_FRAME_COLORS[index] for index, slot in enumerate(representatives)}
    rows = math.ceil(maps.shape[0] / math.ceil(math.sqrt(maps.shape[0])))
    shared = value_range if scale == "shared" else None
    grid = soft_map_grid(maps, scale=scale, value_range=shared, frame_colors=frames,
                         cell=max(32, THUMBNAIL_SIDE // rows - 4))
    grid = vstack_panels([grid, map_colorbar(maps, scale, width=max(96, min(256, grid.shape[1] - 8)),
                                             quantity="dispatch weight", value_range=shared)], pad=0)
    quarter = thumbnail(exploration.image, THUMBNAIL_SIDE // 2)
    views = [_framed(masked_slot_view(quarter, maps[slot]), frames[slot]) for slot in representatives]
    rows = [hstack_panels(views[start : start + 2], titles=[f"slot {s}" for s in representatives[start : start + 2]],
                          pad=2, font_size=11) for start in range(0, len(views), 2)]
    picture = hstack_panels(
        [thumbnail(exploration.image), grid, vstack_panels(rows, pad=0)],
        titles=["input", f"{maps.shape[0]} dispatch maps", "k-medoids slots"],
        font_size=12,
    )
    return picture, representatives


def slot_legend(exploration: Exploration, block: str, max_entries: int = 24) -> Tuple[np.ndarray, int]:
    """Legend of the slots that hold pixels in a block (largest first) with their share; and how many were left out."""
    logits = exploration.block_logits(block)
    hard, _ = slot_areas(logits)
    palette = slot_palette(logits.shape[0])
    used = [int(slot) for slot in np.argsort(-hard, kind="stable") if hard[slot] > 0]
    shown = used[:max_entries]
    legend = label_legend(palette[shown], [f"slot {slot}: {hard[slot]:.0%}" for slot in shown], cols=4,
                          column_width=130, font_size=12)
    return legend, len(used) - len(shown)


def mask_label_ids(channels: np.ndarray, class_indices: np.ndarray) -> np.ndarray:
    """Channel indices -> label ids when every id fits a palette PNG (<= 254), else the channel indices (255 kept)."""
    return channels_to_labels(channels, class_indices, fallback_to_channels=True)


def pseudo_mask_overlay(image: np.ndarray, channels: np.ndarray, class_indices: np.ndarray, *,
                        alpha: float = 0.55) -> np.ndarray:
    """A pseudo-mask's channels over the image in the VOC palette, the background (channel 0) left uncoloured."""
    ids = mask_label_ids(channels, class_indices)
    return overlay(image, ids, palette=voc_palette(256), alpha=alpha, mask=np.asarray(channels) != 0)


def pseudo_mask_legend(class_indices: np.ndarray, class_names: Sequence[str], column_width: int = 170) -> np.ndarray:
    """Legend of a pseudo-mask's channels: the background, then each class by name (``class_names`` of the model)."""
    ids = [int(value) for value in mask_label_ids(np.arange(len(class_indices), dtype=np.uint8), class_indices)]
    names = ["background (uncoloured)"] + [class_names[int(index) - 1] for index in class_indices[1:]]
    return label_legend(voc_palette(256)[ids], names, column_width=column_width)


def png_bytes(picture: np.ndarray | Image.Image) -> bytes:
    """PNG encoding of an RGB array or a PIL image."""
    image = picture if isinstance(picture, Image.Image) else Image.fromarray(np.asarray(picture))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
