"""glmix-viz checkpoint files: safetensors weights with a JSON config in the metadata and beside them.

Every checkpoint glmix-viz writes (a classifier from ``train`` / ``finetune``, a segmenter from ``segment-train``) is
one ``.safetensors`` file whose metadata holds the config under :data:`CONFIG_KEY`, plus the same config as
``<name>.json`` beside it for people and tools that do not read safetensors. The config's ``format`` names the kind
of model (``glmix-viz/1`` for a GLNet classifier, ``glmix-viz-segmenter/1`` for a segmenter); the loader of each kind
knows its own format, and :mod:`glmix_viz.open` dispatches on it.

A leaf: this module knows the file layout only, not the models; it imports nothing of glmix-viz but the errors and the
atomic writer.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_bytes

from glmix_viz.errors import CheckpointError, one_line
from glmix_viz.files import save_bytes_atomic

__all__ = ["CONFIG_KEY", "FORMAT_PREFIX", "read_config", "read_safetensors", "write_checkpoint"]

CONFIG_KEY = "glmix_viz_config"
"""Key of the JSON config in a glmix-viz safetensors file's metadata."""

FORMAT_PREFIX = "glmix-viz"
"""Every glmix-viz ``format`` starts with this; a ``<name>.json`` sidecar counts as a config only when it does."""

PathLike = Union[str, os.PathLike]


def _config_from_metadata(metadata: Mapping[str, str]) -> Optional[Dict[str, Any]]:
    return json.loads(metadata[CONFIG_KEY]) if CONFIG_KEY in metadata else None


def read_config(path: PathLike) -> Optional[Dict[str, Any]]:
    """The glmix-viz config of a checkpoint: from the safetensors metadata, else from ``<name>.json`` beside it.

    A sidecar counts only when it is a JSON object whose ``format`` starts with :data:`FORMAT_PREFIX` (any other
    ``.json`` beside a ``.pth`` is somebody else's). A ``.safetensors`` whose header cannot be read falls through to
    the sidecar; the weights' reader reports the corrupt file.

    Returns:
        The config dict, or None when the file has none (an official ``.pth``, a bare state dict).

    Raises:
        CheckpointError: the sidecar exists but is not readable JSON.
    """
    path = Path(path)
    if path.suffix == ".safetensors" and path.is_file():
        try:
            with safe_open(str(path), framework="pt") as handle:
                config = _config_from_metadata(handle.metadata() or {})
            if config is not None:
                return config
        except Exception:  # noqa: BLE001 - a corrupt header: read_safetensors names the problem when weights are read
            pass
    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        return None
    try:
        config = json.loads(sidecar.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{sidecar}: unreadable checkpoint config ({one_line(error, with_type=False, limit=200)})"
                              ) from None
    if isinstance(config, dict) and str(config.get("format", "")).startswith(FORMAT_PREFIX):
        return config
    return None


def read_safetensors(path: PathLike) -> Tuple[Dict[str, torch.Tensor], Optional[Dict[str, Any]]]:
    """The tensors of a ``.safetensors`` file (on the CPU) and the glmix-viz config in its metadata, if any.

    Raises:
        CheckpointError: the file is missing or not a readable safetensors file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as error:  # noqa: BLE001 - safetensors raises several types for a corrupt header
        raise CheckpointError(f"{path}: not a readable safetensors file ({one_line(error, with_type=False, limit=200)})"
                              ) from None
    return tensors, _config_from_metadata(metadata)


def write_checkpoint(path: PathLike, state: Mapping[str, torch.Tensor], config: Dict[str, Any]) -> Dict[str, Any]:
    """Write ``state`` as safetensors with ``config`` in the metadata and in ``<name>.json`` beside it.

    Both files are written atomically (a temporary file, then a rename); the folder is created if needed. Values the
    JSON encoder does not know (a ``Path``) are written as their ``str``.

    Args:
        path: the ``.safetensors`` destination.
        state: a state dict; tensors are detached, moved to the CPU and made contiguous.
        config: the config, with its ``format``.

    Returns:
        ``config``.
    """
    path = Path(path)
    tensors = {key: value.detach().cpu().contiguous() for key, value in state.items()}
    text = json.dumps(config, default=str)
    save_bytes_atomic(path, safetensors_bytes(tensors, metadata={CONFIG_KEY: text}))
    save_bytes_atomic(path.with_suffix(".json"), (json.dumps(config, indent=2, default=str) + "\n").encode())
    return config
