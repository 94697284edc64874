"""Weak-supervision benchmark on held-out generated shapes: classification, pseudo-masks, grouping, one figure.

One command, run by hand (never in the test suite):

    .venv/bin/python bench/wsss_shapes.py                       # defaults: 150 tuning + 300 evaluation images
    .venv/bin/python bench/wsss_shapes.py --num-images 100 --num-tune 60 --out /tmp/wsss   # a quick look
    .venv/bin/python bench/wsss_shapes.py --quick              # 40 + 80 images, slow methods (ScoreCAM) left out
    .venv/bin/python bench/wsss_shapes.py --methods cam,gradcam,slot_vote --device cuda

Methods: every method of the registry (``glmix_viz.pseudo.METHODS``: the slot methods, classic CAM, SLIC-CAM and
the pytorch-grad-cam family), each tuned over its registered ``search_space``; the baselines are the methods the
registry marks ``baseline``, and the slot methods are measured against the strongest of them.

Model: the bundled demo model (``glmix_viz.demo_checkpoint()``, trained on ``make-shapes --seed 0``; its own held-out
evaluation used seed 1000), or ``--checkpoint``. Data: two fresh ``make-shapes`` sets at 128 px, the *tuning* split
(``--tune-seed``, default 2001) and the *evaluation* split (``--eval-seed``, default 2002); neither seed was used in
training or model selection, and nothing is chosen on the evaluation split.

Steps:

1. classification mAP of the model on the evaluation split (``glmix_viz.train.predict_scores``);
2. tuning, on the tuning split only, without CRF: for every pseudo-mask method, the grid of its search space (which
   GLMix blocks, ``sharpen``, walk ``steps``, SLIC ``segments``, CAM ``layer``) times a grid of background
   thresholds; the class maps do not depend on the threshold (rule ``"threshold"``: a constant background score),
   so each option setting runs the network once and every threshold is scored from the same maps. Then the dense
   CRF's parameters: a few settings around the usual defaults, applied to every method at its chosen threshold,
   and the setting with the best mean mIoU over the methods is kept (one CRF setting for all methods, so the
   comparison stays fair);
3. evaluation split: every method with its chosen settings, without and with the chosen CRF, through the real batch
   pipeline (:func:`~glmix_viz.pseudo.pipeline.run_pseudo_label`, palette PNGs) and the semantics of
   ``glmix-viz evaluate`` (:func:`~glmix_viz.evaluate.evaluate_predictions`: predicted 255 counts as
   background; mIoU over background + the 4 classes);
4. class-free grouping score per GLMix block with its two controls (:func:`glmix_viz.grouping.grouping_report`);
5. ``OUT/wsss_shapes.png``: a few evaluation images with ground truth, the hard grouping of every block, and the
   pipeline's pseudo-masks of every method before and after the CRF;
6. ``OUT/wsss_shapes.json`` (numbers as percentages for mIoU / IoU, settings, seeds, timings) and markdown tables on
   stdout. The pseudo-mask mIoUs sit under ``pseudo_masks.<method>.miou`` (no CRF) and ``.miou_crf`` (CRF), the key
   names that ``notebooks/02_pseudo_masks.ipynb`` plots.

At most ``--threads`` CPU threads (default 2): torch's pool; the CRF and SLIC run in the main process
(``workers=0`` in the pipeline), one at a time.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import glmix_viz.models  # noqa: E402,F401  (registers the GLNet variants with timm)
from glmix_viz.data.shapes import ShapesConfig, make_shapes  # noqa: E402
from glmix_viz.data.base import Split as DataSplit, object_names  # noqa: E402
from glmix_viz.data.registry import open_split  # noqa: E402
from glmix_viz.labels import load_label_png, voc_palette  # noqa: E402
from glmix_viz.evaluate import evaluate_predictions  # noqa: E402
from glmix_viz.slots.explore import explore_image  # noqa: E402
from glmix_viz.grouping import grouping_report, load_grouping_samples  # noqa: E402
from glmix_viz.open import resolve_model  # noqa: E402
from glmix_viz.probe import glmix_block_names  # noqa: E402
from glmix_viz.crf import CRFParams  # noqa: E402
from glmix_viz.pseudo.masks import pseudo_mask  # noqa: E402
from glmix_viz.scoring.segmentation import SegmentationMetric  # noqa: E402
from glmix_viz.pseudo.pipeline import run_pseudo_label  # noqa: E402
from glmix_viz.pseudo.registry import METHODS, search_grid  # noqa: E402
from glmix_viz.pseudo.scores import ScoreMaps, compute_scores_batch  # noqa: E402
from glmix_viz.pseudo.settings import ScoreSettings  # noqa: E402
from glmix_viz.scoring.classification import mean_average_precision  # noqa: E402
from glmix_viz.train import load_split, predict_scores  # noqa: E402
from glmix_viz.viz import colorize_labels, grouping_overlay, hstack_panels, overlay, vstack_panels  # noqa: E402
from scripts.make_docs import check_results, command_line, smoke_folder  # noqa: E402

IMAGE_SIZE = 128
THRESHOLDS: Tuple[float, ...] = tuple(round(0.20 + 0.05 * step, 2) for step in range(15))  # 0.20 .. 0.90
CRF_CANDIDATES: Tuple[CRFParams, ...] = (
    CRFParams(),  # the usual defaults: Gaussian 3/3, bilateral 80/13/10
    CRFParams(bilateral_compat=15.0),
    CRFParams(bilateral_srgb=20.0),
    CRFParams(bilateral_srgb=20.0, bilateral_compat=15.0),
    CRFParams(bilateral_sxy=40.0, bilateral_compat=5.0),
    CRFParams(gaussian_compat=1.0),
)
FIGURE_MAX_BYTES = 500_000


# ----------------------------------------------------------------------------------------------------------------------
# Candidate settings of each method (tuned on the tuning split)
# ----------------------------------------------------------------------------------------------------------------------


def method_candidates(block_names: Sequence[str], methods: Optional[Sequence[str]] = None
                      ) -> Dict[str, List[Dict[str, Any]]]:
    """The option grid of every registered method (its ``search_space``, :func:`search_grid`):
    ``{method: [{"blocks": list or None, "options": dict}, ...]}``; ``methods`` restricts it to those names."""
    names = list(METHODS) if methods is None else list(methods)
    unknown = sorted(set(names) - set(METHODS))
    if unknown:
        raise SystemExit(f"unknown method(s) {unknown}; registered: {', '.join(METHODS)}")
    return {name: search_grid(name, block_names) for name in names}


# ----------------------------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------------------------


def make_split(root: Path, seed: int, count: int) -> DataSplit:
    """Write (or reuse) a ``make-shapes`` set of ``count`` validation images at 128 px and open its ``val`` split."""
    meta = root / "shapes_meta.json"
    if not (meta.is_file() and len(open_split(root, "val").ids) == count):
        if root.exists():
            shutil.rmtree(root)
        make_shapes(root, ShapesConfig(image_size=IMAGE_SIZE), num_train=0, num_val=count, seed=seed, progress=False)
    return open_split(root, "val")


class Split:
    """Images, image-level labels and ground-truth masks of a split, in memory (small sets only)."""

    def __init__(self, dataset: DataSplit) -> None:
        self.dataset = dataset
        self.ids = list(dataset.ids)
        self.images = [dataset.image(image_id) for image_id in self.ids]
        self.labels = [dataset.labels(image_id) for image_id in self.ids]
        self.masks = [dataset.mask(image_id) for image_id in self.ids]


def with_background(maps: ScoreMaps, threshold: float) -> np.ndarray:
    """The maps' scores with channel 0 replaced by the constant background score ``threshold``."""
    scores = maps.scores.copy()
    scores[0] = threshold
    return scores


def masks_at(split: Split, maps: Sequence[ScoreMaps], threshold: float, crf: Optional[CRFParams] = None
             ) -> List[np.ndarray]:
    """The library's pseudo-masks (:func:`pseudo_mask`) of the split at background ``threshold`` (CRF optional)."""
    return [pseudo_mask(image, replace(m, scores=with_background(m, threshold)), crf).labels()
            for image, m in zip(split.images, maps)]


def split_miou(split: Split, label_maps: Sequence[np.ndarray]) -> float:
    """mIoU in percent of label maps against the split's masks (the metric of ``glmix-viz evaluate``)."""
    metric = SegmentationMetric(split.dataset.num_classes, list(split.dataset.class_names),
                                background=split.dataset.background, ignore=split.dataset.ignore)
    for predicted, truth in zip(label_maps, split.masks):
        metric.update(predicted, truth)
    return 100.0 * float(metric.compute()["miou"])


def short_block(name: str) -> str:
    """``stages.1.blocks.0`` -> ``s1.b0``."""
    return name.replace("stages.", "s").replace(".blocks.", ".b")


def describe(candidate: Dict[str, Any]) -> str:
    """Short text of a candidate setting, for tables."""
    blocks = candidate["blocks"]
    parts = []
    if METHODS[candidate["method"]].uses_probe:
        parts.append("blocks " + ("all" if blocks is None else ",".join(short_block(name) for name in blocks)))
    parts += [f"{key} {value:g}" if isinstance(value, (int, float)) else f"{key} {value}"
              for key, value in candidate["options"].items()]
    return ", ".join(parts) or "-"


# ----------------------------------------------------------------------------------------------------------------------
# Steps
# ----------------------------------------------------------------------------------------------------------------------


def classification(model: torch.nn.Module, root: Path) -> Dict[str, Any]:
    """mAP and per-class AP of the model on a split."""
    split = load_split(str(root), "val", IMAGE_SIZE, workers=0)
    scores, targets = predict_scores(model, split, next(model.parameters()).device, batch_size=64)
    mean_ap, per_class = mean_average_precision(scores, targets)
    names = object_names(split.split)
    return {"map": mean_ap, "ap": {name: float(value) for name, value in zip(names, per_class)},
            "images": int(len(scores))}


def tune(model: torch.nn.Module, split: Split, grid: Dict[str, List[Dict[str, Any]]], device: Optional[str] = None
         ) -> Dict[str, Any]:
    """Choose each method's options and threshold (no CRF), then one CRF setting, on the tuning split.

    Returns:
        ``{"methods": {method: {"candidates": [...], "chosen": {...}}}, "crf": {"candidates": [...], "chosen":
        {...}}}``; scores are tuning-split mIoU in percent.
    """
    methods: Dict[str, Any] = {}
    chosen_maps: Dict[str, List[ScoreMaps]] = {}
    for method, candidates in grid.items():
        rows = []
        best_score, best_maps = -1.0, None
        for candidate in candidates:
            began = time.perf_counter()
            settings = ScoreSettings(method=method, blocks=candidate["blocks"], options=candidate["options"],
                                     bg_rule="threshold", bg_param=0.0, input_size=IMAGE_SIZE, flip=True,
                                     device=device)
            maps = compute_scores_batch(model, split.images, split.labels, settings, batch_size=32)
            by_threshold = {
                threshold: split_miou(split, masks_at(split, maps, threshold))
                for threshold in THRESHOLDS
            }
            threshold = max(by_threshold, key=by_threshold.get)  # first of equals: the lowest threshold
            row = {"method": method, **candidate, "threshold": threshold, "tuning_score": by_threshold[threshold],
                   "tuning_score_by_threshold": {f"{t:.2f}": s for t, s in by_threshold.items()},
                   "seconds": time.perf_counter() - began}
            rows.append(row)
            print(f"  tune {method:9s} {describe(row):38s} t={threshold:.2f} mIoU {by_threshold[threshold]:5.1f}",
                  flush=True)
            if row["tuning_score"] > best_score:
                best_score, best_maps = row["tuning_score"], maps
                methods[method] = {"candidates": rows, "chosen": row}
        chosen_maps[method] = best_maps

    crf_rows = []
    for params in CRF_CANDIDATES:
        per_method = {}
        for method, maps in chosen_maps.items():
            threshold = methods[method]["chosen"]["threshold"]
            per_method[method] = split_miou(split, masks_at(split, maps, threshold, params))
        mean = float(np.mean(list(per_method.values())))
        crf_rows.append({"params": params.to_dict(), "tuning_score_mean": mean, "tuning_score_by_method": per_method})
        print(f"  tune crf {params.to_dict()} mean mIoU {mean:5.1f}", flush=True)
    best_crf = max(crf_rows, key=lambda row: row["tuning_score_mean"])
    return {"methods": methods, "crf": {"candidates": crf_rows, "chosen": best_crf}}


def evaluate_methods(model: torch.nn.Module, dataset: DataSplit, tuning: Dict[str, Any], crf: CRFParams,
                     pred_root: Path, device: Optional[str] = None) -> Dict[str, Any]:
    """Every method on the evaluation split through the pipeline and ``evaluate_predictions``, without / with CRF."""
    results: Dict[str, Any] = {}
    for method, tuned in tuning["methods"].items():
        chosen = tuned["chosen"]
        settings = ScoreSettings(method=method, blocks=chosen["blocks"], options=chosen["options"],
                                 bg_rule="threshold", bg_param=chosen["threshold"], input_size=IMAGE_SIZE, flip=True,
                                 device=device)
        entry: Dict[str, Any] = {"threshold": chosen["threshold"], "blocks": chosen["blocks"],
                                 "options": dict(settings.options)}
        for suffix, crf_params in (("", None), ("_crf", crf)):
            out_dir = pred_root / (method + (suffix or "_plain"))
            summary = run_pseudo_label(dataset, out_dir, model, settings, crf=crf_params, workers=0, overwrite=True,
                                       batch_size=16, progress=False)
            if summary["counts"]["failed"]:
                raise RuntimeError(f"{method}{suffix}: pipeline failures {summary['failures'][:3]}")
            scores = evaluate_predictions(dataset, out_dir)
            if scores["num_failed"]:
                raise RuntimeError(f"{method}{suffix}: evaluation failures {scores['failures'][:3]}")
            entry["miou" + suffix] = 100.0 * float(scores["miou"])
            entry["per_class_iou" + suffix] = {name: None if value is None else 100.0 * value
                                               for name, value in scores["iou"].items()}
            entry["pixel_accuracy" + suffix] = 100.0 * float(scores["pixel_accuracy"])
            entry["pipeline_seconds" + suffix] = summary["timing"]["wall_s"]
            entry["predictions" + suffix] = str(out_dir)
        print(f"  eval {method:9s} mIoU {entry['miou']:5.1f}  +CRF {entry['miou_crf']:5.1f}", flush=True)
        results[method] = entry
    return results


def label_overlay(image: np.ndarray, labels: np.ndarray, palette: np.ndarray, background: Optional[int] = 0,
                  ignore: int = 255) -> np.ndarray:
    """(H, W, 3) picture: the image with its labels other than the background and ``ignore`` painted in the VOC
    colours."""
    foreground = (labels != ignore) & (labels != (-1 if background is None else background))
    return overlay(image, colorize_labels(np.where(foreground, labels, 0), palette), alpha=0.8,
                   mask=foreground.astype(np.float32))


def make_figure(model: torch.nn.Module, split: Split, results: Dict[str, Any], count: int, path: Path
                ) -> Dict[str, Any]:
    """Rows per image: (image, ground truth, hard grouping of every block) and (each method's mask, then + CRF)."""
    from PIL import Image

    from glmix_viz.grouping import GroupingSample

    palette = voc_palette(256)
    chosen = []
    for index, image_id in enumerate(split.ids):
        sample = GroupingSample(image_id, split.images[index], split.dataset.instances(image_id))
        if sample.num_instances >= 2:
            chosen.append(index)
        if len(chosen) == count:
            break
    rows = []
    for index in chosen:
        image, truth, image_id = split.images[index], split.masks[index], split.ids[index]
        exploration = explore_image(model, image, input_size=IMAGE_SIZE)
        ids = dict(background=split.dataset.background, ignore=split.dataset.ignore)
        top = [image, label_overlay(image, truth, palette, **ids)]
        top_titles = [image_id, "ground truth"]
        for name in exploration.block_names:
            top.append(grouping_overlay(image, exploration.dispatch(name)))
            top_titles.append(short_block(name))
        bottom, bottom_titles = [], []
        for method, entry in results.items():
            for suffix, label in (("", method), ("_crf", "+CRF")):
                predicted = load_label_png(Path(entry["predictions" + suffix]) / f"{image_id}.png")
                bottom.append(label_overlay(image, predicted, palette, **ids))
                bottom_titles.append(label)
        rows.append(hstack_panels(top, titles=top_titles, font_size=11, pad=3))
        rows.append(hstack_panels(bottom, titles=bottom_titles, font_size=11, pad=3))
    picture = Image.fromarray(vstack_panels(rows, pad=6))
    scale = 1.0
    while True:
        shown = picture if scale == 1.0 else picture.resize(
            (round(picture.width * scale), round(picture.height * scale)), Image.LANCZOS)
        shown.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
        if path.stat().st_size <= FIGURE_MAX_BYTES or scale < 0.4:
            break
        scale *= 0.85
    return {"path": str(path), "images": [split.ids[index] for index in chosen], "bytes": path.stat().st_size,
            "scale": scale}


# ----------------------------------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------------------------------


def markdown_tables(report: Dict[str, Any]) -> str:
    """The README tables: classification, mIoU by method (no CRF / CRF), per-class IoU of the best, grouping."""
    lines = []
    cls = report["classification"]
    lines += [f"Classification mAP (evaluation split, {cls['images']} images): **{100 * cls['map']:.1f}** "
              f"(AP {', '.join(f'{name} {100 * value:.1f}' for name, value in cls['ap'].items())})", ""]
    pseudo = report["pseudo_masks"]
    lines += ["| method | setting (chosen on the tuning split) | bg threshold | mIoU | mIoU + CRF |",
              "| --- | --- | --- | --- | --- |"]
    for method, entry in pseudo.items():
        setting = describe({"method": method, "blocks": entry["blocks"],
                            "options": report["tuning"]["methods"][method]["chosen"]["options"]})
        lines.append(f"| {method} | {setting} | {entry['threshold']:.2f} | {entry['miou']:.1f} | "
                     f"{entry['miou_crf']:.1f} |")
    best = report["summary"]["best_slot_method"]
    lines += ["", f"Per-class IoU of the best slot-based method ({best}) and of the baselines:", ""]
    names = list(pseudo[best]["per_class_iou"])
    lines += ["| method | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    for method in dict.fromkeys([best, *(name for name in pseudo if METHODS[name].baseline)]):
        for suffix, label in (("", ""), ("_crf", " + CRF")):
            values = pseudo[method]["per_class_iou" + suffix]
            cells = " | ".join("-" if values[name] is None else f"{values[name]:.1f}" for name in names)
            lines.append(f"| {method}{label} | {cells} |")
    group = report["grouping"]
    lines += ["", f"Grouping: foreground ARI of the hard slot assignment vs instances ({group['images']} evaluation "
              "images with >= 2 objects)", "",
              "| block | map | trained | untrained | slot-init grid |", "| --- | --- | --- | --- | --- |"]
    for name, scores in group["blocks"].items():
        mark = "**" if name == group["best_block"] else ""
        lines.append(f"| {mark}{name}{mark} | {scores['size'][0]}x{scores['size'][1]} | {scores['trained']:.3f} | "
                     f"{scores['untrained']:.3f} | {scores['grid']:.3f} |")
    summary = report["summary"]
    lines += ["", "Targets:", ""]
    for name, target in summary["targets"].items():
        lines.append(f"* {name}: {'met' if target['met'] else 'MISSED'} ({target['measured']})")
    return "\n".join(lines)


def summarize(report: Dict[str, Any]) -> Dict[str, Any]:
    """Best methods and the issue's targets, measured."""
    pseudo = report["pseudo_masks"]
    slot_methods = [method for method in pseudo if not METHODS[method].baseline]
    baselines = [method for method in pseudo if METHODS[method].baseline]
    best_slot = max(slot_methods, key=lambda method: max(pseudo[method]["miou"], pseudo[method]["miou_crf"]))
    best_plain = max(slot_methods, key=lambda method: pseudo[method]["miou"])
    best_crf = max(slot_methods, key=lambda method: pseudo[method]["miou_crf"])
    strongest_plain = max(baselines, key=lambda method: pseudo[method]["miou"])
    strongest_crf = max(baselines, key=lambda method: pseudo[method]["miou_crf"])
    margin_plain = pseudo[best_plain]["miou"] - pseudo[strongest_plain]["miou"]
    margin_crf = pseudo[best_crf]["miou_crf"] - pseudo[strongest_crf]["miou_crf"]
    crf_gain = pseudo[best_slot]["miou_crf"] - pseudo[best_slot]["miou"]
    group = report["grouping"]
    return {
        "best_slot_method": best_slot,
        "margin_no_crf": {"method": best_plain, "points": margin_plain, "strongest_baseline": strongest_plain},
        "margin_crf": {"method": best_crf, "points": margin_crf, "strongest_baseline": strongest_crf},
        "targets": {
            "demo mAP >= 0.90": {"met": report["classification"]["map"] >= 0.90,
                                 "measured": f"{report['classification']['map']:.3f}"},
            "best slot method beats the strongest baseline by >= 3 mIoU": {
                "met": min(margin_plain, margin_crf) >= 3.0,
                "measured": f"{best_plain} {margin_plain:+.1f} over {strongest_plain} without CRF, {best_crf} "
                            f"{margin_crf:+.1f} over {strongest_crf} with CRF"},
            "stretch: >= 5 mIoU": {"met": min(margin_plain, margin_crf) >= 5.0,
                                   "measured": f"{min(margin_plain, margin_crf):+.1f}"},
            "CRF adds to the best slot method": {"met": crf_gain > 0,
                                                 "measured": f"{best_slot} {crf_gain:+.1f} mIoU"},
            "best block's grouping beats both controls by >= 0.10": {
                "met": group["margin"] >= 0.10,
                "measured": f"{group['best_block']} margin {group['margin']:+.3f}"},
        },
    }


def table(report: Dict[str, Any]) -> str:
    """The docs generator's table: :func:`markdown_tables`."""
    return markdown_tables(report)


SMOKE = {"num_images": 2, "num_tune": 2, "methods": "cam,slot_pool", "figure_images": 1, "threads": 1,
         "device": "cpu"}


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's arguments (the docs generator re-parses recorded commands with it)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-images", type=int, default=None, help="evaluation split size (default 300; quick 80)")
    parser.add_argument("--num-tune", type=int, default=None, help="tuning split size (default 150; quick 40)")
    parser.add_argument("--tune-seed", type=int, default=2001)
    parser.add_argument("--eval-seed", type=int, default=2002)
    parser.add_argument("--methods", default=None, help="comma-separated registered methods (default: all; with "
                        "--quick: all but the slow ones)")
    parser.add_argument("--quick", action="store_true", help="reduced setting: smaller splits, no slow methods unless "
                        "named; writes wsss_shapes_quick.json / .png")
    parser.add_argument("--out", default=None, help="folder of wsss_shapes.json / .png (default bench/results; "
                        "--smoke: a temporary folder)")
    parser.add_argument("--work", default=None, help="data sets and predictions (default: a temporary folder)")
    parser.add_argument("--checkpoint", default=None, help="model (default: the bundled demo model)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--figure-images", type=int, default=3)
    parser.add_argument("--name", default=None, help="file stem of the results in --out (default wsss_shapes, or "
                        "wsss_shapes_quick with --quick)")
    parser.add_argument("--smoke", action="store_true", help="seconds: 2 + 2 images, cam and slot_pool, one "
                        "thread; checks the JSON (give --out and --work temporary folders)")
    return parser


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.smoke:
        vars(args).update(SMOKE)
    if args.out is None:
        args.out = str(smoke_folder(__file__)) if args.smoke else "bench/results"
    args.num_images = args.num_images or (80 if args.quick else 300)
    args.num_tune = args.num_tune or (40 if args.quick else 150)
    if args.methods:
        args.methods = [name.strip() for name in args.methods.split(",") if name.strip()]
    else:
        args.methods = [name for name, method in METHODS.items() if not (args.quick and method.slow)]
    unknown = sorted(set(args.methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown method(s) {unknown}; registered: {', '.join(METHODS)}")
    kinds = {METHODS[name].baseline for name in args.methods}
    if kinds != {True, False}:
        parser.error("--methods needs at least one baseline and one non-baseline method (they are compared)")
    args.stem = args.name or ("wsss_shapes_quick" if args.quick else "wsss_shapes")
    return args


def run_steps(args: argparse.Namespace, model: torch.nn.Module, work: Path, out: Path, timings: Dict[str, float]
              ) -> Dict[str, Any]:
    """Steps 1-5 of the module docstring; returns the report's measured parts."""
    def lap(name: str, since: float) -> float:
        timings[name] = round(time.perf_counter() - since, 2)
        print(f"[{name}: {timings[name]:.1f} s]", flush=True)
        return time.perf_counter()

    clock = time.perf_counter()
    tune_set = make_split(work / "tune", args.tune_seed, args.num_tune)
    eval_set = make_split(work / "eval", args.eval_seed, args.num_images)
    clock = lap("data", clock)
    report: Dict[str, Any] = {"classification": classification(model, eval_set.root)}
    clock = lap("classification", clock)
    tuning = tune(model, Split(tune_set), method_candidates(glmix_block_names(model), args.methods), args.device)
    crf = CRFParams(**tuning["crf"]["chosen"]["params"])
    clock = lap("tuning", clock)
    report["pseudo_masks"] = evaluate_methods(model, eval_set, tuning, crf, work / "predictions", args.device)
    clock = lap("pseudo_masks", clock)
    samples = load_grouping_samples(str(eval_set.root), "val")
    report["grouping"] = grouping_report(model, samples, input_size=IMAGE_SIZE, batch_size=32)
    clock = lap("grouping", clock)
    report["figure"] = make_figure(model, Split(eval_set), report["pseudo_masks"], args.figure_images,
                                   out / f"{args.stem}.png")
    lap("figure", clock)
    report["tuning"] = tuning
    report["summary"] = summarize(report)
    report["class_names"] = object_names(eval_set)
    return report


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    timings: Dict[str, float] = {}
    torch.set_num_threads(max(1, args.threads))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="wsss_shapes_"))
    opened = resolve_model(args.checkpoint, device=args.device)
    model, info = opened.model, opened.info
    checkpoint = str(info.path)
    measured = run_steps(args, model, work, out, timings)
    crf = measured["tuning"]["crf"]["chosen"]["params"]
    timings["total"] = round(time.perf_counter() - started, 2)
    report = {
        "benchmark": args.stem,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command_line(__file__, argv),
        "model": {"checkpoint": str(Path(checkpoint).relative_to(Path.cwd()) if Path(checkpoint).is_relative_to(
            Path.cwd()) else checkpoint), "blocks": glmix_block_names(model),
            "class_names": measured.pop("class_names")},
        "data": {
            "image_size": IMAGE_SIZE, "training_seed": 0, "demo_heldout_seed": 1000,
            "tuning": {"seed": args.tune_seed, "images": args.num_tune, "split": "val"},
            "evaluation": {"seed": args.eval_seed, "images": args.num_images, "split": "val"},
        },
        "settings": {
            "input_size": IMAGE_SIZE, "flip": True, "scales": [1.0], "bg_rule": "threshold", "methods": args.methods,
            "quick": args.quick, "device": args.device,
            "threshold_grid": list(THRESHOLDS), "crf_grid": [params.to_dict() for params in CRF_CANDIDATES],
            "crf_chosen": crf, "pred_ignore": "background", "torch_threads": args.threads,
            "pipeline_workers": 0,
            "selection": "per method: options x threshold maximising tuning-split mIoU without CRF; CRF: the setting "
                         "maximising the mean tuning-split mIoU over methods at their chosen thresholds",
        },
        **measured,
        "timings_s": timings,
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "torch": torch.__version__},
    }
    (out / f"{args.stem}.json").write_text(json.dumps(report, indent=1) + "\n")
    print()
    print(markdown_tables(report))
    print(f"\nwrote {out / args.stem}.json and .png ({report['figure']['bytes'] / 1e3:.0f} KB) "
          f"in {timings['total'] / 60:.1f} min")
    if args.smoke:
        check_results(__file__, out / f"{args.stem}.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
