"""Palettes, overlays, slot boundaries, grids and panels: numpy in, pictures out.

Everything here takes plain arrays (RGB ``uint8`` images ``(H, W, 3)``, label maps ``(H, W)``, slot maps
``(S, h, w)`` float) and returns RGB ``uint8`` pictures. Nothing here knows about the model, probes or data sets, so
the command line, the app and the notebooks draw the same pictures the same way. Composed and interactive (Plotly)
figures are in :mod:`glmix_viz.figures`; resizing of maps is in :mod:`glmix_viz.slots.resize`.

* One palette for slots, :func:`slot_palette`: slot ``s`` has the same colour in every view and for every number of
  slots. Class palettes (e.g. VOC's) live with their data set and are simply passed in.
* One overlay function, :func:`overlay`; :func:`heatmap_overlay`, :func:`grouping_overlay`, :func:`error_overlay`
  and friends build on it.
* Colour scales that say what they are (:data:`COLOR_SCALES`): maps drawn together share one scale (``"shared"``, the
  default) or each has its own (``"own"``); :func:`value_ranges` gives the ranges, :func:`map_colorbar` the labelled
  colour bar and :func:`scale_caption` the words. Nothing is rescaled without the picture saying so.
* The authors' figure pieces: :func:`soft_map_grid` (the 8x8 grid of dispatch maps) and :func:`masked_slot_view`
  (the image shown through one slot's map); the slots to frame are picked by
  :func:`glmix_viz.slots.medoids.representative_slots` (k-medoids on the maps).

Colours are RGB throughout, never BGR.
"""

from __future__ import annotations

import functools
import math
from typing import Mapping, Sequence

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from glmix_viz.scoring.errors import error_map
from glmix_viz.slots.resize import slot_labels, upsample_labels, upsample_maps

__all__ = [
    "COLOR_SCALES",
    "colorbar",
    "colorize_labels",
    "colormap_lut",
    "ERROR_COLORS",
    "draw_boundaries",
    "error_overlay",
    "grouping_overlay",
    "heatmap_overlay",
    "hstack_panels",
    "label_legend",
    "mask_comparison",
    "mask_picture",
    "map_colorbar",
    "masked_slot_view",
    "overlay",
    "scale_caption",
    "scale_to_unit",
    "slot_boundaries",
    "slot_palette",
    "soft_map_grid",
    "value_ranges",
    "vstack_panels",
]

RGB = tuple[int, int, int]

# Frame colours the authors used for the four representative slots: red, orange, brown, deep pink.
REPRESENTATIVE_FRAME_COLORS: tuple[RGB, ...] = ((255, 0, 0), (255, 165, 0), (165, 42, 42), (255, 20, 147))

COLOR_SCALES = {
    "shared": "one colour scale for all maps, from their common minimum to their common maximum (comparable across "
              "maps)",
    "own": "each map on its own colour scale, from its minimum to its maximum (shapes comparable, values not)",
}

_PALETTE_FIRST_COLOR = np.array([230, 25, 75], dtype=np.float64)
_PALETTE_CANDIDATE_LEVELS = np.arange(0, 256, 15, dtype=np.float64)  # 18 levels per channel.


# ----------------------------------------------------------------------------------------------------------------------
# Palettes and label maps
# ----------------------------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _palette_sequence(length: int) -> np.ndarray:
    """The first ``length`` colours of the slot colour sequence (farthest-point sampling in RGB), ``(length, 3)``.

    Candidates are the colours of an 18-level RGB grid that are neither near-black nor near-white (those are kept for
    backgrounds and boundaries). Starting from a fixed red, each next colour is the candidate farthest (Euclidean, RGB)
    from all colours chosen so far; ties go to the first candidate. The sequence is a prefix-stable, deterministic
    function of nothing, so colour ``s`` never depends on how many slots there are.
    """
    grid = np.stack(np.meshgrid(*[_PALETTE_CANDIDATE_LEVELS] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    brightest, darkest = grid.max(axis=1), grid.min(axis=1)
    candidates = grid[(brightest >= 100) & (darkest <= 180)]
    length = min(length, len(candidates))
    chosen = np.empty((length, 3), dtype=np.float64)
    chosen[0] = _PALETTE_FIRST_COLOR
    nearest_distance = np.linalg.norm(candidates - chosen[0], axis=1)
    for index in range(1, length):
        pick = int(np.argmax(nearest_distance))
        chosen[index] = candidates[pick]
        nearest_distance = np.minimum(nearest_distance, np.linalg.norm(candidates - chosen[index], axis=1))
    return chosen.astype(np.uint8)


def slot_palette(num_slots: int) -> np.ndarray:
    """Distinct, deterministic colours for slots (or any labels).

    Colour ``s`` is the same whatever ``num_slots`` is, so a slot keeps its colour across views and models. The
    colours are chosen greedily to be far apart in RGB (any two of the first 64 are more than 60 apart), avoiding
    near-black and near-white. Beyond the ~5,000 candidate colours the sequence repeats.

    Args:
        num_slots: Number of colours wanted, ``S >= 0``.

    Returns:
        ``(S, 3)`` ``uint8`` RGB.
    """
    if num_slots < 0:
        raise ValueError(f"num_slots must be >= 0, got {num_slots}")
    if num_slots == 0:
        return np.zeros((0, 3), dtype=np.uint8)
    sequence = _palette_sequence(max(64, num_slots))
    return sequence[np.arange(num_slots) % len(sequence)].copy()


def colorize_labels(labels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Colour a label map.

    Args:
        labels: ``(H, W)`` integer labels in ``0..K-1``.
        palette: ``(K, 3)`` ``uint8`` RGB colours.

    Returns:
        ``(H, W, 3)`` ``uint8`` RGB.
    """
    labels = np.asarray(labels)
    palette = np.asarray(palette, dtype=np.uint8)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be an (H, W) integer array, got shape {labels.shape} dtype {labels.dtype}")
    if palette.ndim != 2 or palette.shape[1] != 3:
        raise ValueError(f"palette must be (K, 3), got {palette.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= len(palette)):
        raise ValueError(f"labels range {labels.min()}..{labels.max()} exceeds the palette's {len(palette)} colours")
    return palette[labels]


def colormap_lut(colormap: str) -> np.ndarray:
    """A matplotlib colour map as a ``(256, 3)`` ``uint8`` RGB lookup table (index 0 = low, 255 = high).

    For ``"jet"`` low is dark blue and high is dark red; for ``"viridis"`` low is purple and high is yellow.
    """
    return _colormap_lut(colormap).copy()


@functools.lru_cache(maxsize=16)
def _colormap_lut(colormap: str) -> np.ndarray:
    try:
        color_map = matplotlib.colormaps[colormap]
    except KeyError as error:
        raise ValueError(f"unknown matplotlib colour map {colormap!r}") from error
    rgba = color_map(np.linspace(0.0, 1.0, 256))
    return np.clip(np.floor(rgba[:, :3] * 255.0 + 0.5), 0, 255).astype(np.uint8)


def _apply_colormap(values: np.ndarray, colormap: str) -> np.ndarray:
    """Map values in ``[0, 1]`` (any shape) to RGB uint8 through a colour map; adds a trailing axis of 3."""
    indices = np.clip(np.floor(np.nan_to_num(values, nan=0.0) * 255.0 + 0.5), 0, 255).astype(np.intp)
    return _colormap_lut(colormap)[indices]


# ----------------------------------------------------------------------------------------------------------------------
# Colour scales
# ----------------------------------------------------------------------------------------------------------------------


def _check_scale(scale: str) -> str:
    if scale not in COLOR_SCALES:
        raise ValueError(f"scale must be one of {', '.join(map(repr, COLOR_SCALES))}, got {scale!r}")
    return scale


def value_ranges(maps: Sequence[np.ndarray] | np.ndarray, scale: str = "shared") -> list[tuple[float, float]]:
    """The ``(low, high)`` value range each map is coloured with: low gets the colour map's first colour, high its last.

    Args:
        maps: the maps drawn together: ``(S, h, w)`` or a sequence of arrays of any shapes (NaNs ignored).
        scale: ``"shared"`` - one range for all, from the smallest to the largest value of any map; ``"own"`` - each
            map from its own minimum to its own maximum.

    Returns:
        One ``(low, high)`` per map (``(0, 1)`` for a map with no finite value).
    """
    _check_scale(scale)
    ranges = []
    for values in maps:
        finite = np.asarray(values, dtype=np.float64)
        finite = finite[np.isfinite(finite)]
        ranges.append((float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0))
    if scale == "shared" and ranges:
        common = (min(low for low, _ in ranges), max(high for _, high in ranges))
        ranges = [common] * len(ranges)
    return ranges


def scale_to_unit(values: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """Map ``value_range`` linearly onto ``[0, 1]`` (float32), clipping outside values; an empty range gives zeros."""
    values = np.asarray(values, dtype=np.float32)
    low, high = float(value_range[0]), float(value_range[1])
    if not high > low:
        return np.zeros_like(values)
    return np.clip((values - low) / (high - low), 0.0, 1.0)


def scale_caption(scale: str, value_range: tuple[float, float] | None = None) -> str:
    """Words for a picture's colour scale, e.g. ``"shared colour scale for all maps: 0.012 to 0.87"``."""
    if _check_scale(scale) == "shared":
        shown = f": {value_range[0]:.3g} to {value_range[1]:.3g}" if value_range is not None else ""
        return f"shared colour scale for all maps{shown}"
    return "each map on its own colour scale (its minimum to its maximum)"


def colorbar(
    value_range: tuple[float, float] | None,
    *,
    colormap: str = "viridis",
    title: str = "",
    width: int = 256,
    height: int = 12,
    labels: tuple[str, str] | None = None,
    font_size: int = 12,
    bg: int = 255,
) -> np.ndarray:
    """A horizontal colour bar: the colour map from left (low) to right (high), its end values and a title above.

    Args:
        value_range: ``(low, high)`` written at the two ends, or None when ``labels`` say what the ends are.
        colormap: matplotlib colour map name.
        title: line above the bar, e.g. which colour scale it is.
        width: length of the bar in pixels.
        height: thickness of the bar in pixels.
        labels: words for the two ends instead of numbers (e.g. ``("each map's min", "each map's max")``).
        font_size: text size in pixels.
        bg: gray level of the background.

    Returns:
        ``(H, W, 3)`` ``uint8`` RGB, ``W = width + 8``.
    """
    if labels is None:
        if value_range is None:
            raise ValueError("a colour bar needs a value range or labels for its ends")
        labels = (f"{value_range[0]:.3g}", f"{value_range[1]:.3g}")
    text_height = _title_height(font_size)
    top = text_height if title else 0
    canvas = Image.new("RGB", (width + 8, top + height + text_height + 4), (bg,) * 3)
    strip = _apply_colormap(np.broadcast_to(np.linspace(0.0, 1.0, width, dtype=np.float32), (height, width)), colormap)
    canvas.paste(Image.fromarray(np.ascontiguousarray(strip)), (4, top))
    draw = ImageDraw.Draw(canvas)
    font = _title_font(font_size)
    color = (0, 0, 0) if bg >= 128 else (255, 255, 255)
    if title:
        draw.text((4, 0), title, fill=color, font=font)
    draw.text((4, top + height + 2), labels[0], fill=color, font=font)
    right = draw.textlength(labels[1], font=font)
    draw.text((width + 4 - right, top + height + 2), labels[1], fill=color, font=font)
    return np.asarray(canvas).copy()


def map_colorbar(
    maps: Sequence[np.ndarray] | np.ndarray, scale: str = "shared", *, colormap: str = "viridis", width: int = 256,
    quantity: str = "", value_range: tuple[float, float] | None = None,
) -> np.ndarray:
    """The labelled colour bar of maps drawn together on ``scale`` (see :func:`value_ranges`).

    Shared: the common range at the ends (``value_range`` when the maps share it with others drawn elsewhere) and
    "shared colour scale" above; own: "each map's min / max" at the ends and "own colour scale per map" above.
    ``quantity`` (what the colours measure, with its unit) starts the title.
    """
    named = f"{quantity}: " if quantity else ""
    if _check_scale(scale) == "shared":
        if value_range is None:
            (value_range, *_) = value_ranges(maps, "shared") or [(0.0, 1.0)]
        return colorbar(value_range, colormap=colormap, width=width, title=f"{named}shared colour scale (all maps)")
    return colorbar(None, colormap=colormap, width=width, title=f"{named}own colour scale per map",
                    labels=("each map's min", "each map's max"))


# ----------------------------------------------------------------------------------------------------------------------
# Overlays
# ----------------------------------------------------------------------------------------------------------------------


def overlay(
    image: np.ndarray,
    colors: np.ndarray | Sequence[int],
    *,
    palette: np.ndarray | None = None,
    alpha: float = 0.5,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Alpha-blend colours onto an image: ``out = image * (1 - w) + colors * w`` with ``w = alpha * mask``.

    This is the one overlay function of glmix-viz; every coloured picture over an image goes through it.

    Args:
        image: ``(H, W, 3)`` ``uint8`` RGB.
        colors: ``(H, W, 3)`` ``uint8`` RGB colours, a single RGB colour ``(3,)``, or an ``(H, W)`` integer label map
            (then ``palette`` is required and the labels are coloured with it).
        palette: ``(K, 3)`` ``uint8`` colours for a label map.
        alpha: Weight of the colours, in ``[0, 1]``.
        mask: Optional ``(H, W)`` bool (blend only where True) or float weights in ``[0, 1]`` multiplying ``alpha``.

    Returns:
        ``(H, W, 3)`` ``uint8`` RGB, rounded half up.
    """
    image = _check_image(image)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    colors = np.asarray(colors)
    if colors.ndim == 2:
        if palette is None:
            raise ValueError("a label map needs a palette to be overlaid")
        colors = colorize_labels(colors, palette)
    if colors.shape == (3,):
        colors = np.broadcast_to(colors.astype(np.uint8), image.shape)
    if colors.shape != image.shape:
        raise ValueError(f"colors shape {colors.shape} does not match image shape {image.shape}")
    weight = np.full(image.shape[:2], alpha, dtype=np.float32)
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != image.shape[:2]:
            raise ValueError(f"mask shape {mask.shape} does not match image size {image.shape[:2]}")
        weight = weight * np.clip(mask.astype(np.float32), 0.0, 1.0)
    weight = weight[:, :, None]
    blended = image.astype(np.float32) * (1.0 - weight) + colors.astype(np.float32) * weight
    return np.clip(np.floor(blended + 0.5), 0, 255).astype(np.uint8)


def heatmap_overlay(
    image: np.ndarray,
    score: np.ndarray,
    *,
    alpha: float = 0.5,
    colormap: str = "jet",
    normalize: bool = True,
    value_range: tuple[float, float] | None = None,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Overlay a score map on an image through a colour map (via :func:`overlay`).

    Args:
        image: ``(H, W, 3)`` ``uint8`` RGB.
        score: ``(h, w)`` float scores; bilinearly resized to ``(H, W)``.
        alpha: Weight of the colour map.
        colormap: A matplotlib colour map name. With ``"jet"`` high scores are red and low scores blue; with
            ``"viridis"`` high is yellow and low purple.
        normalize: Min-max scale the resized scores to ``[0, 1]`` (a constant map becomes 0); otherwise the scores
            must already be in ``[0, 1]`` and are clipped to it. Ignored when ``value_range`` is given.
        value_range: ``(low, high)`` coloured as the colour map's ends (values outside are clipped), e.g. a range
            shared by several maps (:func:`value_ranges`).
        mask: Optional ``(H, W)`` weights passed on to :func:`overlay`.

    Returns:
        ``(H, W, 3)`` ``uint8`` RGB.
    """
    image = _check_image(image)
    score = np.asarray(score, dtype=np.float32)
    if score.ndim != 2:
        raise ValueError(f"score must be (h, w), got {score.shape}")
    resized = upsample_maps(score[None], image.shape[:2])[0]
    if value_range is not None:
        values = scale_to_unit(resized, value_range)
    else:
        values = _min_max(resized) if normalize else np.clip(resized, 0.0, 1.0)
    return overlay(image, _apply_colormap(values, colormap), alpha=alpha, mask=mask)


def slot_boundaries(labels: np.ndarray) -> np.ndarray:
    """Pixels on a region border: those with a 4-neighbour of a different label (both sides of a border are marked).

    Args:
        labels: ``(H, W)`` integer label map.

    Returns:
        ``(H, W)`` bool.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be (H, W), got {labels.shape}")
    border = np.zeros(labels.shape, dtype=bool)
    horizontal = labels[:, 1:] != labels[:, :-1]
    vertical = labels[1:, :] != labels[:-1, :]
    border[:, 1:] |= horizontal
    border[:, :-1] |= horizontal
    border[1:, :] |= vertical
    border[:-1, :] |= vertical
    return border


def draw_boundaries(image: np.ndarray, boundaries: np.ndarray, color: Sequence[int] = (255, 255, 255)) -> np.ndarray:
    """Paint boundary pixels in one colour.

    Args:
        image: ``(H, W, 3)`` ``uint8`` RGB.
        boundaries: ``(H, W)`` bool.
        color: RGB colour of the boundaries.

    Returns:
        A new ``(H, W, 3)`` ``uint8`` image.
    """
    image = _check_image(image)
    boundaries = np.asarray(boundaries, dtype=bool)
    if boundaries.shape != image.shape[:2]:
        raise ValueError(f"boundaries shape {boundaries.shape} does not match image size {image.shape[:2]}")
    painted = image.copy()
    painted[boundaries] = np.asarray(color, dtype=np.uint8)
    return painted


def grouping_overlay(
    image: np.ndarray,
    dispatch: np.ndarray,
    *,
    alpha: float = 0.5,
    boundaries: bool = True,
    palette: np.ndarray | None = None,
    boundary_color: Sequence[int] = (255, 255, 255),
) -> np.ndarray:
    """The hard grouping picture: each pixel coloured by its argmax slot, over the image, with slot borders.

    Steps: argmax over slots → nearest upsampling to the image size → colour by slot palette → :func:`overlay` →
    :func:`draw_boundaries`.

    Args:
        image: ``(H, W, 3)`` ``uint8`` RGB.
        dispatch: ``(S, h, w)`` dispatch weights of one image.
        alpha: Weight of the slot colours.
        boundaries: Draw the borders between slots.
        palette: ``(S', 3)`` colours with ``S' >= S``; default :func:`slot_palette` ``(S)``.
        boundary_color: RGB colour of the borders.

    Returns:
        ``(H, W, 3)`` ``uint8`` RGB.
    """
    image = _check_image(image)
    labels = slot_labels(dispatch, image.shape[:2])
    palette = slot_palette(np.asarray(dispatch).shape[0]) if palette is None else palette
    picture = overlay(image, labels, palette=palette, alpha=alpha)
    if boundaries:
        picture = draw_boundaries(picture, slot_boundaries(labels), color=boundary_color)
    return picture


# ----------------------------------------------------------------------------------------------------------------------
# The authors' figure: grid of soft maps, representative slots, masked views
# ----------------------------------------------------------------------------------------------------------------------


def soft_map_grid(
    maps: np.ndarray,
    *,
    cols: int | None = None,
    scale: str = "shared",
    value_range: tuple[float, float] | None = None,
    cell: int | None = None,
    pad: int = 2,
    colormap: str = "viridis",
    frame_colors: Mapping[int, Sequence[int]] | None = None,
    bg: int = 255,
) -> np.ndarray:
    """Draw per-slot maps as a grid of colour-mapped tiles (the authors' 8x8 grid for 64 slots).

    Layout: ``rows = ceil(S / cols)``; every tile is ``(cell_h + 2 * pad, cell_w + 2 * pad)`` with the map in its
    centre, so the picture is ``(rows * (cell_h + 2 * pad), cols * (cell_w + 2 * pad), 3)``. The ``pad`` border of a
    tile is the background, or the slot's frame colour when given. Maps are scaled with nearest neighbour (crisp
    pixels, as ``imshow`` draws them); unused tiles are background.

    Args:
        maps: ``(S, h, w)`` float maps (e.g. dispatch weights of one image and block).
        cols: Tiles per row; default ``ceil(sqrt(S))``.
        scale: ``"shared"`` (one colour scale from the smallest to the largest value of all maps, as the authors
            draw them) or ``"own"`` (each map from its own minimum to its own maximum); see :func:`value_ranges`.
            Say which in the caption or add :func:`map_colorbar`.
        value_range: a fixed ``(low, high)`` for all maps instead (values outside are clipped), e.g. ``(0, 1)``.
        cell: Longer side of a tile's map in pixels; default the smallest integer multiple of the map size that is at
            least 32 pixels.
        pad: Width of each tile's border in pixels.
        colormap: Matplotlib colour map name.
        frame_colors: ``{slot: (r, g, b)}`` slots to frame, e.g. the representative slots.
        bg: Gray level of the background and of unframed borders.

    Returns:
        ``(H, W, 3)`` ``uint8`` RGB.
    """
    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim != 3 or maps.shape[0] == 0:
        raise ValueError(f"maps must be (S, h, w) with S >= 1, got {maps.shape}")
    num_maps, map_height, map_width = maps.shape
    cols = int(math.ceil(math.sqrt(num_maps))) if cols is None else int(cols)
    if cols < 1:
        raise ValueError(f"cols must be >= 1, got {cols}")
    rows = int(math.ceil(num_maps / cols))
    if cell is None:
        factor = max(1, int(math.ceil(32 / max(map_height, map_width))))
        cell_height, cell_width = map_height * factor, map_width * factor
    else:
        zoom = cell / max(map_height, map_width)
        cell_height, cell_width = max(1, round(map_height * zoom)), max(1, round(map_width * zoom))
    ranges = [tuple(value_range)] * num_maps if value_range is not None else value_ranges(maps, scale)
    values = np.stack([scale_to_unit(single, single_range) for single, single_range in zip(maps, ranges)])
    cells = _apply_colormap(np.stack([upsample_labels(value, (cell_height, cell_width)) for value in values]), colormap)
    tile_height, tile_width = cell_height + 2 * pad, cell_width + 2 * pad
    grid = np.full((rows * tile_height, cols * tile_width, 3), bg, dtype=np.uint8)
    frame_colors = frame_colors or {}
    for slot in range(num_maps):
        top, left = (slot // cols) * tile_height, (slot % cols) * tile_width
        if slot in frame_colors:
            grid[top : top + tile_height, left : left + tile_width] = np.asarray(frame_colors[slot], dtype=np.uint8)
        grid[top + pad : top + pad + cell_height, left + pad : left + pad + cell_width] = cells[slot]
    return grid


def masked_slot_view(
    image: np.ndarray, slot_map: np.ndarray, *, interpolation: str = "nearest", dark_level: int = 16
) -> np.ndarray:
    """Show the image through one slot's map: visible where the map is high, near-black elsewhere (authors' blend).

    The map is min-max normalised to ``[0, 1]``, upsampled to the image size and used as per-pixel alpha between the
    image and a dark version of it (its gray levels compressed to ``0..dark_level``).

    Args:
        image: ``(H, W, 3)`` ``uint8`` RGB.
        slot_map: ``(h, w)`` map of one slot.
        interpolation: ``"nearest"`` (the authors' choice) or ``"bilinear"``.
        dark_level: Brightest gray of the dark background.

    Returns:
        ``(H, W, 3)`` ``uint8`` RGB.
    """
    image = _check_image(image)
    slot_map = np.asarray(slot_map, dtype=np.float32)
    if slot_map.ndim != 2:
        raise ValueError(f"slot_map must be (h, w), got {slot_map.shape}")
    weights = _min_max(slot_map)
    if interpolation == "nearest":
        weights = upsample_labels(weights, image.shape[:2])
    elif interpolation == "bilinear":
        weights = np.clip(upsample_maps(weights[None], image.shape[:2])[0], 0.0, 1.0)
    else:
        raise ValueError(f"interpolation must be 'nearest' or 'bilinear', got {interpolation!r}")
    gray = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    dark = np.repeat((gray * (dark_level / 255.0))[:, :, None], 3, axis=2)
    blended = image.astype(np.float32) * weights[:, :, None] + dark * (1.0 - weights[:, :, None])
    return np.clip(np.floor(blended + 0.5), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------------------------------
# Error maps of a segmentation
# ----------------------------------------------------------------------------------------------------------------------

ERROR_COLORS = np.array(
    [(150, 150, 150), (228, 26, 28), (55, 126, 184), (152, 78, 163), (255, 217, 47), (235, 235, 235)], dtype=np.uint8
)
"""Colours of the codes of :func:`glmix_viz.scoring.errors.error_map` (names in
``glmix_viz.scoring.errors.ERROR_KINDS``):
correct (grey: the image shows through), missed foreground (red), false foreground (blue), wrong class (purple),
unsure (yellow), ignored (light grey)."""


def error_overlay(errors: np.ndarray, image: np.ndarray | None = None, *, alpha: float = 0.85) -> np.ndarray:
    """An error map as a picture: each error kind in its :data:`ERROR_COLORS` colour over the image in grey.

    Args:
        errors: ``(H, W)`` codes ``0..5`` of :func:`glmix_viz.scoring.errors.error_map`.
        image: ``(H, W, 3)`` ``uint8`` RGB, shown in grey (darkened) under the colours; ``None``: a mid-grey canvas.
        alpha: Weight of the colours on the error pixels (correct pixels show the grey image alone).

    Returns:
        ``(H, W, 3)`` ``uint8`` RGB.
    """
    errors = np.asarray(errors)
    if errors.ndim != 2 or errors.size and (errors.min() < 0 or errors.max() >= len(ERROR_COLORS)):
        raise ValueError(f"errors must be an (H, W) map of codes 0..{len(ERROR_COLORS) - 1}, got shape {errors.shape}")
    if image is None:
        base = np.full(errors.shape + (3,), 110, dtype=np.uint8)
    else:
        gray = _check_image(image).astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        base = np.repeat(np.floor(gray * 0.6 + 0.5).astype(np.uint8)[:, :, None], 3, axis=2)
    return overlay(base, errors.astype(np.int64), palette=ERROR_COLORS, alpha=alpha, mask=errors > 0)


# ----------------------------------------------------------------------------------------------------------------------
# Predicted masks against the ground truth
# ----------------------------------------------------------------------------------------------------------------------


def mask_picture(labels: np.ndarray, palette: np.ndarray, *, image: np.ndarray | None = None, style: str = "flat",
                 alpha: float = 0.7, background: int | None = 0, ignore: int = 255) -> np.ndarray:
    """A label map as a picture: ``"flat"`` paints every label in its palette colour (as VOC draws its ground truth;
    the palette needs an entry for every label present, 255 included, e.g. ``voc_palette(256)``); ``"overlay"``
    blends the colours of the labels other than ``background`` (the data set's; None: none) and ``ignore`` over
    ``image``."""
    labels = np.asarray(labels)
    if style == "flat":
        return colorize_labels(labels, palette)
    if style != "overlay" or image is None:
        raise ValueError(f"style must be 'flat', or 'overlay' with an image; got {style!r}")
    shown = labels != ignore  # background and the ignore label stay the image
    if background is not None:
        shown &= labels != background
    return overlay(image, colorize_labels(np.where(shown, labels, 0), palette), alpha=alpha, mask=shown)


def mask_comparison(image: np.ndarray, truth: np.ndarray, masks: Mapping[str, np.ndarray], palette: np.ndarray, *,
                    style: str = "flat", errors: bool = True, per_row: int = 1, font_size: int = 11,
                    background: int | None = 0, ignore: int = 255) -> np.ndarray:
    """One image's predicted masks beside its ground truth: a row with the image and the ground truth, then the masks,
    ``per_row`` to a row, each (:func:`mask_picture`) followed, with ``errors``, by its error map
    (:func:`glmix_viz.scoring.errors.error_map` drawn by :func:`error_overlay`).

    Args:
        image: ``(H, W, 3)`` RGB. truth: ``(H, W)`` labels. masks: name -> ``(H, W)`` labels, in reading order.
        palette: class colours (``voc_palette(256)``). style: ``"flat"`` or ``"overlay"``.
        background, ignore: the data set's background class (or None) and ignore value, for the error maps.

    Returns:
        ``(H', W', 3)`` ``uint8`` RGB.
    """
    ids = dict(background=background, ignore=ignore)
    rows = [hstack_panels([image, mask_picture(truth, palette, image=image, style=style, **ids)],
                          titles=["image", "ground truth"], font_size=font_size, pad=2)]
    names = list(masks)
    for start in range(0, len(names), max(1, per_row)):
        panels, titles = [], []
        for name in names[start:start + max(1, per_row)]:
            panels.append(mask_picture(masks[name], palette, image=image, style=style, **ids))
            titles.append(name)
            if errors:
                codes = error_map(masks[name], truth, background=background, ignore=ignore)
                panels.append(error_overlay(codes, image))
                titles.append("errors")
        rows.append(hstack_panels(panels, titles=titles, font_size=font_size, pad=2))
    return vstack_panels(rows, pad=2)


# ----------------------------------------------------------------------------------------------------------------------
# Panels and legends
# ----------------------------------------------------------------------------------------------------------------------


def hstack_panels(
    panels: Sequence[np.ndarray],
    *,
    titles: Sequence[str] | None = None,
    pad: int = 4,
    bg: int = 255,
    font_size: int = 14,
) -> np.ndarray:
    """Place pictures side by side, top-aligned, with optional titles above each.

    Args:
        panels: ``(H_i, W_i, 3)`` ``uint8`` RGB or ``(H_i, W_i)`` gray pictures; heights may differ.
        titles: One title per panel (``""`` for none), drawn in a strip above the panels.
        pad: Gap between panels and around the whole picture, in pixels.
        bg: Gray level of the background (titles are black on light, white on dark backgrounds).
        font_size: Title font size in pixels.

    Returns:
        ``(H, W, 3)`` ``uint8`` RGB with ``W = sum(W_i) + pad * (n + 1)``.
    """
    return _stack_panels(panels, titles, pad, bg, font_size, horizontal=True)


def vstack_panels(
    panels: Sequence[np.ndarray],
    *,
    titles: Sequence[str] | None = None,
    pad: int = 4,
    bg: int = 255,
    font_size: int = 14,
) -> np.ndarray:
    """Place pictures one above the other, left-aligned, each with an optional title above it.

    Args:
        panels: ``(H_i, W_i, 3)`` ``uint8`` RGB or ``(H_i, W_i)`` gray pictures; widths may differ.
        titles: One title per panel (``""`` for none).
        pad: Gap between panels and around the whole picture, in pixels.
        bg: Gray level of the background.
        font_size: Title font size in pixels.

    Returns:
        ``(H, W, 3)`` ``uint8`` RGB with ``W = max(W_i) + 2 * pad``.
    """
    return _stack_panels(panels, titles, pad, bg, font_size, horizontal=False)


def _stack_panels(
    panels: Sequence[np.ndarray],
    titles: Sequence[str] | None,
    pad: int,
    bg: int,
    font_size: int,
    *,
    horizontal: bool,
) -> np.ndarray:
    if len(panels) == 0:
        raise ValueError("need at least one panel")
    if titles is not None and len(titles) != len(panels):
        raise ValueError(f"got {len(titles)} titles for {len(panels)} panels")
    pictures = [_as_rgb_picture(panel) for panel in panels]
    titled = titles is not None and any(titles)
    title_height = _title_height(font_size) if titled else 0
    text_color = (0, 0, 0) if bg >= 128 else (255, 255, 255)
    if horizontal:
        height = max(p.shape[0] for p in pictures) + title_height + 2 * pad
        width = sum(p.shape[1] for p in pictures) + pad * (len(pictures) + 1)
    else:
        height = sum(p.shape[0] + title_height for p in pictures) + pad * (len(pictures) + 1)
        width = max(p.shape[1] for p in pictures) + 2 * pad
    canvas = np.full((height, width, 3), bg, dtype=np.uint8)
    title_positions = []
    top, left = pad, pad
    for picture in pictures:
        title_positions.append((left, top))
        canvas[top + title_height : top + title_height + picture.shape[0], left : left + picture.shape[1]] = picture
        if horizontal:
            left += picture.shape[1] + pad
        else:
            top += title_height + picture.shape[0] + pad
    if titled:
        canvas_image = Image.fromarray(canvas)
        draw = ImageDraw.Draw(canvas_image)
        font = _title_font(font_size)
        for (x, y), title in zip(title_positions, titles):
            if title:
                draw.text((x, y), str(title), fill=text_color, font=font)
        canvas = np.asarray(canvas_image).copy()
    return canvas


def label_legend(
    palette: np.ndarray,
    names: Sequence[str] | None = None,
    *,
    swatch: int = 16,
    cols: int = 1,
    column_width: int = 160,
    bg: int = 255,
    font_size: int = 12,
) -> np.ndarray:
    """A legend picture: a colour swatch and a name per palette entry, in columns.

    Args:
        palette: ``(K, 3)`` ``uint8`` RGB colours.
        names: ``K`` names; default ``"slot 0"``, ``"slot 1"``, ...
        swatch: Side of each colour square, in pixels.
        cols: Number of columns.
        column_width: Width of each column, in pixels.
        bg: Gray level of the background.
        font_size: Font size of the names, in pixels.

    Returns:
        ``(H, W, 3)`` ``uint8`` RGB, ``H = ceil(K / cols) * (swatch + 4) + 4``, ``W = cols * column_width``.
    """
    palette = np.asarray(palette, dtype=np.uint8)
    names = [f"slot {index}" for index in range(len(palette))] if names is None else list(names)
    if len(names) != len(palette):
        raise ValueError(f"got {len(names)} names for {len(palette)} colours")
    rows = max(1, int(math.ceil(len(palette) / cols)))
    row_height = swatch + 4
    canvas = Image.new("RGB", (cols * column_width, rows * row_height + 4), (bg,) * 3)
    draw = ImageDraw.Draw(canvas)
    font = _title_font(font_size)
    text_color = (0, 0, 0) if bg >= 128 else (255, 255, 255)
    for index, (color, name) in enumerate(zip(palette, names)):
        x, y = (index // rows) * column_width + 4, (index % rows) * row_height + 4
        draw.rectangle([x, y, x + swatch - 1, y + swatch - 1], fill=tuple(int(c) for c in color))
        draw.text((x + swatch + 6, y + max(0, (swatch - font_size) // 2)), str(name), fill=text_color, font=font)
    return np.asarray(canvas).copy()


@functools.lru_cache(maxsize=8)
def _title_font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's bundled font at ``size`` pixels (the fixed bitmap font if FreeType is unavailable)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


def _title_height(font_size: int) -> int:
    return int(math.ceil(font_size * 1.4)) + 2


def _as_rgb_picture(panel: np.ndarray) -> np.ndarray:
    panel = np.asarray(panel)
    if panel.dtype != np.uint8:
        raise ValueError(f"panels must be uint8, got {panel.dtype}")
    if panel.ndim == 2:
        return np.repeat(panel[:, :, None], 3, axis=2)
    if panel.ndim == 3 and panel.shape[2] == 3:
        return panel
    raise ValueError(f"panels must be (H, W) or (H, W, 3), got {panel.shape}")


# ----------------------------------------------------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------------------------------------------------


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got shape {image.shape} dtype {image.dtype}")
    return image


def _min_max(values: np.ndarray) -> np.ndarray:
    """Min-max scale to ``[0, 1]`` (float32); a constant array becomes zeros."""
    values = np.asarray(values, dtype=np.float32)
    low, high = float(np.nanmin(values)), float(np.nanmax(values))
    if not high > low:
        return np.zeros_like(values)
    return (values - low) / (high - low)
