"""``glmix-viz evaluate``: scores of a folder of label PNGs against a split's masks (any data set with masks): the
split's confusion-matrix mIoU, per-image scores, the worst images as a figure, and a paired comparison with a second folder.

Library: :mod:`glmix_viz.evaluate` (scores, comparison) and :func:`glmix_viz.figures.worst_images_figure`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping

from glmix_viz.commands.common import add_dataset_arguments, open_dataset, require_masks
from glmix_viz.errors import GlmixVizError
from glmix_viz.scoring.stats import DEFAULT_RESAMPLES  # numpy only: no torch for --help

if TYPE_CHECKING:
    from glmix_viz.data.base import Split

HELP = "mIoU, per-class and per-image IoU of predicted label PNGs against a split's masks; compare two folders"
DEFAULT_WORST = 8


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataset_arguments(parser, split="val")  # --data PATH (--voc-root / --coco-root), --split
    parser.add_argument("--pred", required=True, type=Path,
                        help="folder of <id>.png label maps (several shards' shared output folder reads as one)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON file for the scores (default: PRED/eval.json); the per-image table goes beside "
                             "it (per_image.csv for eval.json, else STEM_per_image.csv)")
    parser.add_argument("--pred-ignore", choices=("background", "ignore"), default="background",
                        help="predicted 255: count as background (default, IRN's convention) or leave those pixels out")
    parser.add_argument("--missing", choices=("fail", "skip"), default="fail",
                        help="an id without a prediction: a failure (non-zero exit, default) or only reported")
    parser.add_argument("--compare", type=Path, default=None, metavar="B",
                        help="a second folder of the same split: its scores (B/eval.json), the per-class and paired "
                             "per-image difference B - PRED with a bootstrap interval, the images that change most")
    parser.add_argument("--compare-out", type=Path, default=None,
                        help="JSON file of the comparison (default: compare.json beside the scores)")
    parser.add_argument("--bootstrap", type=int, default=DEFAULT_RESAMPLES, metavar="N",
                        help="bootstrap resamples of the images for the comparison's 95%% intervals "
                             f"(default {DEFAULT_RESAMPLES}, as the explorer's run comparison)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    parser.add_argument("--worst", type=int, default=None, metavar="N",
                        help=f"list the N worst images (lowest per-image mIoU); with --figure, draw them "
                             f"(default {DEFAULT_WORST})")
    parser.add_argument("--figure", type=Path, default=None, metavar="FILE.png",
                        help="a grid of the worst images: image, ground truth, prediction, error map, scores")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def per_image_path(out: Path) -> Path:
    """Where the per-image table of the scores file ``out`` goes."""
    return out.with_name("per_image.csv") if out.name == "eval.json" else out.with_name(f"{out.stem}_per_image.csv")


def _report(scores: Mapping[str, Any], folder: Path) -> None:
    """The warnings of one evaluation (shards, missing predictions, failures), on stderr."""
    shards = [entry["shard"] for entry in scores["runs"]["summaries"] if entry.get("shard")]
    if shards:
        print(f"predictions of {len(shards)} shard runs read as one folder: {', '.join(sorted(shards))}")
    if scores["runs"]["missing_shards"]:
        print(f"warning: no summary of shard(s) {', '.join(scores['runs']['missing_shards'])} in {folder}",
              file=sys.stderr)
    if scores["missing_predictions"]:
        shown = ", ".join(scores["missing_predictions"][:5])
        more = len(scores["missing_predictions"]) - 5
        print(f"missing predictions ({len(scores['missing_predictions'])}): {shown}" + (f", ... (+{more})" if more > 0
              else ""), file=sys.stderr)
    for failure in scores["failures"]:
        if failure["id"] not in scores["missing_predictions"]:
            print(f"failed: {failure['id']}: {failure['reason']}", file=sys.stderr)


def score_folder(args: argparse.Namespace, dataset: "Split", folder: Path) -> Dict[str, Any]:
    """The scores of one folder (nothing written yet).

    Raises:
        GlmixVizError: no image of the split could be scored (an empty or wrong folder): one line, and the command
            writes nothing, so no table of n/a and no ``eval.json`` can pass for a result.
    """
    from glmix_viz.evaluate import evaluate_predictions

    scores = evaluate_predictions(dataset, folder, pred_ignore=args.pred_ignore, missing=args.missing,
                                  progress=args.progress)
    if scores["num_images"] == 0:
        missing, failed = len(scores["missing_predictions"]), scores["num_failed"]
        unreadable = failed - missing if args.missing == "fail" else failed
        why = f"{missing} without a prediction, {unreadable} unreadable" if scores["num_ids"] else "the split is empty"
        raise GlmixVizError(f"{folder}: nothing to score: none of the {scores['num_ids']} images of split "
                            f"{scores.get('split')!s} has a usable <id>.png prediction ({why}); nothing written")
    return scores


def write_scores(scores: Mapping[str, Any], folder: Path, out: Path) -> None:
    """Write one folder's scores JSON and per-image table, print the table and the warnings."""
    from glmix_viz.evaluate import write_per_image_csv
    from glmix_viz.files import save_bytes_atomic
    from glmix_viz.scoring.segmentation import format_scores

    save_bytes_atomic(out, (json.dumps(scores, indent=2) + "\n").encode("utf-8"))
    table = write_per_image_csv(per_image_path(out), scores)
    print(format_scores(scores))
    print(f"{scores['num_images']} of {scores['num_ids']} images evaluated; scores written to {out}, "
          f"per-image scores to {table}")
    _report(scores, folder)


def _percent(value: Any) -> str:
    return "   n/a" if value is None else f"{100.0 * value:6.2f}"


def worst_heading(found: int, asked: int, scored: int) -> str:
    """How many worst images the table holds, and why fewer than asked: ``3 worst images (asked for 8; only 3 of
    the split's images were scored)``."""
    heading = f"{found} worst image{'s' if found != 1 else ''}"
    if found < asked:
        heading += f" (asked for {asked}; only {scored} image{'s' if scored != 1 else ''} scored)"
    return heading


def print_worst(rows: List[Mapping[str, Any]], heading: str) -> None:
    """The worst images as a table: id, per-image mIoU and pixel accuracy, unsure share, class-level errors."""
    width = max([len(row["id"]) for row in rows] + [2])
    print(f"{heading}\n{'id':<{width}}  mIoU %   acc % unsure %  missed | predicted but absent")
    for row in rows:
        print(f"{row['id']:<{width}}  {_percent(row['miou'])}  {_percent(row['pixel_accuracy'])}  "
              f"{_percent(row['unsure_share'])}  {', '.join(row['missed']) or '-'} | "
              f"{', '.join(row['predicted_absent']) or '-'}")


def write_worst_figure(dataset: "Split", folder: Path, rows: List[Mapping[str, Any]], path: Path) -> Path:
    """The grid of :func:`glmix_viz.figures.worst_images_figure` for these rows (an unreadable image: grey)."""
    from glmix_viz.evaluate import load_pair
    from glmix_viz.figures import save_figure, worst_images_figure  # plotly and matplotlib: only for a figure
    from glmix_viz.labels import voc_palette

    entries = []
    for row in rows:
        gt, pred = load_pair(dataset, folder, row["id"])
        try:
            image = dataset.load_image(row["id"])
        except GlmixVizError as error:
            print(f"warning: {error} (drawn grey)", file=sys.stderr)
            image = None
        title = f"{row['id']}: mIoU {_percent(row['miou']).strip()} %, pixel accuracy " \
                f"{_percent(row['pixel_accuracy']).strip()} %"
        entries.append({"image": image, "gt": gt, "pred": pred, "title": title})
    picture = worst_images_figure(entries, palette=voc_palette(256), class_names=list(dataset.class_names),
                                  background=dataset.background, ignore=dataset.ignore)
    return save_figure(picture, path)


def compare_folders(args: argparse.Namespace, scores: Mapping[str, Any], other: Mapping[str, Any],
                    out: Path) -> int:
    """Write ``--compare``'s scores, print and write the paired comparison; returns its number of failed images."""
    from glmix_viz.evaluate import compare_scores, format_comparison
    from glmix_viz.files import save_bytes_atomic

    print(f"\nB: {args.compare}")
    write_scores(other, args.compare, args.compare / "eval.json")
    comparison = compare_scores(scores, other, resamples=args.bootstrap, seed=args.seed)
    path = args.compare_out if args.compare_out is not None else out.with_name("compare.json")
    save_bytes_atomic(path, (json.dumps(comparison, indent=2) + "\n").encode("utf-8"))
    print()
    print(format_comparison(comparison))
    print(f"comparison written to {path}")
    return other["num_failed"]


def run(args: argparse.Namespace) -> int:
    from glmix_viz.evaluate import worst_images

    if args.worst is not None and args.worst < 1:
        raise GlmixVizError(f"--worst {args.worst}: give a number of images >= 1")
    if args.bootstrap < 1:
        raise GlmixVizError(f"--bootstrap {args.bootstrap}: give a number of resamples >= 1")
    dataset = open_dataset(args)
    require_masks(dataset, "evaluate")
    out = args.out if args.out is not None else args.pred / "eval.json"
    scores = score_folder(args, dataset, args.pred)  # both folders are scored before anything is written
    other = score_folder(args, dataset, args.compare) if args.compare is not None else None
    write_scores(scores, args.pred, out)
    failed = scores["num_failed"]
    if args.worst is not None or args.figure is not None:
        asked = args.worst or DEFAULT_WORST
        rows = worst_images(scores, asked)
        print()
        print_worst(rows, worst_heading(len(rows), asked, scores["num_images"]))
        if args.figure is not None:
            print(f"figure of the {len(rows)} worst images written to "
                  f"{write_worst_figure(dataset, args.pred, rows, args.figure)}")
    if other is not None:
        failed += compare_folders(args, scores, other, out)
    return 1 if failed else 0
