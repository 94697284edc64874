"""The explorer's sidebar: where the model and the image come from, the input resolution and the display settings;
and the app's own command-line options (after ``--`` of ``streamlit run``, or from ``glmix-viz app``)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import List

import streamlit as st

from glmix_viz.app import data
from glmix_viz.app.page import COLOR_SCALES, SOFT_MAP_KINDS, Display
from glmix_viz.errors import GlmixVizError, one_line

RESOLUTIONS = [64, 96, 128, 160, 192, 224, 256, 288, 320, 384, 448, 512, 640]
MODEL_SOURCES = ["Demo model", "Checkpoint file", "Checkpoint folder", "Upload checkpoint", "Random weights"]


def app_options() -> argparse.Namespace:
    """The app's own options (after ``--`` of ``streamlit run``, or from ``glmix-viz app``): checkpoints, device."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--checkpoints", default=None)
    parser.add_argument("--device", default=None)
    known, _ = parser.parse_known_args(sys.argv[1:])
    return known


def checkpoint_folder() -> str | None:
    """The folder of checkpoints: ``--checkpoints DIR`` on the command line, else ``GLMIX_CHECKPOINTS``."""
    return app_options().checkpoints or os.environ.get("GLMIX_CHECKPOINTS") or None


def device_choices() -> List[str]:
    """Devices for the sidebar, the one asked for with ``--device`` first, else CUDA when available."""
    devices = data.available_devices()
    preferred = app_options().device
    return [preferred] + [device for device in devices if device != preferred] if preferred else devices


def _stop(message: str) -> None:
    st.info(message)
    st.stop()


def _variant_choice() -> str | None:
    choice = st.selectbox("Variant", ["infer from the weights"] + data.variants(), key="variant")
    return None if choice.startswith("infer") else choice


def _model_from(source: str, device: str) -> data.LoadedModel:
    """The model of one source (widgets for its path, file or variant); raises when it cannot be loaded."""
    if source == "Demo model":
        return data.demo_model(device)
    if source == "Random weights":
        variants = data.variants()
        variant = st.selectbox("Variant", variants, index=variants.index("glnet_stl"), key="random_variant")
        return data.random_model(variant, device)
    variant = _variant_choice()
    if source == "Checkpoint file":
        path = st.text_input("Checkpoint path (.safetensors or .pth)", key="checkpoint_path",
                             placeholder="/path/to/glnet_stl.pth").strip()
        if not path:
            _stop("Enter the path of a checkpoint file.")
        return data.checkpoint_model(path, variant, device, label=Path(path).name)
    if source == "Checkpoint folder":
        folder = checkpoint_folder()
        files = data.checkpoint_files(folder)
        if not files:
            raise data.CheckpointError(f"{folder}: no checkpoint files (.safetensors, .pth) in this folder")
        chosen = st.selectbox(f"Checkpoint in {folder}", files, format_func=lambda p: p.name, key="folder_file")
        return data.checkpoint_model(chosen, variant, device, label=chosen.name)
    upload = st.file_uploader("Checkpoint (.safetensors, .pth)", key="checkpoint_upload",
                              help="Read without executing code.")
    if upload is None:
        _stop("Upload a checkpoint file.")
    return data.uploaded_model(upload.name, upload.getvalue(), variant, device)


def choose_model(device: str) -> data.LoadedModel:
    """Sidebar: where the model comes from. Stops the page with a one-line error when it cannot be loaded."""
    sources = [source for source in MODEL_SOURCES if source != "Checkpoint folder" or checkpoint_folder()]
    source = st.selectbox("Source", sources, key="model_source")
    try:
        return _model_from(source, device)
    except Exception as error:  # noqa: BLE001  (any failure to load is reported in one line; the page keeps working)
        message = one_line(error)
    st.error(f"Could not load the model: {message}")
    st.stop()
    raise AssertionError("unreachable")


def _uploaded_images() -> List[data.LoadedImage]:
    # No type= filter: Streamlit would answer a wrong extension with an exception box; the loader says it in one line.
    uploads = st.file_uploader("Images (JPEG, PNG, WebP, BMP, TIFF)", accept_multiple_files=True, key="image_upload",
                               help="Read in memory only. Larger than 1024 pixels: downscaled.")
    loaded = []
    for upload in uploads or []:
        try:
            loaded.append(data.decode_upload(upload.name, upload.getvalue()))
        except GlmixVizError as error:
            st.error(one_line(error))
    return loaded


def choose_image() -> data.LoadedImage:
    """Sidebar: gallery or uploads. Shows a one-line error per unreadable upload; stops when no image is usable."""
    source = st.radio("Image source", ["Gallery", "Upload"], horizontal=True, key="image_source")
    if source == "Gallery":
        images = data.gallery()
        return images[st.selectbox("Example image", list(images), key="gallery_image")]
    loaded = _uploaded_images()
    if not loaded:
        _stop("Upload one or several images, or pick one from the gallery.")
    if len(loaded) == 1:
        return loaded[0]
    names = [image.name for image in loaded]
    chosen = st.selectbox("Uploaded image", range(len(loaded)), format_func=lambda index: names[index],
                          key="uploaded_choice")
    return loaded[min(chosen, len(loaded) - 1)]


def choose_resolution(loaded: data.LoadedModel) -> int:
    """The network input's longer side (the model's own first), remembered per model."""
    return int(st.select_slider(
        "Input resolution (longer side, pixels)", RESOLUTIONS,
        value=min(RESOLUTIONS, key=lambda value: abs(value - loaded.default_resolution)),
        key=f"resolution::{loaded.key}", help="The image is resized (aspect kept, sides multiples of 32).",
    ))


def choose_display() -> Display:
    """Opacity, slot boundaries, kind of soft map, colour scale."""
    return Display(
        opacity=st.slider("Overlay opacity", 0.0, 1.0, 0.55, 0.05, key="opacity"),
        boundaries=st.checkbox("Slot boundaries", value=True, key="boundaries"),
        soft_map_kind=st.radio("Soft maps", list(SOFT_MAP_KINDS), key="soft_map_kind", horizontal=True,
                               help="dispatch: softmax over slots; clustering: softmax over pixels"),
        color_scale=st.radio("Colour scale of maps", list(COLOR_SCALES), key="color_scale", horizontal=True,
                             help="; ".join(f"{name}: {words}" for name, words in COLOR_SCALES.items())),
    )
