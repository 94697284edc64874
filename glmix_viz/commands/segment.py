"""``glmix-viz segment``: predict a split with a trained segmenter; palette PNGs that ``evaluate`` scores."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from glmix_viz.commands.common import (
    add_dataset_arguments,
    add_refine_arguments,
    open_dataset,
    par_params,
    positive_scales,
    refine_name,
)
from glmix_viz.commands.library_values import VALUES
from glmix_viz.crf import CRFParams
from glmix_viz.errors import DataError, GlmixVizError, one_line

OUTPUT_FORMATS = VALUES["segment"]["output_formats"]  # glmix_viz.segment.predict's, without importing torch

HELP = "predict a split with a segment-train checkpoint: palette PNGs (resumable, shardable; no ground truth needed)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, type=Path, help="segmenter checkpoint (RUN/best.safetensors)")
    add_dataset_arguments(parser, split="val")  # --data PATH (--voc-root / --coco-root), --split
    parser.add_argument("--out", required=True, type=Path, help="output folder for the PNGs and summary.json")
    parser.add_argument("--format", dest="output_format", choices=OUTPUT_FORMATS, default="voc",
                        help="voc: OUT/<id>.png; voc-test: OUT/results/VOC2012/Segmentation/comp6_test_cls/<id>.png")
    parser.add_argument("--scales", type=positive_scales, default=(1.0,), help="comma-separated input scales (default 1.0)")
    parser.add_argument("--flip", action="store_true", help="also average the horizontally flipped image")
    add_refine_arguments(parser, default="none")  # --refine crf|par|none, --crf alias, --par-* (dense CRF: defaults)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: CUDA when available)")
    parser.add_argument("--batch-size", type=int, default=4, help="images per network step")
    parser.add_argument("--overwrite", action="store_true", help="redo images whose outputs exist")
    parser.add_argument("--shard", default=None, metavar="K/N|auto",
                        help="process shard K of N (1-based) of the split; auto: from torchrun or a SLURM array (as "
                        "pseudo-label); shards share --out")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from glmix_viz.data.classes import match_label_ids
    from glmix_viz.runtime.distributed import launcher_device, resolve_shard
    from glmix_viz.segment.model import load_segmenter, segmenter_class_names
    from glmix_viz.segment.predict import run_segment

    try:
        args.device = launcher_device(args.device, args.shard)
        args.shard = resolve_shard(args.shard)  # "auto": this process's part, from torchrun or a SLURM array
        if args.batch_size < 1:
            raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
        refine = refine_name(args)
        if args.device is not None and str(args.device).startswith("cuda"):
            from glmix_viz.refine import check_device

            check_device(args.device)  # CUDA asked for where none exists: one line, before any image
        refinement = {"none": None, "crf": CRFParams()}.get(refine) if refine != "par" else par_params(args)
    except ValueError as error:
        raise GlmixVizError(str(error)) from None
    dataset = open_dataset(args)
    segmenter = load_segmenter(args.checkpoint, device=args.device)
    names = segmenter_class_names(segmenter)
    try:
        label_ids, unknown = match_label_ids(names if dataset.class_names else None, dataset)  # by name
    except DataError as error:
        raise GlmixVizError(f"{args.checkpoint}: {one_line(error, with_type=False)}") from None
    if unknown:
        print(f"warning: the segmenter does not know the data set's classes {', '.join(unknown)}: never predicted",
              file=sys.stderr)
    summary = run_segment(dataset, args.out, segmenter, scales=args.scales, flip=args.flip,
                          crf=refinement, output_format=args.output_format,
                          overwrite=args.overwrite, shard=args.shard, device=args.device, batch_size=args.batch_size,
                          progress=args.progress, label_ids=label_ids)
    counts = summary["counts"]
    print(f"{counts['done']} done, {counts['skipped']} skipped (already done), {counts['failed']} failed of "
          f"{counts['total']}; {summary['timing']['images_per_s']} images/s; summary: {summary['summary_path']}")
    for failure in summary["failures"]:
        print(f"failed: {failure['id']}: {failure['reason']}", file=sys.stderr)
    return 1 if counts["failed"] else 0
