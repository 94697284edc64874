"""The Groupings tab: the chosen block's hard grouping with its legend, and the interactive grid of its soft maps."""

from __future__ import annotations

import math

import streamlit as st

from glmix_viz.app.page import SOFT_MAP_KINDS, Page, View
from glmix_viz.figures import soft_maps_figure
from glmix_viz.pictures import block_title, hard_overlay, pooled_for_figure, slot_legend, soft_maps
from glmix_viz.viz import scale_caption, value_ranges

SOFT_MAP_UNITS = {"dispatch": "dispatch weight<br>(0-1, sums to 1<br>over slots)",
                  "clustering": "clustering weight<br>(0-1, sums to 1<br>over pixels)"}


def draw(page: Page) -> None:
    """Hard grouping of the chosen block over the image with its legend; the interactive grid of soft maps."""
    exploration, block, display = page.exploration, page.block, page.display
    left, right = st.columns([1, 1.15], gap="medium")
    with left:
        st.image(hard_overlay(exploration, block, alpha=display.opacity, boundaries=display.boundaries),
                 caption=f"Hard grouping of {block_title(exploration, block)}: every pixel coloured by its arg-max "
                         f"slot (opacity {display.opacity:.2f}).", width="stretch")
        legend, left_out = slot_legend(exploration, block)
        st.image(legend, caption="Slots that win pixels, with their share of the image"
                 + (f" ({left_out} smaller slots not listed)" if left_out else ""))
    with right:
        num_slots = exploration.record(block).num_slots
        full = soft_maps(exploration, block, display.soft_map_kind)
        maps, factor = pooled_for_figure(full)
        shared = value_ranges(full, "shared")[0] if display.color_scale == "shared" else None
        kind = display.soft_map_kind
        figure = soft_maps_figure(maps, cols=int(math.ceil(math.sqrt(maps.shape[0]))),
                                  title=f"{num_slots} soft maps of {block}",
                                  tile_size=56 if num_slots > 16 else 110, scale=display.color_scale,
                                  quantity=SOFT_MAP_UNITS.get(kind, kind), value_range=shared)
        st.plotly_chart(figure, width="content", key="soft_maps_chart")
        pooled = f" Shown averaged over {factor}x{factor} cells (hover x, y count pooled cells)." if factor > 1 else ""
        st.caption(f"Per-slot {SOFT_MAP_KINDS[display.soft_map_kind]}; {scale_caption(display.color_scale)}. "
                   f"Hover a tile for its slot, pixel and raw value.{pooled}")


VIEW = View("Groupings", "groupings", draw)
