"""GLMix explorer: upload images and browse what every GLMix block of a GLNet groups together.

Run::

    glmix-viz app                                   # installed package: demo model + gallery
    glmix-viz app --checkpoints /path/to/ckpts      # also offer the checkpoints of a folder
    streamlit run app/main.py                       # from a checkout (app/main.py calls main() below)
    streamlit run app/main.py -- --checkpoints /path/to/ckpts
    GLMIX_CHECKPOINTS=/path/to/ckpts streamlit run app/main.py

Three pages (``st.navigation``): the explorer, the run browser (:mod:`glmix_viz.app.runs`) and the atlas
(:mod:`glmix_viz.app.tabs.atlas`). The explorer is thin: the sidebar (:mod:`glmix_viz.app.sidebar`) chooses the model,
image and display; models, images and network results come from :mod:`glmix_viz.app.data` (cached); the block slider
picks a block; every tab is a view of :data:`glmix_viz.app.views.VIEWS` drawn from one
:class:`~glmix_viz.app.page.Page`. The page's query string names what it shows (:mod:`glmix_viz.app.links`): a copied
address ("Copy link") reopens the same view; what a link asked for and could not get is said once, at the top.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import traceback
from typing import Any, Dict

import streamlit as st

from glmix_viz.app import data, links, runs
from glmix_viz.app.page import Page
from glmix_viz.app.tabs import atlas
from glmix_viz.app.sidebar import (
    checkpoint_folder,
    choose_display,
    choose_image,
    choose_model,
    choose_resolution,
    device_choices,
    link_widgets,
    RESOLUTIONS,
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
    opening = opening_block(blocks, page.benchmark)
    if page.link.block is not None and page.link.block not in blocks:
        links.refuse("block", page.link.block, "is not a GLMix block of this model", f"opened {opening} instead")
    first = page.link.block if page.link.block in blocks else opening
    return st.select_slider("GLMix block", blocks, value=first, key=f"block::{page.model.key}",
                            format_func=lambda name: block_title(page.exploration, name))


def draw_views(page: Page) -> None:
    """The tabs of :data:`VIEWS`; only the open one is drawn (and named in the link)."""
    tabs = st.tabs([view.title for view in VIEWS], key="view", on_change="rerun")
    for view, tab in zip(VIEWS, tabs):
        with tab:
            if tab.open:
                links.note(tab=view.slug)
                guarded(view.draw, page)


DEBUG_ENV = "GLMIX_APP_DEBUG"
"""Set (the tests set it) to let an unexpected exception reach the page with its traceback."""


def guarded(draw: Any, *args: Any) -> None:
    """``draw(*args)``; an unexpected failure is one line on the page (never exception text) and a traceback in the
    server's log, and the rest of the page is drawn."""
    try:
        draw(*args)
    except Exception:  # noqa: BLE001  (Streamlit's st.stop / st.rerun are not Exceptions: they pass)
        if os.environ.get(DEBUG_ENV):
            raise
        print("glmix-viz app: a view failed", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)
        st.error("This part of the page could not be drawn (an internal error, written to the server's log).",
                 icon=":material/error:")


def open_link() -> None:
    """On a session's first run: put the link's model, image and tab into the widgets (once)."""
    if links.OPENED in st.session_state:
        return
    state = links.opened()
    st.session_state.update(link_widgets(state))
    view = view_by_slug(state.tab) if state.tab else None
    if view is not None:
        st.session_state["view"] = view.title
    elif state.tab and state.tab != ATLAS_TAB:
        links.refuse("tab", state.tab, f"is no tab of the explorer ({', '.join(v.slug for v in VIEWS)})",
                     f"opened {VIEWS[0].title} instead")


ATLAS_TAB = "atlas"  # links from before the atlas was a page of its own: tab=atlas opens the atlas page


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
        if link.resolution is not None and link.resolution not in RESOLUTIONS:
            links.refuse("resolution", link.resolution, f"is not an input size of the explorer ({RESOLUTIONS[0]} to "
                         f"{RESOLUTIONS[-1]})", "opened the nearest one instead")
        resolution = choose_resolution(loaded, link.resolution)
        st.subheader("Display")
        display = choose_display()
    links.note(model=loaded.ref, image=image.ref, resolution=resolution)
    exploration = data.exploration(loaded, image, resolution)
    return Page(loaded, image, resolution, exploration, "", display, data.demo_benchmark(loaded), link,
                run_settings=None if subject is None else run_settings)


def framed_page() -> Page:
    """What the explorer and the atlas page share: the sidebar, the header, the block slider."""
    page = sidebar()
    header(page, st.session_state.get("device", ""))
    page = dataclasses.replace(page, block=choose_block(page))
    links.note(block=page.block)
    return page


def explorer_page() -> None:
    """The explorer: the views of :data:`VIEWS` as tabs."""
    links.note(page=None)
    draw_views(framed_page())


def atlas_page() -> None:
    """The atlas (:mod:`glmix_viz.app.tabs.atlas`) of the sidebar's model and image at the chosen block."""
    links.note(page="atlas", tab=None)
    page = framed_page()
    links.note(tab=None)
    st.header("Slot atlas")
    atlas.draw(page)


def runs_page() -> None:
    """The run browser (:mod:`glmix_viz.app.runs`), or how to give it runs."""
    root = runs.runs_root()
    if root is None:
        links.note(page="runs")
        st.title("Runs")
        st.info("No runs folder: start the explorer with `glmix-viz app --runs DIR` (or set GLMIX_RUNS) to browse the "
                "runs of `glmix-viz pseudo-label` and `segment-predict` below DIR.")
        return
    runs.runs_page(root)


PAGES = {"explorer": (explorer_page, "Explorer", ":material/grain:"),
         "runs": (runs_page, "Runs", ":material/table_rows:"),
         "atlas": (atlas_page, "Atlas", ":material/scatter_plot:")}
"""The app's pages: a link's ``page=`` names one (none: the explorer)."""


def navigation() -> Dict[str, Any]:
    """The pages as ``st.Page`` objects (the explorer the default), in the sidebar's navigation."""
    return {name: st.Page(draw, title=title, icon=icon, url_path=name, default=name == "explorer")
            for name, (draw, title, icon) in PAGES.items()}


def route(pages: Dict[str, Any], current: Any) -> None:
    """Once per link: open the page it names (``page=``, or the old ``tab=atlas``) when another one is open."""
    if st.session_state.get(links.ROUTED):
        return
    st.session_state[links.ROUTED] = True
    state = links.opened()
    target = state.page or (ATLAS_TAB if state.tab == ATLAS_TAB else "explorer" if state.to_query() else None)
    if target in pages and pages[target].title != current.title:
        st.switch_page(pages[target], query_params=st.query_params.to_dict())


def copy_link(where: Any) -> None:
    """The "Copy link" button's content: the address of what the page shows (a copy icon beside it)."""
    with where:
        st.code(links.share_url(links.publish()), language=None, wrap_lines=True)
        st.caption("The address of this view: copy it with the icon at its right. Opening it reopens the same model, "
                   "image, block, tab, slot and pixel.")


def main() -> None:
    st.set_page_config(page_title=TITLE, page_icon=":material/grain:", layout="wide")
    data.configure_torch()
    data.configure_models()
    open_link()
    pages = navigation()
    current = st.navigation(list(pages.values()))
    route(pages, current)
    button = st.sidebar.popover("Copy link", icon=":material/link:", width="stretch")
    notices = st.container()
    try:
        guarded(current.run)
    finally:  # also after st.stop(): what the link could not open is said, and the link is kept current
        with notices:
            for problem in links.problems():
                st.warning(problem, icon=":material/link_off:")
        copy_link(button)


if __name__ == "__main__":  # streamlit runs this file as __main__ (glmix-viz app)
    main()
