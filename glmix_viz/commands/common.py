"""Helpers shared by the subcommands: choosing the model (``--checkpoint`` / ``--model``) and the data set
(``--voc-root`` / ``--coco-root``).

Like every command module, this one imports nothing heavy at its top (torch, timm, the data readers): ``glmix-viz
--help`` builds every command's parser, and must not wait for torch. The library is imported inside the functions
that run a command.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Tuple

if TYPE_CHECKING:
    import torch.nn as nn

    from glmix_viz.models.info import ModelInfo


def load_model_from_args(args: argparse.Namespace, *,
                         num_classes: Optional[int] = None) -> Tuple["nn.Module", "ModelInfo"]:
    """The model named by ``args.checkpoint`` or ``args.model``, else the bundled demo model; and a description.

    ``--checkpoint`` takes any checkpoint :func:`glmix_viz.open.open_checkpoint` opens (a segmenter gives its
    encoder). ``--model NAME`` builds a randomly initialised variant (with a warning): useful only for smoke tests.
    """
    from glmix_viz.open import resolve_model

    opened = resolve_model(getattr(args, "checkpoint", None), getattr(args, "model", None),
                           num_classes=num_classes, device=getattr(args, "device", None))
    if not opened.info.trained:
        print(f"WARNING: {opened.info}: its groupings, classes and masks mean nothing (smoke tests only)",
              file=sys.stderr)
    return opened.model, opened.info


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """``--voc-root DIR`` or ``--coco-root DIR`` (one of them, required), and ``--coco-mask-cache DIR``."""
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--voc-root", type=Path, help="VOC2012 folder, VOCdevkit, or the folder above")
    group.add_argument("--coco-root", type=Path, help="COCO-2014 folder (train2014/, val2014/, annotations/)")
    parser.add_argument("--coco-mask-cache", type=Path, default=None, metavar="DIR",
                        help="with --coco-root: keep the 81-class masks built from the annotations as PNGs here")


def open_dataset(args: argparse.Namespace, split: Optional[str] = None):
    """The reader ``add_dataset_arguments`` chose (a VOCDataset or a COCODataset) for ``split`` (default
    ``args.split``)."""
    split = args.split if split is None else split
    if getattr(args, "coco_root", None) is not None:
        from glmix_viz.data.coco import COCODataset

        return COCODataset(args.coco_root, split, mask_cache=getattr(args, "coco_mask_cache", None))
    from glmix_viz.data.voc import VOCDataset

    return VOCDataset(args.voc_root, split)


def positive_scales(text: str) -> Tuple[float, ...]:
    """``--scales 1.0,0.5,1.5``: comma-separated positive numbers (``pseudo-label`` and ``segment``)."""
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"scales must be comma-separated numbers, e.g. 1.0,0.5,1.5; got {text!r}")
    if not values or any(value <= 0 for value in values):
        raise argparse.ArgumentTypeError(f"scales must be positive, got {text!r}")
    return values
