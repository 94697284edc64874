"""Helpers shared by the subcommands: choosing the model from ``--checkpoint`` / ``--model``."""

from __future__ import annotations

import argparse
import sys
from typing import Tuple

import torch.nn as nn


def load_model_from_args(args: argparse.Namespace, *, num_classes: int | None = None) -> Tuple[nn.Module, str]:
    """The model named by ``args.checkpoint`` or ``args.model``, else the bundled demo model; and a description.

    ``--model NAME`` builds a randomly initialised variant (with a warning): useful only for smoke tests.
    """
    import timm

    from glmix_viz.errors import CheckpointError
    from glmix_viz.models.loading import default_device, demo_checkpoint, load_model

    device = default_device(getattr(args, "device", None))
    checkpoint = getattr(args, "checkpoint", None)
    if getattr(args, "model", None):
        kwargs = {} if num_classes is None else {"num_classes": num_classes}
        try:
            model = timm.create_model(args.model, **kwargs)
        except RuntimeError as error:  # timm's "Unknown model"
            raise CheckpointError(f"--model {args.model}: {error}") from None
        print(f"warning: {args.model} has random weights (untrained): its groupings and classes mean nothing",
              file=sys.stderr)
        return model.to(device).eval(), f"{args.model} (random weights) on {device}"
    if checkpoint is None:
        checkpoint = demo_checkpoint()
        if checkpoint is None:
            raise CheckpointError("no --checkpoint given and the package ships no demo model")
    model = load_model(checkpoint, device=device)
    return model, f"{model.checkpoint_config['variant']} from {checkpoint} on {device}"
