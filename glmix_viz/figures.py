"""Composed figures: several pictures in one, interactive Plotly figures, and writing figures to files.

Built from the pictures of :mod:`glmix_viz.viz` (one palette, one overlay function); nothing here knows about the
model, probes or data sets.

* :func:`grouping_figure` - the figure of ``glmix-viz inspect``: input | hard groupings per block | soft maps of one
  block with its representative slots.
* :func:`soft_maps_figure` - an interactive grid of per-slot maps (one Plotly heatmap trace).
* :func:`slot_distribution_figure` - bar charts of one pixel's (or one slot's) distribution over slots, per block.
* :func:`pixel_picker_figure` - an image to click on, a marker on the chosen pixel.
* :func:`compared_block_pictures` - two models' hard groupings of one block pair, matched slots in one colour.
* :func:`comparison_figure` - two models' hard groupings of one image side by side, block by block, matched slots
  in the same colour, with their agreement and the change in the class predictions.
* :func:`error_panels`, :func:`worst_images_figure` - image, ground truth, prediction and error map of one image, and
  a grid of such rows with legends (``glmix-viz evaluate --worst N --figure``, the explorer's run browser).
* :func:`save_figure` - a matplotlib figure or an RGB picture as a PNG of bounded size (for READMEs).
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, Mapping, Sequence, Union

import numpy as np
import plotly.graph_objects as go
from PIL import Image
from plotly.subplots import make_subplots

from glmix_viz.files import save_bytes_atomic
from glmix_viz.scoring.errors import ERROR_KINDS, error_map
from glmix_viz.slots.medoids import representative_slots
from glmix_viz.viz import (
    ERROR_COLORS,
    REPRESENTATIVE_FRAME_COLORS,
    _check_image,
    colorize_labels,
    draw_boundaries,
    error_overlay,
    grouping_overlay,
    hstack_panels,
    label_legend,
    map_colorbar,
    masked_slot_view,
    overlay,
    scale_to_unit,
    slot_boundaries,
    slot_palette,
    soft_map_grid,
    value_ranges,
    vstack_panels,
)

__all__ = [
    "compared_block_pictures",
    "comparison_figure",
    "error_panels",
    "grouping_figure",
    "pixel_picker_figure",
    "save_figure",
    "slot_distribution_figure",
    "soft_maps_figure",
    "worst_images_figure",
]

_SOFT_MAP_HOVER = ("slot %{customdata[0]}<br>x=%{customdata[1]}, y=%{customdata[2]}<br>value=%{customdata[3]:.4f}"
                   "<extra></extra>")


def _colorbar_of(scale: str, quantity: str = "weight") -> dict:
    """Plotly colour bar settings that name what the colours measure and the colour scale (and, for ``"own"``, what
    its ends mean)."""
    if scale == "shared":
        return dict(title=dict(text=f"{quantity}<br>shared scale<br>(all maps)", side="right"))
    return dict(title=dict(text=f"{quantity}<br>own scale<br>per map", side="right"), tickvals=[0.0, 1.0],
                ticktext=["map's min", "map's max"])


# ----------------------------------------------------------------------------------------------------------------------
# Interactive figures (Plotly)
# ----------------------------------------------------------------------------------------------------------------------


def soft_maps_figure(
    maps: np.ndarray,
    *,
    cols: int = 8,
    title: str | None = None,
    colorscale: str = "Viridis",
    tile_size: int = 64,
    scale: str = "shared",
    quantity: str = "weight",
    value_range: tuple[float, float] | None = None,
) -> go.Figure:
    """An interactive grid of per-slot maps on one shared colour scale (default) or each on its own.

    All maps are drawn as tiles of a single heatmap trace (one trace is much faster to build and render than 64
    subplots), separated by one-pixel gaps; hovering shows the slot, the pixel ``(x, y)`` inside the map and the raw
    value. Row 0 of every map is at the top, as in an image. The colour bar says which scale it is.

    Args:
        maps: ``(S, h, w)`` float maps (raw values are shown on hover).
        cols: Tiles per row.
        title: Figure title.
        colorscale: Plotly colour scale name.
        tile_size: Approximate on-screen size of a tile in pixels (sets the figure size).
        scale: ``"shared"`` - ``z`` holds the raw values and the colours span their common min..max (maps are
            comparable); ``"own"`` - ``z`` holds each map scaled from its own min (0) to its own max (1), the colour
            bar reads "each map's min / max" (see :func:`glmix_viz.viz.value_ranges`).
        quantity: what the values are, with their unit (the colour bar's first line), e.g. "dispatch weight (0-1)".
        value_range: the shared scale's ``(low, high)`` when it is shared with other figures (default: these maps').

    Returns:
        A ``plotly.graph_objects.Figure`` with one ``Heatmap`` trace whose ``customdata[row, col]`` is
        ``(slot, x, y, raw value)`` (``-1`` and NaN in the gaps) and whose ``z`` is NaN in the gaps.
    """
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim != 3 or maps.shape[0] == 0:
        raise ValueError(f"maps must be (S, h, w) with S >= 1, got {maps.shape}")
    num_maps, map_height, map_width = maps.shape
    cols = max(1, min(int(cols), num_maps))
    rows = int(math.ceil(num_maps / cols))
    mosaic_height, mosaic_width = rows * (map_height + 1) - 1, cols * (map_width + 1) - 1
    ranges = value_ranges(maps, scale)
    if scale == "shared" and value_range is not None:
        ranges = [tuple(value_range)] * num_maps
    shown = maps if scale == "shared" else np.stack([scale_to_unit(m, r) for m, r in zip(maps, ranges)])
    z = np.full((mosaic_height, mosaic_width), np.nan)
    customdata = np.full((mosaic_height, mosaic_width, 4), -1.0)
    customdata[..., 3] = np.nan
    ys, xs = np.mgrid[0:map_height, 0:map_width]
    for slot in range(num_maps):
        top, left = (slot // cols) * (map_height + 1), (slot % cols) * (map_width + 1)
        z[top : top + map_height, left : left + map_width] = shown[slot]
        customdata[top : top + map_height, left : left + map_width] = np.stack(
            [np.full_like(ys, slot), xs, ys, maps[slot]], axis=-1
        )
    zmin, zmax = ranges[0] if scale == "shared" else (0.0, 1.0)
    heatmap = go.Heatmap(
        z=z,
        customdata=customdata,
        colorscale=colorscale,
        zmin=zmin,
        zmax=zmax,
        hoverongaps=False,
        hovertemplate=_SOFT_MAP_HOVER,
        colorbar=_colorbar_of(scale, quantity),
    )
    figure = go.Figure(heatmap)
    cell_pixels = tile_size / max(map_height, map_width)
    figure.update_layout(
        title=title,
        width=int(mosaic_width * cell_pixels) + 140,
        height=int(mosaic_height * cell_pixels) + (110 if title else 70),
        margin=dict(l=20, r=20, t=60 if title else 20, b=20),
        plot_bgcolor="white",
    )
    figure.update_xaxes(visible=False, constrain="domain")
    figure.update_yaxes(visible=False, autorange="reversed", scaleanchor="x", scaleratio=1, constrain="domain")
    return figure


def slot_distribution_figure(
    probs: np.ndarray | Mapping[str, np.ndarray],
    slot_colors: np.ndarray,
    *,
    title: str | None = None,
) -> go.Figure:
    """Bar charts of one pixel's distribution over slots, one chart per block.

    Args:
        probs: ``(num_blocks, S)`` array (blocks named ``"block 0"``, ...) or a mapping ``{block name: (S,)}``.
        slot_colors: ``(S, 3)`` ``uint8`` RGB colours, bar ``s`` drawn in colour ``s`` (use :func:`slot_palette`).
        title: Figure title.

    Returns:
        A figure with one ``Bar`` trace per block, stacked vertically and sharing the slot axis; hover shows the slot
        and its weight.
    """
    if isinstance(probs, Mapping):
        block_names = [str(name) for name in probs]
        rows = [np.asarray(values, dtype=np.float64).reshape(-1) for values in probs.values()]
    else:
        array = np.asarray(probs, dtype=np.float64)
        if array.ndim == 1:
            array = array[None]
        if array.ndim != 2:
            raise ValueError(f"probs must be (num_blocks, S), got {array.shape}")
        block_names = [f"block {index}" for index in range(array.shape[0])]
        rows = list(array)
    if not rows:
        raise ValueError("probs holds no block")
    slot_colors = np.asarray(slot_colors, dtype=np.uint8)
    for name, values in zip(block_names, rows):
        if len(values) > len(slot_colors):
            raise ValueError(f"{name}: {len(values)} slots but only {len(slot_colors)} colours")
    figure = make_subplots(
        rows=len(rows), cols=1, shared_xaxes=True, subplot_titles=block_names, vertical_spacing=0.3 / len(rows)
    )
    for row_index, values in enumerate(rows, start=1):
        slots = np.arange(len(values))
        colors = [f"rgb({r},{g},{b})" for r, g, b in slot_colors[: len(values)]]
        figure.add_trace(
            go.Bar(
                x=slots,
                y=values,
                marker_color=colors,
                name=block_names[row_index - 1],
                hovertemplate="slot %{x}<br>weight=%{y:.4f}<extra></extra>",
                showlegend=False,
            ),
            row=row_index,
            col=1,
        )
    figure.update_layout(title=title, height=160 * len(rows) + 80, margin=dict(l=40, r=20, t=60, b=40), bargap=0.1)
    figure.update_xaxes(title_text="slot", row=len(rows), col=1)
    return figure


# ----------------------------------------------------------------------------------------------------------------------
# The figure of `glmix-viz inspect`: input | hard groupings per block | soft maps of one block
# ----------------------------------------------------------------------------------------------------------------------


def pixel_picker_figure(image: np.ndarray, grid: Sequence[int], y: int, x: int, *, max_side: int = 420) -> go.Figure:
    """The image with a marker on pixel ``(y, x)`` and an invisible grid of clickable points.

    The points sit at the cell centres of a ``grid = (rows, cols)`` map (the finest block's; every other cell beyond
    64 per side), so a click lands on a pixel that such a map reads from a single cell.
    """
    height, width = image.shape[:2]
    rows, cols = int(grid[0]), int(grid[1])
    step = max(1, int(math.ceil(max(rows, cols) / 64)))
    cell_ys = ((np.arange(0, rows, step) + 0.5) * height / rows).astype(int)
    cell_xs = ((np.arange(0, cols, step) + 0.5) * width / cols).astype(int)
    grid_y, grid_x = np.meshgrid(cell_ys, cell_xs, indexing="ij")
    figure = go.Figure(go.Image(z=image, hoverinfo="skip"))
    figure.add_trace(go.Scatter(x=grid_x.ravel(), y=grid_y.ravel(), mode="markers", marker=dict(size=8, opacity=0.0),
                                hovertemplate="x=%{x}, y=%{y}<extra>click to inspect</extra>", showlegend=False))
    figure.add_trace(go.Scatter(x=[x], y=[y], mode="markers", showlegend=False, hoverinfo="skip",
                                marker=dict(size=14, symbol="x-thin", line=dict(width=3, color="white"))))
    scale = min(1.0, max_side / max(height, width))
    figure.update_layout(width=int(width * scale) + 20, height=int(height * scale) + 20,
                         margin=dict(l=10, r=10, t=10, b=10), clickmode="event+select", dragmode=False)
    figure.update_xaxes(visible=False, range=[-0.5, width - 0.5])
    figure.update_yaxes(visible=False, range=[height - 0.5, -0.5])
    return figure


def grouping_figure(
    image: np.ndarray,
    dispatch_by_block: Mapping[str, np.ndarray],
    *,
    grid_block: str | None = None,
    predictions: Sequence[tuple[str, float]] | None = None,
    alpha: float = 0.5,
    panel_side: int = 256,
    num_representatives: int = 4,
    scale: str = "shared",
) -> np.ndarray:
    """One picture in the spirit of the authors' figure, for one image.

    Row 1: the input, then the hard grouping (argmax over slots, coloured overlay with slot borders) of every block
    given. Row 2: the grid of soft per-slot maps of ``grid_block`` (on ``scale``, with its labelled colour bar;
    representative slots framed) and the representative slots as masked views. A caption lists the top predictions.

    Args:
        image: ``(H, W, 3)`` ``uint8`` RGB input.
        dispatch_by_block: block name -> ``(S, h, w)`` dispatch weights of this image, in network order.
        grid_block: the block whose soft maps are drawn; the last one given when None.
        predictions: (class name, probability) pairs to caption the input with.
        alpha: weight of the slot colours in the overlays.
        panel_side: longer side of the image panels in pixels.
        num_representatives: slots picked by k-medoids for the frames and masked views.
        scale: colour scale of the soft maps: ``"shared"`` (one for all maps) or ``"own"`` (each map its own).

    Returns:
        ``(H, W, 3)`` ``uint8`` RGB.
    """
    image = _check_image(image)
    if not dispatch_by_block:
        raise ValueError("dispatch_by_block is empty: nothing to draw")
    zoom = panel_side / max(image.shape[:2])
    shown = np.asarray(
        Image.fromarray(image).resize(
            (max(1, round(image.shape[1] * zoom)), max(1, round(image.shape[0] * zoom))), Image.BILINEAR
        )
    )
    panels, titles = [shown], ["input"]
    for name, dispatch in dispatch_by_block.items():
        panels.append(grouping_overlay(shown, dispatch, alpha=alpha))
        titles.append(f"{name} ({np.asarray(dispatch).shape[0]} slots)")
    top_row = hstack_panels(panels, titles=titles)

    grid_block = grid_block or list(dispatch_by_block)[-1]
    maps = np.asarray(dispatch_by_block[grid_block], dtype=np.float32)
    chosen = representative_slots(maps, k=min(num_representatives, maps.shape[0]))
    frames = {slot: REPRESENTATIVE_FRAME_COLORS[i % len(REPRESENTATIVE_FRAME_COLORS)] for i, slot in enumerate(chosen)}
    cell = max(24, panel_side // int(math.ceil(math.sqrt(maps.shape[0]))))
    grid = soft_map_grid(maps, cell=cell, frame_colors=frames, scale=scale)
    grid = vstack_panels([grid, map_colorbar(maps, scale, width=max(64, min(256, grid.shape[1] - 8)))], pad=0)
    views = [masked_slot_view(shown, maps[slot]) for slot in chosen]
    bottom_row = hstack_panels(
        [grid, *views], titles=[f"soft maps of {grid_block}", *[f"slot {slot}" for slot in chosen]]
    )
    lines = []
    if predictions:
        # ImageNet descriptions list synonyms ("screen, CRT screen"): the first one is enough here
        lines.append("top-5: " + ", ".join(f"{name.split(',')[0]} ({prob:.3f})" for name, prob in predictions[:5]))
    figure = vstack_panels([top_row, bottom_row])
    if lines:
        figure = vstack_panels([figure], titles=lines)
    return figure


def compared_block_pictures(image: np.ndarray, block: Any, *, alpha: float = 0.5,
                            boundaries: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Both models' hard groupings of one block pair over ``image``, matched slots in the same colour.

    Args:
        image: (H, W, 3) uint8 RGB, any size (the groupings are resized to it by nearest neighbour).
        block: a :class:`~glmix_viz.slots.compare.BlockComparison`.
        alpha: weight of the slot colours.
        boundaries: draw the borders between slots.

    Returns:
        ``(picture_a, picture_b)``, each (H, W, 3) uint8.
    """
    from glmix_viz.slots.resize import upsample_labels

    image = _check_image(image)
    palette = slot_palette(block.num_slots_a + block.num_slots_b)
    pictures = []
    for labels in (block.labels_a, block.labels_b):
        labels = upsample_labels(labels, image.shape[:2])
        picture = overlay(image, labels, palette=palette, alpha=alpha)
        pictures.append(draw_boundaries(picture, slot_boundaries(labels)) if boundaries else picture)
    return pictures[0], pictures[1]


def comparison_figure(comparison: Any, *, names: Sequence[str] = ("A", "B"), alpha: float = 0.5,
                      panel_side: int = 256, max_classes: int = 3) -> np.ndarray:
    """Two models' groupings of one image side by side (:func:`glmix_viz.slots.compare.compare_groupings`).

    One row per pair of corresponding blocks: model A's hard grouping, model B's, matched slots in the same colour,
    captioned with the blocks, the agreement (ARI) and the matched slots. A caption lists the largest changes of the
    class probabilities and the blocks without a partner.

    Args:
        comparison: a :class:`~glmix_viz.slots.compare.GroupingComparison`.
        names: what to call the two models in the titles.
        alpha: weight of the slot colours.
        panel_side: longer side of each panel in pixels (labels are enlarged by nearest neighbour).
        max_classes: class changes listed in the caption.

    Returns:
        ``(H, W, 3)`` ``uint8`` RGB.
    """
    image = _check_image(comparison.image)
    if not comparison.blocks:
        raise ValueError("the two models have no corresponding GLMix blocks: " + "; ".join(
            f"{block} ({why})" for block, why in comparison.unmatched.items()))
    zoom = panel_side / max(image.shape[:2])
    size = (max(1, round(image.shape[0] * zoom)), max(1, round(image.shape[1] * zoom)))
    shown = np.asarray(Image.fromarray(image).resize(size[::-1], Image.BILINEAR))
    rows = []
    for block in comparison.blocks:
        pictures = list(compared_block_pictures(shown, block, alpha=alpha))
        titles = [f"{names[0]}: {block.num_slots_a} slots", f"{names[1]}: {block.num_slots_b} slots"]
        pair = block.block_a if block.block_a == block.block_b else f"{block.block_a} / {block.block_b}"
        caption = f"{pair}: ARI {block.agreement:.2f}, {len(block.matches)} matched (IoU {block.mean_matched_iou:.2f})"
        rows.append(vstack_panels([hstack_panels(pictures, titles=titles)], titles=[caption], font_size=13))
    lines = []
    if comparison.classes:
        shown = comparison.classes[:max_classes]
        lines.append("class probability " + ", ".join(f"{c.name} {c.a:.2f}->{c.b:.2f}" for c in shown))
    elif comparison.class_note:
        lines.append(comparison.class_note)
    lines += [f"no partner: {block} ({why})" for block, why in comparison.unmatched.items()]
    figure = vstack_panels(rows)
    if not lines:
        return figure
    spacer = np.full((1, figure.shape[1], 3), 255, np.uint8)  # one caption line above each spacer, the last above all
    return vstack_panels([spacer] * (len(lines) - 1) + [figure], titles=lines)


# ----------------------------------------------------------------------------------------------------------------------
# Segmentation errors
# ----------------------------------------------------------------------------------------------------------------------

ERROR_PANEL_TITLES = ("image", "ground truth", "prediction", "errors")


def _fit(picture: np.ndarray, max_side: int, *, nearest: bool) -> np.ndarray:
    """``picture`` resized so that its longer side is ``max_side``."""
    height, width = picture.shape[:2]
    factor = max_side / max(height, width)
    if factor == 1.0:
        return picture
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return np.asarray(Image.fromarray(picture).resize(size, Image.NEAREST if nearest else Image.BILINEAR))


def error_panels(image: np.ndarray | None, gt: np.ndarray, pred: np.ndarray, palette: np.ndarray, *,
                 max_side: int | None = None, background: int | None = 0, ignore: int = 255) -> list[np.ndarray]:
    """Image, ground truth, prediction and error map of one image, as four RGB pictures of one size.

    Args:
        image: ``(H, W, 3)`` uint8 RGB, or ``None`` (a grey panel stands in for it).
        gt, pred: ``(H, W)`` label maps (255 = ignored / unsure).
        palette: ``(256, 3)`` uint8 class colours, 255 included (e.g. :func:`glmix_viz.labels.voc_palette`).
        max_side: resize the pictures to this longer side (labels and errors nearest-neighbour).
        background, ignore: the data set's background class (or None) and ignore value, for the error map.

    Returns:
        ``[image, ground truth, prediction, errors]`` (titles in :data:`ERROR_PANEL_TITLES`; the error colours in
        :data:`glmix_viz.viz.ERROR_COLORS`, named by :data:`glmix_viz.scoring.errors.ERROR_KINDS`).
    """
    shown = np.full(gt.shape + (3,), 200, dtype=np.uint8) if image is None else _check_image(image)
    if shown.shape[:2] != gt.shape:
        raise ValueError(f"image is {shown.shape[1]}x{shown.shape[0]}, the ground truth {gt.shape[1]}x{gt.shape[0]}")
    pictures = [shown, colorize_labels(gt, palette), colorize_labels(pred, palette),
                error_overlay(error_map(pred, gt, background=background, ignore=ignore),
                              None if image is None else shown)]
    if max_side is None:
        return pictures
    return [_fit(picture, max_side, nearest=index > 0) for index, picture in enumerate(pictures)]


def worst_images_figure(rows: Sequence[Mapping[str, Any]], *, palette: np.ndarray, class_names: Sequence[str],
                        max_side: int = 160, background: int | None = 0, ignore: int = 255) -> np.ndarray:
    """A grid of images with their ground truth, prediction and error map, one row each, with legends.

    Args:
        rows: each ``{"image": (H, W, 3) uint8 or None, "gt": (H, W), "pred": (H, W), "title": str}`` (the title,
            e.g. the id and its scores, is written above its row).
        palette: ``(256, 3)`` uint8 class colours.
        class_names: the names of the class labels (to name the colours present in the legend).
        max_side: longer side of each panel, in pixels.
        background, ignore: the data set's background class (or None) and ignore value, for the error maps.

    Returns:
        ``(H, W, 3)`` uint8 RGB: the rows, then the error legend and the legend of the classes shown.
    """
    if not rows:
        raise ValueError("need at least one image")
    pictures, present = [], set()
    for index, row in enumerate(rows):
        panels = error_panels(row.get("image"), np.asarray(row["gt"]), np.asarray(row["pred"]), palette,
                              max_side=max_side, background=background, ignore=ignore)
        titles = list(ERROR_PANEL_TITLES) if index == 0 else None
        pictures.append(vstack_panels([hstack_panels(panels, titles=titles)], titles=[str(row["title"])], pad=0))
        present |= {int(label) for label in np.unique(np.concatenate([np.ravel(row["gt"]), np.ravel(row["pred"])]))
                    if int(label) < len(class_names)}
    classes = sorted(present)
    legends = [label_legend(ERROR_COLORS, list(ERROR_KINDS), cols=3, column_width=150)]
    if classes:
        legends.append(label_legend(np.asarray(palette)[classes], [class_names[k] for k in classes],
                                    cols=min(4, len(classes)), column_width=130))
    return vstack_panels([*pictures, hstack_panels(legends, pad=0)])


# ----------------------------------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------------------------------


def save_figure(figure: Any, path: Union[str, Path], *, max_bytes: int = 500_000, dpi: int = 110) -> Path:
    """Write a matplotlib figure or an ``(H, W, 3)`` uint8 RGB picture as a PNG of at most ``max_bytes``.

    A PNG that comes out larger is re-encoded with a 256-colour palette, then halved in size until it fits (figures
    meant for a README must stay small).

    Args:
        figure: a ``matplotlib.figure.Figure`` or an RGB uint8 array.
        path: where to write (``.png``); parent folders are created.
        max_bytes: size limit of the file.
        dpi: resolution of matplotlib figures.

    Returns:
        The path written.
    """
    if isinstance(figure, np.ndarray):
        if figure.dtype != np.uint8 or figure.ndim != 3 or figure.shape[2] != 3:
            raise ValueError(f"picture must be (H, W, 3) uint8, got {figure.shape} {figure.dtype}")
        picture = Image.fromarray(figure)
    else:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
        picture = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")

    def encode(image: Image.Image) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, format="png", optimize=True)
        return buffer.getvalue()

    data = encode(picture)
    while len(data) > max_bytes:
        data = encode(picture.quantize(colors=256, method=Image.Quantize.FASTOCTREE))
        if len(data) <= max_bytes or min(picture.size) < 64:
            break
        picture = picture.resize((picture.width // 2, picture.height // 2), Image.LANCZOS)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_bytes_atomic(path, data)
    return path
