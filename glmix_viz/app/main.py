"""GLMix explorer: upload images and browse what every GLMix block of a GLNet groups together.

Run::

    glmix-viz app                                   # installed package: demo model + gallery
    glmix-viz app --checkpoints /path/to/ckpts      # also offer the checkpoints of a folder
    streamlit run app/main.py                       # from a checkout (app/main.py calls main() below)
    streamlit run app/main.py -- --checkpoints /path/to/ckpts
    GLMIX_CHECKPOINTS=/path/to/ckpts streamlit run app/main.py

The page is thin: the sidebar (:mod:`glmix_viz.app.sidebar`) chooses the model, image and display; models, images
and network results come from :mod:`glmix_viz.app.data` (cached); the block slider picks a block; every tab is a
view of :data:`glmix_viz.app.views.VIEWS` drawn from one :class:`~glmix_viz.app.page.Page`. The page's query
string names what it shows (:mod:`glmix_viz.app.links`): a copied address reopens the same view.
"""

from __future__ import annotations

import dataclasses

import streamlit as st

from glmix_viz.app import data, links, runs
from glmix_viz.app.page import Page
from glmix_viz.app.sidebar import (
    checkpoint_folder,
    choose_display,
    choose_image,
    choose_model,
    choose_resolution,
    device_choices,
    link_widgets,
)
from glmix_viz.app.views import VIEWS, view_by_slug
from glmix_viz.grouping import opening_block
from glmix_viz.pictures import block_title

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


def choose_block(page: Page) -> str:
    """The block slider, opened on the link's block, else the one that groups best on the model's benchmark, else
    the first block."""
    blocks = page.exploration.block_names
    first = page.link.block if page.link.block in blocks else opening_block(blocks, page.benchmark)
    return st.select_slider("GLMix block", blocks, value=first, key=f"block::{page.model.key}",
                            format_func=lambda name: block_title(page.exploration, name))


def draw_views(page: Page) -> None:
    """The tabs of :data:`VIEWS`; only the open one is drawn (and named in the link)."""
    tabs = st.tabs([view.title for view in VIEWS], key="view", on_change="rerun")
    for view, tab in zip(VIEWS, tabs):
        with tab:
            if tab.open:
                links.note(tab=view.slug)
                view.draw(page)


def open_link() -> None:
    """On a session's first run: put the link's model, image and tab into the widgets (once)."""
    if links.OPENED in st.session_state:
        return
    state = links.opened()
    st.session_state.update(link_widgets(state))
    view = view_by_slug(state.tab) if state.tab else None
    if view is not None:
        st.session_state["view"] = view.title
    elif state.tab:
        links.complain(f"link: no tab {state.tab!r}")


def sidebar() -> Page:
    """The sidebar's choices and the network result of them, as a page without a block yet."""
    with st.sidebar:
        st.subheader("Model")
        device = st.selectbox("Device", device_choices(), key="device")
        subject = runs.run_subject(device)  # an image opened from the run browser, with its run's model
        if subject is None:
            loaded = choose_model(device)
            if not loaded.ref:
                st.caption("A link to this page cannot name this model (a file outside the app's folders).")
            st.subheader("Image")
            image = choose_image()
        else:
            (loaded, image, run_settings), state = subject, links.opened()
            runs.run_sidebar(state.run, state.image_id)
        link = links.for_subject(loaded.ref, image.ref)
        resolution = choose_resolution(loaded, link.resolution)
        st.subheader("Display")
        display = choose_display()
    links.note(model=loaded.ref, image=image.ref, resolution=resolution)
    exploration = data.exploration(loaded, image, resolution)
    return Page(loaded, image, resolution, exploration, "", display, data.demo_benchmark(loaded), link,
                run_settings=None if subject is None else run_settings)


def main() -> None:
    st.set_page_config(page_title=TITLE, page_icon=":material/grain:", layout="wide")
    data.configure_torch()
    open_link()
    if runs.show_runs_page():
        links.publish()
        return
    page = sidebar()
    header(page, st.session_state.get("device", ""))
    for problem in links.problems():
        st.warning(problem, icon=":material/link_off:")
    page = dataclasses.replace(page, block=choose_block(page))
    links.note(block=page.block)
    draw_views(page)
    links.publish()


if __name__ == "__main__":  # streamlit runs this file as __main__ (glmix-viz app)
    main()
