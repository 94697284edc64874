"""Reproduce the bundled demo model (glmix_viz/assets/demo/) and measure it.

Steps (each skipped when its output exists, so an interrupted run picks up where it stopped):
1. ``make-shapes`` training set (seed 0: 6000 train / 500 val, 128 px) and a held-out set (seed 1000: 400 images);
2. ``glmix-viz train`` with the recipe below (the exact command is printed and stored in the model card data);
3. copy the final checkpoint to ``glmix_viz/assets/demo/glnet_tiny_shapes.safetensors`` (+ ``.json``) with
   ``--install``;
4. evaluate on the held-out set: classification mAP and the per-block grouping score with its two controls
   (``glmix_viz.grouping.grouping_report``); written to ``<work>/demo_results.json``.

    python scripts/train_demo.py --work /tmp/demo [--install]
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MODEL_ARGS = {"downsample_strides": [2, 2, 1], "num_slots": 9,
              "mixing_modes": ["glmix", "glmix", "glmix.mha_nchw", "glmix"]}
DATA = dict(num_train=6000, num_val=500, seed=0, image_size=128)
HELDOUT = dict(num_train=0, num_val=400, seed=1000, image_size=128)


def train_argv(work: Path, device: str, epochs: int, threads: int) -> list:
    """The exact ``glmix-viz train`` arguments of one piece of the demo run (see PHASES)."""
    return ["train", "--data", str(work / "shapes"), "--out", str(work / "run"), "--model", "glnet_tiny",
            "--model-args", json.dumps(MODEL_ARGS), "--slot-scale-init", "10",
            "--epochs", str(epochs), "--batch-size", "32", "--lr", "1.5e-3", "--warmup-epochs", "0.5",
            "--input-size", "128",
            "--seed", "0", "--device", device, "--threads", str(threads), "--workers", "1", "--no-progress"]


# The demo run was done in three pieces, each resuming the last (the 2-core machine was shared with other jobs, so
# the length was chosen as the run went): 6 epochs of cosine on 1 thread, then two warm restarts that extend the
# schedule to 10 and to 16 epochs (each restart puts the lr back where a cosine over the new length would be, about
# 0.4 x peak, then down to the floor), on 2 threads. (epochs, torch threads) of each piece; on the CPU a run is
# deterministic for a given thread count.
PHASES = [(6, 1), (10, 2), (16, 2)]


def main() -> int:
    parser = argparse.ArgumentParser(description="Reproduce and measure the glmix-viz demo model.")
    parser.add_argument("--work", required=True, help="folder for the data sets, the run and the results")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--install", action="store_true", help="copy the checkpoint into glmix_viz/assets/demo/")
    parser.add_argument("--skip-train", action="store_true", help="only evaluate an existing run")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)

    from glmix_viz.cli import main as cli_main
    from glmix_viz.data.shapes import make_shapes

    for name, settings in (("shapes", DATA), ("heldout", HELDOUT)):
        if not (work / name / "shapes_meta.json").is_file():
            make_shapes(work / name, overwrite=True, progress=False, **settings)
    commands = [train_argv(work, args.device, epochs, threads) for epochs, threads in PHASES]
    for argv in commands:
        print("glmix-viz " + " ".join(shlex.quote(a) for a in argv), flush=True)
        if not args.skip_train:
            started = time.time()
            code = cli_main(argv)
            if code:
                return code
            print(f"this piece took {(time.time() - started) / 60:.1f} min", flush=True)

    import torch

    from glmix_viz.grouping import grouping_report, load_grouping_samples
    from glmix_viz.models.loading import load_model
    from glmix_viz.train import load_split, mean_average_precision, predict_scores

    checkpoint = work / "run" / "last.safetensors"
    model = load_model(checkpoint, device="cpu")
    split = load_split(str(work / "heldout"), "val", 128, workers=0)
    scores, targets = predict_scores(model, split, torch.device("cpu"))
    heldout_map, per_class = mean_average_precision(scores, targets)
    report = grouping_report(model, load_grouping_samples(str(work / "heldout"), "val"), input_size=128)
    log = [json.loads(line) for line in (work / "run" / "log.jsonl").read_text().splitlines() if line]
    results = {
        "commands": ["glmix-viz " + " ".join(shlex.quote(a) for a in argv) for argv in commands],
        "data": DATA, "heldout": HELDOUT, "heldout_map": heldout_map,
        "heldout_ap": dict(zip(model.pretrained_cfg["label_names"], map(float, per_class))),
        "val_map_last_epoch": log[-1].get("val_map"), "epochs": len(log),
        "train_minutes": sum(e["seconds"] for e in log) / 60, "slot_scale": log[-1]["slot_scale"],
        "grouping": report, "pieces": PHASES, "device": args.device,
    }
    (work / "demo_results.json").write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps({k: results[k] for k in ("heldout_map", "val_map_last_epoch", "train_minutes")}))
    for block, values in report["blocks"].items():
        print(f"{block:22s} trained {values['trained']:.3f} untrained {values['untrained']:.3f} "
              f"grid {values['grid']:.3f}")
    print(f"best {report['best_block']}: margin {report['margin']:+.3f} (vs any block's control "
          f"{report['margin_any_block']:+.3f})")
    if args.install:
        target = REPO / "glmix_viz" / "assets" / "demo"
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(checkpoint, target / "glnet_tiny_shapes.safetensors")
        shutil.copy(checkpoint.with_suffix(".json"), target / "glnet_tiny_shapes.json")
        shutil.copy(work / "demo_results.json", target / "demo_results.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
