"""The explorer's sidebar: where the model and the image come from, the input resolution and the display settings;
and how a link's model and image are put back into its widgets (:func:`link_widgets`).

A model or an image that cannot be opened (a bad upload, a wrong path) is said in one line in the sidebar and the
page keeps showing the model and image it showed (:data:`LAST_MODEL`, :data:`LAST_IMAGE`: their link references,
reopened through the caches). Nothing undecodable is kept in the upload store; paths typed into the sidebar are
opened only inside the app's folders (:func:`glmix_viz.app.options.folders`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

import streamlit as st

from glmix_viz.app import data, links, store
from glmix_viz.app.options import (
    app_options,
    folders,
    inside_folders,
    option_folder,
    upload_cap_bytes,
    upload_folder,
)
from glmix_viz.app.page import COLOR_SCALES, SOFT_MAP_KINDS, Display
from glmix_viz.errors import GlmixVizError, one_line

RESOLUTIONS = [64, 96, 128, 160, 192, 224, 256, 288, 320, 384, 448, 512, 640]
MODEL_SOURCES = ["Demo model", "Checkpoint file", "Checkpoint folder", "Upload checkpoint", "Random weights"]
LINKED_CHECKPOINT, LINKED_IMAGES = "link::checkpoint", "link::images"
LAST_MODEL, LAST_IMAGE = "shown::model", "shown::image"  # the link references of what the page showed last


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


def _typed_checkpoint(variant: Optional[str], device: str) -> data.LoadedModel:
    """The checkpoint file typed into the sidebar, opened only inside the app's folders."""
    roots = ", ".join(sorted(folders()))
    path = st.text_input("Checkpoint path (.safetensors or .pth)", key="checkpoint_path",
                         placeholder="checkpoints/glnet_stl.pth",
                         help=f"a file inside the app's folders ({roots}); start the app with --checkpoints DIR "
                              "to add one").strip()
    if not path:
        _stop(f"Enter the path of a checkpoint file inside the app's folders ({roots}).")
    return checkpoint_in_folders(path, variant, device)


def checkpoint_in_folders(path: str, variant: Optional[str], device: str) -> data.LoadedModel:
    """A checkpoint file a visitor typed, opened only inside the app's folders (the same words for any path outside
    them, whether it exists or not).

    Raises:
        CheckpointError: outside the folders, no such file, or not a readable checkpoint.
    """
    roots = ", ".join(sorted(folders()))
    inside = inside_folders(path)
    if inside is None:  # said the same whether or not the file exists: nothing is learnt about other folders
        raise data.CheckpointError(f"{Path(path).name}: the app opens checkpoint files only inside its folders "
                                   f"({roots}); start it with --checkpoints DIR")
    ref = path_ref(inside)
    if not ref:
        raise data.CheckpointError(f"{path}: no such checkpoint file")
    return data.checkpoint_model(links.resolve_file(ref, folders()), variant, device, label=inside.name, ref=ref)


def _model_from(source: str, device: str) -> data.LoadedModel:
    """The model of one source (widgets for its path, file or variant); raises when it cannot be loaded."""
    if source == "Demo model":
        return data.demo_model(device)
    if source == "Random weights":
        variants = data.random_variants()
        variant = st.selectbox("Variant", variants, index=variants.index("glnet_stl") if "glnet_stl" in variants else 0,
                               key="random_variant", help="the variants this app builds (glmix-viz app "
                                                          "--random-variants)")
        return data.random_model(variant, device)
    variant = _variant_choice()
    if source == "Checkpoint file":
        return _typed_checkpoint(variant, device)
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
        return data.uploaded_model(upload.name, upload.getvalue(), variant, device, upload_folder(),
                                   cap=upload_cap_bytes())
    linked = st.session_state.get(LINKED_CHECKPOINT)
    stored = store.get(upload_folder(), linked) if linked else None
    if stored is None:
        _stop("Upload a checkpoint file.")
    return data.stored_model(stored, variant, device)


def choose_model(device: str) -> data.LoadedModel:
    """Sidebar: where the model comes from. One that cannot be loaded is said in one line, and the page keeps the
    model it showed (stops when it showed none)."""
    sources = [source for source in MODEL_SOURCES if source != "Checkpoint folder" or checkpoint_folder()]
    source = st.selectbox("Source", sources, key="model_source")
    try:
        loaded = _model_from(source, device)
    except Exception as error:  # noqa: BLE001  (any failure to load is reported in one line; the page keeps working)
        message = one_line(error, with_type=False)
    else:
        st.session_state[LAST_MODEL] = loaded.ref
        return loaded
    previous = _reopen_model(st.session_state.get(LAST_MODEL), device)
    if previous is None:
        st.error(f"Could not load the model: {message}")
        st.stop()
    st.error(f"Could not load the model: {message}. Still showing {previous.label}.")
    return previous


def _reopen_model(ref: Optional[str], device: str) -> Optional[data.LoadedModel]:
    """The model a link reference names (the one the page showed before), through the caches; None if it cannot."""
    if not ref:
        return None
    try:
        kind, _, rest = ref.partition(":")
        if ref == "demo":
            return data.demo_model(device)
        if kind == "random":
            return data.random_model(rest, device) if rest in data.random_variants() else None
        if kind == "upload":
            stored = store.get(upload_folder(), rest)
            return None if stored is None else data.stored_model(stored, None, device)
        path = links.resolve_file(ref, folders())
        return data.checkpoint_model(path, None, device, label=path.name, ref=ref)
    except GlmixVizError:
        return None


def _linked_image(ref: str) -> data.LoadedImage:
    """An image a link named: an upload of the store, or a file inside the app's folders (checked again)."""
    kind, _, rest = ref.partition(":")
    if kind == "gallery":
        if rest not in data.gallery():
            raise links.LinkError("is no image of the gallery")
        return data.gallery()[rest]
    if kind == "upload":
        if not store.DIGEST.fullmatch(rest):
            raise links.LinkError("is not an upload's name (upload: and 40 hexadecimal digits)")
        found = store.read(upload_folder(), rest)
        if found is None:
            raise links.LinkError("is not on this server any more (the upload store keeps the most recently used "
                                  "uploads); upload the image again")
        stored, content = found
        return data.decode_upload(stored.name, content, ref=ref)
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
            st.error(f"{ref[:60]}: {one_line(error, with_type=False)}")
    for upload in uploads or []:
        content = upload.getvalue()
        try:  # decoded first: nothing undecodable is stored
            data.decode_upload(upload.name, content)
            stored = store.put(upload_folder(), upload.name, content, cap=upload_cap_bytes())
            loaded.append(data.decode_upload(upload.name, content, ref=f"upload:{stored.digest}"))
        except GlmixVizError as error:
            st.error(one_line(error, with_type=False))
    return list({image.ref or image.key: image for image in loaded}.values())


def _kept_image(why: str) -> Optional[data.LoadedImage]:
    """The image the page showed before (when nothing else is usable now), with a line saying why it stays."""
    ref = st.session_state.get(LAST_IMAGE)
    if not ref:
        return None
    try:
        image = _linked_image(ref)
    except GlmixVizError:
        return None
    st.caption(f"{why} Until then the page keeps showing {image.name}.")
    return image


def choose_image() -> data.LoadedImage:
    """Sidebar: gallery or uploads. Shows a one-line error per unreadable upload; stops when no image is usable."""
    source = st.radio("Image source", ["Gallery", "Upload"], horizontal=True, key="image_source")
    if source == "Gallery":
        images = data.gallery()
        chosen_image = images[st.selectbox("Example image", list(images), key="gallery_image")]
    else:
        loaded = _uploaded_images()
        if not loaded:
            kept = _kept_image("Upload one or several images, or pick one from the gallery.")
            if kept is None:
                _stop("Upload one or several images, or pick one from the gallery.")
            return kept
        names = [image.name for image in loaded]
        chosen = 0 if len(loaded) == 1 else st.selectbox(
            "Uploaded image", range(len(loaded)), format_func=lambda index: names[index], key="uploaded_choice")
        chosen_image = loaded[min(chosen, len(loaded) - 1)]
    if chosen_image.ref:
        st.session_state[LAST_IMAGE] = chosen_image.ref
    return chosen_image


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
        if rest not in data.random_variants():
            raise links.LinkError(f"is not a variant this app builds ({', '.join(data.random_variants())}; "
                                  "glmix-viz app --random-variants)")
        return {"model_source": "Random weights", "random_variant": rest}
    if kind == "upload":
        if not store.DIGEST.fullmatch(rest):
            raise links.LinkError("is not an upload's name (upload: and 40 hexadecimal digits)")
        if store.get(upload_folder(), rest) is None:
            raise links.LinkError("is not on this server any more (the upload store keeps the most recently used "
                                  "uploads); upload the checkpoint again")
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
            raise links.LinkError("is no image of the gallery")
        return {"image_source": "Gallery", "gallery_image": rest}
    _linked_image(ref)  # there and readable, or a LinkError / ImageLoadError saying why
    return {"image_source": "Upload", LINKED_IMAGES: [ref]}


def link_widgets(state: links.ViewState) -> Dict[str, Any]:
    """Widget values that reopen the model and image of a link; what cannot be reopened is said in one line each."""
    values: Dict[str, Any] = {}
    for name, ref, widgets, instead in (("model", state.model, model_widgets, "opened the demo model instead"),
                                        ("image", state.image, image_widgets, "opened the first gallery image instead")):
        if ref:
            try:
                values.update(widgets(ref))
            except GlmixVizError as error:
                links.refuse(name, ref, one_line(error, with_type=False), instead)
    return values
