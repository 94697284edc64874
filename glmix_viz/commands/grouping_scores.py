"""``glmix-viz grouping-scores``: per-image object grouping (mBO) and data-set-level slot semantics (semantic mIoU,
object purity) of every GLMix block on a labelled split, beside an untrained control (``glmix_viz.grouping_scores``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from glmix_viz.commands.common import add_dataset_arguments

HELP = ("score every GLMix block's slots on a labelled split: instance/class mBO, mBO after merging to K, "
        "data-set-level semantic mIoU and object purity (k-means of the slots), with an untrained control "
        "(resumable, bounded memory)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataset_arguments(parser, split="val")  # --data PATH (--voc-root / --coco-root), --split: a set with masks
    parser.add_argument("--checkpoint", type=Path, default=None, help="GLNet checkpoint (default: the demo model)")
    parser.add_argument("--model", default=None, help=argparse.SUPPRESS)  # a random variant, for tests only
    parser.add_argument("--control", choices=("untrained",), default=None,
                        help="also score an untrained copy of the model and the paired differences")
    parser.add_argument("--out", type=Path, required=True, help="output folder (grouping_scores.json, figures)")
    parser.add_argument("--clusters", type=int, default=None,
                        help="k-means clusters of the semantic mIoU and purity (default: the classes with "
                             "background); the scores at twice that are given too")
    parser.add_argument("--merge-k", type=int, default=None,
                        help="groups each image's slots are merged to (default: the classes with background)")
    parser.add_argument("--input-size", type=int, default=None, help="square input side (default: the model's)")
    parser.add_argument("--batch-size", type=int, default=16, help="images per forward pass (default 16)")
    parser.add_argument("--chunk-size", type=int, default=64,
                        help="images per chunk file: the unit of resume and of memory (default 64)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N images of the split")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of k-means, the control and the bootstrap")
    parser.add_argument("--overwrite", action="store_true", help="drop the chunks scored before")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: CUDA when available)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def _format(entry: dict, key: str) -> str:
    value = entry.get(key)
    if value is None:
        return "-"
    low, high = entry[f"{key}_ci95"]
    return f"{value:.3f} ({low:.3f}-{high:.3f})"


def run(args: argparse.Namespace) -> int:
    from glmix_viz.commands.common import load_model_from_args
    from glmix_viz.grouping_scores import GroupingScoreSettings, run_grouping_scores

    settings = GroupingScoreSettings(clusters=args.clusters, merge_k=args.merge_k, input_size=args.input_size,
                                     batch_size=args.batch_size, chunk_size=args.chunk_size, control=args.control,
                                     control_seed=args.seed, resamples=args.resamples, seed=args.seed)
    model, description = load_model_from_args(args)
    print(f"model: {description}", file=sys.stderr)
    results = run_grouping_scores(args.data, args.split, model, args.out, settings,
                                  checkpoint=str(args.checkpoint or description), overwrite=args.overwrite,
                                  progress=args.progress, limit=args.limit)
    for failure in results["failures"]:
        print(f"failed: {failure['id']}: {failure['reason']}", file=sys.stderr)
    print(f"{results['images']} images, {results['clusters']} clusters (and {2 * results['clusters']}); "
          f"results: {args.out / 'grouping_scores.json'}")
    for name, entry in results["blocks"].items():
        line = (f"{name}: mBO inst {_format(entry, 'mbo_instance')}, class {_format(entry, 'mbo_class')}; "
                f"semantic mIoU {_format(entry, 'semantic_miou')}; object purity {_format(entry, 'object_purity')}")
        if "control" in results:
            other = results["control"]["blocks"][name]
            line += (f" | control: mBO inst {other['mbo_instance'] or float('nan'):.3f}, semantic mIoU "
                     f"{other['semantic_miou']:.3f}, purity {other['object_purity']:.3f}")
        print(line)
    return 1 if results["failures"] else 0
