"""Open whatever a checkpoint is, and choose the model a tool uses.

One level above the loaders, as in segmentation-models-pytorch's ``hub_mixin``: the config a checkpoint carries
names its kind (its ``format``), and :func:`open_checkpoint` hands the file to the loader of that kind. Each loader
knows only its own kind: :func:`glmix_viz.models.loading.load_model` GLNet classifiers (official ``.pth`` files,
bare state dicts, ``train`` / ``finetune`` checkpoints), :func:`glmix_viz.segment.model.load_segmenter` segmenters
(``segment-train``). A training run's folder opens its best checkpoint (else its last).

What comes back is explicit: :class:`Opened` holds the GLNet the tools look into (a classifier, or the segmenter's
encoder), the segmenter when there is one, and the :class:`~glmix_viz.models.info.ModelInfo` a tool prints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence, Union

import timm
import torch
import torch.nn as nn

from glmix_viz.checkpoints import read_config
from glmix_viz.errors import CheckpointError
from glmix_viz.models.info import ModelInfo, describe_model
from glmix_viz.models.loading import CONFIG_FORMAT, default_device, load_model
from glmix_viz.models.registry import VARIANTS
from glmix_viz.segment.model import SEGMENTER_FORMAT, backbone_of, load_segmenter

__all__ = ["DEMO_DIR", "RUN_CHECKPOINTS", "Opened", "demo_checkpoint", "open_checkpoint", "resolve_model"]

DEMO_DIR = Path(__file__).resolve().parent / "assets" / "demo"
"""Where the bundled demo model lives."""

RUN_CHECKPOINTS = ("best.safetensors", "last.safetensors")
"""What a training run's folder opens, in this order (``train``, ``finetune`` and ``segment-train`` write both)."""

PathLike = Union[str, os.PathLike]
Device = Optional[Union[str, torch.device]]


@dataclass(frozen=True)
class Opened:
    """A checkpoint, opened.

    Attributes:
        model: the GLNet to look into, in eval mode: the classifier, or the segmenter's encoder (``num_classes == 0``,
            sharing the segmenter's weights) with ``checkpoint_config["kind"] == "segmenter"``.
        segmenter: the whole segmenter (an smp model) for a segmenter checkpoint, else None.
        info: what the model is (:func:`~glmix_viz.models.info.describe_model`).
    """

    model: nn.Module
    segmenter: Optional[nn.Module]
    info: ModelInfo

    @property
    def kind(self) -> str:
        """``"segmenter"`` or ``"classifier"``."""
        return "classifier" if self.segmenter is None else "segmenter"


def demo_checkpoint(folder: Optional[PathLike] = None) -> Optional[Path]:
    """The bundled demo model: the first ``*.safetensors`` (by name) in ``folder`` (default :data:`DEMO_DIR`), or None
    when there is none."""
    found = sorted(Path(folder or DEMO_DIR).glob("*.safetensors"))
    return found[0] if found else None


def _open_classifier(path: Path, variant: Optional[str], device: Device) -> Opened:
    model = load_model(path, variant=variant, device=device)
    return Opened(model, None, describe_model(model))


def _open_segmenter(path: Path, variant: Optional[str], device: Device) -> Opened:
    """A segmenter and its encoder; ``variant`` is not needed (the segmenter's config names its backbone)."""
    segmenter = load_segmenter(path, device=device)
    config = segmenter.segmenter_config
    encoder = backbone_of(segmenter)
    encoder.checkpoint_config = {
        "kind": "segmenter", "variant": config["backbone"]["variant"],
        "model_args": dict(config["backbone"].get("model_args") or {}, num_classes=0), "source": str(path),
        "decoder": config.get("decoder"), "segmenter_class_names": config.get("class_names"),
    }
    return Opened(encoder.eval(), segmenter, describe_model(encoder))


_OPENERS: Dict[str, Callable[[Path, Optional[str], Device], Opened]] = {
    CONFIG_FORMAT: _open_classifier,
    SEGMENTER_FORMAT: _open_segmenter,
}
"""Checkpoint ``format`` -> its opener; a file without a glmix-viz config is a classifier's weights."""


def _run_checkpoint(folder: Path) -> Path:
    for name in RUN_CHECKPOINTS:
        if (folder / name).is_file():
            return folder / name
    raise CheckpointError(f"{folder}: a folder without {' or '.join(RUN_CHECKPOINTS)}: not a training run")


def open_checkpoint(path: PathLike, *, variant: Optional[str] = None, device: Device = None) -> Opened:
    """Open whatever ``path`` is: a GLNet classifier, a segmenter, or a training run's folder.

    Args:
        path: a checkpoint file (any that :func:`~glmix_viz.models.loading.load_model` or
            :func:`~glmix_viz.segment.model.load_segmenter` reads), or the output folder of ``train``, ``finetune``
            or ``segment-train`` (its :data:`RUN_CHECKPOINTS`).
        variant: the GLNet variant of a weights file without a config (inferred when None).
        device: where to put the model; CUDA when available if None.

    Returns:
        The :class:`Opened` model, in eval mode.

    Raises:
        CheckpointError: one line naming the file: missing, unreadable, of an unknown format, or weights that fit
            no GLNet variant.
    """
    path = Path(path)
    if path.is_dir():
        path = _run_checkpoint(path)
    config = read_config(path)
    kind = (config or {}).get("format", CONFIG_FORMAT)
    if kind not in _OPENERS:
        raise CheckpointError(f"{path}: unknown checkpoint format {kind!r}; known: {', '.join(_OPENERS)}")
    return _OPENERS[kind](path, variant, default_device(device))


def _random_model(model_name: str, num_classes: Optional[int], class_names: Optional[Sequence[str]],
                  device: torch.device, seed: int) -> nn.Module:
    if model_name not in VARIANTS:
        raise CheckpointError(f"unknown model {model_name!r}; known: {', '.join(VARIANTS)}")
    if num_classes is None and class_names is not None:
        num_classes = len(class_names)
    kwargs: Dict[str, Any] = {} if num_classes is None else {"num_classes": num_classes}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = timm.create_model(model_name, **kwargs)
    if class_names is not None:
        model.pretrained_cfg = dict(model.pretrained_cfg, label_names=list(class_names))
    return model.to(device).eval()


def resolve_model(
    checkpoint: Optional[PathLike] = None,
    model_name: Optional[str] = None,
    *,
    num_classes: Optional[int] = None,
    class_names: Optional[Sequence[str]] = None,
    device: Device = None,
    fallback: Optional[str] = None,
    seed: int = 0,
) -> Opened:
    """The model a tool should use, and what it is; the one place that makes this choice.

    Order: ``model_name`` (a registered variant with random weights: UNTRAINED, for smoke tests) or ``checkpoint``
    (:func:`open_checkpoint`); else the bundled demo model; else, when ``fallback`` names a variant, that variant with
    random weights (seeded, without touching the global random state), described as UNTRAINED so nobody mistakes its
    groupings for learned ones.

    Args:
        checkpoint: a checkpoint file or a training run's folder, or None.
        model_name: a registered variant to build with random weights, or None.
        num_classes: classifier outputs of a randomly initialised model (the variant's default when None).
        class_names: names of a randomly initialised model's classes (sets ``num_classes`` when that is None).
        device: where to put the model; CUDA when available if None.
        fallback: variant built with random weights when there is no checkpoint and no demo model.
        seed: seed of random weights.

    Returns:
        The :class:`Opened` model (in eval mode); ``info.source`` says ``"checkpoint"``, ``"demo"`` or ``"untrained"``.

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
        opened = open_checkpoint(checkpoint, device=device)
        return Opened(opened.model, opened.segmenter, describe_model(opened.model, source=source))
    model = _random_model(model_name, num_classes, class_names, device, seed)
    return Opened(model, None, describe_model(model, source="untrained", seed=seed))
