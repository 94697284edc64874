"""GLMix explorer: upload images and browse what every GLMix block of a GLNet groups together.

Run::

    glmix-viz app                                   # installed package: demo model + gallery
    glmix-viz app --checkpoints /path/to/ckpts      # also offer the checkpoints of a folder
    streamlit run app/main.py                       # from a checkout (app/main.py calls main() below)
    streamlit run app/main.py -- --checkpoints /path/to/ckpts
    GLMIX_CHECKPOINTS=/path/to/ckpts streamlit run app/main.py

The page is thin: models, images and network results come from :mod:`glmix_viz.app.data` (cached), pictures and tabs
from :mod:`glmix_viz.app.views`, the science from :mod:`glmix_viz`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import streamlit as st

from glmix_viz.app import atlas as atlas_view
from glmix_viz.app import data, views
from glmix_viz.errors import GlmixVizError, one_line

TITLE = "GLMix explorer"
TABS = ["Groupings", "Across blocks", "Slot & pixel", "Predictions & pseudo-mask", "Downloads", "Atlas"]
RESOLUTIONS = [64, 96, 128, 160, 192, 224, 256, 288, 320, 384, 448, 512, 640]
MODEL_SOURCES = ["Demo model", "Checkpoint file", "Checkpoint folder", "Upload checkpoint", "Random weights"]


def app_options() -> argparse.Namespace:
    """The app's own options (after ``--`` of ``streamlit run``, or from ``glmix-viz app``): checkpoints, device."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--checkpoints", default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--atlas", default=None)
    known, _ = parser.parse_known_args(sys.argv[1:])
    return known


def checkpoint_folder() -> str | None:
    """The folder of checkpoints: ``--checkpoints DIR`` on the command line, else ``GLMIX_CHECKPOINTS``."""
    return app_options().checkpoints or os.environ.get("GLMIX_CHECKPOINTS") or None


def device_choices() -> list[str]:
    """Devices for the sidebar, the one asked for with ``--device`` first, else CUDA when available."""
    devices = data.available_devices()
    preferred = app_options().device
    return [preferred] + [device for device in devices if device != preferred] if preferred else devices


def choose_model(device: str) -> data.LoadedModel:
    """Sidebar: where the model comes from. Stops the page with a one-line error when it cannot be loaded."""
    folder = checkpoint_folder()
    sources = [source for source in MODEL_SOURCES if source != "Checkpoint folder" or folder]
    source = st.selectbox("Source", sources, key="model_source")
    variant_choice = None
    try:
        if source == "Demo model":
            return data.demo_model(device)
        if source == "Random weights":
            variant = st.selectbox("Variant", data.variants(), index=data.variants().index("glnet_stl"),
                                   key="random_variant")
            return data.random_model(variant, device)
        variant_choice = st.selectbox("Variant", ["infer from the weights"] + data.variants(), key="variant")
        variant = None if variant_choice.startswith("infer") else variant_choice
        if source == "Checkpoint file":
            path = st.text_input("Checkpoint path (.safetensors or .pth)", key="checkpoint_path",
                                 placeholder="/path/to/glnet_stl.pth")
            if not path.strip():
                st.info("Enter the path of a checkpoint file.")
                st.stop()
            return data.checkpoint_model(path.strip(), variant, device, label=Path(path.strip()).name)
        if source == "Checkpoint folder":
            files = data.checkpoint_files(folder)
            if not files:
                raise data.CheckpointError(f"{folder}: no checkpoint files (.safetensors, .pth) in this folder")
            chosen = st.selectbox(f"Checkpoint in {folder}", files, format_func=lambda p: p.name, key="folder_file")
            return data.checkpoint_model(chosen, variant, device, label=chosen.name)
        upload = st.file_uploader("Checkpoint (.safetensors, .pth)", key="checkpoint_upload",
                                  help="Read in memory and loaded without executing code.")
        if upload is None:
            st.info("Upload a checkpoint file.")
            st.stop()
        return data.uploaded_model(upload.name, upload.getvalue(), variant, device)
    except Exception as error:  # noqa: BLE001  (any failure to load is reported in one line; the page keeps working)
        message = one_line(error)
    st.error(f"Could not load the model: {message}")
    st.stop()
    raise AssertionError("unreachable")


def choose_image() -> data.LoadedImage:
    """Sidebar: gallery or uploads. Shows a one-line error per unreadable upload; stops when no image is usable."""
    chosen = atlas_view.atlas_image()
    sources = ["Gallery", "Upload"] + ([atlas_view.ATLAS_IMAGE] if chosen else [])
    source = st.radio("Image source", sources, horizontal=True, key="image_source")
    if source == atlas_view.ATLAS_IMAGE:
        try:
            return data.decode_upload(chosen["id"], Path(chosen["path"]).read_bytes())
        except (OSError, GlmixVizError) as error:
            st.error(f"{chosen['path']}: {one_line(error, with_type=False)}")
            st.stop()
    if source == "Gallery":
        images = data.gallery()
        name = st.selectbox("Example image", list(images), key="gallery_image")
        return images[name]
    # No type= filter: Streamlit would answer a wrong extension with an exception box; the loader says it in one line.
    uploads = st.file_uploader("Images (JPEG, PNG, WebP, BMP, TIFF)", accept_multiple_files=True, key="image_upload",
                               help="Read in memory only. Larger than 1024 pixels: downscaled.")
    loaded = []
    for upload in uploads or []:
        try:
            loaded.append(data.decode_upload(upload.name, upload.getvalue()))
        except GlmixVizError as error:
            st.error(one_line(error))
    if not loaded:
        st.info("Upload one or several images, or pick one from the gallery.")
        st.stop()
    if len(loaded) == 1:
        return loaded[0]
    names = [image.name for image in loaded]
    chosen = st.selectbox("Uploaded image", range(len(loaded)), format_func=lambda index: names[index],
                          key="uploaded_choice")
    return loaded[min(chosen, len(loaded) - 1)]


def main() -> None:
    st.set_page_config(page_title=TITLE, page_icon=":material/grain:", layout="wide")
    data.configure_torch()
    with st.sidebar:
        st.subheader("Model")
        device = st.selectbox("Device", device_choices(), key="device")
        loaded = choose_model(device)
        st.subheader("Atlas")
        atlas_view.sidebar_atlas(app_options().atlas)
        st.subheader("Image")
        image = choose_image()
        resolution = st.select_slider(
            "Input resolution (longer side, pixels)", RESOLUTIONS,
            value=min(RESOLUTIONS, key=lambda value: abs(value - loaded.default_resolution)),
            key=f"resolution::{loaded.key}", help="The image is resized (aspect kept, sides multiples of 32).",
        )
        st.subheader("Display")
        display = views.Display(
            opacity=st.slider("Overlay opacity", 0.0, 1.0, 0.55, 0.05, key="opacity"),
            boundaries=st.checkbox("Slot boundaries", value=True, key="boundaries"),
            soft_map_kind=st.radio("Soft maps", list(views.SOFT_MAP_KINDS), key="soft_map_kind", horizontal=True,
                                   help="dispatch: softmax over slots; clustering: softmax over pixels"),
            color_scale=st.radio("Colour scale of maps", list(views.COLOR_SCALES), key="color_scale", horizontal=True,
                                 help="; ".join(f"{name}: {words}" for name, words in views.COLOR_SCALES.items())),
        )

    exploration = data.exploration(loaded.key, image.key, int(resolution), loaded.model, image.image)
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

    blocks = exploration.block_names
    block = st.select_slider("GLMix block", blocks, value=blocks[min(4, len(blocks) // 2)],
                             format_func=lambda name: views.block_title(exploration, name), key=f"block::{loaded.key}")
    keys = (loaded.key, image.key, int(resolution))
    tabs = st.tabs(TABS, key="view", on_change="rerun")
    with tabs[0]:
        if tabs[0].open:
            views.groupings_tab(exploration, block, display)
    with tabs[1]:
        if tabs[1].open:
            views.across_blocks_tab(exploration, display, block, data.demo_benchmark(loaded))
    with tabs[2]:
        if tabs[2].open:
            views.slot_and_pixel_tab(exploration, block, display, loaded.key)
    with tabs[3]:
        if tabs[3].open:
            views.predictions_tab(exploration, loaded, keys, display)
    with tabs[4]:
        if tabs[4].open:
            views.downloads_tab(exploration, block, display, loaded, keys, image.name)
    with tabs[5]:
        if tabs[5].open:
            atlas_view.draw(atlas_view.AtlasPage(exploration, block, loaded))


if __name__ == "__main__":  # streamlit runs this file as __main__ (glmix-viz app)
    main()
