"""Helpers shared by the subcommands: choosing the model (``--checkpoint`` / ``--model``) and the data set
(``--data PATH``, with ``--voc-root`` / ``--coco-root`` as aliases).

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

    from glmix_viz.data.base import Split
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


def add_dataset_arguments(parser: argparse.ArgumentParser, *, required: bool = True, split: Optional[str] = None,
                          split_help: str = "") -> argparse._MutuallyExclusiveGroup:
    """``--data PATH`` (any format :func:`~glmix_viz.data.registry.open_split` recognises), with ``--voc-root`` and
    ``--coco-root`` kept as aliases; ``--coco-mask-cache DIR``; and ``--split`` when ``split`` is given (its default).

    Returns the group, so a command can add another source to it (atlas's ``--images``).
    """
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--data", type=Path, metavar="PATH",
                       help="data set folder: segmentation folder (images/ masks/ classes.txt), labelled folder "
                            "(images/ labels.csv classes.txt), VOC layout, COCO-2014 or plain images "
                            "(docs/own_data.md)")
    group.add_argument("--voc-root", dest="data", type=Path, metavar="DIR", help="alias of --data (VOC layout)")
    group.add_argument("--coco-root", dest="data", type=Path, metavar="DIR", help="alias of --data (COCO-2014)")
    parser.add_argument("--coco-mask-cache", type=Path, default=None, metavar="DIR",
                        help="COCO data: keep the 81-class masks built from the annotations as PNGs here")
    if split is not None:
        parser.add_argument("--split", default=split,
                            help=split_help or f"split of --data (default {split}; a folder without splits/: all)")
    return group


def open_dataset(args: argparse.Namespace, split: Optional[str] = None) -> "Split":
    """The split of ``--data`` (:func:`~glmix_viz.data.registry.open_split`) named ``split`` (default
    ``args.split``)."""
    from glmix_viz.data.registry import open_split  # the readers: only when a command runs

    split = getattr(args, "split", None) if split is None else split
    options = {}
    if getattr(args, "coco_mask_cache", None) is not None:
        options["mask_cache"] = args.coco_mask_cache
    return open_split(args.data, split, **options)


def require_masks(dataset: "Split", command: str) -> None:
    """Refuse, in one line, a data set without masks for a command that scores against them."""
    from glmix_viz.errors import DataError

    if not dataset.has_masks:
        raise DataError(f"{dataset.root}: {command} needs ground-truth masks, and this data set has none "
                        "(a labelled or plain image folder); use a segmentation folder (images/ masks/ classes.txt)")


def positive_scales(text: str) -> Tuple[float, ...]:
    """``--scales 1.0,0.5,1.5``: comma-separated positive numbers (``pseudo-label`` and ``segment``)."""
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"scales must be comma-separated numbers, e.g. 1.0,0.5,1.5; got {text!r}")
    if not values or any(value <= 0 for value in values):
        raise argparse.ArgumentTypeError(f"scales must be positive, got {text!r}")
    return values


def _dilations(text: str) -> Tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"dilations look like 1,2,4,8, got {text!r}") from None


def add_refine_arguments(parser: argparse.ArgumentParser, *, default: str = "crf", crf_flags: bool = True) -> None:
    """``--refine {crf,par,none}``, ``--crf`` / ``--no-crf`` (aliases of ``--refine crf`` / ``none``) and the PAR
    settings (``--par-*``, defaults and their sources: :mod:`glmix_viz.refine`)."""
    from glmix_viz.commands.library_values import VALUES  # the library's values, without importing torch

    par = argparse.Namespace(**VALUES["refine"]["par_defaults"])
    parser.add_argument("--refine", choices=VALUES["refine"]["refinements"], default=None,
                        help=f"refinement of the class maps: crf (dense CRF, pydensecrf, CPU), par (pixel-adaptive "
                        f"refinement of ToCo/AFA, torch, CPU or CUDA), none (arg-max) (default: {default})")
    if crf_flags:
        parser.add_argument("--crf", action=argparse.BooleanOptionalAction, default=None,
                            help="alias: --crf is --refine crf, --no-crf is --refine none")
    group = parser.add_argument_group("PAR (--refine par; defaults: ToCo/AFA's published values)")
    group.add_argument("--par-dilations", type=_dilations, default=par.dilations, metavar="D1,D2,...",
                       help="neighbourhood dilations, 8 neighbours each (default: %s)"
                       % ",".join(str(d) for d in par.dilations))
    group.add_argument("--par-iterations", type=int, default=par.iterations,
                       help="propagation steps (default: %(default)s)")
    group.add_argument("--par-kernel-width", type=float, default=par.kernel_width,
                       help="w1: width of the colour and position kernels, in neighbourhood std (default: %(default)s)")
    group.add_argument("--par-position-weight", type=float, default=par.position_weight,
                       help="w2: weight of the position kernel (default: %(default)s)")
    group.add_argument("--par-scale", type=float, default=par.scale,
                       help="working scale of PAR, 0 < s <= 1 (default: %(default)s, ToCo's down_scale=2)")
    group.add_argument("--par-confidence", type=float, default=par.confidence,
                       help="mark pixels whose refined probability is below this 255 (default: off)")
    parser.set_defaults(refine_default=default)


def refine_name(args: argparse.Namespace) -> str:
    """The refinement the flags ask for (``--refine``, else the ``--crf`` alias, else the command's default)."""
    crf_flag = getattr(args, "crf", None)
    if args.refine is not None and crf_flag is not None and args.refine != ("crf" if crf_flag else "none"):
        raise ValueError(f"--{'' if crf_flag else 'no-'}crf contradicts --refine {args.refine}")
    if args.refine is not None:
        return args.refine
    if crf_flag is not None:
        return "crf" if crf_flag else "none"
    return args.refine_default


def par_params(args: argparse.Namespace, device: Optional[str] = None):
    """The :class:`~glmix_viz.refine.PARParams` of the ``--par-*`` flags (a one-line ``ValueError`` when out of
    range; a CUDA ``device`` where none exists is refused too)."""
    from glmix_viz.refine import PARParams, check_device

    params = PARParams(dilations=args.par_dilations, iterations=args.par_iterations,
                       kernel_width=args.par_kernel_width, position_weight=args.par_position_weight,
                       scale=args.par_scale, confidence=args.par_confidence, device=device)
    check_device(device)
    return params
