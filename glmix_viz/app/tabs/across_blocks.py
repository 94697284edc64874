"""The Across blocks tab: every block's grouping side by side, the benchmark's best block, the authors' figure."""

from __future__ import annotations

from typing import Any, List, Mapping

import streamlit as st

from glmix_viz.app.page import Page, View
from glmix_viz.pictures import all_blocks_picture, authors_figure, block_title
from glmix_viz.slots.explore import Exploration
from glmix_viz.viz import scale_caption

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
    for block in chosen:
        picture, representatives = authors_figure(exploration, block, display.color_scale)
        st.image(picture, caption=f"{block_title(exploration, block)}: all dispatch maps (viridis, "
                                  f"{scale_caption(display.color_scale)}) and the representative slots "
                                  f"{representatives} picked by k-medoids on the maps' pairwise L2 distances, each "
                                  "shown as the image seen through its map.")


VIEW = View("Across blocks", "blocks", draw)
