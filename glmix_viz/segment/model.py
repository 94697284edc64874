"""The segmenter: a segmentation-models-pytorch decoder on a GLNet encoder, and its checkpoints.

GLNet enters smp as a timm universal encoder (``tu-glnet_<variant>``; importing glmix_viz registers the variants in
timm). smp builds the encoder with ``features_only=True``, which wraps the GLNet in timm's ``FeatureGetterNet``: the
four stage outputs at strides 4, 8, 16, 32 (a "transformer-style" hierarchy for smp, which adds an empty stride-2
level). The GLNet itself sits at ``segmenter.encoder.model.model`` with its classifier removed, so its keys are the
backbone keys of any GLNet checkpoint under the prefix :data:`ENCODER_PREFIX`.

Decoders: ``upernet`` (default) and ``unet`` resize every level to its neighbour's size, so they also take GLNet
variants with a stride-1 transition (the demo model's ``downsample_strides=(2, 2, 1)``: strides 4, 8, 16, 16).
``fpn`` upsamples by exactly 2 between levels and needs the standard 4, 8, 16, 32; it is refused with a clear message
otherwise. ``deeplabv3plus`` asks the encoder for ``output_stride`` 16: GLNet's last transition then keeps its
weights and drops its stride (``GLNet(output_stride=...)``), so official checkpoints still initialise it.

Checkpoints are safetensors with a JSON config (format :data:`SEGMENTER_FORMAT`) in the file's metadata and in
``<name>.json`` beside it (:mod:`glmix_viz.checkpoints`): backbone variant and constructor overrides, decoder and its
options, classes, input size. :func:`glmix_viz.open.open_checkpoint` opens them beside the classifiers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import segmentation_models_pytorch as smp
import timm
import torch
import torch.nn as nn

import glmix_viz.models  # noqa: F401 - registers the GLNet variants with timm (smp builds ``tu-glnet_*``)
from glmix_viz.checkpoints import read_config, read_safetensors, write_checkpoint
from glmix_viz.errors import CheckpointError
from glmix_viz.models.loading import default_device, infer_variant, load_state_dict
from glmix_viz.models.registry import VARIANTS

__all__ = [
    "DECODERS",
    "ENCODER_PREFIX",
    "SEGMENTER_FORMAT",
    "backbone_of",
    "build_segmenter",
    "init_backbone",
    "load_segmenter",
    "read_backbone",
    "save_segmenter",
    "segmenter_class_names",
]

SEGMENTER_FORMAT = "glmix-viz-segmenter/1"
"""The ``format`` of a segmenter checkpoint's config."""

ENCODER_PREFIX = "encoder.model.model."
DECODERS: Dict[str, str] = {"upernet": "UPerNet", "fpn": "FPN", "unet": "Unet", "deeplabv3plus": "DeepLabV3Plus"}
"""``--decoder`` name -> smp class."""

_DECODER_DEFAULTS: Dict[str, Dict[str, Any]] = {
    "upernet": {"decoder_channels": 256},
    "fpn": {},
    "unet": {"encoder_depth": 5},
    "deeplabv3plus": {"encoder_output_stride": 16},  # GLNet(output_stride=16): the last transition keeps its weights
}
PathLike = Union[str, os.PathLike]


def _tupleize(args: Dict[str, Any]) -> Dict[str, Any]:
    return {key: tuple(value) if isinstance(value, list) else value for key, value in (args or {}).items()}


def _reductions(variant: str, model_args: Dict[str, Any]) -> List[int]:
    with torch.device("meta"):
        model = timm.create_model(variant, features_only=True, **_tupleize(model_args))
    return list(model.feature_info.reduction())


def build_segmenter(
    backbone: str,
    num_classes: int,
    *,
    decoder: str = "upernet",
    model_args: Optional[Dict[str, Any]] = None,
    decoder_args: Optional[Dict[str, Any]] = None,
) -> nn.Module:
    """A randomly initialised smp segmenter on a GLNet encoder.

    Args:
        backbone: a registered GLNet variant (``glnet_stl``, ``glnet_tiny`` ...).
        num_classes: output classes, background included (21 for VOC, 81 for COCO).
        decoder: a key of :data:`DECODERS`.
        model_args: GLNet constructor overrides (e.g. a checkpoint's ``downsample_strides``).
        decoder_args: smp decoder options, over the defaults; an int ``decoder_channels`` sets the width of any
            decoder (see :func:`_decoder_width`).

    Returns:
        The smp model: images ``(B, 3, H, W)`` (H, W multiples of 32) -> logits ``(B, num_classes, H, W)``.

    Raises:
        ValueError: unknown decoder or backbone, or ``fpn`` on a backbone without the 4/8/16/32 strides.
    """
    if decoder not in DECODERS:
        raise ValueError(f"unknown decoder {decoder!r}; known: {', '.join(DECODERS)}")
    if backbone not in VARIANTS:
        raise ValueError(f"unknown backbone {backbone!r}; known: {', '.join(VARIANTS)}")
    model_args = _tupleize(model_args or {})
    model_args.pop("num_classes", None)
    reductions = _reductions(backbone, model_args)
    if decoder == "fpn" and reductions != [4, 8, 16, 32]:
        raise ValueError(
            f"decoder fpn needs encoder strides 4/8/16/32; {backbone} with {model_args} has "
            f"{'/'.join(map(str, reductions))}: use --decoder upernet or unet"
        )
    options = dict(_DECODER_DEFAULTS[decoder], **_decoder_width(decoder, decoder_args or {}))
    cls = getattr(smp, DECODERS[decoder])
    return cls(encoder_name=f"tu-{backbone}", encoder_weights=None, classes=num_classes, **options, **model_args)


def _decoder_width(decoder: str, decoder_args: Dict[str, Any]) -> Dict[str, Any]:
    """One ``decoder_channels`` width ``C`` for every decoder: UPerNet's own; Unet ``(C, C/2, C/4, C/8, C/16)``
    (at least 8); FPN pyramid ``C``, segmentation branch ``C/2`` rounded down to a multiple of 32 (at least 32)."""
    args = dict(decoder_args)
    width = args.get("decoder_channels")
    if not isinstance(width, int):
        return args
    if decoder == "unet":
        args["decoder_channels"] = tuple(max(8, width // 2 ** level) for level in range(5))
    elif decoder == "fpn":
        del args["decoder_channels"]
        # the segmentation branch has GroupNorm(32): a multiple of 32
        args.update(decoder_pyramid_channels=width, decoder_segmentation_channels=max(32, width // 64 * 32))
    return args


def backbone_of(segmenter: nn.Module) -> nn.Module:
    """The GLNet inside a segmenter (classifier-less: ``num_classes == 0``); shares its weights."""
    return segmenter.encoder.model.model


def read_backbone(path: PathLike) -> Tuple[str, Dict[str, Any], Dict[str, torch.Tensor]]:
    """The GLNet backbone of any checkpoint: official ``.pth``, ``train`` / ``finetune`` safetensors, or a segmenter.

    Read safely (weights-only / safetensors, through :mod:`glmix_viz.models.loading` and :mod:`glmix_viz.checkpoints`).
    The classifier (``head.*``, ``tklb_aux_head.*``) is dropped.

    Returns:
        ``(variant, model_args, state)``: the variant, its constructor overrides, and the backbone state dict.

    Raises:
        CheckpointError: unreadable, or weights that fit no GLNet variant.
    """
    path = Path(path)
    config = read_config(path) or {}
    if config.get("format") == SEGMENTER_FORMAT:
        state = read_safetensors(path)[0]
        state = {key[len(ENCODER_PREFIX):]: value for key, value in state.items() if key.startswith(ENCODER_PREFIX)}
        backbone = config["backbone"]
        return backbone["variant"], dict(backbone.get("model_args") or {}), state
    state = load_state_dict(path)
    variant = config.get("variant") or infer_variant(state, path=path)
    model_args = dict(config.get("model_args") or {})
    model_args.pop("num_classes", None)
    backbone_state = {key: value for key, value in state.items() if not key.startswith(("head.", "tklb_aux_head."))}
    return variant, model_args, backbone_state


def init_backbone(segmenter: nn.Module, state: Dict[str, torch.Tensor], *, source: str = "checkpoint") -> int:
    """Load a GLNet backbone state dict into a segmenter's encoder; every encoder weight must be covered.

    Returns:
        The number of tensors loaded.

    Raises:
        CheckpointError: the state misses encoder keys or has mis-shaped ones (a different variant or overrides).
    """
    backbone = backbone_of(segmenter)
    expected = backbone.state_dict()
    missing = [key for key in expected if key not in state]
    misshaped = [key for key in expected if key in state and tuple(state[key].shape) != tuple(expected[key].shape)]
    if missing or misshaped:
        detail = f"missing {missing[:3]}" if missing else f"mis-shaped {misshaped[:3]}"
        raise CheckpointError(f"{source}: does not fit the segmenter's encoder ({detail}; {len(missing)} missing, "
                              f"{len(misshaped)} mis-shaped)")
    backbone.load_state_dict({key: state[key] for key in expected}, strict=True)
    return len(expected)


def save_segmenter(segmenter: nn.Module, path: PathLike, config: Dict[str, Any]) -> Dict[str, Any]:
    """Write a segmenter's weights as safetensors, its config in the metadata and in ``<name>.json``; atomically.

    Args:
        segmenter: the smp model (a DDP wrapper is unwrapped).
        path: ``.safetensors`` destination.
        config: ``backbone`` (``variant``, ``model_args``), ``decoder``, ``decoder_args``, ``num_classes``,
            ``class_names``, ``input_size`` and anything else worth keeping (epoch, metrics).

    Returns:
        The config as written (with ``format``).
    """
    module = getattr(segmenter, "module", segmenter)
    return write_checkpoint(path, module.state_dict(), dict(config, format=SEGMENTER_FORMAT))


def load_segmenter(path: PathLike, device: Optional[Union[str, torch.device]] = None) -> nn.Module:
    """Rebuild a segmenter from its checkpoint, load its weights strictly; eval mode, on ``device``.

    Returns:
        The smp model, with ``segmenter_config`` (the checkpoint's config plus ``source``).

    Raises:
        CheckpointError: not a segmenter checkpoint, unreadable, or weights that do not fit its config.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    config = read_config(path)
    if not config or config.get("format") != SEGMENTER_FORMAT:
        raise CheckpointError(f"{path}: not a glmix-viz segmenter checkpoint (train one with glmix-viz segment-train)")
    backbone = config["backbone"]
    try:
        segmenter = build_segmenter(backbone["variant"], int(config["num_classes"]), decoder=config["decoder"],
                                    model_args=backbone.get("model_args"), decoder_args=config.get("decoder_args"))
    except (KeyError, ValueError) as error:
        raise CheckpointError(f"{path}: config does not describe a segmenter ({error})") from None
    state = read_safetensors(path)[0]
    result = segmenter.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(f"{path}: weights do not fit the config (missing {result.missing_keys[:3]}, "
                              f"unexpected {result.unexpected_keys[:3]})")
    segmenter.segmenter_config = dict(config, source=str(path))
    return segmenter.to(default_device(device)).eval()


def segmenter_class_names(segmenter: nn.Module, fallback: Optional[Sequence[str]] = None) -> Optional[List[str]]:
    """The class names a segmenter was trained on (background first), else ``fallback``."""
    names = (getattr(segmenter, "segmenter_config", None) or {}).get("class_names")
    return list(names) if names else (list(fallback) if fallback is not None else None)
