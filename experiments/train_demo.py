"""Reproduce the bundled demo model (glmix_viz/assets/demo/), its BCE-only control, and measure both.

Steps (each skipped when its output exists, so an interrupted run picks up where it stopped):

1. ``make-shapes`` data: the training set (seed 0: 6000 train / 500 val, 128 px) and two held-out sets (seeds 3101
   and 3102, 400 images each), never used for training or model selection;
2. ``glmix-viz train`` twice with one recipe, once with the grouping losses (the demo model) and once without them
   (the BCE-only control of the same length); the exact commands are printed and stored in the results;
3. ``--evaluate``: the held-out evaluation of both (``glmix_viz.heldout.heldout_evaluation``: mAP, per-block
   grouping with the untrained and slot-grid controls, paired differences with bootstrap intervals), written to
   ``<work>/demo_results.json``;
4. ``--install``: copy the grouping model and the results into ``glmix_viz/assets/demo/``.

    python experiments/train_demo.py --work /tmp/demo --runs grouping,bce --evaluate --install \
        [--previous COPY_OF_THE_OLD_DEMO.safetensors]

The two runs can go side by side in two processes (``--runs grouping --threads 1`` and ``--runs bce --threads 1``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scripts.make_docs import check_results, command_line, smoke_folder  # noqa: E402

MODEL_ARGS = {"downsample_strides": [2, 2, 1], "num_slots": 9,
              "mixing_modes": ["glmix", "glmix", "glmix.mha_nchw", "glmix"]}
IMAGE_SIZE = 128
DATA = dict(num_train=6000, num_val=500, seed=0)
HELDOUT = {"heldout_a": dict(num_train=0, num_val=400, seed=3101),
           "heldout_b": dict(num_train=0, num_val=400, seed=3102)}
EPOCHS = 16
# The grouping losses of the demo recipe (EXPERIMENTS.md, fourth probe): colour reconstruction through the slots
# (C then D, weight 10) and the bilateral Potts loss on D (weight 1, colour width 0.12), on every GLMix block.
GROUPING_FLAGS = ["--recon-weight", "10", "--potts-weight", "1", "--potts-sigma-rgb", "0.12"]
# Issue 29's semantic-slots recipe, from scratch: the demo recipe plus the combination experiments/semantic_slots.py
# chose on its development seed 5100 (the cross-view prototype loss and the slot MIL loss in its background, cosine,
# every-slot form on every GLMix block); the flags come from that script's recipe table, the one place they live.
sys.path.insert(0, str(REPO / "experiments"))
from semantic_slots import recipe_flags  # noqa: E402

SEMANTIC_FLAGS = GROUPING_FLAGS + recipe_flags("combo", ["proto", "milconf"])
RUNS = {"grouping": GROUPING_FLAGS, "bce": [], "semantic": SEMANTIC_FLAGS}


SMOKE_SIZES = {"shapes": dict(num_train=4, num_val=2), "heldout_a": dict(num_val=3), "heldout_b": dict(num_val=3)}
"""``--smoke``: the data sets' sizes (same seeds); one epoch of batch 2, no loader processes."""


def train_argv(work: Path, run: str, device: str, threads: int, smoke: bool = False) -> List[str]:
    """The exact ``glmix-viz train`` arguments of one run (``run``: "grouping" or "bce")."""
    epochs, batch, workers = ("1", "2", "0") if smoke else (str(EPOCHS), "32", "1")
    return ["train", "--data", str(work / "shapes"), "--out", str(work / run), "--model", "glnet_tiny",
            "--model-args", json.dumps(MODEL_ARGS), "--slot-scale-init", "10",
            "--epochs", epochs, "--batch-size", batch, "--lr", "1.5e-3", "--warmup-epochs", "0.5",
            "--input-size", "128", "--augment", "flips", *RUNS[run],
            "--seed", "0", "--device", device, "--threads", str(threads), "--workers", workers, "--no-progress"]


def make_data(work: Path, smoke: bool = False) -> None:
    """Write the training set and the held-out sets that are missing (``smoke``: a few images each)."""
    from glmix_viz.data.shapes import ShapesConfig, make_shapes

    for name, settings in (("shapes", DATA), *HELDOUT.items()):
        settings = dict(settings, **SMOKE_SIZES[name]) if smoke else settings
        if not (work / name / "shapes_meta.json").is_file():
            make_shapes(work / name, ShapesConfig(image_size=IMAGE_SIZE), overwrite=True, progress=False, **settings)


TARGETS = {"map": 0.93, "best_vs_best_control": 0.10, "worst_vs_own_untrained": -0.02}


def targets_met(report: Dict) -> Dict:
    """The issue's grouping and classification targets, measured on one held-out report."""
    grouping = report["grouping"]
    return {
        "map >= 0.93": {"met": report["map"] >= TARGETS["map"], "measured": round(report["map"], 4)},
        "best block >= best control + 0.10": {
            "met": grouping["margin"]["mean"] >= TARGETS["best_vs_best_control"],
            "measured": f"{grouping['best_block']} {grouping['margin']['mean']:+.3f} over "
                        f"{grouping['best_control']['name']} (95% CI {grouping['margin']['ci95'][0]:+.3f} to "
                        f"{grouping['margin']['ci95'][1]:+.3f})"},
        "no block more than 0.02 below its untrained control": {
            "met": grouping["worst_vs_untrained"]["mean"] >= TARGETS["worst_vs_own_untrained"],
            "measured": f"{grouping['worst_block']} {grouping['worst_vs_untrained']['mean']:+.3f} (95% CI "
                        f"{grouping['worst_vs_untrained']['ci95'][0]:+.3f} to "
                        f"{grouping['worst_vs_untrained']['ci95'][1]:+.3f})"},
    }


def evaluate(work: Path, runs: List[str], device: str, previous: Optional[str]) -> Dict:
    """Held-out evaluation of every finished run (and of a previous demo model) on both held-out sets."""
    from glmix_viz.heldout import compare_models, heldout_evaluation, strip_per_image
    from glmix_viz.models.loading import load_model

    paths = {run: work / run / "last.safetensors" for run in runs}
    if previous:
        paths["previous"] = Path(previous)
    models = {run: load_model(path, device=device) for run, path in paths.items()}
    results: Dict = {"sets": {}}
    for name in HELDOUT:
        reports = {run: heldout_evaluation(model, str(work / name), "val") for run, model in models.items()}
        entry: Dict = {"reports": {run: strip_per_image(r) for run, r in reports.items()},
                       "targets": {run: targets_met(r) for run, r in reports.items()}, "comparisons": {}}
        for other in ("bce", "previous"):
            if "grouping" in reports and other in reports:
                entry["comparisons"][f"grouping - {other}"] = compare_models(reports["grouping"], reports[other])
        results["sets"][name] = entry
    for run in runs:
        log = [json.loads(line) for line in (work / run / "log.jsonl").read_text().splitlines() if line]
        results.setdefault("training", {})[run] = {
            "epochs": len(log), "train_minutes": sum(e["seconds"] for e in log) / 60,
            "val_map_last_epoch": log[-1].get("val_map"), "slot_scale": log[-1]["slot_scale"],
            "log": [{k: v for k, v in e.items() if k != "val_ap"} for e in log]}
    return results


def table(results: Dict) -> str:
    """Per held-out set and run: the targets, measured (the docs' table)."""
    lines = ["| held-out set | run | target | met | measured |", "| --- | --- | --- | --- | --- |"]
    for name, entry in results["sets"].items():
        for run, targets in entry["targets"].items():
            for target, value in targets.items():
                lines.append(f"| {name} | {run} | {target} | {'yes' if value['met'] else 'no'} | {value['measured']} |")
    lines += ["", "Training commands:", ""] + [f"- {run}: `{command}`" for run, command in results["commands"].items()]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The experiment's arguments (the docs generator re-parses recorded commands with it)."""
    parser = argparse.ArgumentParser(description="Reproduce and measure the glmix-viz demo model.")
    parser.add_argument("--work", default=None, help="folder for the data sets, the runs and the results (required; "
                        "--smoke: a temporary folder)")
    parser.add_argument("--runs", default="grouping,bce",
                        help="comma-separated runs to train: grouping (the demo), bce (its control), semantic (issue 29)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-train", action="store_true", help="only evaluate existing runs")
    parser.add_argument("--evaluate", action="store_true", help="measure the runs on the held-out sets")
    parser.add_argument("--previous", default=None, metavar="CHECKPOINT",
                        help="also evaluate this checkpoint as 'previous' (e.g. a copy of the demo model it replaces)")
    parser.add_argument("--install", action="store_true",
                        help="copy the grouping model and the results into glmix_viz/assets/demo/")
    parser.add_argument("--smoke", action="store_true", help="seconds: a few images per set, one epoch, the grouping run, "
                        "--evaluate; never --install; checks WORK/demo_results.json (give --work a temporary folder)")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.smoke:
        if args.install or args.previous:
            parser.error("--smoke never installs and takes no --previous")
        args.evaluate, args.threads, args.device = True, 1, "cpu"
        args.runs = "grouping"  # the BCE control is the same recipe without the loss flags: one run is enough here
        args.work = args.work or str(smoke_folder(__file__))
    if args.work is None:
        parser.error("--work is required")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    runs = [r for r in args.runs.split(",") if r]
    unknown = set(runs) - set(RUNS)
    if unknown:
        parser.error(f"unknown runs {sorted(unknown)}; known: {', '.join(RUNS)}")

    from glmix_viz.cli import main as cli_main

    make_data(work, args.smoke)
    commands = {run: train_argv(work, run, args.device, args.threads, args.smoke) for run in runs}
    for run, run_argv in commands.items():
        print("glmix-viz " + " ".join(shlex.quote(a) for a in run_argv), flush=True)
        if not args.skip_train:
            started = time.time()
            code = cli_main(run_argv)
            if code:
                return code
            print(f"{run}: {(time.time() - started) / 60:.1f} min", flush=True)
    if args.evaluate:
        results = evaluate(work, runs, args.device, args.previous)
        results.update(command=command_line(__file__, argv), commands={run: "glmix-viz " + " ".join(shlex.quote(a) for a in train_argv(
            Path("DIR"), run, "cpu", 1)) for run in runs}, data=DATA, heldout=HELDOUT, device=args.device)
        (work / "demo_results.json").write_text(json.dumps(results, indent=1) + "\n")
        for name, entry in results["sets"].items():
            for run, targets in entry["targets"].items():
                print(name, run, json.dumps(targets), flush=True)
        if args.smoke:
            check_results(__file__, work / "demo_results.json")
    if args.install:
        target = REPO / "glmix_viz" / "assets" / "demo"
        checkpoint = work / "grouping" / "last.safetensors"
        shutil.copy(checkpoint, target / "glnet_tiny_shapes.safetensors")
        shutil.copy(checkpoint.with_suffix(".json"), target / "glnet_tiny_shapes.json")
        shutil.copy(work / "demo_results.json", target / "demo_results.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
