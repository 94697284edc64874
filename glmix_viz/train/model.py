"""The network a run trains: built from scratch or from an initial checkpoint, and the blocks its slot MIL loss uses."""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

import timm
import torch
import torch.nn as nn

import glmix_viz.models  # noqa: F401  (registers the GLNet variants with timm)
from glmix_viz.errors import CheckpointError
from glmix_viz.models.registry import VARIANTS
from glmix_viz.models.loading import load_model, load_state_dict
from glmix_viz.probe import glmix_block_names
from glmix_viz.train.config import TrainConfig

__all__ = ["build_model", "model_overrides", "default_slot_mil_blocks", "tupleize"]


def model_overrides(config: TrainConfig) -> Dict[str, Any]:
    overrides = dict(config.model_args)
    if config.slot_scale_init is not None:
        overrides["slot_scale_init"] = float(config.slot_scale_init)
    return overrides


def tupleize(args: Dict[str, Any]) -> Dict[str, Any]:
    return {key: tuple(value) if isinstance(value, list) else value for key, value in args.items()}


def build_model(config: TrainConfig, num_classes: int) -> Tuple[nn.Module, Dict[str, Any]]:
    """The GLNet to train and the constructor overrides to record in its checkpoints.

    From scratch: ``timm.create_model(config.model, num_classes=..., **overrides)``. With ``config.init``: the weights
    of that checkpoint (official ``.pth`` or glmix-viz ``.safetensors``), its classifier replaced by a fresh
    ``num_classes`` head. A run that asks for learned slots (``"slot_init": "param"``) may start from a checkpoint with
    pooled slots: its learned slots start from their random initialisation.
    """
    overrides = model_overrides(config)
    drop_path = config.drop_path if config.drop_path is not None else VARIANTS[config.model].drop_path
    if config.init:
        source = load_model(config.init, device="cpu")
        variant = source.checkpoint_config["variant"]
        if variant != config.model:
            raise CheckpointError(f"{config.init}: holds a {variant}, but the run asks for {config.model}")
        recorded = {k: v for k, v in source.checkpoint_config.get("model_args", {}).items() if k != "num_classes"}
        overrides = dict(recorded, **overrides)
        model = timm.create_model(variant, num_classes=num_classes, drop_path_rate=drop_path, **tupleize(overrides))
        state = {k: v for k, v in load_state_dict(config.init).items() if not k.startswith(("head.", "tklb_aux_head."))}
        missing, unexpected = model.load_state_dict(state, strict=False)
        # a checkpoint with pooled slots may start a run with learned slots ("slot_init": "param"): those start fresh
        if overrides.get("slot_init") == "param":
            missing = [key for key in missing if not key.endswith(".init_slots")]
        if unexpected or any(not key.startswith(("head.", "tklb_aux_head.")) for key in missing):
            raise CheckpointError(
                f"{config.init}: does not fit {variant} (missing {missing[:3]}, unexpected {unexpected[:3]})")
        if config.slot_scale_init is not None:
            with torch.no_grad():
                for name, param in model.named_parameters():
                    if name.endswith("slot_scale"):
                        param.fill_(config.slot_scale_init)
    else:
        model = timm.create_model(config.model, num_classes=num_classes, drop_path_rate=drop_path,
                                  **tupleize(overrides))
    return model, overrides


def default_slot_mil_blocks(model: nn.Module) -> List[str]:
    names = glmix_block_names(model)
    if not names:
        return []
    deepest = max(int(name.split(".")[1]) for name in names)
    return [name for name in names if int(name.split(".")[1]) == deepest]

