"""The Slot & pixel tab: one slot of the chosen block (where it is, how much it holds, which classes it carries, where
its pixels go next), and one pixel's distribution over slots in every block."""

from __future__ import annotations

from typing import Tuple

import numpy as np
import pandas as pd
import streamlit as st

from glmix_viz.app import links
from glmix_viz.app.page import Page, View
from glmix_viz.figures import pixel_picker_figure, slot_distribution_figure
from glmix_viz.pictures import block_title
from glmix_viz.slots.explore import map_cell, pixel_distributions, slot_areas, slot_class_evidence, slot_flow
from glmix_viz.viz import colorbar, heatmap_overlay, masked_slot_view, slot_palette, value_ranges

DISPATCH_COLORMAP = "viridis"  # the colour map of dispatch weights in every view (the Groupings tab's soft maps)
EVIDENCE_WORDS = ("CAM evidence: the class activation map (the classifier head's weights dotted with the final "
                  "features, ReLU; in logit units, before sigmoid / softmax) averaged over the slot's pixels with its "
                  "clustering weights")


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
    right.image(colorbar((low, high), colormap=DISPATCH_COLORMAP, width=256,
                         title=f"dispatch weight (0-1), {'shared scale' if display.color_scale == 'shared' else 'own scale'}"))


def slot_numbers(page: Page, slot: int) -> None:
    """The slot's share of pixels and of dispatch mass, and the classes it carries (CAM evidence)."""
    exploration = page.exploration
    logits = exploration.block_logits(page.block)
    hard, soft = slot_areas(logits)
    st.metric("Pixels won (arg-max)", f"{hard[slot]:.1%}")
    st.metric("Dispatch mass", f"{soft[slot]:.1%}", help="mean over pixels of the slot's dispatch weight")
    if exploration.cam is None:
        return
    evidence = slot_class_evidence(exploration.cam, logits)[slot]
    top = np.argsort(-evidence, kind="stable")[:5]
    table = pd.DataFrame({"class": [exploration.class_names[index] for index in top],
                          "evidence": [float(evidence[index]) for index in top]})
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        "evidence": st.column_config.ProgressColumn("CAM evidence (logit units)", format="%.3f", min_value=0.0,
                                                    max_value=float(max(evidence.max(), 1e-6)),
                                                    help=EVIDENCE_WORDS)})
    shown = f"Top {len(top)} classes" + (f" (the model has {len(evidence)})" if len(evidence) < 5 else "")
    st.caption(f"{shown} of the slot by {EVIDENCE_WORDS}; bars run from 0 to the slot's largest.")


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
    slot_flow_chart(page, slot)
    st.divider()
    st.subheader("One pixel")
    col_pick, col_dist = st.columns([1, 1.4], gap="medium")
    with col_pick:
        y, x = choose_pixel(page)
    with col_dist:
        pixel_chart(page, y, x)


VIEW = View("Slot & pixel", "slot", draw)
