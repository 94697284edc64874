"""``glmix-viz evaluate``: confusion-matrix mIoU of a folder of label PNGs against a VOC-layout or COCO split."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from glmix_viz.commands.common import add_dataset_arguments, open_dataset
from glmix_viz.files import save_bytes_atomic
from glmix_viz.pseudo.metrics import format_scores
from glmix_viz.pseudo.pipeline import evaluate_predictions

HELP = "mIoU, per-class IoU, pixel and mean accuracy of predicted label PNGs against a split's masks"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataset_arguments(parser)
    parser.add_argument("--split", default="val", help="split list name (train, val ...) or path (default: val)")
    parser.add_argument("--pred", required=True, type=Path,
                        help="folder of <id>.png label maps (several shards' shared output folder reads as one)")
    parser.add_argument("--out", type=Path, default=None, help="JSON file for the scores (default: PRED/eval.json)")
    parser.add_argument("--pred-ignore", choices=("background", "ignore"), default="background",
                        help="predicted 255: count as background (default, IRN's convention) or leave those pixels out")
    parser.add_argument("--missing", choices=("fail", "skip"), default="fail",
                        help="an id without a prediction: a failure (non-zero exit, default) or only reported")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    dataset = open_dataset(args)
    scores = evaluate_predictions(
        dataset, args.pred, pred_ignore=args.pred_ignore, missing=args.missing, progress=args.progress
    )
    out = args.out if args.out is not None else args.pred / "eval.json"
    save_bytes_atomic(out, (json.dumps(scores, indent=2) + "\n").encode("utf-8"))
    print(format_scores(scores))
    print(f"{scores['num_images']} of {scores['num_ids']} images evaluated; scores written to {out}")
    shards = [entry["shard"] for entry in scores["runs"]["summaries"] if entry.get("shard")]
    if shards:
        print(f"predictions of {len(shards)} shard runs read as one folder: {', '.join(sorted(shards))}")
    if scores["runs"]["missing_shards"]:
        print(f"warning: no summary of shard(s) {', '.join(scores['runs']['missing_shards'])} in {args.pred}",
              file=sys.stderr)
    if scores["missing_predictions"]:
        shown = ", ".join(scores["missing_predictions"][:5])
        more = len(scores["missing_predictions"]) - 5
        print(f"missing predictions ({len(scores['missing_predictions'])}): {shown}" + (f", ... (+{more})" if more > 0
              else ""), file=sys.stderr)
    for failure in scores["failures"]:
        if failure["id"] not in scores["missing_predictions"]:
            print(f"failed: {failure['id']}: {failure['reason']}", file=sys.stderr)
    return 1 if scores["num_failed"] else 0
