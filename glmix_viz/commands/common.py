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


def _dilations(text: str) -> Tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"dilations look like 1,2,4,8, got {text!r}") from None


def add_refine_arguments(parser: argparse.ArgumentParser, *, default: str = "crf", crf_flags: bool = True) -> None:
    """``--refine {crf,par,none}``, ``--crf`` / ``--no-crf`` (aliases of ``--refine crf`` / ``none``) and the PAR
    settings (``--par-*``, defaults and their sources: :mod:`glmix_viz.pseudo.refine`)."""
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
    """The :class:`~glmix_viz.pseudo.refine.PARParams` of the ``--par-*`` flags (a one-line ``ValueError`` when out of
    range; a CUDA ``device`` where none exists is refused too)."""
    from glmix_viz.pseudo.refine import PARParams, check_device

    params = PARParams(dilations=args.par_dilations, iterations=args.par_iterations,
                       kernel_width=args.par_kernel_width, position_weight=args.par_position_weight,
                       scale=args.par_scale, confidence=args.par_confidence, device=device)
    check_device(device)
    return params
