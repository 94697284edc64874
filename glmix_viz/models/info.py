"""Facts about a built model that tools ask for: its classes, input size and normalisation, how its logits become
probabilities, and a description of where it came from.

Read from what :func:`glmix_viz.models.loading.load_model` leaves on the model (``checkpoint_config``) and from timm's
``pretrained_cfg``; nothing here loads or runs a model.

* :class:`ModelInfo` / :func:`describe_model` - what a tool says about the model it uses (one line with ``str()``);
* :func:`model_summary` - the same facts as a JSON-ready dict with the parameter count, for run summaries.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from timm.data import ImageNetInfo

from glmix_viz.images import IMAGENET_MEAN, IMAGENET_STD
from glmix_viz.models.loading import CONFIG_FORMAT

__all__ = [
    "ModelInfo",
    "class_names",
    "class_probabilities",
    "default_input_size",
    "describe_model",
    "input_mean_std",
    "is_multilabel",
    "model_input_size",
    "model_summary",
]


def class_names(model: nn.Module) -> Optional[List[str]]:
    """The class names of a model's classifier: from its checkpoint config, or ImageNet's for a 1000-class head."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    names = cfg.get("label_names")
    if names:
        return list(names)
    if getattr(model, "num_classes", 0) == 1000:
        info = ImageNetInfo()
        return [info.index_to_description(i) for i in range(1000)]
    return None


def is_multilabel(model: nn.Module) -> bool:
    """True for multi-label (sigmoid) classifiers, False for single-label (softmax) ones such as ImageNet heads.

    A checkpoint config may say so (``multi_label``); glmix-viz training and fine-tuning always train multi-label
    (BCE on image-level labels), so glmix-viz checkpoints default to True; every other model to False.
    """
    config = getattr(model, "checkpoint_config", None) or {}
    if "multi_label" in config:
        return bool(config["multi_label"])
    return config.get("format") == CONFIG_FORMAT


def class_probabilities(logits: torch.Tensor, multi_label: bool) -> torch.Tensor:
    """Class probabilities from logits ``(..., K)``: sigmoid for a multi-label model, softmax over ``K`` otherwise
    (pass :func:`is_multilabel` of the model)."""
    return torch.sigmoid(logits) if multi_label else torch.softmax(logits, dim=-1)


def default_input_size(model: nn.Module) -> Tuple[int, int]:
    """``(H, W)`` the model was made for, from its config (its checkpoint's, else its variant's; 224 x 224 if none)."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    size = cfg.get("input_size") or (3, 224, 224)
    return int(size[-2]), int(size[-1])


def model_input_size(model: nn.Module) -> int:
    """The longer input side the model was trained at (from its config), e.g. 224 or 128."""
    return max(default_input_size(model))


def input_mean_std(model: nn.Module) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
    """The normalisation mean and std of the model's inputs (ImageNet's unless its config says otherwise)."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    return tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD))


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


def _variant(model: nn.Module) -> str:
    config = getattr(model, "checkpoint_config", None) or {}
    cfg = getattr(model, "pretrained_cfg", None) or {}
    return str(config.get("variant") or cfg.get("architecture") or type(model).__name__)


def describe_model(model: nn.Module, *, source: Optional[str] = None, seed: Optional[int] = None) -> ModelInfo:
    """The :class:`ModelInfo` of a built model (a checkpoint's when it was loaded by ``load_model``).

    Args:
        model: a GLNet (or any timm model).
        source: overrides the source read from the model (``"checkpoint"`` when it came from a file, else
            ``"untrained"``); pass ``"demo"`` for the bundled model.
        seed: seed of an untrained model's weights.
    """
    config = getattr(model, "checkpoint_config", None) or {}
    num_classes = int(getattr(model, "num_classes", 0))
    names = class_names(model) or [f"class {index}" for index in range(num_classes)]
    path = Path(config["source"]) if config.get("source") else None
    parameter = next(iter(model.parameters()), None)
    device = str(parameter.device) if parameter is not None else "cpu"
    return ModelInfo(
        variant=_variant(model), class_names=tuple(names), input_size=default_input_size(model),
        multi_label=is_multilabel(model), source=source or ("checkpoint" if path else "untrained"), path=path,
        device=device, seed=seed,
    )


def model_summary(model: nn.Module) -> Dict[str, Any]:
    """Variant, checkpoint, classes and parameter count of a model as a JSON-ready dict, for run summaries.

    ``class_names`` is ``"imagenet-1k"`` for a 1000-class head rather than the thousand names.
    """
    config = getattr(model, "checkpoint_config", None) or {}
    num_classes = int(getattr(model, "num_classes", 0) or 0)
    return {
        "variant": _variant(model),
        "checkpoint": config.get("source"),
        "num_classes": num_classes,
        "class_names": class_names(model) if getattr(model, "num_classes", 0) != 1000 else "imagenet-1k",
        "parameters": int(sum(parameter.numel() for parameter in model.parameters())),
        "trained": config.get("source") is not None,
    }
