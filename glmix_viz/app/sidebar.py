"""The explorer's sidebar: where the model and the image come from, the input resolution and the display settings;
and how a link's model and image are put back into its widgets (:func:`link_widgets`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

import streamlit as st

from glmix_viz.app import data, links, store
from glmix_viz.app.options import app_options, folders, option_folder, upload_folder
from glmix_viz.app.page import COLOR_SCALES, SOFT_MAP_KINDS, Display
from glmix_viz.errors import GlmixVizError, one_line

RESOLUTIONS = [64, 96, 128, 160, 192, 224, 256, 288, 320, 384, 448, 512, 640]
MODEL_SOURCES = ["Demo model", "Checkpoint file", "Checkpoint folder", "Upload checkpoint", "Random weights"]
LINKED_CHECKPOINT, LINKED_IMAGES = "link::checkpoint", "link::images"


def checkpoint_folder() -> str | None:
    """The folder of checkpoints: ``--checkpoints DIR`` on the command line, else ``GLMIX_CHECKPOINTS``."""
    return option_folder("checkpoints")


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
        return data.checkpoint_model(path, variant, device, label=Path(path).name, ref=path_ref(Path(path)))
    if source == "Checkpoint folder":
        folder = checkpoint_folder()
        files = data.checkpoint_files(folder)
        if not files:
            raise data.CheckpointError(f"{folder}: no checkpoint files (.safetensors, .pth) in this folder")
        chosen = st.selectbox(f"Checkpoint in {folder}", files, format_func=lambda p: p.name, key="folder_file")
        return data.checkpoint_model(chosen, variant, device, label=chosen.name, ref=f"checkpoints:{chosen.name}")
    upload = st.file_uploader("Checkpoint (.safetensors, .pth)", key="checkpoint_upload",
                              help="Read without executing code; kept on the server under its digest for links.")
    if upload is not None:
        return data.uploaded_model(upload.name, upload.getvalue(), variant, device, upload_folder())
    linked = st.session_state.get(LINKED_CHECKPOINT)
    stored = store.get(upload_folder(), linked) if linked else None
    if stored is None:
        _stop("Upload a checkpoint file.")
    return data.stored_model(stored, variant, device)


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


def _linked_image(ref: str) -> data.LoadedImage:
    """An image a link named: an upload of the store, or a file inside the app's folders (checked again)."""
    kind, _, rest = ref.partition(":")
    if kind == "upload":
        stored = store.get(upload_folder(), rest)
        if stored is None:
            raise links.LinkError(f"link: the uploaded image {rest[:12]}... is not on this server any more")
        return data.decode_upload(stored.name, stored.path.read_bytes(), ref=ref)
    path = links.resolve_file(ref, folders())
    return data.decode_upload(path.name, path.read_bytes(), ref=ref)


def _uploaded_images() -> List[data.LoadedImage]:
    # No type= filter: Streamlit would answer a wrong extension with an exception box; the loader says it in one line.
    uploads = st.file_uploader("Images (JPEG, PNG, WebP, BMP, TIFF)", accept_multiple_files=True, key="image_upload",
                               help="Kept on the server under their content digest, so that links can reopen them. "
                                    "Larger than 1024 pixels: downscaled.")
    loaded = []
    for ref in st.session_state.get(LINKED_IMAGES, []):
        try:
            loaded.append(_linked_image(ref))
        except GlmixVizError as error:
            st.error(one_line(error))
    for upload in uploads or []:
        try:
            stored = store.put(upload_folder(), upload.name, upload.getvalue())
            loaded.append(data.decode_upload(upload.name, upload.getvalue(), ref=f"upload:{stored.digest}"))
        except GlmixVizError as error:
            st.error(one_line(error))
    return list({image.ref or image.key: image for image in loaded}.values())


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


def choose_resolution(loaded: data.LoadedModel, linked: Optional[int] = None) -> int:
    """The network input's longer side (the link's, else the model's own first), remembered per model."""
    first = linked if linked in RESOLUTIONS else loaded.default_resolution
    return int(st.select_slider(
        "Input resolution (longer side, pixels)", RESOLUTIONS,
        value=min(RESOLUTIONS, key=lambda value: abs(value - first)),
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


def path_ref(path: Path) -> str:
    """How a link names a checkpoint file: ``"<folder>:<relative path>"`` inside one of the app's folders, else ""."""
    resolved = path.expanduser().resolve()
    for name, folder in folders().items():
        root = folder.resolve()
        if resolved.is_relative_to(root) and resolved != root:
            ref = f"{name}:{resolved.relative_to(root).as_posix()}"
            try:
                return ref if links.resolve_file(ref, folders()) == resolved else ""
            except links.LinkError:
                return ""
    return ""


def model_widgets(ref: str) -> Dict[str, Any]:
    """The sidebar's widget values that reopen the model a link names.

    Raises:
        LinkError: an unknown variant, a file outside the app's folders, an upload no longer on this server.
    """
    kind, _, rest = ref.partition(":")
    if ref == "demo":
        return {"model_source": "Demo model"}
    if kind == "random":
        if rest not in data.variants():
            raise links.LinkError(f"link: model {ref[:60]!r}: no such variant")
        return {"model_source": "Random weights", "random_variant": rest}
    if kind == "upload":
        if store.get(upload_folder(), rest) is None:
            raise links.LinkError(f"link: the uploaded checkpoint {rest[:12]}... is not on this server any more; "
                                  "upload it again")
        return {"model_source": "Upload checkpoint", LINKED_CHECKPOINT: rest}
    path = links.resolve_file(ref, folders())
    listed = {file.resolve(): file for file in data.checkpoint_files(checkpoint_folder() or "")}
    if kind == "checkpoints" and path in listed:
        return {"model_source": "Checkpoint folder", "folder_file": listed[path]}
    return {"model_source": "Checkpoint file", "checkpoint_path": str(path)}


def image_widgets(ref: str) -> Dict[str, Any]:
    """The sidebar's widget values that reopen the image a link names.

    Raises:
        LinkError: no such gallery image, a file outside the app's folders, an upload no longer on this server.
    """
    kind, _, rest = ref.partition(":")
    if kind == "gallery":
        if rest not in data.gallery():
            raise links.LinkError(f"link: no gallery image {rest[:60]!r}")
        return {"image_source": "Gallery", "gallery_image": rest}
    _linked_image(ref)  # there and readable, or a LinkError / ImageLoadError saying why
    return {"image_source": "Upload", LINKED_IMAGES: [ref]}


def link_widgets(state: links.ViewState) -> Dict[str, Any]:
    """Widget values that reopen the model and image of a link; what cannot be reopened is said in one line each."""
    values: Dict[str, Any] = {}
    for ref, widgets in ((state.model, model_widgets), (state.image, image_widgets)):
        if ref:
            try:
                values.update(widgets(ref))
            except (GlmixVizError, ValueError) as error:
                links.complain(one_line(error))
    return values
