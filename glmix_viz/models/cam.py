"""Class activation maps taken model-side, through the timm classifier contract (``get_classifier()``).

Classic CAM (Zhou et al., CVPR 2016) of a network whose logits are a linear classifier of globally averaged features:
``CAM_k(p) = ReLU(w_k . f(p))``, the classifier's weights dotted with the final feature map at every position (the
bias is left out: it does not depend on the position). A model whose logits are formed differently says so by
defining ``cam_weights(index)``; GLNet's token-labelling variant does, in its own file.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn as nn

__all__ = ["cam_weights", "class_activation_maps"]


def cam_weights(model: nn.Module, index: torch.Tensor) -> torch.Tensor:
    """The (K, C) per-position class weights of ``model`` for class indices ``index`` (K,).

    Uses ``model.cam_weights`` when the model defines it, else the rows of its linear ``get_classifier()``.

    Raises:
        ValueError: the model has no linear classifier.
    """
    own = getattr(model, "cam_weights", None)
    if callable(own):
        return own(index)
    classifier = model.get_classifier() if hasattr(model, "get_classifier") else getattr(model, "head", None)
    if not isinstance(classifier, nn.Linear):
        raise ValueError(f"{type(model).__name__} has no linear classifier head; class maps need one")
    return classifier.weight.index_select(0, index)


def class_activation_maps(
    model: nn.Module, features: torch.Tensor, classes: Optional[Sequence[int]] = None
) -> torch.Tensor:
    """Classic CAM of ``classes`` on a final feature map.

    Args:
        model: a classifier with a linear ``get_classifier()`` (a GLNet, or any timm model of that kind).
        features: ``(N, C, h, w)`` final feature map (``model.forward_features``).
        classes: model class indices (0-based) to compute maps for, ``K`` of them; every class when None.

    Returns:
        ``(N, K, h, w)`` non-negative maps, in ``features``' dtype.
    """
    if classes is None:
        classes = range(int(getattr(model, "num_classes", 0)))
    index = torch.as_tensor(list(classes), dtype=torch.long, device=features.device)
    weight = cam_weights(model, index).to(features.dtype)
    return torch.relu(torch.einsum("kc,nchw->nkhw", weight, features))
