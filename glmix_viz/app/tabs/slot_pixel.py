"""The Slot & pixel tab: one slot of the chosen block (where it is, how much it holds, which classes it carries, what
the decision loses when it is removed, where its pixels go next), and one pixel's distribution over slots in every
block."""

from __future__ import annotations

from typing import Tuple

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from glmix_viz.app import links
from glmix_viz.app.data import HASH_FUNCS, LoadedImage, LoadedModel
from glmix_viz.app.page import Page, View
from glmix_viz.errors import GlmixVizError
from glmix_viz.figures import pixel_picker_figure, slot_distribution_figure
from glmix_viz.pictures import block_title
from glmix_viz.slots.explore import map_cell, pixel_distributions, slot_areas, slot_class_evidence, slot_flow
from glmix_viz.slots.interventions import intervene, slot_effect_map, slot_effects
from glmix_viz.viz import colorbar, heatmap_overlay, masked_slot_view, slot_palette, value_ranges

DISPATCH_COLORMAP = "viridis"  # the colour map of dispatch weights in every view (the Groupings tab's soft maps)
EVIDENCE_WORDS = ("CAM units: the classifier head's class weights dotted with the final features (a logit "
                  "contribution per position, before sigmoid / softmax; not a probability)")


def slot_key(page: Page) -> str:
    """The slot chooser's key: a slot index means something for one model's block only."""
    return f"slot::{page.model.key}::{page.block}"


def pixel_keys(page: Page) -> Tuple[str, str]:
    """The pixel inputs' keys ``(row, column)``: a pixel belongs to one image."""
    return f"pixel_y::{page.image.key}", f"pixel_x::{page.image.key}"


def choose_slot(page: Page) -> int:
    """The slot selector (largest slots first) and a swatch of the slot's colour; returns the slot."""
    hard, soft = slot_areas(page.exploration.block_logits(page.block))
    order = [int(slot) for slot in np.argsort(-hard, kind="stable")]
    linked = page.link.slot if page.link.block == page.block and page.link.slot in order else order[0]
    if page.link.slot is not None and page.link.block == page.block and page.link.slot not in order:
        links.refuse("slot", page.link.slot, f"is not a slot of {page.block} (0 to {len(order) - 1})",
                     f"opened slot {linked}, the largest, instead")
    slot = st.columns([1, 1.4])[0].selectbox(
        "Slot", order, index=order.index(linked), key=slot_key(page),
        format_func=lambda s: f"slot {s}: {hard[s]:.1%} of pixels, {soft[s]:.1%} of mass")
    links.note(slot=slot)
    red, green, blue = slot_palette(len(order))[slot]
    st.markdown(f"<span style='display:inline-block;width:14px;height:14px;background:rgb({red},{green},{blue});"
                f"border-radius:3px;vertical-align:middle'></span> &nbsp;slot {slot} of "
                f"{block_title(page.exploration, page.block)}", unsafe_allow_html=True)
    return slot


def slot_pictures(page: Page, slot: int) -> None:
    """The image seen through the slot's dispatch map, and the map as a heat map on the display's colour scale."""
    exploration, display = page.exploration, page.display
    dispatch = exploration.dispatch(page.block)
    left, right = st.columns(2, gap="medium")
    left.image(masked_slot_view(exploration.image, dispatch[slot], interpolation="bilinear"), width="stretch",
               caption=f"The image seen through slot {slot}'s dispatch map (dark where the slot is absent).")
    low, high = value_ranges(dispatch, display.color_scale)[slot]
    scale_words = "shared by all slots of the block" if display.color_scale == "shared" else "this slot's own"
    right.image(heatmap_overlay(exploration.image, dispatch[slot], alpha=max(display.opacity, 0.3),
                                colormap=DISPATCH_COLORMAP, value_range=(low, high)),
                width="stretch", caption=f"Slot {slot}'s dispatch weight at every pixel (0-1: its share of the "
                                         f"pixel, summing to 1 over slots), on the colour scale {scale_words} "
                                         f"(viridis, as the soft maps: purple {low:.3f} to yellow {high:.3f}).")
    scale_name = "shared scale" if display.color_scale == "shared" else "own scale"
    right.image(colorbar((low, high), colormap=DISPATCH_COLORMAP, width=256,
                         title=f"dispatch weight (0-1), {scale_name}"))


def slot_numbers(page: Page, slot: int) -> None:
    """The slot's share of pixels and of dispatch mass, and the classes it carries (CAM evidence)."""
    exploration = page.exploration
    logits = exploration.block_logits(page.block)
    hard, soft = slot_areas(logits)
    st.metric("Pixels won (arg-max), % of pixels", f"{hard[slot]:.1%}")
    st.metric("Dispatch mass, % of the block's mass", f"{soft[slot]:.1%}",
              help="mean over pixels of the slot's dispatch weight")
    if exploration.cam is None:
        return
    evidence = slot_class_evidence(exploration.cam, logits)[slot]
    top = np.argsort(-evidence, kind="stable")[:5]
    table = pd.DataFrame({"class": [exploration.class_names[index] for index in top],
                          "evidence": [float(evidence[index]) for index in top]})
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        "evidence": st.column_config.ProgressColumn("CAM evidence (CAM units)", format="%.3f", min_value=0.0,
                                                    max_value=float(max(evidence.max(), 1e-6)),
                                                    help=EVIDENCE_WORDS)})
    shown = f"Top {len(top)} classes" + (f" (the model has {len(evidence)})" if len(evidence) < 5 else "")
    st.caption(f"{shown} of the slot: each class's activation map averaged over the slot's pixels (clustering "
               f"weights). {EVIDENCE_WORDS}; correlational, see the removal effects below.")


@st.cache_data(max_entries=32, show_spinner="Removing each slot in turn...", hash_funcs=HASH_FUNCS)
def block_effects(model: LoadedModel, image: LoadedImage, input_size: Tuple[int, int], block: str) -> np.ndarray:
    """``(S, C)`` change of every class probability when each slot of ``block`` is removed (exact, batched)."""
    return slot_effects(model.model, image.image, block, input_size=input_size)


@st.cache_data(max_entries=32, show_spinner="Removing the chosen slots...", hash_funcs=HASH_FUNCS)
def removal(model: LoadedModel, image: LoadedImage, input_size: Tuple[int, int], block: str,
            slots: Tuple[int, ...]) -> Tuple[np.ndarray, np.ndarray]:
    """Class probabilities ``(before, after)`` removing ``slots`` of ``block``."""
    result = intervene(model.model, image.image, block, remove=list(slots), input_size=input_size)
    return result.before, result.after


def effect_figure(change_points: np.ndarray, names: list, slot: int) -> go.Figure:
    """Bars of the change of each class's probability (points) when the slot is removed; the largest 12 shown."""
    order = np.argsort(-np.abs(change_points), kind="stable")[:12]
    values = [float(change_points[i]) for i in order]
    figure = go.Figure(go.Bar(
        x=[names[i] for i in order], y=values, marker_color=["#c0392b" if v < 0 else "#2e86c1" for v in values],
        hovertemplate="%{x}: %{y:+.2f} probability points<extra></extra>"))
    figure.update_layout(title=f"Change of each class's probability when slot {slot} is removed",
                         yaxis_title="change (probability points)", height=300, margin=dict(l=10, r=10, t=40, b=10))
    return figure


def slot_removal(page: Page, slot: int) -> None:
    """What the decision loses when slots of the block are removed: bars for the chosen slot, before/after for a
    chosen set, and the per-class map of each pixel's arg-max slot's effect."""
    exploration = page.exploration
    if exploration.logits.size == 0:
        st.info("This model has no classifier: there is no decision to remove slots from.")
        return
    try:
        effects = block_effects(page.model, page.image, tuple(exploration.input_size), page.block)
    except GlmixVizError as error:
        st.error(str(error))
        return
    names = list(exploration.class_names)
    st.plotly_chart(effect_figure(100.0 * effects[slot], names, slot), width="stretch", key="slot_effect_chart")
    st.caption(f"Slot {slot} removed from {page.block}: it takes no part in slot attention and dispatches nothing; "
               "each pixel's dispatch weights over the other slots are renormalised, and the rest of the network "
               "runs (docs/interventions.md). Bars: probability after minus before, in probability points (0-100 "
               "scale); red = the class loses.")
    if st.toggle("Class probabilities before / after removing chosen slots", key=page.key("slot_removal_toggle")):
        before_after(page, slot, effects.shape[0])
    effect_map(page, effects)


def before_after(page: Page, slot: int, num_slots: int) -> None:
    """A table of the class probabilities before and after removing the chosen slots together."""
    exploration, names = page.exploration, list(page.exploration.class_names)
    chosen = st.multiselect("Slots to remove", list(range(num_slots)), default=[slot], key=f"{slot_key(page)}::removed")
    if not chosen:
        return
    try:
        before, after = removal(page.model, page.image, tuple(exploration.input_size), page.block,
                                tuple(sorted(int(s) for s in chosen)))
    except GlmixVizError as error:
        st.error(str(error))
        return
    order = np.argsort(-before, kind="stable")[:10]
    st.dataframe(pd.DataFrame({
        "class": [names[i] for i in order],
        "before (%)": [100 * float(before[i]) for i in order],
        "after (%)": [100 * float(after[i]) for i in order],
        "change (points)": [100 * float(after[i] - before[i]) for i in order],
    }), hide_index=True, width="stretch", column_config={
        "before (%)": st.column_config.NumberColumn(format="%.1f"),
        "after (%)": st.column_config.NumberColumn(format="%.1f"),
        "change (points)": st.column_config.NumberColumn(format="%+.2f")})
    st.caption(f"Probabilities in percent before and after removing slot(s) {sorted(chosen)} of {page.block} "
               "together; change in probability points.")


def effect_map(page: Page, effects: np.ndarray) -> None:
    """Every pixel coloured by the change of one class's probability when its arg-max slot is removed."""
    exploration, names = page.exploration, list(page.exploration.class_names)
    top = int(np.argmax(exploration.probabilities))
    target = st.selectbox("Class whose slots to show", list(range(len(names))), index=top,
                          format_func=lambda i: names[i], key=page.key("slot_effect_class"))
    points = 100.0 * slot_effect_map(effects, exploration.block_logits(page.block), target)
    bound = float(max(100.0 * np.abs(effects[:, target]).max(), 1e-3))
    st.image(heatmap_overlay(exploration.image, points, alpha=0.6, colormap="RdBu", value_range=(-bound, bound)),
             width="stretch",
             caption=f"Which slots carry {names[target]}: every pixel coloured by the change of {names[target]}'s "
                     f"probability when its arg-max slot is removed. Legend (RdBu): red {-bound:+.2f} points (the "
                     f"class loses) - white 0 - blue {bound:+.2f} points (the class gains).")


def slot_flow_chart(page: Page, slot: int) -> None:
    """Where the slot's pixels go in the later blocks (bar charts in the slot colours)."""
    flows = slot_flow(page.exploration, page.block, slot)
    if not flows:
        st.info(f"{page.block} is the last GLMix block: its slots go nowhere further.")
        return
    figure = slot_distribution_figure({f"→ {name}": flow for name, flow in flows.items()},
                                      slot_palette(max(len(flow) for flow in flows.values())),
                                      title=f"Where the pixels of slot {slot} go in the later blocks")
    st.plotly_chart(figure, width="stretch", key="slot_flow_chart")
    st.caption("For every later block: its slot distribution averaged over slot "
               f"{slot}'s pixels, weighted by slot {slot}'s dispatch weight. Bars use the slot colours.")


def _select_pixel_from_click(chart_key: str, keys: Tuple[str, str]) -> None:
    """on_select callback of the pixel picker: copy the clicked point into the pixel inputs."""
    state = st.session_state.get(chart_key)
    points = (state or {}).get("selection", {}).get("points", []) if isinstance(state, dict) else []
    if not points and state is not None and hasattr(state, "selection"):
        points = state.selection.points
    if points:
        st.session_state[keys[0]] = int(round(float(points[0]["y"])))
        st.session_state[keys[1]] = int(round(float(points[0]["x"])))


def choose_pixel(page: Page) -> Tuple[int, int]:
    """Row and column inputs and a clickable picture of the image; returns ``(y, x)``."""
    exploration = page.exploration
    height, width = exploration.image.shape[:2]
    key_y, key_x = pixel_keys(page)
    inside = page.link.pixel is not None and page.link.pixel[0] < height and page.link.pixel[1] < width
    linked = page.link.pixel if inside else None
    if page.link.pixel is not None and not inside:
        links.refuse("pixel", ",".join(map(str, page.link.pixel)), f"is not a pixel y,x of the {width}x{height} image",
                     "opened its centre instead")
    first_y, first_x = linked if linked else (height // 2, width // 2)
    st.session_state.setdefault(key_y, first_y)
    st.session_state.setdefault(key_x, first_x)
    col_y, col_x = st.columns(2)
    y = int(col_y.number_input("Row (y)", 0, height - 1, step=1, key=key_y))
    x = int(col_x.number_input("Column (x)", 0, width - 1, step=1, key=key_x))
    finest = max((exploration.record(name).size for name in exploration.block_names), key=lambda s: s[0] * s[1])
    st.plotly_chart(pixel_picker_figure(exploration.image, finest, y, x), width="content", key="pixel_chart",
                    on_select=lambda: _select_pixel_from_click("pixel_chart", (key_y, key_x)),
                    selection_mode="points")
    st.caption(f"Pixel (y={y}, x={x}) of the {width}x{height} image: type coordinates or click.")
    links.note(pixel=(y, x))
    return y, x


def pixel_chart(page: Page, y: int, x: int) -> None:
    """The pixel's distribution over slots in every block."""
    exploration = page.exploration
    size = exploration.image.shape[:2]
    distributions = pixel_distributions(exploration, y, x)
    cells = {name: map_cell(exploration.record(name).size, size, y, x) for name in distributions}
    figure = slot_distribution_figure(
        {f"{name} cell {cells[name]}": probs for name, probs in distributions.items()},
        slot_palette(max(len(probs) for probs in distributions.values())),
        title=f"Distribution of pixel (y={y}, x={x}) over slots, every block",
    )
    st.plotly_chart(figure, width="stretch", key="pixel_distribution_chart")
    st.caption("Dispatch weights of the map cell that covers the pixel, per block; bars use the slot colours.")


def draw(page: Page) -> None:
    """One slot of the chosen block (map, area, classes, flow to later blocks); one pixel across all blocks."""
    st.subheader("One slot")
    slot = choose_slot(page)
    col_pictures, col_numbers = st.columns([2, 1.1], gap="medium")
    with col_pictures:
        slot_pictures(page, slot)
    with col_numbers:
        slot_numbers(page, slot)
    st.markdown("**What the decision loses without this slot**")
    slot_removal(page, slot)
    slot_flow_chart(page, slot)
    st.divider()
    st.subheader("One pixel")
    col_pick, col_dist = st.columns([1, 1.4], gap="medium")
    with col_pick:
        y, x = choose_pixel(page)
    with col_dist:
        pixel_chart(page, y, x)


VIEW = View("Slot & pixel", "slot", draw)
