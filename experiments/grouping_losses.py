"""Sweep the grouping losses of the training loop on make-shapes and score each run on a held-out seed.

Every setting is one run of the library's loop (``glmix_viz.train.train``; no other training loop), either from
scratch or fine-tuned from a checkpoint (``--init``, e.g. the bundled demo model: the loop then starts a fresh
classifier head), followed by :func:`glmix_viz.heldout.heldout_evaluation` on a held-out ``make-shapes`` set of
another seed. A setting is ``NAME`` followed by ``key=value`` pairs of :class:`~glmix_viz.train.TrainConfig` fields
(values parsed as JSON, so ``grouping_blocks=["stages.0.blocks.0"]`` works)::

    python experiments/grouping_losses.py --work /tmp/gl --epochs 8 \
        --setting bce --setting recon_potts:recon_weight=10,potts_weight=1 \
        --setting usage:recon_weight=10,potts_weight=1,usage_entropy_weight=-0.1

The grouping-loss probes behind the demo recipe (``experiments/train_demo.py``) are settings of this sweep (``--init``
the shipped model for the fine-tunes; from scratch with ``--lr 1.5e-3 --warmup-epochs 0.5`` for the winner). Writes
``WORK/NAME/`` (the run) and ``WORK/results.json`` (every setting's held-out report without per-image arrays).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, Tuple

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scripts.make_docs import check_results, command_line, smoke_folder  # noqa: E402

MODEL_ARGS = {"downsample_strides": [2, 2, 1], "num_slots": 9,
              "mixing_modes": ["glmix", "glmix", "glmix.mha_nchw", "glmix"]}


def parse_setting(text: str) -> Tuple[str, Dict[str, Any]]:
    """``NAME:key=value,key=value`` -> (name, TrainConfig overrides)."""
    name, _, rest = text.partition(":")
    overrides: Dict[str, Any] = {}
    for pair in filter(None, rest.split(",")):
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--setting {text!r}: {pair!r} is not key=value")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return name, overrides


def table(results: Dict[str, Any]) -> str:
    """One row per setting: held-out mAP, best block and its margin over the best control (the docs' table)."""
    lines = ["| setting | init | held-out mAP | best block | ARI | vs best control (95 % CI) | worst block vs its "
             "untrained |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, entry in results["settings"].items():
        report = entry["heldout"]
        grouping = report["grouping"]
        margin, worst = grouping["margin"], grouping["worst_vs_untrained"]
        lines.append(f"| {name} | {entry['init'] or 'scratch'} | {report['map']:.3f} | {grouping['best_block']} | "
                     f"{grouping['best']['trained']:.3f} | {margin['mean']:+.3f} ({margin['ci95'][0]:+.3f}, "
                     f"{margin['ci95'][1]:+.3f}) | {worst['mean']:+.3f} |")
    return "\n".join(lines)


SMOKE = {"num_train": 4, "num_val": 2, "num_eval": 4, "epochs": 1, "batch_size": 2, "threads": 1, "workers": 0,
         "setting": ["smoke:recon_weight=1,potts_weight=1"]}


def build_parser() -> argparse.ArgumentParser:
    """The sweep's arguments (the docs generator re-parses recorded commands with it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=None, help="runs and WORK/results.json (required; --smoke: a temporary "
                        "folder)")
    parser.add_argument("--setting", action="append", default=[], help="NAME[:key=value,...] (repeatable)")
    parser.add_argument("--init", default=None, help="fine-tune from this checkpoint (default: from scratch)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--warmup-epochs", type=float, default=0.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-train", type=int, default=3000)
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--eval-seed", type=int, default=2002, help="held-out make-shapes seed")
    parser.add_argument("--num-eval", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default=None)
    parser.add_argument("--num-val", type=int, default=200, help="validation images of the training set")
    parser.add_argument("--workers", type=int, default=1, help="data-loading processes")
    parser.add_argument("--smoke", action="store_true", help="seconds: 4 training and 4 held-out images, one "
                        "epoch, one setting; checks WORK/results.json")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.smoke:
        vars(args).update(SMOKE)
        args.work = args.work or str(smoke_folder(__file__))
    if args.work is None:
        build_parser().error("--work is required")

    from glmix_viz.data.shapes import ShapesConfig, make_shapes
    from glmix_viz.heldout import heldout_evaluation, strip_per_image
    from glmix_viz.models.loading import load_model
    from glmix_viz.train import TrainConfig, train

    work = Path(args.work)
    data, heldout = work / "shapes", work / "heldout"
    for root, settings in ((data, dict(num_train=args.num_train, num_val=args.num_val, seed=args.data_seed)),
                           (heldout, dict(num_train=0, num_val=args.num_eval, seed=args.eval_seed))):
        if not (root / "shapes_meta.json").is_file():
            make_shapes(root, ShapesConfig(image_size=128), overwrite=True, progress=False, **settings)
    results_path = work / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    if "settings" not in results:  # files written before the command was recorded: settings at the top level
        results = {"settings": results}
    results["command"] = command_line(__file__, argv)
    for text in args.setting:
        name, overrides = parse_setting(text)
        config = TrainConfig.from_flat(**{**dict(
            data=str(data), out=str(work / name), model="glnet_tiny", init=args.init,
            model_args={} if args.init else MODEL_ARGS, slot_scale_init=None if args.init else 10.0,
            epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, warmup_epochs=args.warmup_epochs,
            input_size=128, augment="flips", threads=args.threads, device=args.device, workers=args.workers,
            progress=not args.smoke),
            **overrides})
        summary = train(config)
        model = load_model(work / name / "last.safetensors", device=args.device)
        report = strip_per_image(heldout_evaluation(model, str(heldout), "val"))
        results["settings"][name] = {"overrides": overrides, "init": args.init, "train": summary, "heldout": report}
        results_path.write_text(json.dumps(results, indent=1) + "\n")
        grouping = report["grouping"]
        print(f"{name}: mAP {report['map']:.3f}; best {grouping['best_block']} {grouping['best']['trained']:.3f}, "
              f"vs best control {grouping['margin']['mean']:+.3f} {grouping['margin']['ci95']}; worst block vs its "
              f"untrained {grouping['worst_vs_untrained']['mean']:+.3f}", flush=True)
        for block, values in grouping["blocks"].items():
            print(f"   {block:20s} {values['trained']:.3f} untrained {values['untrained']:.3f} "
                  f"grid {values['grid']:.3f}", flush=True)
    if args.smoke:
        check_results(__file__, results_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
