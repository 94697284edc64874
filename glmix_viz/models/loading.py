"""Load GLNet checkpoints safely: official ``.pth`` files, bare state dicts, and glmix-viz ``.safetensors``.

Nothing here executes code from a file. ``.pth`` files are read with ``torch.load(weights_only=True)``; the official
training files may also pickle a config object (an OmegaConf ``DictConfig``), which the weights-only unpickler
refuses: :func:`glmix_viz.safe_pickle.torch_load_inert` then recovers the tensors without running anything.

glmix-viz classifier checkpoints are ``.safetensors`` with a JSON config (format :data:`CONFIG_FORMAT`: variant,
constructor overrides, class names) in the file's metadata and beside it as ``<name>.json``
(:mod:`glmix_viz.checkpoints`). This module loads GLNets only; :func:`glmix_viz.open.open_checkpoint` opens whatever
a checkpoint is (a classifier or a segmenter) and :func:`glmix_viz.open.resolve_model` chooses the model a tool uses.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import timm
import torch

from glmix_viz.checkpoints import read_config, read_safetensors, write_checkpoint
from glmix_viz.errors import CheckpointError, one_line
from glmix_viz.models.glnet import GLNet, checkpoint_filter_fn
from glmix_viz.models.registry import VARIANTS
from glmix_viz.safe_pickle import torch_load_inert

__all__ = ["CONFIG_FORMAT", "default_device", "infer_variant", "load_model", "load_state_dict", "save_checkpoint"]

CONFIG_FORMAT = "glmix-viz/1"
"""The ``format`` of a GLNet classifier checkpoint's config (``train``, ``finetune``)."""
PathLike = Union[str, os.PathLike]



def default_device(device: Optional[Union[str, torch.device]] = None) -> torch.device:
    """``device`` if given, else CUDA when available, else the CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _read_tensors(path: Path) -> Dict[str, torch.Tensor]:
    """The tensors of a checkpoint file, read safely (wrappers such as ``model`` / ``model_ema`` not yet removed)."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.suffix == ".safetensors":
        return read_safetensors(path)[0]
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        obj = torch_load_inert(path)
    except Exception as error:  # noqa: BLE001 - torch.load raises many types for a file that is not a checkpoint
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint ({one_line(error, with_type=False, limit=200)})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a state dict")
    state = checkpoint_filter_fn(obj, None)  # type: ignore[arg-type]
    tensors = {key: value for key, value in state.items() if isinstance(value, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{path}: holds no tensors (keys: {_short(list(obj))})")
    return tensors


def _short(items: List[str], limit: int = 4) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def load_state_dict(path: PathLike) -> Dict[str, torch.Tensor]:
    """The GLNet state dict in a checkpoint file (wrappers and ``module.`` prefixes removed), read safely."""
    return checkpoint_filter_fn(_read_tensors(Path(path)), None)  # type: ignore[arg-type]


def _num_classes(state: Dict[str, torch.Tensor]) -> int:
    head = state.get("head.weight")
    return int(head.shape[0]) if head is not None and head.ndim == 2 else 0


def _expected_shapes(variant: str, num_classes: int, overrides: Optional[Dict[str, Any]] = None) -> Dict[str, tuple]:
    with torch.device("meta"):
        model = timm.create_model(variant, **dict(overrides or {}, num_classes=num_classes))
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


def _mismatch(state: Dict[str, torch.Tensor], expected: Dict[str, tuple]) -> Tuple[List[str], List[str], List[str]]:
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    misshaped = [
        f"{key} {list(state[key].shape)} vs {list(shape)}"
        for key, shape in expected.items()
        if key in state and tuple(state[key].shape) != shape
    ]
    return missing, unexpected, misshaped


def _describe(variant: str, missing: List[str], unexpected: List[str], misshaped: List[str]) -> str:
    parts = []
    if missing:
        parts.append(f"missing {_short(missing)}")
    if unexpected:
        parts.append(f"unexpected {_short(unexpected)}")
    if misshaped:
        parts.append(f"mis-shaped {_short(misshaped, 3)}")
    return f"closest variant {variant}: " + "; ".join(parts)


def infer_variant(state: Dict[str, torch.Tensor], *, path: PathLike = "<state dict>") -> str:
    """The registered GLNet variant whose keys and shapes a state dict matches exactly.

    Raises:
        CheckpointError: naming the closest variant and the missing, unexpected and mis-shaped keys.
    """
    num_classes = _num_classes(state)
    best: Optional[Tuple[int, str, Tuple[List[str], List[str], List[str]]]] = None
    for variant in VARIANTS:
        diff = _mismatch(state, _expected_shapes(variant, num_classes))
        errors = sum(len(part) for part in diff)
        if errors == 0:
            return variant
        if best is None or errors < best[0]:
            best = (errors, variant, diff)
    assert best is not None
    raise CheckpointError(f"{path}: fits no GLNet variant; {_describe(best[1], *best[2])}")


def load_model(
    path: PathLike,
    variant: Optional[str] = None,
    device: Optional[Union[str, torch.device]] = None,
) -> GLNet:
    """Build the GLNet a checkpoint holds and load its weights strictly; return it in eval mode.

    Args:
        path: an official ``.pth`` (a dict holding ``model``, ``model_ema`` or ``state_dict``, or a bare state dict;
            ``module.`` prefixes are stripped), or a ``.safetensors`` file (glmix-viz checkpoints carry their
            config; a bare one is matched like a ``.pth``). Another kind of glmix-viz checkpoint (a segmenter) is
            refused: :func:`glmix_viz.open.open_checkpoint` opens any kind.
        variant: a registered variant name; inferred from the keys and shapes when None.
        device: where to put the model; CUDA when available if None.

    Returns:
        The model, with ``model.pretrained_cfg["label_names"]`` holding the class names when the checkpoint names
        them and ``model.checkpoint_config`` the config it was built from.

    Raises:
        CheckpointError: unreadable file, another kind of checkpoint, or weights that fit no variant (one line
            naming the closest variant and the missing, unexpected and mis-shaped keys).
    """
    path = Path(path)
    config = read_config(path)
    if config is not None and config.get("format", CONFIG_FORMAT) != CONFIG_FORMAT:
        raise CheckpointError(f"{path}: a {config.get('format')} checkpoint, not a GLNet classifier ({CONFIG_FORMAT}); "
                              "open it with glmix_viz.open.open_checkpoint")
    tensors = _read_tensors(path)
    state = checkpoint_filter_fn(tensors, None)  # type: ignore[arg-type]
    overrides: Dict[str, Any] = {}
    if config is not None:
        variant = variant or config.get("variant")
        overrides = dict(config.get("model_args") or {})
    if variant is None:
        variant = infer_variant(state, path=path)
    elif variant not in VARIANTS:
        raise CheckpointError(f"{path}: unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
    overrides["num_classes"] = _num_classes(state)
    diff = _mismatch(state, _expected_shapes(variant, overrides["num_classes"], overrides))
    if any(diff):
        raise CheckpointError(f"{path}: does not fit {variant}; {_describe(variant, *diff)}")
    model = timm.create_model(variant, **overrides)
    model.load_state_dict(state, strict=True)
    model.checkpoint_config = dict(config or {}, variant=variant, model_args=overrides, source=str(path))
    if config and config.get("class_names"):
        names = list(config["class_names"])
        if len(names) != model.num_classes:
            raise CheckpointError(f"{path}: config names {len(names)} classes but the head has {model.num_classes}")
        model.pretrained_cfg = dict(model.pretrained_cfg, label_names=names)
    if config and config.get("input_size"):
        model.pretrained_cfg = dict(model.pretrained_cfg, input_size=tuple(config["input_size"]))
    return model.to(default_device(device)).eval()


def save_checkpoint(
    model: GLNet,
    path: PathLike,
    *,
    variant: str,
    model_args: Optional[Dict[str, Any]] = None,
    class_names: Optional[List[str]] = None,
    extra: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """Write ``model``'s weights as safetensors with its config in the metadata and in ``<name>.json`` beside it.

    Both files are written atomically (temp file + rename). Returns the config.
    """
    config: Dict[str, Any] = {
        "format": CONFIG_FORMAT,
        "variant": variant,
        "model_args": {key: value for key, value in (model_args or {}).items() if key != "num_classes"},
        "num_classes": int(model.num_classes),
        "class_names": list(class_names) if class_names else None,
        **(extra or {}),
    }
    return write_checkpoint(path, model.state_dict(), config)
