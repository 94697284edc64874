"""Helpers shared by the subcommands: choosing the model from ``--checkpoint`` / ``--model``."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Optional, Tuple

import torch.nn as nn

if TYPE_CHECKING:
    from glmix_viz.models.loading import ModelInfo


def load_model_from_args(args: argparse.Namespace, *,
                         num_classes: Optional[int] = None) -> Tuple[nn.Module, "ModelInfo"]:
    """The model named by ``args.checkpoint`` or ``args.model``, else the bundled demo model; and a description.

    ``--model NAME`` builds a randomly initialised variant (with a warning): useful only for smoke tests.
    """
    from glmix_viz.models.loading import resolve_model

    model, info = resolve_model(getattr(args, "checkpoint", None), getattr(args, "model", None),
                                num_classes=num_classes, device=getattr(args, "device", None))
    if not info.trained:
        print(f"WARNING: {info}: its groupings, classes and masks mean nothing (smoke tests only)", file=sys.stderr)
    return model, info
