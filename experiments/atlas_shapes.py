"""The slot atlas of the shipped demo model against its untrained copy, on a held-out shapes set; time and memory.

Steps (the data set and the untrained checkpoint are reused when they exist; the atlases are always redone):

1. ``make-shapes`` with seed 3103 (never used for training, the recipe or model selection; the demo model trained on
   seed 0 and was evaluated on 3101 / 3102), ``--num-val`` images at 128 px, class masks known;
2. the untrained copy of the demo model (``glmix_viz.grouping.untrained_copy``, seed 0) saved as a checkpoint;
3. ``glmix-viz atlas`` on every GLMix block, ``--clusters K``, for both models, each run timed (wall clock) with its
   peak resident memory (``/usr/bin/time``); and once more for the demo model on the first quarter of the images, to
   show that memory does not grow with the number of images;
4. per block: purity (with a bootstrap interval over images), the majority baseline and NMI of both, and the paired
   difference demo - untrained (:func:`glmix_viz.scoring.grouping.purity_difference`: the same images drawn for
   both atlases, the purities recomputed from each resample's summed tables). The best block is the one named
   before looking at any atlas: the demo model's best block by held-out ARI (``demo_results.json``).

    taskset -c 1 python experiments/atlas_shapes.py --work /tmp/atlas_shapes [--images 2000] [--clusters 8]

Writes ``experiments/results/atlas_shapes.json``, ``atlas_shapes.png`` (the best block's atlas of the demo model) and
``atlas_shapes_last_block.png`` (its last block's).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scripts.make_docs import check_results, command_line, smoke_folder  # noqa: E402

SEED = 3103


def timed_atlas(checkpoint: Path, root: Path, split: str, out: Path, clusters: int, device: str,
                reuse: bool = False, in_process: bool = False) -> Dict[str, Any]:
    """One ``glmix-viz atlas`` run over every block (from scratch), with its wall time and peak memory as
    ``/usr/bin/time`` reports them; with ``reuse``, a finished run of the same folder is read back instead.
    ``in_process`` (``--smoke``): the same command in this process, its wall time measured here (peak memory 0)."""
    report = out.parent / f"{out.name}.time"
    command = ["/usr/bin/time", "-f", "%M %e", "-o", str(report), sys.executable, "-m", "glmix_viz", "atlas",
               "--voc-root", str(root), "--split", split, "--block", "0,1,2,3,4,5", "--clusters", str(clusters),
               "--checkpoint", str(checkpoint), "--out", str(out), "--device", device, "--overwrite", "--no-progress"]
    if in_process:
        from glmix_viz.cli import main as cli_main

        started = time.perf_counter()
        if cli_main(command[8:]) != 0:
            raise SystemExit("atlas failed")
        report.write_text(f"0 {time.perf_counter() - started:.2f}\n")
    elif not (reuse and report.is_file() and (out / "atlas.json").is_file()):
        result = subprocess.run(command, env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"atlas failed ({result.returncode}): {result.stderr[-2000:]}")
    peak_kb, wall = report.read_text().split()[-2:]
    summary = json.loads((out / "summary.json").read_text())
    return {"command": " ".join(["glmix-viz", *command[8:]]), "wall_s": float(wall),
            "peak_rss_mib": round(int(peak_kb) / 1024, 1), "collect_s": summary["timing"]["wall_s"],
            "network_s": summary["timing"]["network_s"], "images": summary["counts"]["done"],
            }


def compare(demo: Path, untrained: Path) -> Dict[str, Any]:
    """Per block: purity, interval, baseline, NMI of both atlases and the paired difference of purity."""
    from glmix_viz.atlas.build import background_class
    from glmix_viz.scoring.grouping import image_tables, purity_difference

    a, b = (json.loads((folder / "atlas.json").read_text()) for folder in (demo, untrained))
    images = len(json.loads((demo / "images.json").read_text())["ids"])
    classes, background = len(a["class_names"]), background_class(a["plan"])

    def tables(folder: Path, entry: Dict[str, Any]):
        data = np.load(folder / entry["data"])
        return image_tables(data["region_image"], data["region_concept"], data["region_label"], images=images,
                            concepts=a["clusters"], classes=classes)

    blocks = {}
    for mine, theirs in zip(a["blocks"], b["blocks"]):
        pair = (tables(demo, mine), tables(untrained, theirs), a["clusters"], classes)
        keys = ("purity", "purity_ci95", "majority_baseline", "nmi", "object_purity", "object_purity_ci95",
                "object_majority_baseline", "regions", "class_counts")
        blocks[mine["name"]] = {
            "demo": {k: mine[k] for k in keys}, "untrained": {k: theirs[k] for k in keys},
            "purity_difference": purity_difference(*pair, seed=a["seed"]),
            "object_purity_difference": purity_difference(*pair, background=background, objects=True,
                                                          seed=a["seed"]),
            "nmi_difference": mine["nmi"] - theirs["nmi"],
            "demo_concepts": [{k: c.get(k) for k in ("size", "class", "purity")} for c in mine["concepts"]],
        }
    return blocks


def table(result: Dict[str, Any]) -> str:
    """Per block, demo / untrained: object purity, purity, NMI, and the paired differences (the docs' table)."""
    lines = [f"{result['data']['images']} held-out make-shapes images (seed {result['data']['make_shapes_seed']}), "
             f"{result['clusters']} concepts per block; best block named beforehand: {result['best_block']} "
             f"({result['best_block_rule']}).", "",
             "| block | object purity demo / untrained | difference (95 % CI) | purity demo / untrained | "
             "difference (95 % CI) | NMI demo / untrained |", "| --- | --- | --- | --- | --- | --- |"]
    for name, block in result["blocks"].items():
        demo, untrained = block["demo"], block["untrained"]
        diff = lambda d: f"{d['mean']:+.3f} ({d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f})"  # noqa: E731
        mark = "**" if name == result["best_block"] else ""
        lines.append(f"| {mark}{name}{mark} | {demo['object_purity']:.3f} / {untrained['object_purity']:.3f} | "
                     f"{diff(block['object_purity_difference'])} | {demo['purity']:.3f} / {untrained['purity']:.3f} | "
                     f"{diff(block['purity_difference'])} | {demo['nmi']:.3f} / {untrained['nmi']:.3f} |")
    lines += ["", "| run | images | wall s | peak RSS MiB |", "| --- | --- | --- | --- |"]
    for name, run in result["runs"].items():
        lines.append(f"| {name} | {run['images']} | {run['wall_s']:.0f} | {run['peak_rss_mib']:.0f} |")
    return "\n".join(lines)


SMOKE = {"images": 4, "clusters": 2, "skip_quarter": True}


def build_parser() -> argparse.ArgumentParser:
    """The experiment's arguments (the docs generator re-parses recorded commands with it)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=None, help="data sets and atlases (required; --smoke: a "
                        "temporary folder)")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--clusters", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--results", type=Path, default=None,
                        help="default experiments/results (--smoke: a temporary folder)")
    parser.add_argument("--reuse", action="store_true", help="read back atlases already finished in --work")
    parser.add_argument("--note", default="", help="a line about how the runs went, kept in the results")
    parser.add_argument("--skip-quarter", action="store_true", help="no run on the first quarter of the images")
    parser.add_argument("--smoke", action="store_true", help="seconds: 4 images, 2 concepts, no quarter run; "
                        "checks the JSON (give --work and --results temporary folders)")
    return parser


def main(argv: List[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.smoke:
        vars(args).update(SMOKE)
        args.work = args.work or smoke_folder(__file__)
        args.results = args.results or args.work / "results"
    if args.work is None:
        build_parser().error("--work is required")
    args.results = args.results or REPO / "experiments" / "results"

    from glmix_viz.data.shapes import ShapesConfig, make_shapes
    from glmix_viz.grouping import untrained_copy
    from glmix_viz.models.loading import load_model, save_checkpoint
    from glmix_viz.open import demo_checkpoint

    root = args.work / "shapes"
    if not (root / "ImageSets" / "Segmentation" / "val.txt").is_file():
        make_shapes(root, ShapesConfig(image_size=128), num_train=0, num_val=args.images, seed=SEED)
    ids = (root / "ImageSets" / "Segmentation" / "val.txt").read_text().split()
    (root / "ImageSets" / "Segmentation" / "quarter.txt").write_text("\n".join(ids[: len(ids) // 4]) + "\n")
    demo_path = demo_checkpoint()
    untrained_path = args.work / "untrained.safetensors"
    if not untrained_path.is_file():
        demo = load_model(demo_path, device="cpu")
        config = demo.checkpoint_config
        save_checkpoint(untrained_copy(demo, 0), untrained_path, variant=config["variant"],
                        model_args=config["model_args"], class_names=demo.pretrained_cfg.get("label_names"))
    runs = {}
    plan = [("demo", demo_path, "val"), ("untrained", untrained_path, "val"), ("demo_quarter", demo_path, "quarter")]
    for name, checkpoint, split in plan[:2] if args.skip_quarter else plan:
        runs[name] = timed_atlas(checkpoint, root, split, args.work / f"atlas_{name}", args.clusters, args.device,
                                 args.reuse, in_process=args.smoke)
        print(name, runs[name], file=sys.stderr)
    blocks = compare(args.work / "atlas_demo", args.work / "atlas_untrained")
    best = json.loads((REPO / "glmix_viz/assets/demo/demo_results.json").read_text())
    best_block = best["sets"]["heldout_a"]["reports"]["grouping"]["grouping"]["best_block"]
    atlas = json.loads((args.work / "atlas_demo" / "atlas.json").read_text())
    from glmix_viz.figures import save_figure
    from glmix_viz.images import load_image

    args.results.mkdir(parents=True, exist_ok=True)
    for block, name in ((best_block, "atlas_shapes.png"), (atlas["blocks"][-1]["name"], "atlas_shapes_last_block.png")):
        figure = next(b["figure"] for b in atlas["blocks"] if b["name"] == block)
        save_figure(load_image(args.work / "atlas_demo" / figure), args.results / name, max_bytes=300_000)
    result = {
        "command": command_line(__file__, argv),
        "data": {"make_shapes_seed": SEED, "images": len(ids), "image_size": 128, "split": "val"},
        "clusters": args.clusters, "feature": "slots_in",
        "bootstrap": "glmix_viz.scoring.stats (images resampled, BCa; paired for the differences)",
        "best_block": best_block, "best_block_rule": "the demo model's best block by held-out ARI (demo_results.json)",
        "best": blocks[best_block], "blocks": blocks,
        "runs": runs, "machine": {"cores": "taskset -c 1: one core shared with other jobs", "cpu_count": os.cpu_count(),
                                  "load_average": os.getloadavg(), "device": args.device},
        "note": args.note,
    }
    (args.results / "atlas_shapes.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"best_block": best_block, "best": blocks[best_block],
                      "runs": {k: {x: v[x] for x in ("wall_s", "peak_rss_mib", "images")} for k, v in runs.items()}},
                     indent=2))
    if args.smoke:
        check_results(__file__, args.results / "atlas_shapes.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
