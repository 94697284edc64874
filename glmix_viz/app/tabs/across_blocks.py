"""The Across blocks tab: every block's grouping side by side, the benchmark's best block, the authors' figure."""

from __future__ import annotations

from typing import Any, List, Mapping, Optional, Tuple

import streamlit as st

from glmix_viz.app.page import Page, View
from glmix_viz.pictures import all_blocks_picture, authors_figure, block_title
from glmix_viz.slots.explore import Exploration
from glmix_viz.viz import scale_caption, value_ranges

AUTHORS_BLOCKS = (1, 4, 9)  # the authors show the 2nd, 5th and 10th GLMix block of glnet_stl (0-based)


def benchmark_line(exploration: Exploration, benchmark: Mapping[str, Any]) -> str:
    """One line on the block that groups best on the benchmark, with its score and the best control's."""
    return (f"**Groups best on the benchmark: {block_title(exploration, benchmark['block'])}**: foreground ARI "
            f"{benchmark['ari']:.3f} against the object instances, vs {benchmark['best_control_ari']:.3f} for the "
            f"best control ({benchmark['best_control']}); {benchmark['images']} held-out generated images with at "
            f"least two objects ({len(benchmark['sets'])} seeds).")


def default_figure_blocks(names: List[str], current: str, best: str | None) -> List[str]:
    """The authors' blocks that this model has (else the current one), the benchmark's best first."""
    default = [names[index] for index in AUTHORS_BLOCKS if index < len(names)] or [current]
    return [best] + default if best in names and best not in default else default


def shared_range(exploration: Exploration, blocks: List[str]) -> Optional[Tuple[float, float]]:
    """The one colour range of the dispatch maps of every block shown (a shared scale is shared by the figures)."""
    if not blocks:
        return None
    low, high = zip(*(value_ranges(exploration.dispatch(block), "shared")[0] for block in blocks))
    return float(min(low)), float(max(high))


def draw(page: Page) -> None:
    """Groupings of all blocks side by side, and the authors' figure (grid + k-medoids slots) for chosen blocks."""
    exploration, display = page.exploration, page.display
    st.image(all_blocks_picture(exploration, alpha=display.opacity, boundaries=display.boundaries),
             caption="Hard groupings of every GLMix block, in network order (slot colours are the same in every view).")
    names = exploration.block_names
    best = page.benchmark["block"] if page.benchmark and page.benchmark["block"] in names else None
    if best:
        st.markdown(benchmark_line(exploration, page.benchmark))
    chosen = st.multiselect("Blocks for the authors' figure", names,
                            default=default_figure_blocks(names, page.block, best),
                            format_func=lambda name: block_title(exploration, name), key=page.key("authors_blocks",
                                                                                                   image=False))
    shared = shared_range(exploration, chosen) if display.color_scale == "shared" else None
    for block in chosen:
        picture, representatives = authors_figure(exploration, block, display.color_scale, value_range=shared)
        scale = (f"one colour scale shared by the {len(chosen)} blocks shown: {shared[0]:.3g} to {shared[1]:.3g}"
                 if shared else scale_caption(display.color_scale))
        st.image(picture, caption=f"{block_title(exploration, block)}: all dispatch maps (dispatch weight, 0-1; "
                                  f"viridis, {scale}) and the representative slots "
                                  f"{representatives} picked by k-medoids on the maps' pairwise L2 distances, each "
                                  "shown as the image seen through its map.")


VIEW = View("Across blocks", "blocks", draw)
