"""``glmix-viz pseudo-label``: class-aware pseudo-masks for a VOC-layout split, from image-level labels."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, List, Tuple, Union

from glmix_viz.commands.common import (
    add_dataset_arguments,
    add_refine_arguments,
    load_model_from_args,
    open_dataset,
    par_params,
    positive_scales,
    refine_name,
)
from glmix_viz.commands.library_values import VALUES
from glmix_viz.crf import CRFParams
from glmix_viz.errors import GlmixVizError

# The method registry as --help shows it, without importing the methods (torch): a copy checked against the library
# by tests/test_cli_help.py. run() uses the real registry.
METHODS = {entry["name"]: SimpleNamespace(**entry) for entry in VALUES["pseudo_label"]["methods"]}
BG_RULES = VALUES["pseudo_label"]["bg_rules"]
DEFAULT_POWER_ALPHA = VALUES["pseudo_label"]["default_power_alpha"]


def default_method() -> str:
    return VALUES["pseudo_label"]["default_method"]

HELP = ("pseudo-label a VOC-layout split: class score maps, a refinement (dense CRF or PAR), VOC palette PNGs "
        "(resumable, shardable)")



def _blocks(text: str) -> List[Union[int, str]]:
    parts = [part.strip() for part in text.split(",") if part.strip()]
    return [int(part) if part.lstrip("-").isdigit() else part for part in parts]


def _input_size(text: str) -> Union[int, Tuple[int, int]]:
    try:
        parts = [int(part) for part in text.lower().replace("x", ",").split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"input size must be N or HxW, got {text!r}")
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        return parts[0], parts[1]
    raise argparse.ArgumentTypeError(f"input size must be N or HxW, got {text!r}")


def _option(text: str) -> Tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"method options look like NAME=VALUE, got {text!r}")
    name, value = text.split("=", 1)
    for convert in (int, float):
        try:
            return name.strip(), convert(value)
        except ValueError:
            pass
    return name.strip(), value


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--checkpoint`` / ``--model``: the classifier to use (default: the bundled demo model)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--checkpoint", type=Path, help="GLNet checkpoint (.safetensors or .pth) with a head for the "
                       "data set's classes (default: the bundled demo model, when installed)")
    group.add_argument("--model", metavar="NAME", help="build a randomly initialised variant (e.g. glnet_tiny); "
                       "UNTRAINED: its masks are noise, useful only for smoke tests")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: CUDA when available)")


def load_classifier(args: argparse.Namespace, num_object_classes: int):
    """The model named by ``--checkpoint`` / ``--model`` (or the demo model), on ``--device``, in eval mode."""
    model, description = load_model_from_args(args, num_classes=num_object_classes)
    print(f"model: {description}", file=sys.stderr)
    return model


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = CRFParams()
    add_dataset_arguments(parser, split="train")  # --data PATH (--voc-root / --coco-root), --split
    parser.add_argument("--out", required=True, type=Path, help="output folder for <id>.png and summary.json")
    add_model_arguments(parser)
    methods = "; ".join(f"{name}: {method.description}" for name, method in METHODS.items())
    best = default_method()
    parser.add_argument("--method", default=best, choices=list(METHODS),
                        help=f"score maps (default {best}, the best measured; baselines: "
                        f"{', '.join(name for name, method in METHODS.items() if method.baseline)}): {methods}")
    parser.add_argument("--option", dest="options", action="append", type=_option, default=[], metavar="NAME=VALUE",
                        help="method option, repeatable; options and defaults: " + "; ".join(
                            f"{name}: " + ", ".join(f"{key}={value}" for key, value in method.options.items())
                            for name, method in METHODS.items() if method.options))
    parser.add_argument("--scales", type=positive_scales, default=(1.0,), help="comma-separated input scales (default 1.0)")
    parser.add_argument("--no-flip", dest="flip", action="store_false", help="skip horizontal-flip inference")
    parser.add_argument("--input-size", type=_input_size, default=None,
                        help="network input at scale 1: N (longer side) or HxW (default: the image's own size)")
    parser.add_argument("--blocks", type=_blocks, default=None,
                        help="GLMix blocks for slot methods: comma-separated indices or paths (default: all)")
    parser.add_argument("--bg-rule", default="threshold", choices=BG_RULES,
                        help="background score: a constant threshold, or (1 - max class score) ** alpha")
    parser.add_argument("--bg-param", type=float, default=None,
                        help="threshold or alpha (defaults: threshold per method "
                        + ", ".join(f"{name} {method.bg_threshold}" for name, method in METHODS.items())
                        + f"; power {DEFAULT_POWER_ALPHA})")
    add_refine_arguments(parser, default="crf")
    crf = parser.add_argument_group("dense CRF (--refine crf; defaults: the usual CAM-WSSS settings)")
    for flag, value, meaning in (
        ("--crf-gaussian-sxy", defaults.gaussian_sxy, "spatial std (pixels) of the smoothness kernel"),
        ("--crf-gaussian-compat", defaults.gaussian_compat, "weight of the smoothness kernel"),
        ("--crf-bilateral-sxy", defaults.bilateral_sxy, "spatial std (pixels) of the appearance kernel"),
        ("--crf-bilateral-srgb", defaults.bilateral_srgb, "colour std (0..255) of the appearance kernel"),
        ("--crf-bilateral-compat", defaults.bilateral_compat, "weight of the appearance kernel"),
    ):
        crf.add_argument(flag, type=float, default=value, help=f"{meaning} (default: %(default)s)")
    crf.add_argument("--crf-iterations", type=int, default=defaults.iterations,
                     help="mean-field iterations (default: %(default)s)")
    crf.add_argument("--crf-confidence", type=float, default=defaults.confidence,
                     help="mark pixels whose refined probability is below this 255 (default: off)")
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1),
                        help="refinement / writer processes, one torch thread each (0: in the main process; "
                        "default: CPU cores - 1); PAR on CUDA runs batched in the main process")
    parser.add_argument("--batch-size", type=int, default=4, help="images per network step")
    parser.add_argument("--overwrite", action="store_true", help="redo images whose outputs exist")
    parser.add_argument("--shard", default=None, metavar="K/N|auto",
                        help="process shard K of N (1-based) of the split; auto: from torchrun (RANK, WORLD_SIZE) or "
                        "a SLURM array (SLURM_ARRAY_TASK_ID, _COUNT, _MIN); shards share --out, and evaluate reads "
                        "the folder as one")
    parser.add_argument("--save-scores", action="store_true", help="also write scores/<id>.npz (soft scores)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def score_settings(args: argparse.Namespace):
    """The :class:`~glmix_viz.pseudo.ScoreSettings` of the flags (``ValueError`` on a bad combination)."""
    from glmix_viz.pseudo.settings import ScoreSettings

    return ScoreSettings(
        method=args.method, options=dict(args.options), scales=args.scales, flip=args.flip, bg_rule=args.bg_rule,
        bg_param=args.bg_param, blocks=args.blocks, input_size=args.input_size, device=args.device,
    )


def refine_device(device):
    """Where PAR runs: the network's ``--device`` (default: CUDA when available, else the CPU)."""
    if device is not None:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else None


def crf_params(args: argparse.Namespace):
    """The refinement's parameters of the flags: :class:`~glmix_viz.crf.CRFParams` (``--refine crf``, the default),
    :class:`~glmix_viz.refine.PARParams` (``--refine par``), or None (``--refine none`` / ``--no-crf``)."""
    name = refine_name(args)
    if name == "none":
        return None
    if name == "par":
        return par_params(args, refine_device(args.device))
    return CRFParams(
        gaussian_sxy=args.crf_gaussian_sxy, gaussian_compat=args.crf_gaussian_compat,
        bilateral_sxy=args.crf_bilateral_sxy, bilateral_srgb=args.crf_bilateral_srgb,
        bilateral_compat=args.crf_bilateral_compat, iterations=args.crf_iterations, confidence=args.crf_confidence,
    )


def run(args: argparse.Namespace) -> int:
    from glmix_viz.data.base import object_names
    from glmix_viz.pseudo.pipeline import run_pseudo_label
    from glmix_viz.refine import check_device
    from glmix_viz.runtime.distributed import launcher_device, resolve_shard

    try:  # settings errors are user errors: one line, no traceback
        args.device = launcher_device(args.device, args.shard)
        args.shard = resolve_shard(args.shard)  # "auto": this process's part, from torchrun or a SLURM array
        if args.device is not None and str(args.device).startswith("cuda"):
            check_device(args.device)  # CUDA asked for where none exists: one line, before any image
        settings = score_settings(args)
        crf = crf_params(args)
    except ValueError as error:
        raise GlmixVizError(str(error)) from None
    dataset = open_dataset(args)
    model = load_classifier(args, len(object_names(dataset)))
    summary = run_pseudo_label(
        dataset, args.out, model, settings=settings, crf=crf, workers=args.workers, overwrite=args.overwrite,
        shard=args.shard, save_scores=args.save_scores, batch_size=args.batch_size, progress=args.progress,
    )
    counts, timing = summary["counts"], summary["timing"]
    print(
        f"{counts['done']} done, {counts['skipped']} skipped (already done), {counts['failed']} failed of "
        f"{counts['total']}; {timing['images_per_s']} images/s (network {timing['network_s']} s, "
        f"{summary['settings']['refine']} {timing['refine_s']} s, I/O {timing['io_s']} s); shares "
        + ", ".join(f"{name} {share:.0%}" for name, share in summary.get("stage_share", {}).items()
                    if share is not None)
        + f"; summary: {summary['summary_path']}"
    )
    for failure in summary["failures"]:
        print(f"failed: {failure['id']}: {failure['reason']}", file=sys.stderr)
    return 1 if counts["failed"] else 0
