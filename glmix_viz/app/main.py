"""GLMix explorer: upload images and browse what every GLMix block of a GLNet groups together.

Run::

    glmix-viz app                                   # installed package: demo model + gallery
    glmix-viz app --checkpoints /path/to/ckpts      # also offer the checkpoints of a folder
    streamlit run app/main.py                       # from a checkout (app/main.py calls main() below)
    streamlit run app/main.py -- --checkpoints /path/to/ckpts
    GLMIX_CHECKPOINTS=/path/to/ckpts streamlit run app/main.py

The page is thin: the sidebar (:mod:`glmix_viz.app.sidebar`) chooses the model, image and display; models, images
and network results come from :mod:`glmix_viz.app.data` (cached); the block slider picks a block; every tab is a
view of :data:`glmix_viz.app.views.VIEWS` drawn from one :class:`~glmix_viz.app.page.Page`.
"""

from __future__ import annotations

import streamlit as st

from glmix_viz.app import data
from glmix_viz.app.page import Page
from glmix_viz.app.sidebar import (
    checkpoint_folder,
    choose_display,
    choose_image,
    choose_model,
    choose_resolution,
    device_choices,
)
from glmix_viz.app.views import VIEWS
from glmix_viz.pictures import block_title
from glmix_viz.slots.explore import Exploration

__all__ = ["TITLE", "checkpoint_folder", "data", "device_choices", "main"]

TITLE = "GLMix explorer"


def header(page: Page, device: str) -> None:
    """Title, one caption naming the model, the image and the network input, and warnings about either."""
    loaded, image, exploration = page.model, page.image, page.exploration
    names = loaded.class_names
    shown = "; ".join(names[:6]) + (f"; ... ({len(names)} in all)" if len(names) > 6 else "")
    st.title(TITLE)
    st.caption(f"**Model** {loaded.label} · variant `{loaded.variant}` · {len(names)} classes: {shown} · "
               f"{len(exploration.block_names)} GLMix blocks · {device}  \n**Image** {image.name} · "
               f"{image.image.shape[1]}x{image.image.shape[0]} px · network input "
               f"{exploration.input_size[1]}x{exploration.input_size[0]}")
    if not loaded.trained:
        st.warning("This model has random weights (untrained): its groupings show the architecture, not learned "
                   "semantics, and its predictions mean nothing.", icon=":material/warning:")
    if image.notice:
        st.info(image.notice, icon=":material/photo_size_select_large:")


def choose_block(loaded: data.LoadedModel, exploration: Exploration, benchmark) -> str:
    """The block slider, opened on the block that groups best on the model's benchmark, else the first block."""
    blocks = exploration.block_names
    first = benchmark["block"] if benchmark and benchmark["block"] in blocks else blocks[0]
    return st.select_slider("GLMix block", blocks, value=first, key=f"block::{loaded.key}",
                            format_func=lambda name: block_title(exploration, name))


def draw_views(page: Page) -> None:
    """The tabs of :data:`VIEWS`; only the open one is drawn."""
    tabs = st.tabs([view.title for view in VIEWS], key="view", on_change="rerun")
    for view, tab in zip(VIEWS, tabs):
        with tab:
            if tab.open:
                view.draw(page)


def main() -> None:
    st.set_page_config(page_title=TITLE, page_icon=":material/grain:", layout="wide")
    data.configure_torch()
    with st.sidebar:
        st.subheader("Model")
        device = st.selectbox("Device", device_choices(), key="device")
        loaded = choose_model(device)
        st.subheader("Image")
        image = choose_image()
        resolution = choose_resolution(loaded)
        st.subheader("Display")
        display = choose_display()
    exploration = data.exploration(loaded, image, resolution)
    benchmark = data.demo_benchmark(loaded)
    page = Page(loaded, image, resolution, exploration, block="", display=display, benchmark=benchmark)
    header(page, device)
    block = choose_block(loaded, exploration, benchmark)
    draw_views(Page(loaded, image, resolution, exploration, block, display, benchmark))


if __name__ == "__main__":  # streamlit runs this file as __main__ (glmix-viz app)
    main()
