"""``glmix-viz faithfulness``: deletion and insertion curves (RISE) of pseudo-mask methods' class maps, per image and
in total, paired against the first method, with a random control."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from glmix_viz.commands.common import add_dataset_arguments

HELP = ("faithfulness of class maps: deletion / insertion curves (RISE protocol) of any pseudo-mask methods and a "
        "random control, per image and in total, paired differences vs the first method (resumable)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataset_arguments(parser, split="val")  # --data PATH (--voc-root / --coco-root), --split
    parser.add_argument("--methods", default="slot_pool,gradcam,random",
                        help="comma list of registry methods and/or 'random'; the first is the reference of the "
                             "paired differences (default slot_pool,gradcam,random)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--checkpoint", type=Path, help="GLNet checkpoint (default: the bundled demo model)")
    parser.add_argument("--steps", type=int, default=16, help="deletion / insertion steps (default 16)")
    parser.add_argument("--fill", choices=("rise", "blur", "mean"), default="rise",
                        help="rise: delete to the mean colour, insert from a blur (default); blur; mean")
    parser.add_argument("--limit", type=int, default=None, help="only the first N images of the split")
    parser.add_argument("--input-size", type=int, default=None, help="longer input side (default: the model's)")
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random control, ties and bootstrap")
    parser.add_argument("--overwrite", action="store_true", help="redo images already done")
    parser.add_argument("--device", default=None, help="cpu, cuda ... (default: CUDA when available)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from glmix_viz.commands.common import load_model_from_args, open_dataset
    from glmix_viz.faithfulness import check_methods, run_faithfulness

    methods = check_methods(args.methods.split(","))
    dataset = open_dataset(args)
    model, description = load_model_from_args(args)
    print(f"model: {description}", file=sys.stderr)
    report = run_faithfulness(dataset, model, args.out, methods, steps=args.steps, fill=args.fill, seed=args.seed,
                              limit=args.limit, input_size=args.input_size, resamples=args.resamples,
                              overwrite=args.overwrite, progress=args.progress,
                              command=" ".join(["glmix-viz", "faithfulness"] + sys.argv[2:]))
    total = report["total"]
    for failure in report["failures"]:
        print(f"failed: {failure['id']}: {failure['reason']}", file=sys.stderr)
    if total is None:
        print("no image scored")
        return 1
    print(f"{report['images']} images; deletion AUC (lower = more faithful), insertion AUC (higher = more faithful)")
    for method, entry in total["methods"].items():
        paired = total["paired_vs_first"].get(method)
        extra = ""
        if paired:
            d = paired["deletion_auc"]
            extra = f"; deletion vs {methods[0]}: {d['mean']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]"
        print(f"  {method}: deletion {entry['deletion_auc']:.3f}, insertion {entry['insertion_auc']:.3f}{extra}")
    print(f"written: {args.out / 'faithfulness.json'}, {args.out / 'faithfulness_curves.png'}")
    return 1 if report["failures"] else 0
