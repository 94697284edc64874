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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True)
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
    args = parser.parse_args()

    from glmix_viz.data.shapes import ShapesConfig, make_shapes
    from glmix_viz.heldout import heldout_evaluation, strip_per_image
    from glmix_viz.models.loading import load_model
    from glmix_viz.train import TrainConfig, train

    work = Path(args.work)
    data, heldout = work / "shapes", work / "heldout"
    for root, settings in ((data, dict(num_train=args.num_train, num_val=200, seed=args.data_seed)),
                           (heldout, dict(num_train=0, num_val=args.num_eval, seed=args.eval_seed))):
        if not (root / "shapes_meta.json").is_file():
            make_shapes(root, ShapesConfig(image_size=128), overwrite=True, progress=False, **settings)
    results_path = work / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    for text in args.setting:
        name, overrides = parse_setting(text)
        config = TrainConfig.from_flat(**{**dict(
            data=str(data), out=str(work / name), model="glnet_tiny", init=args.init,
            model_args={} if args.init else MODEL_ARGS, slot_scale_init=None if args.init else 10.0,
            epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, warmup_epochs=args.warmup_epochs,
            input_size=128, augment="flips", threads=args.threads, device=args.device, workers=1, progress=True),
            **overrides})
        summary = train(config)
        model = load_model(work / name / "last.safetensors", device=args.device)
        report = strip_per_image(heldout_evaluation(model, str(heldout), "val"))
        results[name] = {"overrides": overrides, "init": args.init, "train": summary, "heldout": report}
        results_path.write_text(json.dumps(results, indent=1) + "\n")
        grouping = report["grouping"]
        print(f"{name}: mAP {report['map']:.3f}; best {grouping['best_block']} {grouping['best']['trained']:.3f}, "
              f"vs best control {grouping['margin']['mean']:+.3f} {grouping['margin']['ci95']}; worst block vs its "
              f"untrained {grouping['worst_vs_untrained']['mean']:+.3f}", flush=True)
        for block, values in grouping["blocks"].items():
            print(f"   {block:20s} {values['trained']:.3f} untrained {values['untrained']:.3f} "
                  f"grid {values['grid']:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
