"""Run a GLNet on one image and collect everything worth looking at: predictions and every block's groupings.

This is the one entry point the CLI, the app and the notebooks share::

    analysis = analyze_image(model, image, size=224)
    analysis.top_k(5)                     # [(class name, probability), ...]
    analysis.records["stages.2.blocks.0"]  # GroupingRecord for the single image (batch of 1)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn

from glmix_viz.io import to_tensor
from glmix_viz.models.loading import class_names, default_device
from glmix_viz.probe import GroupingProbe, GroupingRecord

__all__ = ["Analysis", "analyze_image", "is_multilabel", "model_input_size", "model_mean_std", "predict_probs"]


def model_input_size(model: nn.Module) -> int:
    """The longer input side the model was trained at (from its config), e.g. 224 or 128."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    return int(max(cfg.get("input_size", (3, 224, 224))[1:]))


def model_mean_std(model: nn.Module) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
    """The normalisation mean and std of the model's inputs (ImageNet's unless its config says otherwise)."""
    from glmix_viz.io import IMAGENET_MEAN, IMAGENET_STD

    cfg = getattr(model, "pretrained_cfg", None) or {}
    return tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD))


def is_multilabel(model: nn.Module) -> bool:
    """True for multi-label (sigmoid) classifiers: glmix-viz checkpoints; False for 1000-class ImageNet heads."""
    config = getattr(model, "checkpoint_config", None) or {}
    if "multi_label" in config:
        return bool(config["multi_label"])
    return getattr(model, "num_classes", 0) not in (0, 1000)


def predict_probs(model: nn.Module, logits: torch.Tensor) -> torch.Tensor:
    """Class probabilities from logits (B, K): sigmoid for multi-label models, softmax otherwise."""
    return torch.sigmoid(logits) if is_multilabel(model) else torch.softmax(logits, dim=-1)


@dataclass
class Analysis:
    """What one forward pass of one image shows.

    Attributes:
        image: the input image as given, RGB uint8 (H, W, 3).
        input_size: (h, w) the network saw.
        probs: (K,) class probabilities (sigmoid or softmax, see ``is_multilabel``), or None without a head.
        class_names: names of the K classes, or None.
        records: GLMix block path -> GroupingRecord of this image (tensors on the CPU, batch of 1).
        features: (C, h/32, w/32) final feature map (after the pre-head norm), on the CPU.
    """

    image: np.ndarray
    input_size: Tuple[int, int]
    probs: Optional[np.ndarray]
    class_names: Optional[List[str]]
    records: Dict[str, GroupingRecord] = field(default_factory=dict)
    features: Optional[torch.Tensor] = None

    @property
    def block_names(self) -> List[str]:
        return list(self.records)

    def top_k(self, k: int = 5) -> List[Tuple[str, float]]:
        """The k most probable classes as (name, probability), best first."""
        if self.probs is None:
            return []
        order = np.argsort(-self.probs)[:k]
        names = self.class_names or [f"class {i}" for i in range(len(self.probs))]
        return [(names[i], float(self.probs[i])) for i in order]

    def dispatch(self, block: str) -> np.ndarray:
        """(S, h, w) float32 dispatch weights of a block: each pixel's distribution over slots."""
        return self.records[block].dispatch[0].numpy()


@torch.no_grad()
def analyze_image(
    model: nn.Module,
    image: np.ndarray,
    *,
    size: Optional[Union[int, Tuple[int, int]]] = None,
    blocks: Optional[Sequence[Union[str, int]]] = None,
    slot_attention: bool = False,
    device: Optional[Union[str, torch.device]] = None,
) -> Analysis:
    """Run ``model`` on one RGB image with a grouping probe on its GLMix blocks.

    Args:
        model: a GLNet (eval mode is set here).
        image: RGB uint8 (H, W, 3).
        size: input size: an int sets the longer side (rounded to multiples of 32), (h, w) is exact; the model's
            configured input size when None.
        blocks: GLMix blocks to record (paths or indices); all when None.
        slot_attention: also record slot-attention weights.
        device: where to run; the model's own device when None.

    Returns:
        An ``Analysis`` with tensors moved to the CPU.
    """
    model.eval()
    if device is None:
        device = next(model.parameters()).device
    device = default_device(device)
    mean, std = model_mean_std(model)
    x = to_tensor(image, size=size or model_input_size(model), mean=mean, std=std).to(device)
    with GroupingProbe(model, blocks, slot_attention=slot_attention, to_cpu=True) as probe:
        features = model.forward_features(x)
        logits = model.forward_head(features) if getattr(model, "num_classes", 0) > 0 else None
    probs = predict_probs(model, logits)[0].float().cpu().numpy() if logits is not None else None
    return Analysis(
        image=image,
        input_size=tuple(x.shape[-2:]),
        probs=probs,
        class_names=class_names(model),
        records=dict(probe.records),
        features=features[0].float().cpu(),
    )
