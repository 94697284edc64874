"""The Compare tab: the page's model beside a second one on the same image, block by block.

"Compare with" picks the second model: an untrained copy of the page's model, the bundled demo model, a checkpoint
file or an uploaded checkpoint. Blocks are paired by stage and order, slots matched by overlap share a colour, and
the agreement of each pair is the ARI of the two groupings (:mod:`glmix_viz.slots.compare`); the class predictions
are compared class by class when the two models share their classes.
"""

from __future__ import annotations

from typing import Optional

import pandas as pd
import streamlit as st

from glmix_viz.app import data
from glmix_viz.app.options import upload_cap_bytes, upload_folder
from glmix_viz.app.sidebar import checkpoint_in_folders
from glmix_viz.app.page import Page, View
from glmix_viz.errors import one_line
from glmix_viz.figures import compared_block_pictures
from glmix_viz.slots.compare import GroupingComparison, compare_explorations

SOURCES = ("Untrained copy", "Demo model", "Checkpoint file", "Upload checkpoint")


def _device(page: Page) -> str:
    parameter = next(iter(page.model.model.parameters()), None)
    return str(parameter.device) if parameter is not None else "cpu"


def _load_second(page: Page, source: str) -> Optional[data.LoadedModel]:
    """The model to compare with (None while its path or file is still missing); raises when it cannot load."""
    device = _device(page)
    if source == "Untrained copy":
        return data.untrained_copy_model(page.model)
    if source == "Demo model":
        return data.demo_model(device)
    if source == "Checkpoint file":
        path = st.text_input("Checkpoint to compare with (.safetensors or .pth)", key="compare_path").strip()
        return checkpoint_in_folders(path, None, device) if path else None
    upload = st.file_uploader("Checkpoint to compare with", key="compare_upload", help="Read without executing code.")
    return data.uploaded_model(upload.name, upload.getvalue(), None, device, upload_folder(),
                               cap=upload_cap_bytes()) if upload else None


def _second_model(page: Page) -> Optional[data.LoadedModel]:
    source = st.selectbox("Compare with", SOURCES, key="compare_source")
    try:
        other = _load_second(page, source)
    except Exception as error:  # noqa: BLE001  (any failure to load is one line; the other tabs keep working)
        st.error(f"Could not load the model to compare with: {one_line(error)}")
        return None
    if other is None:
        st.info("Give the checkpoint to compare with.")
    return other


def _block_pair(page: Page, comparison: GroupingComparison, names: tuple) -> None:
    """The chosen block of both models side by side, with their agreement."""
    pair = next((block for block in comparison.blocks if block.block_a == page.block), None)
    if pair is None:
        st.warning(f"{page.block} has no partner in the other model: "
                   f"{comparison.unmatched.get('A: ' + page.block, 'not paired')}.")
        return
    first, second = compared_block_pictures(page.image.image, pair, alpha=page.display.opacity,
                                            boundaries=page.display.boundaries)
    left, right = st.columns(2)
    left.image(first, caption=f"{names[0]}: {pair.block_a} ({pair.num_slots_a} slots)", width="stretch")
    right.image(second, caption=f"{names[1]}: {pair.block_b} ({pair.num_slots_b} slots); matched slots take the "
                                f"colour of their partner", width="stretch")
    st.metric("Agreement (ARI of the two groupings)", f"{pair.agreement:.2f}",
              help="Adjusted Rand index over the image's pixels: 1 = the same partition, about 0 = unrelated.")
    st.caption(f"{len(pair.matches)} slots matched by overlap (Hungarian on IoU), mean IoU "
               f"{pair.mean_matched_iou:.2f}.")


def _tables(comparison: GroupingComparison) -> None:
    """Every block pair's agreement, the blocks without a partner, and the change in class predictions."""
    st.dataframe(pd.DataFrame([{"block A": b.block_a, "block B": b.block_b, "slots A": b.num_slots_a,
                                "slots B": b.num_slots_b, "agreement (ARI)": round(b.agreement, 3),
                                "slots matched": len(b.matches), "mean IoU": round(b.mean_matched_iou, 3)}
                               for b in comparison.blocks]), hide_index=True)
    for block, why in comparison.unmatched.items():
        st.caption(f"No partner for {block}: {why}.")
    if comparison.classes:
        st.dataframe(pd.DataFrame([{"class": c.name, "A": round(c.a, 3), "B": round(c.b, 3),
                                    "change": round(c.change, 3)} for c in comparison.classes]), hide_index=True)
    else:
        st.caption(comparison.class_note)


def draw(page: Page) -> None:
    """The page's model (A) beside the model chosen here (B) on the page's image."""
    other = _second_model(page)
    if other is None:
        return
    same_input = other.default_resolution == page.model.default_resolution
    resolution = page.resolution if same_input else other.default_resolution
    comparison = compare_explorations(page.exploration, data.exploration(other, page.image, resolution))
    st.caption(f"**A** {page.model.label} at {page.resolution} px · **B** {other.label} at {resolution} px"
               + ("" if other.trained else " (random weights)"))
    _block_pair(page, comparison, ("A", "B"))
    _tables(comparison)


VIEW = View("Compare", "compare", draw)
