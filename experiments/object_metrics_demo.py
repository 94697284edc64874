"""The object-centric metrics (DINOSAUR / SPOT) of the bundled demo model and its controls on its held-out sets.

For every GLMix block: mean best overlap (mBO) at the instance and class level, mBO after merging the block's slots
to K = 2..8 groups (average-linkage agglomeration of the slot features), and the data-set-level semantic mIoU of
k-means clusters of the slot features (clusters = classes + background, Hungarian cluster-to-class matching), with
the slot count beside every number (``glmix_viz.grouping``, ``glmix_viz.heldout.object_report_from_scores``).
Controls: the untrained copy (seed 0), the slot-initialisation grid (mBO only: it has no slot features), and, when
``--bce`` names its checkpoint, the BCE-only control of ``experiments/train_demo.py``. Paired differences over the
images with 95 % bootstrap intervals (``glmix_viz.scoring.stats``); the semantic mIoU's interval resamples images
with the clustering held fixed.

    python experiments/object_metrics_demo.py --work runs/demo [--limit 400] [--bce runs/demo/bce/last.safetensors]

The held-out sets (seeds 3101 and 3102, 400 images of 128 px each, split ``val``) are made in ``--work`` when
missing, exactly as ``experiments/train_demo.py`` makes them. Writes ``--out`` (JSON) and a Markdown table beside it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

sys.path.insert(0, str(Path(__file__).resolve().parent))  # experiments/: its sibling train_demo

from scripts.make_docs import check_results, command_line, smoke_folder  # noqa: E402
from train_demo import HELDOUT, IMAGE_SIZE  # noqa: E402

from glmix_viz.scoring.stats import DEFAULT_RESAMPLES  # noqa: E402


def score_set(models: Dict[str, Any], root: Path, limit: int, resamples: int, device: str) -> Dict[str, Any]:
    """Every model's object scores on one held-out set, and the reports against the untrained copy and the BCE run."""
    from glmix_viz.data.registry import open_split
    from glmix_viz.grouping import load_grouping_samples, per_image_object_scores
    from glmix_viz.heldout import object_report_from_scores

    samples = load_grouping_samples(str(root), "val", limit=limit or None)
    num_classes = open_split(root, "val").num_classes
    scores, seconds = {}, {}
    for name, model in models.items():
        started = time.time()
        scores[name] = per_image_object_scores(model, samples, input_size=IMAGE_SIZE, num_classes=num_classes,
                                               device=device)
        seconds[name] = time.time() - started
        print(f"{root.name} {name}: {len(samples)} images in {seconds[name]:.0f} s", flush=True)
    reports = {}
    for name in scores:
        if name != "untrained":
            reports[f"{name} vs untrained"] = object_report_from_scores(scores[name], scores["untrained"],
                                                                        resamples=resamples)
    if "bce" in scores:
        reports["demo vs bce"] = object_report_from_scores(scores["demo"], scores["bce"], control_name="bce",
                                                           resamples=resamples)
    for report in reports.values():
        report.pop("per_image")
    return {"images": len(samples), "num_classes": num_classes, "score_seconds": seconds, "reports": reports}


def markdown(results: Dict[str, Any]) -> str:
    """The per-block table of the model card: both sets, demo | untrained | grid (| BCE) per metric."""
    lines: List[str] = []
    for set_name, entry in results["sets"].items():
        report = entry["reports"]["demo vs untrained"]
        bce = entry["reports"].get("bce vs untrained")
        lines += [f"### {set_name} ({entry['images']} images, {report['clusters']} k-means clusters)", "",
                  "| block (slots) | mBO^i demo / untrained / grid | demo - untrained (95 % CI) | mBO^c demo / "
                  "untrained / grid | mBO^i merged to K=2 / 4 / 8 (mean regions) | semantic mIoU demo / untrained "
                  "(slots clustered) | demo - untrained (95 % CI) |" + (" BCE mBO^i / mBO^c / mIoU |" if bce else ""),
                  "| --- | --- | --- | --- | --- | --- | --- |" + (" --- |" if bce else "")]
        for name, block in report["blocks"].items():
            inst, cls, sem = block["mbo"]["instance"], block["mbo"]["class"], block["semantic"]
            merged = block["merged"]["instance"]
            ci = lambda p: f"{p['mean']:+.3f} ({p['ci95'][0]:+.3f}, {p['ci95'][1]:+.3f})"  # noqa: E731
            row = (f"| {name} ({block['slots']}; {block['regions']['trained']:.1f} used) | {inst['trained']:.3f} / "
                   f"{inst['untrained']:.3f} / {inst['grid']:.3f} | {ci(inst['vs_untrained'])} | "
                   f"{cls['trained']:.3f} / {cls['untrained']:.3f} / {cls['grid']:.3f} | "
                   + " / ".join(f"{merged[k]['trained']:.3f}" for k in ("2", "4", "8"))
                   + " (" + " / ".join(f"{merged[k]['regions']:.1f}" for k in ("2", "4", "8")) + ") | "
                   f"{sem['trained']:.3f} / {sem['untrained']:.3f} ({sem['slots']} / {sem['untrained_slots']}) | "
                   f"{ci(sem['vs_untrained'])} |")
            if bce:
                other = bce["blocks"][name]
                row += (f" {other['mbo']['instance']['trained']:.3f} / {other['mbo']['class']['trained']:.3f} / "
                        f"{other['semantic']['trained']:.3f} |")
            lines.append(row)
        lines.append("")
    return "\n".join(lines)


def table(results: Dict[str, Any]) -> str:
    """The docs generator's table: :func:`markdown`."""
    return markdown(results)


SMOKE = {"limit": 2, "resamples": 50, "threads": 1, "device": "cpu"}
SMOKE_IMAGES = 3  # images of each held-out set under --smoke (in --work, never the real sets)


def build_parser() -> argparse.ArgumentParser:
    """The experiment's arguments (the docs generator re-parses recorded commands with it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=None, help="folder holding (or receiving) the held-out sets (required; "
                        "--smoke: a temporary folder)")
    parser.add_argument("--limit", type=int, default=0, help="first N images of each set (0: all 400)")
    parser.add_argument("--bce", default=None, metavar="CHECKPOINT", help="the BCE-only control, when available")
    parser.add_argument("--out", default=None, help="default experiments/results/object_metrics_demo.json "
                        "(--smoke: WORK/object_metrics_demo.json)")
    parser.add_argument("--resamples", type=int, default=DEFAULT_RESAMPLES)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--smoke", action="store_true", help="seconds: held-out sets of 3 images (seeds as usual), "
                        "2 scored, 50 resamples; checks the JSON (give --work and --out temporary paths)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.smoke:
        vars(args).update(SMOKE)
        args.work = args.work or str(smoke_folder(__file__))
        args.out = args.out or str(Path(args.work) / "object_metrics_demo.json")
    if args.work is None:
        build_parser().error("--work is required")
    args.out = args.out or str(REPO / "experiments" / "results" / "object_metrics_demo.json")

    import torch

    from glmix_viz.data.shapes import ShapesConfig, make_shapes
    from glmix_viz.grouping import untrained_copy
    from glmix_viz import demo_checkpoint, load_model

    torch.set_num_threads(args.threads)
    started = time.time()
    work = Path(args.work)
    demo = load_model(demo_checkpoint(), device=args.device)
    models = {"demo": demo, "untrained": untrained_copy(demo, 0)}
    if args.bce:
        models["bce"] = load_model(args.bce, device=args.device)
    results: Dict[str, Any] = {"command": command_line(__file__, argv), "sets": {}, "limit": args.limit, "resamples": args.resamples, "device": args.device,
                               "threads": args.threads, "bce": args.bce, "heldout": HELDOUT,
                               "image_size": IMAGE_SIZE}
    for name, settings in HELDOUT.items():
        if args.smoke:
            settings = dict(settings, num_val=SMOKE_IMAGES)
        if not (work / name / "shapes_meta.json").is_file():
            make_shapes(work / name, ShapesConfig(image_size=IMAGE_SIZE), overwrite=True, progress=False, **settings)
        results["sets"][name] = score_set(models, work / name, args.limit, args.resamples, args.device)
    results["seconds"] = time.time() - started
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json.tmp").write_text(json.dumps(results, indent=1) + "\n")
    out.with_suffix(".json.tmp").replace(out)
    out.with_suffix(".md").write_text(markdown(results) + "\n")
    print(markdown(results), f"\n{results['seconds']:.0f} s", flush=True)
    if args.smoke:
        check_results(__file__, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
