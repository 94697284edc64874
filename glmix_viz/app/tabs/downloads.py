"""The Downloads tab: the pictures of the other tabs and the raw assignments as files, and the pseudo-mask of the
default settings for this model and image (the Predictions tab downloads the mask of its own settings)."""

from __future__ import annotations

import streamlit as st

from glmix_viz.app import data
from glmix_viz.app.page import Page, View
from glmix_viz.files import npz_bytes
from glmix_viz.labels import label_to_pil
from glmix_viz.pictures import all_blocks_picture, authors_figure, hard_overlay, mask_label_ids, png_bytes
from glmix_viz.slots.explore import assignment_arrays


def file_stem(name: str) -> str:
    """A file-name stem from an image's name: ``"shapes 1 (circle, ...)"`` -> ``"shapes_1"``."""
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name.split(" (")[0])[:40] or "image"


def picture_buttons(page: Page, stem: str) -> None:
    """The grouping of the chosen block, of every block, and the authors' figure, as PNG files."""
    exploration, block, display = page.exploration, page.block, page.display
    block_stem = block.replace(".", "_")
    st.download_button("Grouping overlay of the chosen block (PNG)",
                       png_bytes(hard_overlay(exploration, block, alpha=display.opacity,
                                              boundaries=display.boundaries)),
                       file_name=f"{stem}_{block_stem}_grouping.png", mime="image/png", on_click="ignore",
                       icon=":material/image:", width="stretch")
    st.download_button("Groupings of all blocks (PNG)",
                       png_bytes(all_blocks_picture(exploration, alpha=display.opacity,
                                                    boundaries=display.boundaries)),
                       file_name=f"{stem}_all_blocks.png", mime="image/png", on_click="ignore",
                       icon=":material/view_column:", width="stretch")
    st.download_button("Authors' figure of the chosen block (PNG)",
                       png_bytes(authors_figure(exploration, block, display.color_scale)[0]),
                       file_name=f"{stem}_{block_stem}_slots.png", mime="image/png", on_click="ignore",
                       icon=":material/grid_view:", width="stretch")


def mask_button(page: Page, stem: str) -> None:
    """The pseudo-mask of the default settings of this model and image, as a palette PNG."""
    request = data.default_mask_request(page.exploration, page.image, page.resolution)
    if request is None or page.model.segmenter is not None:
        st.info("No pseudo-mask: the model has no classifier.")
        return
    mask = data.pseudo_mask(page.model, page.image, request)
    st.download_button("Pseudo-mask after the CRF (palette PNG)",
                       png_bytes(label_to_pil(mask_label_ids(mask.channels, mask.class_indices))),
                       file_name=f"{stem}_pseudo_mask.png", mime="image/png", on_click="ignore",
                       icon=":material/palette:", width="stretch")
    ids_note = "label ids (0 background, class c -> c + 1)" if mask.class_indices.max() < 255 else "channel indices"
    names = [page.exploration.class_names[index] for index in request.classes]
    st.caption(f"Pseudo-mask: {request.method} (its own background threshold {request.score.bg_param:.2f}, dense "
               f"CRF), classes {', '.join(names)}; pixel values are {ids_note}; 255 = unsure. These are the default "
               "settings for this model and image; the Predictions tab downloads the mask of its own settings.")


def draw(page: Page) -> None:
    """Download buttons for what the other tabs show."""
    stem = file_stem(page.image.name)
    st.caption(f"Files for {page.image.name}, block {page.block}, as shown with the current settings.")
    col1, col2 = st.columns(2)
    with col1:
        picture_buttons(page, stem)
    with col2:
        st.download_button("Raw assignments of every block (.npz)", npz_bytes(assignment_arrays(page.exploration)),
                           file_name=f"{stem}_assignments.npz", mime="application/octet-stream", on_click="ignore",
                           icon=":material/data_array:", width="stretch",
                           help="per block: <block>.logits (S, h, w), <block>.hard (h, w), <block>.slots_out (S, C)")
        mask_button(page, stem)


VIEW = View("Downloads", "downloads", draw)
