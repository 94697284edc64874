"""Load GLNet checkpoints safely: official ``.pth`` files, bare state dicts, and glmix-viz ``.safetensors``.

Nothing here executes code from a file. ``.pth`` files are read with ``torch.load(weights_only=True)``; the official
training files may also pickle a config object (an OmegaConf ``DictConfig``), which the weights-only unpickler
refuses. For those, every foreign class named in the file is replaced by an inert placeholder that only stores
what the pickle hands it, so the tensors are recovered without importing or running anything from the file.

glmix-viz checkpoints are ``.safetensors`` with a JSON config (variant, constructor overrides, class names) in the
file's metadata and beside it as ``<name>.json``.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import timm
import torch
import torch.nn as nn

from glmix_viz.errors import CheckpointError, one_line
from glmix_viz.models.glnet import GLNet, checkpoint_filter_fn
from glmix_viz.models.registry import VARIANTS

__all__ = ["load_model", "load_state_dict", "save_checkpoint", "read_checkpoint_config", "infer_variant",
           "default_device", "class_names", "demo_checkpoint", "resolve_model", "describe_model", "ModelInfo",
           "is_multilabel", "default_input_size"]

DEMO_DIR = Path(__file__).resolve().parents[1] / "assets" / "demo"

CONFIG_KEY = "glmix_viz_config"
CONFIG_FORMAT = "glmix-viz/1"
PathLike = Union[str, os.PathLike]


SEGMENTER_FORMAT = "glmix-viz-segmenter/1"
"""The ``format`` of a segmenter checkpoint's config (written by :mod:`glmix_viz.segment`; read here to hand back its
encoder)."""

def default_device(device: Optional[Union[str, torch.device]] = None) -> torch.device:
    """``device`` if given, else CUDA when available, else the CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class _InertObject:
    """Stands in for a foreign pickled object: stores its constructor arguments and state, runs nothing."""

    def __new__(cls, *args: Any, **kwargs: Any) -> "_InertObject":
        obj = super().__new__(cls)
        obj.__dict__["_pickled_args"] = args
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.__dict__["_pickled_state"] = state


def _torch_load_inert(path: Path) -> Any:
    """``torch.load(weights_only=True)`` with every non-allow-listed global replaced by an inert placeholder."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception as error:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({one_line(error, with_type=False, limit=200)})") from None
    if not names:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint (the weights-only unpickler refused it)")
    placeholders = [(type(name.rsplit(".", 1)[-1], (_InertObject,), {}), name) for name in names]
    try:
        with torch.serialization.safe_globals(placeholders):
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(
            f"{path}: holds pickled objects that cannot be read safely ({one_line(error, with_type=False, limit=200)}); from a trusted "
            "Python session re-save just the weights: torch.save(torch.load(p, weights_only=False)['model'], q)"
        ) from None


def _read_raw(path: Path) -> Tuple[Dict[str, torch.Tensor], Optional[Dict[str, Any]]]:
    """The tensors of a checkpoint file and the glmix-viz config stored in it, if any."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
                tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        except Exception as error:  # safetensors raises several types for a corrupt header
            raise CheckpointError(f"{path}: not a readable safetensors file ({one_line(error, with_type=False, limit=200)})") from None
        config = json.loads(metadata[CONFIG_KEY]) if CONFIG_KEY in metadata else None
        return tensors, config
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        obj = _torch_load_inert(path)
    except Exception as error:  # torch.load raises many types for a file that is not a checkpoint
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({one_line(error, with_type=False, limit=200)})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a state dict")
    state = checkpoint_filter_fn(obj, None)  # type: ignore[arg-type]
    tensors = {key: value for key, value in state.items() if isinstance(value, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{path}: holds no tensors (keys: {_short(list(obj))})")
    return tensors, None


def _short(items: List[str], limit: int = 4) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def read_checkpoint_config(path: PathLike) -> Optional[Dict[str, Any]]:
    """The glmix-viz config of a checkpoint: from the safetensors metadata, else from ``<name>.json`` beside it."""
    path = Path(path)
    if path.suffix == ".safetensors" and path.is_file():
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
            if CONFIG_KEY in metadata:
                return json.loads(metadata[CONFIG_KEY])
        except Exception:
            pass
    sidecar = path.with_suffix(".json")
    if sidecar.is_file():
        try:
            config = json.loads(sidecar.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise CheckpointError(f"{sidecar}: unreadable checkpoint config ({one_line(error, with_type=False, limit=200)})") from None
        if isinstance(config, dict) and config.get("format") == CONFIG_FORMAT:
            return config
    return None


def load_state_dict(path: PathLike) -> Dict[str, torch.Tensor]:
    """The GLNet state dict in a checkpoint file (wrappers and ``module.`` prefixes removed), read safely."""
    return checkpoint_filter_fn(_read_raw(Path(path))[0], None)  # type: ignore[arg-type]


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


def class_names(model: nn.Module) -> Optional[List[str]]:
    """The class names of a model's classifier: from its checkpoint config, or ImageNet's for a 1000-class head."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    names = cfg.get("label_names")
    if names:
        return list(names)
    if getattr(model, "num_classes", 0) == 1000:
        from timm.data import ImageNetInfo

        info = ImageNetInfo()
        return [info.index_to_description(i) for i in range(1000)]
    return None


def demo_checkpoint(folder: Optional[PathLike] = None) -> Optional[Path]:
    """The bundled demo model: the first ``*.safetensors`` (by name) in ``folder`` (default
    ``glmix_viz/assets/demo``), or None when there is none."""
    found = sorted(Path(folder or DEMO_DIR).glob("*.safetensors"))
    return found[0] if found else None


def is_multilabel(model: nn.Module) -> bool:
    """True for multi-label (sigmoid) classifiers, False for single-label (softmax) ones such as ImageNet heads.

    A checkpoint config may say so (``multi_label``); glmix-viz training and fine-tuning always train multi-label
    (BCE on image-level labels), so glmix-viz checkpoints default to True; every other model to False.
    """
    config = getattr(model, "checkpoint_config", None) or {}
    if "multi_label" in config:
        return bool(config["multi_label"])
    return config.get("format") == CONFIG_FORMAT


def default_input_size(model: nn.Module) -> Tuple[int, int]:
    """``(H, W)`` the model was made for, from its config (its checkpoint's, else its variant's; 224 x 224 if none)."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    size = cfg.get("input_size") or (3, 224, 224)
    return int(size[-2]), int(size[-1])


@dataclass(frozen=True)
class ModelInfo:
    """What a tool needs to say about the model it uses; ``str(info)`` is the one-line description.

    Attributes:
        variant: the GLNet variant (timm name).
        class_names: one name per classifier output (``"class <i>"`` when the model names none).
        input_size: ``(H, W)`` the model was made for.
        multi_label: the classifier is multi-label (sigmoid) rather than single-label (softmax).
        source: ``"checkpoint"``, ``"demo"`` (the bundled demo model) or ``"untrained"`` (random weights).
        path: the checkpoint file, or None for an untrained model.
        device: where the model is.
        seed: seed of the random weights of an untrained model, else None.
    """

    variant: str
    class_names: Tuple[str, ...]
    input_size: Tuple[int, int]
    multi_label: bool
    source: str
    path: Optional[Path]
    device: str
    seed: Optional[int] = None

    @property
    def trained(self) -> bool:
        """False for randomly initialised weights."""
        return self.source != "untrained"

    @property
    def description(self) -> str:
        """One line naming the model, e.g. ``glnet_tiny from demo.safetensors on cpu``; says UNTRAINED when so."""
        if not self.trained:
            return f"{self.variant}, UNTRAINED (random weights, seed {self.seed}) on {self.device}"
        return f"{self.variant} from {self.path.name if self.path else '?'} on {self.device}"

    def __str__(self) -> str:
        return self.description


def describe_model(
    model: nn.Module, *, source: Optional[str] = None, seed: Optional[int] = None
) -> ModelInfo:
    """The :class:`ModelInfo` of a built model (a checkpoint's when it was loaded by :func:`load_model`).

    Args:
        model: a GLNet (or any timm model).
        source: overrides the source read from the model (``"checkpoint"`` when it came from a file, else
            ``"untrained"``); pass ``"demo"`` for the bundled model.
        seed: seed of an untrained model's weights.
    """
    config = getattr(model, "checkpoint_config", None) or {}
    cfg = getattr(model, "pretrained_cfg", None) or {}
    variant = str(config.get("variant") or cfg.get("architecture") or type(model).__name__)
    num_classes = int(getattr(model, "num_classes", 0))
    names = class_names(model) or [f"class {index}" for index in range(num_classes)]
    path = Path(config["source"]) if config.get("source") else None
    parameter = next(iter(model.parameters()), None)
    device = str(parameter.device) if parameter is not None else "cpu"
    return ModelInfo(
        variant=variant, class_names=tuple(names), input_size=default_input_size(model),
        multi_label=is_multilabel(model), source=source or ("checkpoint" if path else "untrained"), path=path,
        device=device, seed=seed,
    )


def resolve_model(
    checkpoint: Optional[PathLike] = None,
    model_name: Optional[str] = None,
    *,
    num_classes: Optional[int] = None,
    class_names: Optional[Sequence[str]] = None,
    device: Optional[Union[str, torch.device]] = None,
    fallback: Optional[str] = None,
    seed: int = 0,
) -> Tuple[nn.Module, ModelInfo]:
    """The model a tool should use, and what it is; the one place that makes this choice.

    Order: ``model_name`` (a registered variant with random weights: UNTRAINED, for smoke tests) or ``checkpoint``
    (``load_model``); else the bundled demo model; else, when ``fallback`` names a variant, that variant with random
    weights (seeded, without touching the global random state), described as UNTRAINED so nobody mistakes its
    groupings for learned ones.

    Args:
        checkpoint: a checkpoint file, or None.
        model_name: a registered variant to build with random weights, or None.
        num_classes: classifier outputs of a randomly initialised model (the variant's default when None).
        class_names: names of a randomly initialised model's classes (sets ``num_classes`` when that is None).
        device: where to put the model; CUDA when available if None.
        fallback: variant built with random weights when there is no checkpoint and no demo model.
        seed: seed of random weights.

    Returns:
        ``(model in eval mode, ModelInfo)``.

    Raises:
        CheckpointError: an unknown ``model_name``, an unreadable checkpoint, or nothing to load and no fallback.
    """
    device = default_device(device)
    source = "checkpoint"
    if model_name is None and checkpoint is None:
        checkpoint, source = demo_checkpoint(), "demo"
        if checkpoint is None:
            if fallback is None:
                raise CheckpointError(f"no model: pass --checkpoint PATH; no bundled demo model in {DEMO_DIR}")
            model_name = fallback
    if model_name is None:
        model = load_model(checkpoint, device=device)
        return model, describe_model(model, source=source)
    if model_name not in VARIANTS:
        raise CheckpointError(f"unknown model {model_name!r}; known: {', '.join(VARIANTS)}")
    if num_classes is None and class_names is not None:
        num_classes = len(class_names)
    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = timm.create_model(model_name, **kwargs)
    if class_names is not None:
        model.pretrained_cfg = dict(model.pretrained_cfg, label_names=list(class_names))
    model = model.to(device).eval()
    return model, describe_model(model, source="untrained", seed=seed)


def load_model(
    path: PathLike,
    variant: Optional[str] = None,
    device: Optional[Union[str, torch.device]] = None,
) -> GLNet:
    """Build the GLNet a checkpoint holds and load its weights strictly; return it in eval mode.

    Args:
        path: an official ``.pth`` (a dict holding ``model``, ``model_ema`` or ``state_dict``, or a bare state dict;
            ``module.`` prefixes are stripped), or a ``.safetensors`` file (glmix-viz checkpoints carry their
            config; a bare one is matched like a ``.pth``). A ``segment-train`` checkpoint gives its encoder, a
            classifier-less GLNet (``glmix_viz.segment.model.load_segmenter_backbone``; the whole segmenter is
            ``model.segmenter``).
        variant: a registered variant name; inferred from the keys and shapes when None.
        device: where to put the model; CUDA when available if None.

    Returns:
        The model, with ``model.pretrained_cfg["label_names"]`` holding the class names when the checkpoint names
        them and ``model.checkpoint_config`` the config it was built from.

    Raises:
        CheckpointError: unreadable file, or weights that fit no variant (one line naming the closest variant and
            the missing, unexpected and mis-shaped keys).
    """
    path = Path(path)
    if path.suffix == ".safetensors" and (read_checkpoint_config(path) or {}).get("format") == SEGMENTER_FORMAT:
        from glmix_viz.segment.model import load_segmenter_backbone  # a segmenter: its encoder, for the probe

        return load_segmenter_backbone(path, device=default_device(device))
    tensors, config = _read_raw(path)
    config = config or read_checkpoint_config(path)
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
    from safetensors.torch import save as safetensors_bytes

    from glmix_viz.files import save_bytes_atomic

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    config: Dict[str, Any] = {
        "format": CONFIG_FORMAT,
        "variant": variant,
        "model_args": {key: value for key, value in (model_args or {}).items() if key != "num_classes"},
        "num_classes": int(model.num_classes),
        "class_names": list(class_names) if class_names else None,
        **(extra or {}),
    }
    state = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    save_bytes_atomic(path, safetensors_bytes(state, metadata={CONFIG_KEY: json.dumps(config)}))
    save_bytes_atomic(path.with_suffix(".json"), (json.dumps(config, indent=2) + "\n").encode())
    return config
