"""The Atlas tab: the concepts of a block over a data set (``glmix-viz atlas``), their typical regions, the map of
the slot features, and the concept of every slot of the image on screen.

The atlas folder is the one given with ``glmix-viz app --atlas DIR`` (``GLMIX_ATLAS``), or typed at the top of the
tab. "Open" under a typical region reopens the page on that image (kept in the upload store, so that the page's link
names it), at that block, with that slot chosen in the Slot & pixel tab (:func:`glmix_viz.app.links.reopen`). The
science lives in :mod:`glmix_viz.atlas` (reading, nearest concepts, the map figure).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import streamlit as st

from glmix_viz.app import links, store
from glmix_viz.app.options import folders, inside_folders, option_folder, upload_cap_bytes, upload_folder
from glmix_viz.app.page import Page, View
from glmix_viz.atlas.map import COLOR_BY, atlas_map_figure
from glmix_viz.atlas.read import Atlas, ExampleRegion, open_atlas
from glmix_viz.errors import GlmixVizError, one_line
from glmix_viz.slots.explore import slot_areas

__all__ = ["VIEW", "choose_atlas", "draw", "open_region"]

FOLDER = "atlas_folder"  # the folder input
ERROR = "atlas_error"  # what "Open" could not do, said on the next run
GALLERY_COLUMNS = 4


@st.cache_resource(max_entries=4, show_spinner="Opening the atlas...")
def _open(folder: str, stamp: float) -> Atlas:
    return open_atlas(folder)


def choose_atlas() -> Optional[Atlas]:
    """The atlas folder (``--atlas`` first, else typed: only inside the app's folders); the opened atlas, or None (an
    error in one line)."""
    st.session_state.setdefault(FOLDER, option_folder("atlas") or "")
    roots = ", ".join(name for name in sorted(folders()) if name != "uploads")
    folder = st.text_input("Atlas folder", key=FOLDER, placeholder=f"a folder inside: {roots}",
                           help=f"a folder made by glmix-viz atlas, inside the app's folders ({roots}); relative "
                                "paths are taken from each of them")
    if not folder.strip():
        return None
    path = inside_folders(folder)
    if path is None:  # the same words whether or not it exists: nothing is learnt about other folders
        st.error(f"{folder.strip()[:80]}: the app opens atlas folders only inside its folders ({roots}); start it "
                 "with --atlas DIR or --runs DIR")
        return None
    try:
        stamp = os.path.getmtime(path / "atlas.json") if (path / "atlas.json").is_file() else 0.0
        return _open(str(path), stamp)
    except GlmixVizError as error:
        st.error(one_line(error, with_type=False))
        return None


def open_region(page: Page, region: ExampleRegion, block: str) -> None:
    """``on_click`` of "Open": the page reopens on the region's image (put in the upload store) as its link would
    (:func:`glmix_viz.app.links.reopen`), and, since widgets keep their state within a session, the block slider, the
    slot chooser and the tab are set here too."""
    try:
        stored = store.put(upload_folder(), Path(region.image_path).name, Path(region.image_path).read_bytes(),
                           cap=upload_cap_bytes())
    except (OSError, GlmixVizError) as error:
        st.session_state[ERROR] = f"{region.image_path}: cannot read the image ({one_line(error, with_type=False)})"
        return
    state = links.ViewState(model=page.model.ref or None, image=f"upload:{stored.digest}", block=block,
                            slot=region.slot, tab="slot", resolution=page.resolution)
    links.forget(state)  # the next run opens the explorer on this link (glmix_viz.app.main.route)
    st.session_state[f"block::{page.model.key}"] = block
    st.session_state[f"slot::{page.model.key}::{block}"] = region.slot


def _this_image(atlas: Atlas, block: str, page: Page) -> Optional[np.ndarray]:
    """The concept of every slot of the image on screen (a table); returns their map coordinates."""
    record = page.exploration.record(block)
    try:
        concept, distance = atlas.slot_concepts(block, record)
    except ValueError as error:
        st.warning(f"This model's {block} does not fit the atlas ({error}): was the atlas made with another model?")
        return None
    hard, _ = slot_areas(record.logits[0].float().numpy())
    rows = [{"slot": s, "share of pixels": f"{hard[s]:.1%}", "concept": atlas.concept_title(block, int(concept[s])),
             "distance to its centre (unit-feature L2)": round(float(distance[s]), 3)} for s in np.argsort(-hard, kind="stable")
            if hard[s] > 0]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    centre = ("the mean feature of that slot's regions in the atlas" if atlas.source == "slot"
              else "its concept's centre")
    st.caption(f"Distance: Euclidean distance between the slot's feature scaled to unit length and {centre} (no unit: "
               "0 at the centre, at most 2).")
    features = getattr(record, atlas.feature)[0].float().cpu().numpy()
    return atlas.project(block, features)


def _gallery(atlas: Atlas, block: str) -> int:
    """The concepts of a block as a gallery (each concept's most typical region); returns the chosen concept."""
    concepts = atlas.block(block)["concepts"]
    columns = st.columns(GALLERY_COLUMNS)
    for concept in concepts:
        examples = atlas.examples(block, concept["index"])
        with columns[concept["index"] % GALLERY_COLUMNS]:
            if examples and examples[0].crop is not None:
                st.image(str(examples[0].crop), width=96)
            st.caption(atlas.concept_title(block, concept["index"]))
    return int(st.selectbox("Concept", [c["index"] for c in concepts], key=f"atlas_concept::{block}",
                            format_func=lambda k: atlas.concept_title(block, k)))


def _examples(page: Page, atlas: Atlas, block: str, concept: int) -> None:
    """One concept's typical regions across images, each with "Open"."""
    examples = atlas.examples(block, concept)
    columns = st.columns(max(1, min(len(examples), 8)))
    for region, column in zip(examples, columns):
        with column:
            if region.crop is not None:
                st.image(str(region.crop), width=120)
            st.caption(f"{region.image_id} · slot {region.slot}")
            st.button("Open", key=f"atlas_open::{block}::{concept}::{region.rank}", on_click=open_region,
                      args=(page, region, block), help="open this image at this block with this slot chosen")


def source_text(atlas: Atlas) -> str:
    """Where the atlas's concepts come from, in words."""
    if atlas.source == "slot":
        return "concepts: slot identity (each region's concept is its slot index)"
    return "concepts: k-means of the slot features"


def _summary(atlas: Atlas, block: str) -> str:
    entry = atlas.block(block)
    text = (f"{len(entry['concepts'])} concepts over {entry['regions']} regions of {entry['images']} images · "
            f"{source_text(atlas)}")
    if "purity" in entry:
        low, high = entry["purity_ci95"]
        text += (f" · purity {entry['purity']:.3f} (95 % {low:.3f}-{high:.3f}; one concept: "
                 f"{entry['majority_baseline']:.3f}) · NMI {entry['nmi']:.3f}")
    return text


def importance_text(atlas: Atlas, block: str, concept: int) -> str:
    """"Removing concept 3 costs triangle -41.0 points [-45.0, -37.0] ..." (the classes it moves most, in probability
    points), or a hint when the atlas has no importance yet."""
    entry = atlas.block(block)["concepts"][concept]
    importance = entry.get("importance")
    if not importance:
        return ("No concept importance in this atlas yet: `glmix-viz atlas ... --importance` removes each concept's "
                "slots and measures what the classes lose.")
    ranked = sorted(importance.items(), key=lambda item: item[1]["mean"])[:3]
    parts = [f"{name} {100 * e['mean']:+.1f} points [{100 * e['ci95'][0]:+.1f}, {100 * e['ci95'][1]:+.1f}] "
             f"({e['images']} images, {e['with_concept']} with the concept)" for name, e in ranked]
    return (f"Removing {atlas.concept_noun} {concept} costs " + "; ".join(parts) + ". Mean change of the class "
            "probability over "
            "the images with the class when the concept's slots are removed (0 where the image lacks it), 95 % "
            "bootstrap interval.")


def draw(page: Page) -> None:
    """The Atlas view of the page's model, image and block."""
    atlas = choose_atlas()
    if st.session_state.get(ERROR):
        st.error(st.session_state.pop(ERROR))
    if atlas is None:
        st.info("No atlas open: make one with `glmix-viz atlas --checkpoint CK --voc-root DIR --block B --clusters K "
                "--out ATLAS`, then open it with `glmix-viz app --atlas ATLAS` or type its folder above.")
        return
    names = atlas.block_names
    block = page.block if page.block in names else st.selectbox("Atlas block", names, key="atlas_block")
    if page.block not in names:
        st.caption(f"The atlas has no concepts for {page.block}; showing {block}.")
    st.caption(f"**{block}**: {_summary(atlas, block)} · atlas {atlas.folder}")
    st.subheader("Concepts")
    concept = _gallery(atlas, block)
    st.caption(importance_text(atlas, block, concept))
    st.subheader(f"Typical regions of {atlas.concept_title(block, concept)}")
    _examples(page, atlas, block, concept)
    st.subheader("This image's slots")
    marked = _this_image(atlas, block, page)
    color_by = st.radio("Colour the map by", COLOR_BY if atlas.class_names else COLOR_BY[:1], horizontal=True,
                        key="atlas_color_by")
    st.plotly_chart(atlas_map_figure(atlas, block, color_by, marked=marked), width="stretch", key="atlas_map")
    st.caption("Each point is a region of the atlas (a uniform sample), at its slot feature's first two principal "
               "components (axes: coordinates along PC 1 and PC 2 of the unit-length slot features, no unit); "
               "crosses are the slots of the image on screen, numbered by slot.")


VIEW = View("Atlas", "atlas", draw)
