"""The weak-supervision path measured like a paper: every label source carried through to a segmenter.

Run by hand (never in the test suite):

    .venv/bin/python bench/wsss_segment.py                       # held-out seed 3003, all four label sources
    .venv/bin/python bench/wsss_segment.py --seed 3004 --sources slot_pool,gradcam --out /tmp/wsss_segment_3004
    .venv/bin/python bench/wsss_segment.py --num-train 60 --num-test 30 --epochs 2 --out /tmp/ws --no-save  # a look
    .venv/bin/python bench/wsss_segment.py --smoke --out /tmp/ws_smoke     # end to end in seconds (the test suite)

Every step is the real command line (``python -m glmix_viz ...``), so the numbers are what a user gets:

1. ``make-shapes`` (``--seed``, default 3003: a seed no model, benchmark or recipe was trained or tuned on) writes a
   train split (the segmenters' training images) and a held-out test split (the evaluation).
2. For every label source of ``--sources`` that is a registered method (default: ``slot_pool``, the registry's default
   slot method; ``gradcam``, the CAM family; ``cam``, classic CAM): ``pseudo-label`` with the bundled demo model
   (the method's registered threshold, flip, dense CRF) on the train split (the segmenter's labels) and on the test
   split (the *masks* column), and on the test split without the CRF (the *seeds* column). ``gt`` is the ground truth
   (the fully supervised bound).
3. ``segment-train`` once per source, one after another (never side by side, so each time is clean), the same recipe
   for all: UPerNet of width 64 on the demo model's backbone, trainable at ``--backbone-lr-ratio`` of ``--lr``, 128 px
   crops at scale 0.75-1.25, batch 8, ``--epochs``. Each keeps its **last** epoch: nothing is chosen with ground truth.
   ``--val-split test`` only records a learning curve (validation mIoU and loss per epoch on the *test* split's ground
   truth, for the figure; the checkpoint used is ``last.safetensors``, never ``best``).
4. ``segment`` on the test split with each segmenter (``--test-scales``, flip, dense CRF unless ``--no-crf``) and
   ``evaluate`` (mIoU over background + 4 classes; predicted 255 counts as background).
5. The paired comparison of two segmenters (``--compare A,B``, default the first two sources) on the same test images:
   the difference of the data-set mIoU with a 95 % bootstrap interval over images (glmix_viz.scoring.stats; per-image
   confusion matrices resampled
   together), and the mean per-image mIoU difference with its interval.

Threads: ``--threads`` (default 1) for every subprocess (``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``; data loading in the
main process). Pin the whole command to a core with ``taskset -c 0`` for clean times.

Writes ``OUT/wsss_segment.json``, ``OUT/wsss_segment_curves.png`` and, unless ``--no-save``,
``bench/results/<--name>.json`` and ``.png`` (default name ``wsss_segment``); prints the README table. A rerun in the
same ``OUT`` resumes (each command resumes; finished steps cost seconds).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.make_docs import check_results, command_line, smoke_folder  # noqa: E402

GT = "gt"


def _env(threads: int) -> Dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))


IN_PROCESS = False
"""``--smoke``: run each command in this process (one torch import instead of one per step); same code, same flags."""


def _run(args: List[str], log: Path, threads: int) -> float:
    """Run ``python -m glmix_viz ARGS`` (this checkout), its output appended to ``log``; the seconds it took."""
    start = time.perf_counter()
    with open(log, "a") as handle:
        handle.write(f"\n$ glmix-viz {' '.join(args)}\n")
        handle.flush()
        if IN_PROCESS:
            from glmix_viz.cli import main as cli_main

            with contextlib.redirect_stdout(handle), contextlib.redirect_stderr(handle):
                returncode = cli_main(args)
        else:
            returncode = subprocess.run([sys.executable, "-m", "glmix_viz", *args], stdout=handle, stderr=handle,
                                        env=_env(threads)).returncode
    seconds = time.perf_counter() - start
    target = next((args[i + 1] for i, arg in enumerate(args[:-1]) if arg in ("--out", "--pred")), "")
    print(f"{seconds:7.1f} s  glmix-viz {args[0]} {target} (exit {returncode})", flush=True)
    if returncode != 0:
        raise SystemExit(f"glmix-viz {args[0]} failed (exit {returncode}); see {log}")
    return seconds


def _scores(folder: Path) -> Dict[str, Any]:
    scores = json.loads((folder / "eval.json").read_text())
    return {"miou": 100 * scores["miou"], "iou": {k: None if v is None else 100 * v for k, v in scores["iou"].items()},
            "images": scores["num_images"]}


def role(source: str) -> str:
    """What a label source is, for the table's row names."""
    from glmix_viz.pseudo.registry import METHODS

    if source == GT:
        return "ground truth (the fully supervised bound)"
    method = METHODS[source]
    if not method.baseline:
        return "slot method"
    return "CAM family (pytorch-grad-cam)" if method.gradients else "baseline"


SMOKE = {"num_train": 4, "num_test": 2, "image_size": 64, "input_size": 64, "epochs": 1, "batch_size": 2,
         "sources": "slot_pool,gt", "compare": None, "test_scales": "1.0", "crf": False, "decoder_channels": 16,
         "warmup_steps": 1, "no_save": True}
"""``--smoke``: the whole benchmark end to end in seconds (tiny images, one epoch, one method and the bound)."""


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's arguments (no side effects: the docs generator re-parses recorded commands with it)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="work folder (default /tmp/wsss_segment)")
    parser.add_argument("--data", type=Path, default=None, metavar="PATH",
                        help="run on this data set (any --data format with masks and splits train and test) instead "
                             "of a generated shapes set")
    parser.add_argument("--name", default="wsss_segment", help="file stem under bench/results")
    parser.add_argument("--seed", type=int, default=3003)
    parser.add_argument("--sources", default="slot_pool,gradcam,cam,gt",
                        help="label sources: registered pseudo-mask methods and 'gt' (comma-separated)")
    parser.add_argument("--compare", default=None, help="A,B: the paired difference A - B (default: the first two)")
    parser.add_argument("--num-train", type=int, default=800)
    parser.add_argument("--num-test", type=int, default=100)
    parser.add_argument("--image-size", type=int, default=128, help="make-shapes --image-size")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--input-size", type=int, default=128, help="training crop (the images are 128 px)")
    parser.add_argument("--scale-range", default="0.75,1.25", help="training rescale range")
    parser.add_argument("--test-scales", default="0.75,1.0,1.25", help="segment --scales (chosen on the tuning seed)")
    parser.add_argument("--no-crf", dest="crf", action="store_false", help="segment without --crf")
    parser.add_argument("--crf-confidence", type=float, default=None,
                        help="training masks: pixels whose CRF probability is below this become 255 (ignored)")
    parser.add_argument("--decoder", default="upernet")
    parser.add_argument("--decoder-channels", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--backbone-lr-ratio", type=float, default=0.1, help="0: the encoder stays frozen")
    parser.add_argument("--warmup-steps", type=int, default=20)
    parser.add_argument("--no-curves", dest="curves", action="store_false",
                        help="no per-epoch validation on the test split (no learning-curve figure)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of every step")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--labels-only", action="store_true",
                        help="stop after step 2 (the pseudo-masks); the results hold the label sources alone")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/NAME.json / .png")
    parser.add_argument("--in-process", action="store_true",
                        help="run every glmix-viz step in this process (one interpreter start instead of one per step: "
                             "the same commands; use it to collect a run whose steps are already done)")
    parser.add_argument("--smoke", action="store_true",
                        help="seconds, not minutes: 4 + 2 images of 64 px, one epoch, slot_pool and gt, no CRF, "
                             "commands run in this process; writes only OUT/wsss_segment.json and checks its fields")
    return parser


def parse_args(argv: List[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.smoke:
        for key, value in SMOKE.items():
            setattr(args, key, value)
    if args.out is None:
        args.out = smoke_folder(__file__) if args.smoke else Path("/tmp/wsss_segment")
    from glmix_viz.pseudo.registry import METHODS

    args.sources = [name.strip() for name in args.sources.split(",") if name.strip()]
    unknown = [name for name in args.sources if name != GT and name not in METHODS]
    if unknown:
        parser.error(f"unknown label source(s) {unknown}; registered methods: {', '.join(METHODS)}, or gt")
    args.compare = (args.compare.split(",") if args.compare else args.sources[:2])
    if len(args.sources) < 2 and not args.compare[1:]:
        args.compare = None  # one source: nothing to compare
    elif len(args.compare) != 2 or any(name not in args.sources for name in args.compare):
        parser.error(f"--compare needs two of the sources {args.sources}")
    return args


def label_sources(args: argparse.Namespace, out: Path, data: Path, log: Path, timings: Dict[str, float]
                  ) -> Dict[str, Any]:
    """Step 2: pseudo-masks of every method source (train with CRF; test with and without); their scores."""
    from glmix_viz.open import demo_checkpoint

    common = ["--data", str(data), "--device", args.device, "--no-progress"]
    demo = str(demo_checkpoint())
    results: Dict[str, Any] = {}
    for method in [name for name in args.sources if name != GT]:
        runs = {"masks_train": ("train", ["--crf"] + ([] if args.crf_confidence is None else
                                                     ["--crf-confidence", str(args.crf_confidence)])),
                "masks": ("test", ["--crf"]), "seeds": ("test", ["--no-crf"])}
        entry: Dict[str, Any] = {}
        for key, (split, flags) in runs.items():
            folder = out / f"{key}_{method}"
            timings[f"pseudo_label_{key}_{method}"] = _run(
                ["pseudo-label", *common, "--split", split, "--checkpoint", demo, "--method", method, *flags,
                 "--workers", "0", "--out", str(folder)], log, args.threads)
            _run(["evaluate", "--data", str(data), "--split", split, "--pred", str(folder), "--no-progress"], log,
                 args.threads)
            entry[key] = _scores(folder)
        results[method] = entry
    return results


def segmenters(args: argparse.Namespace, out: Path, data: Path, log: Path, timings: Dict[str, float]
               ) -> Dict[str, Any]:
    """Steps 3-4: one segmenter per source, trained one after another; each scored on the test split."""
    from glmix_viz.open import demo_checkpoint

    common = ["--data", str(data), "--device", args.device, "--no-progress"]
    train = ["--split", "train", "--val-split", "test" if args.curves else "none", "--init", str(demo_checkpoint()),
             "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--input-size", str(args.input_size),
             "--decoder", args.decoder, "--decoder-channels", str(args.decoder_channels), "--lr", str(args.lr),
             "--scale-range", args.scale_range, "--backbone-lr-ratio", str(args.backbone_lr_ratio), "--workers", "0",
             "--warmup-steps", str(args.warmup_steps)]
    results: Dict[str, Any] = {}
    for source in args.sources:
        run = out / f"run_{source}"
        labels = [] if source == GT else ["--labels", str(out / f"masks_train_{source}")]
        timings[f"segment_train_{source}"] = _run(["segment-train", *common, *train, *labels, "--out", str(run)],
                                                  log, args.threads)
        pred = out / f"pred_{source}"
        timings[f"segment_{source}"] = _run(
            ["segment", *common, "--split", "test", "--flip", "--scales", args.test_scales,
             *(["--crf"] if args.crf else []), "--checkpoint", str(run / "last.safetensors"), "--out", str(pred)],
            log, args.threads)
        _run(["evaluate", "--data", str(data), "--split", "test", "--pred", str(pred), "--no-progress"], log,
             args.threads)
        results[source] = dict(_scores(pred), history=run_history(run))
    return results


def run_history(run: Path) -> List[Dict[str, Any]]:
    """The per-epoch log of a finished segment-train run, read by the runtime's own reader (``log.jsonl``)."""
    from glmix_viz.runtime.resume import read_state

    state = read_state(run)
    if state is None or not state[1].history:
        raise SystemExit(f"{run}: no resume state or epoch log; did segment-train finish?")
    return state[1].history


def per_image_confusions(data: Path, folder: Path) -> np.ndarray:
    """``(N, K, K)`` confusion matrices of the test split's images (predicted 255 counts as background)."""
    from glmix_viz.data.registry import open_split
    from glmix_viz.labels import load_label_png
    from glmix_viz.scoring.segmentation import confusion_matrix

    dataset = open_split(data, "test")
    return np.stack([confusion_matrix(load_label_png(folder / f"{image_id}.png"), dataset.mask(image_id),
                                      dataset.num_classes, background=dataset.background, ignore=dataset.ignore)
                     for image_id in dataset.ids])


def paired_comparison(data: Path, folder_a: Path, folder_b: Path, seed: int = 0) -> Dict[str, Any]:
    """Segmenter A minus segmenter B on the same images (percent): data-set mIoU difference with a paired bootstrap
    interval over images (each resample sums the same images' confusions for both), and the per-image mIoU
    difference (:mod:`glmix_viz.scoring.stats`, its default resamples)."""
    from glmix_viz.scoring.stats import class_counts, miou_of_counts, paired_difference, paired_miou_difference

    conf_a, conf_b = per_image_confusions(data, folder_a), per_image_confusions(data, folder_b)
    pooled = paired_miou_difference(conf_a, conf_b, seed=seed)
    per_image = paired_difference(100 * miou_of_counts(class_counts(conf_a)),
                                  100 * miou_of_counts(class_counts(conf_b)), seed=seed)
    return {"miou_difference": 100 * pooled["mean"], "ci95": [100 * value for value in pooled["ci95"]],
            "images": pooled["images"], "per_image_miou_difference": per_image}


def curves_figure(results: Dict[str, Any], path: Path, title: str) -> None:
    """Learning curves: training loss and validation loss (left), validation mIoU (right), per source."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from glmix_viz.figures import save_figure

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for index, (source, entry) in enumerate(results.items()):
        history, color = entry["history"], f"C{index}"
        epochs = [row["epoch"] for row in history]
        left.plot(epochs, [row["train_loss"] for row in history], color=color, label=f"{source}: train (its labels)")
        if all("val_loss" in row for row in history):
            left.plot(epochs, [row["val_loss"] for row in history], color=color, linestyle="--",
                      label=f"{source}: test (ground truth)")
        if all("val_miou" in row for row in history):
            right.plot(epochs, [100 * row["val_miou"] for row in history], color=color, marker="o", markersize=3,
                       label=source)
    left.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    right.set(xlabel="epoch", ylabel="mIoU (single scale, no CRF)",
              title="test-split mIoU (curve only; last epoch kept)")
    left.legend(fontsize=7)
    right.legend(fontsize=7)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    save_figure(figure, path)
    plt.close(figure)


def main(argv: List[str] | None = None) -> int:
    global IN_PROCESS
    args = parse_args(argv)
    IN_PROCESS = args.smoke or args.in_process
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    log = out / "log.txt"
    data = args.data or out / "shapes"
    timings: Dict[str, float] = {}
    started = time.perf_counter()
    if args.data is None and not (data / "ImageSets" / "Segmentation" / "test.txt").is_file():
        timings["make_shapes"] = _run(["make-shapes", "--out", str(data), "--num-train", str(args.num_train),
                                       "--image-size", str(args.image_size),
                                       "--num-val", "1", "--num-test", str(args.num_test), "--seed", str(args.seed),
                                       "--overwrite"], log, args.threads)
    labels = label_sources(args, out, data, log, timings)
    trained = {} if args.labels_only else segmenters(args, out, data, log, timings)
    comparison = None
    if args.compare and not args.labels_only:
        first, second = args.compare
        comparison = dict(paired_comparison(data, out / f"pred_{first}", out / f"pred_{second}"), a=first, b=second)
    report = _report(args, labels, trained, comparison, timings, time.perf_counter() - started,
                     command_line(__file__, argv))
    text = json.dumps(report, indent=1) + "\n"
    (out / "wsss_segment.json").write_text(text)
    title = (f"make-shapes seed {args.seed}: {args.num_train} training images, {args.epochs} epochs, "
             f"{args.num_test} test images")
    curves = args.curves and bool(trained)
    if curves:
        curves_figure(trained, out / "wsss_segment_curves.png", title)
    if not args.no_save:
        (ROOT / "bench" / "results" / f"{args.name}.json").write_text(text)
        if curves:
            curves_figure(trained, ROOT / "bench" / "results" / f"{args.name}_curves.png", title)
    print(table(report))
    if args.smoke:
        check_results(__file__, out / "wsss_segment.json")
    return 0


def _targets(labels: Dict[str, Any], trained: Dict[str, Any], comparison: Dict[str, Any] | None) -> Dict[str, Any]:
    targets: Dict[str, Any] = {}
    bound = trained.get(GT, {}).get("miou")
    if bound is not None:
        targets["bound >= 95 mIoU"] = {"met": bound >= 95, "measured": bound}
    for source, entry in trained.items():
        if source == GT or source not in labels:
            continue
        gain = entry["miou"] - labels[source]["masks"]["miou"]
        targets[f"{source} segmenter >= its masks + 12"] = {"met": gain >= 12, "measured": gain}
        if bound is not None:
            targets[f"{source} segmenter >= 92% of the bound"] = {"met": entry["miou"] >= 0.92 * bound,
                                                                  "measured": entry["miou"] / bound}
    if comparison:
        targets[f"{comparison['a']} segmenter >= {comparison['b']} segmenter + 10"] = {
            "met": comparison["miou_difference"] >= 10, "measured": comparison["miou_difference"]}
    return targets


def _report(args: argparse.Namespace, labels: Dict[str, Any], trained: Dict[str, Any],
            comparison: Dict[str, Any] | None, timings: Dict[str, float], wall: float, command: str
            ) -> Dict[str, Any]:
    import torch

    return {
        "benchmark": "wsss_segment",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "settings": {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()},
        "selection": "every segmenter keeps its last epoch; the test split's ground truth only draws the curves",
        "roles": {source: role(source) for source in args.sources},
        "label_sources": labels,
        "segmenters": trained,
        "comparison": comparison,
        "targets": _targets(labels, trained, comparison),
        "timings_s": {key: round(value, 1) for key, value in timings.items()} | {"total": round(wall, 1)},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "threads": args.threads,
                    "affinity": sorted(os.sched_getaffinity(0)), "python": platform.python_version(),
                    "torch": torch.__version__},
    }


def table(report: Dict[str, Any]) -> str:
    """The README table: seeds -> masks -> segmenter per source, the paired comparison, the targets."""
    labels, trained = report["label_sources"], report["segmenters"]
    lines = ["| label source | seeds (no CRF) | masks (CRF) | training masks (CRF) | segmenter | segmenter - masks |",
             "| --- | --- | --- | --- | --- | --- |"]
    if not trained:  # --labels-only: the label sources alone
        for source, entry in labels.items():
            lines.append(f"| `{source}` ({report['roles'][source]}) | {entry['seeds']['miou']:.1f} | "
                         f"{entry['masks']['miou']:.1f} | {entry['masks_train']['miou']:.1f} | not trained "
                         "(--labels-only) | - |")
    for source, entry in trained.items():
        name = f"`{source}` ({report['roles'][source]})"
        if source in labels:
            seeds, masks, train = (labels[source][key]["miou"] for key in ("seeds", "masks", "masks_train"))
            lines.append(f"| {name} | {seeds:.1f} | {masks:.1f} | {train:.1f} | **{entry['miou']:.1f}** | "
                         f"{entry['miou'] - masks:+.1f} |")
        else:
            lines.append(f"| {name} | - | - | - | **{entry['miou']:.1f}** | - |")
    classes = list(next(iter(trained.values()))["iou"]) if trained else []
    if trained:
        lines += ["", "| segmenter per class | " + " | ".join(classes) + " |", "| --- |" + " --- |" * len(classes)]
    for source, entry in trained.items():
        lines.append(f"| {source} | " + " | ".join("-" if entry["iou"][name] is None else f"{entry['iou'][name]:.1f}"
                                                   for name in classes) + " |")
    comp = report["comparison"]
    if comp:
        low, high = comp["ci95"]
        per = comp["per_image_miou_difference"]
        lines += ["", f"{comp['a']} segmenter - {comp['b']} segmenter: {comp['miou_difference']:+.1f} mIoU "
                  f"(95 % bootstrap interval over {comp['images']} images {low:+.1f} .. {high:+.1f}); per-image mIoU "
                  f"{per['mean']:+.1f} ({per['ci95'][0]:+.1f} .. {per['ci95'][1]:+.1f})"]
    lines.append("")
    for name, target in report["targets"].items():
        lines.append(f"- {name}: {'met' if target['met'] else 'NOT met'} ({target['measured']:.3f})")
    lines.append(f"total {report['timings_s']['total'] / 60:.1f} min")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
