"""The explorer's pictures and tabs: library results in, Streamlit elements out.

Every picture comes from :mod:`glmix_viz.viz` (one palette for slots, one overlay function), every number from
:mod:`glmix_viz.slots` or :mod:`glmix_viz.pseudo`; this module only arranges them, with a caption on each.
"""

from __future__ import annotations

import io
import math
import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from PIL import Image

from glmix_viz.app import data
from glmix_viz.files import npz_bytes
from glmix_viz.labels import label_to_pil, voc_palette
from glmix_viz.slots.explore import (
    Exploration,
    assignment_arrays,
    map_cell,
    pixel_distributions,
    slot_areas,
    slot_class_evidence,
    slot_flow,
    top_predictions,
)
from glmix_viz.slots.medoids import representative_slots
from glmix_viz.figures import slot_distribution_figure, soft_maps_figure
from glmix_viz.viz import (
    REPRESENTATIVE_FRAME_COLORS,
    grouping_overlay,
    heatmap_overlay,
    hstack_panels,
    COLOR_SCALES,
    label_legend,
    map_colorbar,
    masked_slot_view,
    overlay,
    scale_caption,
    slot_palette,
    soft_map_grid,
    value_ranges,
    vstack_panels,
)

THUMBNAIL_SIDE = 224
MAX_FIGURE_CELLS = 200_000  # soft-map figures above this many cells (S * h * w) are pooled: ~3.5 MB of JSON at most
SOFT_MAP_KINDS = {
    "dispatch": "dispatch weights: softmax over slots (each pixel's distribution over slots; the authors' maps)",
    "clustering": "clustering weights: softmax over pixels (each slot's distribution over pixels)",
    "logits": "similarity logits before any softmax",
}


@dataclass(frozen=True)
class Display:
    """Display settings: changing them redraws pictures and never reruns the network.

    Attributes:
        opacity: weight of the colours over the image, in [0, 1].
        boundaries: draw the borders between slots.
        soft_map_kind: a key of :data:`SOFT_MAP_KINDS`.
        color_scale: ``"shared"`` (maps shown together on one colour scale) or ``"own"`` (each map on its own), a key
            of :data:`glmix_viz.viz.COLOR_SCALES`.
    """

    opacity: float
    boundaries: bool
    soft_map_kind: str
    color_scale: str = "shared"


# ----------------------------------------------------------------------------------------------------------------------
# Pictures
# ----------------------------------------------------------------------------------------------------------------------


def block_title(exploration: Exploration, block: str) -> str:
    """``"#3 stages.1.blocks.1 (16x16, 16 slots)"``."""
    record = exploration.record(block)
    height, width = record.size
    return f"#{exploration.block_names.index(block) + 1} {block} ({height}x{width}, {record.num_slots} slots)"


def soft_maps(exploration: Exploration, block: str, kind: str) -> np.ndarray:
    """``(S, h, w)`` maps of one block of the kind chosen in the display settings."""
    if kind == "clustering":
        return exploration.cluster(block)
    if kind == "logits":
        return exploration.record(block).logits[0].float().numpy()
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


def hard_overlay(
    exploration: Exploration, block: str, display: Display, image: Optional[np.ndarray] = None
) -> np.ndarray:
    """The hard grouping of a block over the image (or over ``image``, e.g. a thumbnail)."""
    dispatch = exploration.dispatch(block)
    return grouping_overlay(
        exploration.image if image is None else image, dispatch, alpha=display.opacity,
        boundaries=display.boundaries, palette=slot_palette(dispatch.shape[0]),
    )


def thumbnail(image: np.ndarray, side: int = THUMBNAIL_SIDE) -> np.ndarray:
    """The image with its longer side at most ``side`` pixels (area-averaged), for side-by-side views."""
    height, width = image.shape[:2]
    scale = side / max(height, width)
    if scale >= 1:
        return np.asarray(image)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(np.asarray(image)).resize(size, Image.Resampling.BOX))


def all_blocks_picture(exploration: Exploration, display: Display) -> np.ndarray:
    """Hard groupings of every block side by side over a thumbnail of the image."""
    small = thumbnail(exploration.image)
    panels = [small] + [hard_overlay(exploration, block, display, small) for block in exploration.block_names]
    titles = ["input"] + [f"#{index + 1} {block}" for index, block in enumerate(exploration.block_names)]
    return hstack_panels(panels, titles=titles, font_size=12)


def _framed(picture: np.ndarray, color: Sequence[int], width: int = 3) -> np.ndarray:
    framed = np.empty((picture.shape[0] + 2 * width, picture.shape[1] + 2 * width, 3), dtype=np.uint8)
    framed[:] = np.asarray(color, dtype=np.uint8)
    framed[width:-width, width:-width] = picture
    return framed


def authors_figure(exploration: Exploration, block: str, scale: str = "shared") -> Tuple[np.ndarray, List[int]]:
    """The authors' figure for one block: input | grid of dispatch maps | the 4 k-medoids slots shown through the image.

    The grid is drawn on ``scale`` (one colour scale for all maps, or each its own) with its labelled colour bar.

    Returns:
        ``(picture, representative slots)``.
    """
    maps = exploration.dispatch(block)
    representatives = representative_slots(maps, k=len(REPRESENTATIVE_FRAME_COLORS))
    frames = {slot: REPRESENTATIVE_FRAME_COLORS[index] for index, slot in enumerate(representatives)}
    rows = math.ceil(maps.shape[0] / math.ceil(math.sqrt(maps.shape[0])))
    grid = soft_map_grid(maps, scale=scale, frame_colors=frames, cell=max(32, THUMBNAIL_SIDE // rows - 4))
    grid = vstack_panels([grid, map_colorbar(maps, scale, width=max(96, min(256, grid.shape[1] - 8)))], pad=0)
    small = thumbnail(exploration.image)
    quarter = thumbnail(exploration.image, THUMBNAIL_SIDE // 2)
    views = [_framed(masked_slot_view(quarter, maps[slot]), frames[slot]) for slot in representatives]
    rows = [hstack_panels(views[start : start + 2], titles=[f"slot {s}" for s in representatives[start : start + 2]],
                          pad=2, font_size=11) for start in range(0, len(views), 2)]
    picture = hstack_panels(
        [small, grid, vstack_panels(rows, pad=0)],
        titles=["input", f"{maps.shape[0]} dispatch maps", "k-medoids slots"],
        font_size=12,
    )
    return picture, representatives


def png_bytes(picture: np.ndarray | Image.Image) -> bytes:
    """PNG encoding of an RGB array or a PIL image."""
    image = picture if isinstance(picture, Image.Image) else Image.fromarray(np.asarray(picture))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def slot_legend(exploration: Exploration, block: str, max_entries: int = 24) -> Tuple[np.ndarray, int]:
    """Legend of the slots that hold pixels in a block (largest first) with their share; and how many were left out."""
    logits = exploration.record(block).logits[0].numpy()
    hard, _ = slot_areas(logits)
    palette = slot_palette(logits.shape[0])
    used = [int(slot) for slot in np.argsort(-hard, kind="stable") if hard[slot] > 0]
    shown = used[:max_entries]
    legend = label_legend(palette[shown], [f"slot {slot}: {hard[slot]:.0%}" for slot in shown], cols=4,
                          column_width=130, font_size=12)
    return legend, len(used) - len(shown)


# ----------------------------------------------------------------------------------------------------------------------
# Tabs
# ----------------------------------------------------------------------------------------------------------------------


def groupings_tab(exploration: Exploration, block: str, display: Display) -> None:
    """Hard grouping of the chosen block over the image with its legend; the interactive grid of soft maps."""
    record = exploration.record(block)
    left, right = st.columns([1, 1.15], gap="medium")
    with left:
        st.image(
            hard_overlay(exploration, block, display),
            caption=f"Hard grouping of {block_title(exploration, block)}: every pixel coloured by its arg-max slot "
                    f"(opacity {display.opacity:.2f}).",
            width="stretch",
        )
        legend, left_out = slot_legend(exploration, block)
        st.image(legend, caption="Slots that win pixels, with their share of the image"
                 + (f" ({left_out} smaller slots not listed)" if left_out else ""))
    with right:
        maps, factor = pooled_for_figure(soft_maps(exploration, block, display.soft_map_kind))
        figure = soft_maps_figure(maps, cols=int(math.ceil(math.sqrt(maps.shape[0]))),
                                  title=f"{record.num_slots} soft maps of {block}",
                                  tile_size=56 if record.num_slots > 16 else 110, scale=display.color_scale)
        st.plotly_chart(figure, width="content", key="soft_maps_chart")
        pooled = f" Shown averaged over {factor}x{factor} cells (hover x, y count pooled cells)." if factor > 1 else ""
        st.caption(f"Per-slot {SOFT_MAP_KINDS[display.soft_map_kind]}; {scale_caption(display.color_scale)}. "
                   f"Hover a tile for its slot, pixel and raw value.{pooled}")


def across_blocks_tab(exploration: Exploration, display: Display, current_block: str,
                      benchmark: Optional[dict] = None) -> None:
    """Groupings of all blocks side by side, and the authors' figure (grid + k-medoids slots) for chosen blocks.

    ``benchmark`` (:func:`glmix_viz.grouping.benchmark_best_block`, for the demo model) marks the block that groups
    best on held-out shapes, with its score.
    """
    st.image(all_blocks_picture(exploration, display),
             caption="Hard groupings of every GLMix block, in network order (slot colours are the same in every view).")
    names = exploration.block_names
    if benchmark and benchmark["block"] in names:
        st.markdown(f"**Groups best on the benchmark: {block_title(exploration, benchmark['block'])}**: foreground "
                    f"ARI {benchmark['ari']:.3f} against the object instances, vs {benchmark['best_control_ari']:.3f} "
                    f"for the best control ({benchmark['best_control']}); {benchmark['images']} held-out generated "
                    f"images with at least two objects ({len(benchmark['sets'])} seeds).")
    # The authors show the 2nd, 5th and 10th GLMix block of glnet_stl (0-based 1, 4, 9).
    default = [names[index] for index in (1, 4, 9) if index < len(names)] or [current_block]
    if benchmark and benchmark["block"] in names and benchmark["block"] not in default:
        default = [benchmark["block"]] + default
    chosen = st.multiselect("Blocks for the authors' figure", names, default=default,
                            format_func=lambda name: block_title(exploration, name), key="authors_blocks")
    for block in chosen:
        picture, representatives = authors_figure(exploration, block, display.color_scale)
        st.image(picture, caption=f"{block_title(exploration, block)}: all dispatch maps (viridis, "
                                  f"{scale_caption(display.color_scale)}) and the representative slots "
                                  f"{representatives} picked by k-medoids on the maps' pairwise L2 distances, each "
                                  "shown as the image seen through its map.")


def _select_pixel_from_click(chart_key: str) -> None:
    """on_select callback of the pixel picker: copy the clicked point into the pixel inputs."""
    state = st.session_state.get(chart_key)
    points = (state or {}).get("selection", {}).get("points", []) if isinstance(state, dict) else []
    if not points and state is not None and hasattr(state, "selection"):
        points = state.selection.points
    if points:
        point = points[0]
        st.session_state["pixel_x"] = int(round(float(point["x"])))
        st.session_state["pixel_y"] = int(round(float(point["y"])))


def pixel_picker_figure(exploration: Exploration, y: int, x: int) -> go.Figure:
    """The image with a marker on the chosen pixel and an invisible grid of clickable points.

    The points sit at the cell centres of the finest block grid (every other cell beyond 64 per side), so a click
    lands on a pixel that every block reads from a single cell.
    """
    image = exploration.image
    height, width = image.shape[:2]
    rows, cols = max((exploration.record(name).size for name in exploration.block_names), key=lambda s: s[0] * s[1])
    step = max(1, int(math.ceil(max(rows, cols) / 64)))
    cell_ys = ((np.arange(0, rows, step) + 0.5) * height / rows).astype(int)
    cell_xs = ((np.arange(0, cols, step) + 0.5) * width / cols).astype(int)
    grid_y, grid_x = np.meshgrid(cell_ys, cell_xs, indexing="ij")
    figure = go.Figure(go.Image(z=image, hoverinfo="skip"))
    figure.add_trace(go.Scatter(x=grid_x.ravel(), y=grid_y.ravel(), mode="markers", marker=dict(size=8, opacity=0.0),
                                hovertemplate="x=%{x}, y=%{y}<extra>click to inspect</extra>", showlegend=False))
    figure.add_trace(go.Scatter(x=[x], y=[y], mode="markers", showlegend=False, hoverinfo="skip",
                                marker=dict(size=14, symbol="x-thin", line=dict(width=3, color="white"))))
    scale = min(1.0, 420 / max(height, width))
    figure.update_layout(width=int(width * scale) + 20, height=int(height * scale) + 20,
                         margin=dict(l=10, r=10, t=10, b=10), clickmode="event+select", dragmode=False)
    figure.update_xaxes(visible=False, range=[-0.5, width - 0.5])
    figure.update_yaxes(visible=False, range=[height - 0.5, -0.5])
    return figure


def slot_and_pixel_tab(exploration: Exploration, block: str, display: Display, model_key: str) -> None:
    """One slot of the chosen block (map, area, classes, flow to later blocks); one pixel across all blocks."""
    logits = exploration.record(block).logits[0].numpy()
    hard, soft = slot_areas(logits)
    palette = slot_palette(logits.shape[0])
    order = [int(slot) for slot in np.argsort(-hard, kind="stable")]
    st.subheader("One slot")
    slot = st.columns([1, 1.4])[0].selectbox(
        "Slot", order, format_func=lambda s: f"slot {s}: {hard[s]:.1%} of pixels, {soft[s]:.1%} of mass",
        key=f"slot::{model_key}::{block}",
    )
    swatch = palette[slot]
    st.markdown(f"<span style='display:inline-block;width:14px;height:14px;background:rgb({swatch[0]},{swatch[1]},"
                f"{swatch[2]});border-radius:3px;vertical-align:middle'></span> &nbsp;slot {slot} of "
                f"{block_title(exploration, block)}", unsafe_allow_html=True)
    dispatch = exploration.dispatch(block)
    col_view, col_heat, col_numbers = st.columns([1, 1, 1.1], gap="medium")
    with col_view:
        st.image(masked_slot_view(exploration.image, dispatch[slot], interpolation="bilinear"), width="stretch",
                 caption=f"The image seen through slot {slot}'s dispatch map (dark where the slot is absent).")
    with col_heat:
        low, high = value_ranges(dispatch, display.color_scale)[slot]
        scale_words = "shared by all slots of the block" if display.color_scale == "shared" else "this slot's own"
        st.image(heatmap_overlay(exploration.image, dispatch[slot], alpha=max(display.opacity, 0.3), colormap="jet",
                                 value_range=(low, high)),
                 width="stretch", caption=f"Slot {slot}'s dispatch weight at every pixel, on the colour scale "
                                          f"{scale_words} (jet: blue {low:.3f} to red {high:.3f}).")
    with col_numbers:
        st.metric("Pixels won (arg-max)", f"{hard[slot]:.1%}")
        st.metric("Dispatch mass", f"{soft[slot]:.1%}", help="mean over pixels of the slot's dispatch weight")
        if exploration.cam is not None:
            evidence = slot_class_evidence(exploration.cam, logits)[slot]
            top = np.argsort(-evidence, kind="stable")[:5]
            table = pd.DataFrame({"class": [exploration.class_names[index] for index in top],
                                  "evidence": [float(evidence[index]) for index in top]})
            st.dataframe(table, hide_index=True, width="stretch", column_config={
                "evidence": st.column_config.ProgressColumn("CAM evidence", format="%.3f", min_value=0.0,
                                                            max_value=float(max(evidence.max(), 1e-6)))})
            st.caption("Top classes of the slot: each class's activation map averaged over the slot's pixels "
                       "(clustering weights).")
    flows = slot_flow(exploration, block, slot)
    if flows:
        figure = slot_distribution_figure({f"→ {name}": flow for name, flow in flows.items()},
                                          slot_palette(max(len(flow) for flow in flows.values())),
                                          title=f"Where the pixels of slot {slot} go in the later blocks")
        st.plotly_chart(figure, width="stretch", key="slot_flow_chart")
        st.caption("For every later block: its slot distribution averaged over slot "
                   f"{slot}'s pixels, weighted by slot {slot}'s dispatch weight. Bars use the slot colours.")
    else:
        st.info(f"{block} is the last GLMix block: its slots go nowhere further.")

    st.divider()
    st.subheader("One pixel")
    height, width = exploration.image.shape[:2]
    st.session_state.setdefault("pixel_y", height // 2)
    st.session_state.setdefault("pixel_x", width // 2)
    st.session_state["pixel_y"] = min(int(st.session_state["pixel_y"]), height - 1)
    st.session_state["pixel_x"] = min(int(st.session_state["pixel_x"]), width - 1)
    col_pick, col_dist = st.columns([1, 1.4], gap="medium")
    with col_pick:
        col_y, col_x = st.columns(2)
        pixel_y = int(col_y.number_input("Row (y)", 0, height - 1, step=1, key="pixel_y"))
        pixel_x = int(col_x.number_input("Column (x)", 0, width - 1, step=1, key="pixel_x"))
        st.plotly_chart(pixel_picker_figure(exploration, pixel_y, pixel_x), width="content",
                        key="pixel_chart", on_select=lambda: _select_pixel_from_click("pixel_chart"),
                        selection_mode="points")
        st.caption(f"Pixel (y={pixel_y}, x={pixel_x}) of the {width}x{height} image: type coordinates or click.")
    with col_dist:
        distributions = pixel_distributions(exploration, pixel_y, pixel_x)
        cells = {name: map_cell(exploration.record(name).size, (height, width), pixel_y, pixel_x)
                 for name in distributions}
        figure = slot_distribution_figure(
            {f"{name} cell {cells[name]}": probs for name, probs in distributions.items()},
            slot_palette(max(len(probs) for probs in distributions.values())),
            title=f"Distribution of pixel (y={pixel_y}, x={pixel_x}) over slots, every block",
        )
        st.plotly_chart(figure, width="stretch", key="pixel_distribution_chart")
        st.caption("Dispatch weights of the map cell that covers the pixel, per block; bars use the slot colours.")


def _class_label(exploration: Exploration, index: int) -> str:
    return f"{exploration.class_names[index]} ({exploration.probabilities[index]:.1%})"


def predictions_table(exploration: Exploration) -> None:
    """Top-5 predictions with class names and probabilities."""
    predictions = top_predictions(exploration.probabilities, exploration.class_names, k=5)
    table = pd.DataFrame({"rank": range(1, len(predictions) + 1), "class": [p.name for p in predictions],
                          "index": [p.index for p in predictions], "probability": [p.probability for p in predictions]})
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        "probability": st.column_config.ProgressColumn("probability", format="%.3f", min_value=0.0, max_value=1.0)})
    kind = ("multi-label: a sigmoid per class, each image can hold several" if exploration.multi_label
            else "softmax over its classes")
    st.caption(f"Top-5 predictions of the classifier ({kind}).")


@dataclass(frozen=True)
class PseudoSettings:
    """What a pseudo-mask depends on (besides the model, image and resolution)."""

    classes: Tuple[int, ...]
    score: Any  # glmix_viz.pseudo.ScoreSettings (method, background rule and parameter, flip, input size)
    crf: Any

    @property
    def method(self) -> str:
        return self.score.method


def default_pseudo_settings(exploration: Exploration, resolution: int) -> Optional[PseudoSettings]:
    """The settings used before the user changes any: top-1 class, the library's default method with its own
    background threshold, the default CRF."""
    methods = data.method_names()
    if not methods or exploration.logits.size == 0:
        return None
    from glmix_viz.pseudo.crf import CRFParams
    from glmix_viz.pseudo.registry import default_method
    from glmix_viz.pseudo.settings import ScoreSettings

    top = int(np.argmax(exploration.probabilities))
    score = ScoreSettings(method=default_method(), input_size=resolution)  # with the method's own threshold
    return PseudoSettings((top,), score, CRFParams())


def pseudo_masks(exploration: Exploration, settings: PseudoSettings, model: Any, keys: Tuple[str, str, int]
                 ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, List[str]]:
    """Pseudo-mask before and after the CRF.

    Returns:
        ``(before, after, label_ids, names)``: ``(H, W)`` uint8 channel indices before / after the CRF (255 =
        unsure), the label id of every channel (0 background, class c -> c + 1) and its name.
    """
    score = dataclasses.replace(settings.score, input_size=keys[2])  # the resolution shown now
    scores = data.score_maps(*keys[:2], score, settings.classes, model, exploration.image)
    mask = data.pseudo_mask((*keys, settings), settings.crf, exploration.image, scores)
    before, after = mask.before, mask.channels
    names = ["background (uncoloured)"]
    names += [exploration.class_names[int(index) - 1] for index in scores.class_indices[1:]]
    return before, after, np.asarray(scores.class_indices), names


def mask_ids(channels: np.ndarray, label_ids: np.ndarray) -> np.ndarray:
    """Channel indices -> label ids when every id fits a palette PNG (<= 254), else the channel indices (255 kept)."""
    from glmix_viz.pseudo.masks import channels_to_labels

    return channels_to_labels(channels, label_ids, fallback_to_channels=True)


def score_map_grid(exploration: Exploration, loaded: Any, keys: Tuple[str, str, int], display: Display, chosen: int,
                   classes: Tuple[int, ...], fields: dict) -> None:
    """One class's score map by every registered method that is not slow (slow ones: in the pseudo-mask selector)."""
    from glmix_viz.pseudo.registry import METHODS
    from glmix_viz.pseudo.settings import ScoreSettings

    maps = {}
    for method in (name for name in data.method_names() if not METHODS[name].slow):
        scores = data.score_maps(*keys[:2], ScoreSettings(method=method, **fields), classes, loaded.model,
                                 exploration.image)
        maps[method] = scores.scores[list(scores.class_indices).index(chosen + 1)]
    score_maps_row(exploration, maps, {method: METHODS[method].description for method in maps}, display)
    slow = [name for name in data.method_names() if METHODS[name].slow]
    if slow:
        st.caption(f"Not shown here (slow: many network passes per image): {', '.join(slow)}; choose them below.")


def score_maps_row(exploration: Exploration, maps: Dict[str, np.ndarray], descriptions: Dict[str, str],
                   display: Display, per_row: int = 6) -> None:
    """One class's score map by each method side by side (rows of ``per_row``), on the display's colour scale.

    Args:
        exploration: the image's exploration (the maps are drawn over its image).
        maps: method name -> ``(H, W)`` score map of the class.
        descriptions: method name -> one line saying what the method computes.
        display: the display settings (opacity, colour scale: shared by all maps shown, or each its own).
        per_row: maps per row.
    """
    ranges = dict(zip(maps, value_ranges(list(maps.values()), display.color_scale)))
    names = list(maps)
    for start in range(0, len(names), per_row):
        for column, method in zip(st.columns(per_row), names[start:start + per_row]):
            low, high = ranges[method]
            picture = heatmap_overlay(exploration.image, maps[method], alpha=max(display.opacity, 0.3),
                                      value_range=(low, high))
            column.image(picture, width="stretch",
                         caption=f"{method}: {descriptions[method]} (jet: blue {low:.3g}, red {high:.3g}).")
    st.image(map_colorbar(list(maps.values()), display.color_scale, colormap="jet"),
             caption=f"Score maps: {scale_caption(display.color_scale)}.")


def segmenter_view(exploration: Exploration, loaded: Any, keys: Tuple[str, str, int], display: Display) -> None:
    """A segmenter checkpoint: its predicted mask beside the pseudo-mask of the bundled demo model (same classes)."""
    labels, names = data.segmenter_prediction(keys[0], keys[1], loaded.segmenter, exploration.image)
    palette = voc_palette(256)
    alpha = max(display.opacity, 0.3)
    col_pred, col_pseudo, col_legend = st.columns([1, 1, 0.5], gap="medium")
    col_pred.image(overlay(exploration.image, labels, palette=palette, alpha=alpha, mask=labels != 0),
                   width="stretch", caption="The segmenter's prediction (its encoder's groupings are in the other tabs).")
    demo = data.demo_model(str(next(loaded.model.parameters()).device))
    if ["background", *demo.class_names] == list(names):
        demo_keys = (demo.key, keys[1], keys[2])
        demo_exploration = data.exploration(*demo_keys, demo.model, exploration.image)
        settings = default_pseudo_settings(demo_exploration, keys[2])
        present = tuple(int(index) for index in np.flatnonzero(demo_exploration.probabilities >= 0.5))
        settings = dataclasses.replace(settings, classes=present or settings.classes)
        _, after, label_ids, _ = pseudo_masks(demo_exploration, settings, demo.model, demo_keys)
        ids = mask_ids(after, label_ids)
        col_pseudo.image(overlay(exploration.image, ids, palette=palette, alpha=alpha, mask=after != 0),
                         width="stretch", caption=f"Pseudo-mask of the bundled demo model ({settings.method} + CRF).")
    else:
        col_pseudo.info("Pseudo-masks need a classifier of the segmenter's classes; the bundled demo model's differ.")
    col_legend.image(label_legend(palette[: len(names)], names, column_width=170), caption="Labels (VOC palette).")


def predictions_tab(exploration: Exploration, loaded: Any, keys: Tuple[str, str, int], display: Display) -> None:
    """Top-5 predictions; score maps of a chosen class by every method; the pseudo-mask before / after the CRF."""
    if loaded.segmenter is not None:
        segmenter_view(exploration, loaded, keys, display)
        return
    if exploration.logits.size == 0:
        st.info("This model has no classifier head: no predictions or class maps.")
        return
    left, right = st.columns([1.25, 2], gap="large")
    with left:
        predictions_table(exploration)
    methods = data.method_names()
    if not methods:
        with right:
            st.info("Class score maps need glmix_viz.pseudo.scores, which is not available in this install.")
        return
    from glmix_viz.pseudo.crf import CRFParams
    from glmix_viz.pseudo.settings import ScoreSettings

    defaults = default_pseudo_settings(exploration, keys[2])
    num_classes = len(exploration.class_names)
    with right:
        classes = st.multiselect(
            "Classes in the image (image-level labels for the class maps)", list(range(num_classes)),
            default=list(defaults.classes), format_func=lambda index: _class_label(exploration, index),
            key=f"pseudo_classes::{loaded.key}::{keys[1]}",
        )
        if not classes:
            st.warning("Choose at least one class.")
            return
        chosen = st.selectbox("Class to map", classes, format_func=lambda index: exploration.class_names[index],
                              key="pseudo_class")
        col_rule, col_param, col_flip = st.columns([1, 1, 0.6])
        bg_rule = col_rule.radio("Background rule", ["threshold", "power"], horizontal=True, key="bg_rule",
                                 help="threshold: constant background score; power: (1 - max class score) ** alpha")
        bg_param = col_param.slider("Background threshold" if bg_rule == "threshold" else "Power alpha",
                                    *((0.0, 1.0) if bg_rule == "threshold" else (0.5, 16.0)),
                                    value=float(ScoreSettings(method=defaults.method, bg_rule=bg_rule).bg_param),
                                    key=f"bg_param::{bg_rule}")
        flip = col_flip.checkbox("Flip TTA", value=True, key="pseudo_flip", help="average with the mirrored image")

    st.subheader(f"Score maps of '{exploration.class_names[chosen]}' by each method")
    score_map_grid(exploration, loaded, keys, display, chosen, tuple(sorted(classes)),
                   dict(bg_rule=bg_rule, bg_param=float(bg_param), flip=flip, input_size=keys[2]))

    st.subheader("Pseudo-mask")
    col_method, col_crf = st.columns([1, 2])
    method = col_method.selectbox("Method", methods, index=list(methods).index(defaults.method), key="pseudo_method")
    with col_crf.expander("Dense CRF parameters"):
        c1, c2, c3 = st.columns(3)
        crf = CRFParams()  # the library's defaults
        params = CRFParams(
            gaussian_sxy=c1.slider("Smoothness sxy", 1.0, 20.0, crf.gaussian_sxy, key="crf_gsxy"),
            gaussian_compat=c1.slider("Smoothness weight", 0.0, 20.0, crf.gaussian_compat, key="crf_gcompat"),
            bilateral_sxy=c2.slider("Appearance sxy", 5.0, 200.0, crf.bilateral_sxy, key="crf_bsxy"),
            bilateral_srgb=c2.slider("Appearance srgb", 1.0, 50.0, crf.bilateral_srgb, key="crf_bsrgb"),
            bilateral_compat=c3.slider("Appearance weight", 0.0, 30.0, crf.bilateral_compat, key="crf_bcompat"),
            iterations=c3.slider("Iterations", 0, 20, crf.iterations, key="crf_iterations"),
        )
    score = ScoreSettings(method=method, bg_rule=bg_rule, bg_param=float(bg_param), flip=flip, input_size=keys[2])
    settings = PseudoSettings(tuple(sorted(classes)), score, params)
    st.session_state["pseudo_settings"] = settings
    before, after, label_ids, names = pseudo_masks(exploration, settings, loaded.model, keys)
    palette = voc_palette(256)
    ids_before, ids_after = mask_ids(before, label_ids), mask_ids(after, label_ids)
    col_before, col_after, col_legend = st.columns([1, 1, 0.5], gap="medium")
    alpha = max(display.opacity, 0.3)
    col_before.image(overlay(exploration.image, ids_before, palette=palette, alpha=alpha, mask=before != 0),
                     width="stretch", caption=f"Before the CRF: arg-max of the {method} scores and the background "
                                              "score (background left uncoloured).")
    col_after.image(overlay(exploration.image, ids_after, palette=palette, alpha=alpha, mask=after != 0),
                    width="stretch", caption="After the dense CRF (refined with the image's colours and positions).")
    legend_ids = [int(value) for value in mask_ids(np.arange(len(label_ids), dtype=np.uint8), label_ids)]
    col_legend.image(label_legend(palette[legend_ids], names, column_width=170),
                     caption="Pseudo-mask labels (VOC palette).")


def downloads_tab(exploration: Exploration, block: str, display: Display, loaded: Any, keys: Tuple[str, str, int],
                  image_name: str) -> None:
    """Download buttons for what the other tabs show."""
    stem = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in image_name.split(" (")[0])[:40] or "image"
    block_stem = block.replace(".", "_")
    st.caption(f"Files for {image_name}, block {block}, as shown with the current settings.")
    col1, col2 = st.columns(2)
    with col1:
        st.download_button("Grouping overlay of the chosen block (PNG)",
                           png_bytes(hard_overlay(exploration, block, display)),
                           file_name=f"{stem}_{block_stem}_grouping.png", mime="image/png", on_click="ignore",
                           icon=":material/image:", width="stretch")
        st.download_button("Groupings of all blocks (PNG)", png_bytes(all_blocks_picture(exploration, display)),
                           file_name=f"{stem}_all_blocks.png", mime="image/png", on_click="ignore",
                           icon=":material/view_column:", width="stretch")
        st.download_button("Authors' figure of the chosen block (PNG)",
                           png_bytes(authors_figure(exploration, block, display.color_scale)[0]),
                           file_name=f"{stem}_{block_stem}_slots.png", mime="image/png", on_click="ignore",
                           icon=":material/grid_view:", width="stretch")
    with col2:
        st.download_button("Raw assignments of every block (.npz)", npz_bytes(assignment_arrays(exploration)),
                           file_name=f"{stem}_assignments.npz", mime="application/octet-stream", on_click="ignore",
                           icon=":material/data_array:", width="stretch",
                           help="per block: <block>.logits (S, h, w), <block>.hard (h, w), <block>.slots_out (S, C)")
        settings = st.session_state.get("pseudo_settings") or default_pseudo_settings(exploration, keys[2])
        if settings is None:
            st.info("No pseudo-mask: the model has no classifier or the score maps are not available.")
            return
        _, after, label_ids, names = pseudo_masks(exploration, settings, loaded.model, keys)
        mask = mask_ids(after, label_ids)
        st.download_button("Pseudo-mask after the CRF (palette PNG)", png_bytes(label_to_pil(mask)),
                           file_name=f"{stem}_pseudo_mask.png", mime="image/png", on_click="ignore",
                           icon=":material/palette:", width="stretch")
        ids_note = "label ids (0 background, class c -> c + 1)" if label_ids.max() < 255 else "channel indices"
        st.caption(f"Pseudo-mask: {settings.method}, classes {', '.join(names[1:])}; pixel values are {ids_note}; "
                   "255 = unsure.")
