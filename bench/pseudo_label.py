"""Pseudo-label benchmark at VOC size: each refinement (dense CRF, PAR, none), 1 and 2 worker processes, images/s,
seconds per stage, and the mIoU of each refinement on held-out seeds (PAR vs CRF: paired bootstrap interval).

Run by hand (never in the test suite); the numbers of record come from ONE command, ideally on a quiet machine:

    nice -n 10 .venv/bin/python bench/pseudo_label.py                  # writes bench/results/pseudo_label.json
    .venv/bin/python bench/pseudo_label.py --device cuda               # on a GPU: network and PAR on CUDA
    .venv/bin/python bench/pseudo_label.py --smoke --out /tmp/p.json   # seconds: tiny images, no worker pool

Data: synthetic shapes images of 500x375 pixels (rendered at 500x500 by the shapes generator, then cropped; with
their masks), written as JPEG in the VOC layout. A timing set (``--seed``) and one evaluation set per held-out seed
(``--heldout-seeds``; never used to choose any setting: PAR runs with its published defaults, the CRF with the
usual CAM-WSSS ones). Model: ``--checkpoint``, else the bundled demo model, else a random ``glnet_tiny`` (timings only).

What is measured (all in one run, side by side, so ratios hold on a contended machine):

* ``stages_alone``: the network over the timing set (main process, all torch threads), and each refinement alone on
  the same score maps, one process, one image after another (wall seconds and CPU seconds: CPU time is what the
  refinement costs, whatever else the machine runs);
* ``refine_parallel``: each refinement over the timing set's score maps in a warm pool of 1 and of 2 worker processes
  (no network): how the refinement stage scales with processes;
* ``pipeline``: :func:`run_pseudo_label` for every refinement and worker count, workers started and warmed before the
  clock (start-up reported apart), images/s and seconds per image of each stage (worker seconds summed over workers)
  and each stage's share;
* ``miou``: the mIoU of each refinement on each held-out seed (the network's score maps computed once per seed), and
  PAR minus CRF with a paired image bootstrap interval pooled over the held-out seeds (:mod:`glmix_viz.scoring`);
* ``goals``: the issue's goals (PAR >= 5x the CRF's images/s with mIoU within 1 point; 2 workers >= 1.7x 1 worker
  with the CRF), each with the measured value.
"""

from __future__ import annotations

import argparse
import concurrent.futures as futures
import dataclasses
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import glmix_viz.models  # noqa: E402,F401  (registers the GLNet variants with timm)
from glmix_viz.crf import CRFParams  # noqa: E402
from glmix_viz.data.shapes import ShapesConfig, render_shapes_image  # noqa: E402
from glmix_viz.data.base import Split, object_names  # noqa: E402
from glmix_viz.data.classes import match_classes  # noqa: E402
from glmix_viz.data.registry import open_split  # noqa: E402
from glmix_viz.models.info import class_names  # noqa: E402
from glmix_viz.files import save_bytes_atomic  # noqa: E402
from glmix_viz.labels import label_to_pil  # noqa: E402
from glmix_viz.pseudo.masks import pseudo_mask  # noqa: E402
from glmix_viz.pseudo.pipeline import run_pseudo_label  # noqa: E402
from glmix_viz.refine import REFINEMENTS, PARParams, check_device, refine  # noqa: E402
from glmix_viz.pseudo.registry import METHODS, reference_baseline  # noqa: E402
from glmix_viz.pseudo.scores import compute_scores_batch  # noqa: E402
from glmix_viz.pseudo.settings import ScoreSettings  # noqa: E402
from glmix_viz.pseudo.workers import new_pool, torch_threads  # noqa: E402
from glmix_viz.scoring.segmentation import confusion_matrix  # noqa: E402
from glmix_viz.scoring.stats import class_counts, miou_of_counts, paired_miou_difference  # noqa: E402

DEFAULT_OUT = ROOT / "bench" / "results" / "pseudo_label.json"
SMOKE = {"images": 2, "eval_images": 2, "size": "100x75", "workers": [0]}


def make_voc_sized_set(root: Path, count: int, seed: int, width: int, height: int) -> Split:
    """``count`` ``width x height`` JPEG shapes images in the VOC layout, masks in ``SegmentationClass``."""
    from PIL import Image

    config = ShapesConfig(image_size=width)
    rng = np.random.default_rng(seed)
    for folder in ("JPEGImages", "SegmentationClass"):
        (root / folder).mkdir(parents=True)
    labels = {}
    for index in range(count):
        sample = render_shapes_image(rng, config)
        top = int(rng.integers(0, width - height + 1))
        image, mask = sample.image[top:top + height], np.asarray(sample.class_mask[top:top + height], np.uint8)
        vector = np.zeros(len(config.classes), dtype=np.float32)
        vector[[int(k) - 1 for k in np.unique(mask) if 0 < k < 255]] = 1.0
        if not vector.any():  # an image without any object: label its first class, as the old bench did
            vector[0] = 1.0
        image_id = f"s{seed}_{index:04d}"
        Image.fromarray(image).save(root / "JPEGImages" / f"{image_id}.jpg", quality=90)
        label_to_pil(mask).save(root / "SegmentationClass" / f"{image_id}.png")
        labels[image_id] = vector.tolist()
    (root / "classes.txt").write_text("\n".join(config.class_names) + "\n")
    (root / "cls_labels.json").write_text(json.dumps(labels))
    (root / "bench.txt").write_text("\n".join(sorted(labels)) + "\n")
    return open_split(root, "bench")


def load_bench_model(args: argparse.Namespace, num_classes: int):
    from glmix_viz.open import resolve_model

    opened = resolve_model(args.checkpoint, num_classes=num_classes, device=args.device, fallback="glnet_tiny")
    return opened.model, (str(opened.info.path) if opened.info.trained else str(opened.info))


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's arguments (the docs generator re-parses recorded commands with it)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=16, help="timing set size (default 16)")
    parser.add_argument("--eval-images", type=int, default=16, help="images per held-out seed (default 16)")
    parser.add_argument("--size", default="500x375", help="WIDTHxHEIGHT (default 500x375, VOC's usual size)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--refine", nargs="+", choices=REFINEMENTS, default=list(REFINEMENTS))
    parser.add_argument("--method", default=reference_baseline(), choices=list(METHODS))
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0])
    parser.add_argument("--input-size", type=int, default=128,
                        help="network input's longer side (default 128: the demo model's training size, where its "
                        "maps mean something; the maps are resized to the image, the refinement runs at 500x375); "
                        "0: the image's own size")
    parser.add_argument("--no-flip", dest="flip", action="store_false")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--device", default="cpu", help="network and PAR device: cpu, cuda, cuda:N (default cpu)")
    parser.add_argument("--seed", type=int, default=0, help="timing set seed")
    parser.add_argument("--heldout-seeds", type=int, nargs="+", default=[101, 102])
    parser.add_argument("--json", "--out", dest="json", type=Path, default=None,
                        help="results file (default bench/results/pseudo_label.json; --smoke: a temporary folder)")
    parser.add_argument("--smoke", action="store_true",
                        help="seconds: 2 images of 100x75, 2 per held-out seed, no worker pool (workers 0)")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)
    if args.smoke:
        vars(args).update(SMOKE)
    if args.json is None:
        args.json = Path(tempfile.mkdtemp(prefix="pseudo_label_smoke_")) / "pseudo_label.json" if args.smoke \
            else DEFAULT_OUT
    try:
        args.width, args.height = (int(part) for part in args.size.lower().split("x"))
        check_device(args.device)  # CUDA asked for where none exists: one line, before any image
    except ValueError as error:
        parser.error(str(error))
    return args


def _refinement(name: str, device: str) -> Any:
    return {"crf": CRFParams(), "par": PARParams(device=None if device == "cpu" else device), "none": None}[name]


def score_all(model, dataset: Split, settings: ScoreSettings, batch_size: int, flip: bool):
    """Images, score maps (their label ids the data set's: classes matched by name), and the network's wall seconds
    over the data set (batched as the pipeline does)."""
    match = match_classes(class_names(model), dataset, num_model_classes=model.num_classes)
    images = [dataset.image(image_id) for image_id in dataset.ids]
    labels = [match.model_labels(dataset.labels(image_id)) for image_id in dataset.ids]
    compute_scores_batch(model, images[:1], labels[:1], settings)  # warm-up
    start = time.perf_counter()
    maps = []
    for first in range(0, len(images), batch_size):
        maps += compute_scores_batch(model, images[first:first + batch_size], labels[first:first + batch_size],
                                     settings, batch_size=batch_size * (2 if flip else 1))
    seconds = time.perf_counter() - start
    maps = [dataclasses.replace(m, class_indices=match.label_ids[np.asarray(m.class_indices)]) for m in maps]
    return images, maps, seconds


def time_refinements_alone(args, images, maps) -> Dict[str, Dict[str, float]]:
    """Each refinement alone, one process and one torch thread (the CRF uses one core): wall and CPU s per image."""
    rows = {}
    with torch_threads(1):
        return _time_refinements(args, images, maps, rows)


def _time_refinements(args, images, maps, rows) -> Dict[str, Dict[str, float]]:
    for name in args.refine:
        params = _refinement(name, args.device)
        refine(name, images[0], maps[0].scores, params)  # warm-up (torch's first call)
        wall, cpu = time.perf_counter(), time.process_time()
        for image, result in zip(images, maps):
            refine(name, image, result.scores, params)
        if args.device != "cpu":
            torch.cuda.synchronize()
        rows[name] = {"wall_s_per_image": (time.perf_counter() - wall) / len(images),
                      "cpu_s_per_image": (time.process_time() - cpu) / len(images)}
    return rows


def _refine_job(job) -> float:
    name, image, scores, params = job
    start = time.perf_counter()
    refine(name, image, scores, params)
    return time.perf_counter() - start


def _warm(_: int) -> bool:
    time.sleep(0.3)  # every worker gets one
    return True


def time_refine_parallel(args, images, maps) -> Dict[str, Dict[str, float]]:
    """Each CPU refinement over the score maps in a warm pool of each worker count (no network): images/s."""
    rows: Dict[str, Dict[str, float]] = {}
    for name in [name for name in args.refine if name != "none"]:
        params = _refinement(name, "cpu")
        for workers in [w for w in args.workers if w > 0]:
            with new_pool(workers) as pool:
                list(pool.map(_warm, range(workers)))
                jobs = [(name, image, result.scores, params) for image, result in zip(images, maps)]
                start = time.perf_counter()
                list(pool.map(_refine_job, jobs))
                wall = time.perf_counter() - start
            rows.setdefault(name, {})[str(workers)] = len(images) / wall
    return rows


def time_pipelines(args, dataset, model, settings, work: Path) -> Dict[str, Dict[str, Any]]:
    """:func:`run_pseudo_label` for every refinement and worker count (warm workers)."""
    runs: Dict[str, Dict[str, Any]] = {}
    for name in args.refine:
        for workers in args.workers:
            pool, startup = None, 0.0
            if workers > 0:
                pool = new_pool(workers)
                started = time.perf_counter()
                list(pool.map(_warm, range(workers)))
                startup = time.perf_counter() - started
            try:
                summary = run_pseudo_label(dataset, work / f"out-{name}-{workers}", model, settings,
                                           refinement=_refinement(name, args.device), workers=workers, overwrite=True,
                                           progress=False, batch_size=args.batch_size, executor=pool)
            finally:
                if pool is not None:
                    pool.shutdown()
            timing, done = summary["timing"], max(summary["counts"]["done"], 1)
            runs[f"{name}/{workers}"] = {
                "refine": name, "workers": workers, "images_per_s": done / timing["wall_s"],
                "s_per_image": {stage: timing[f"{stage}_s"] / done for stage in ("network", "refine", "load", "write")},
                "stage_share": summary["stage_share"], "waiting_for_workers_s": timing["waiting_for_workers_s"],
                "worker_startup_s": startup, "wall_s": timing["wall_s"], "failed": summary["counts"]["failed"],
            }
    return runs


def evaluate_miou(args, model, settings, work: Path) -> Dict[str, Any]:
    """mIoU of each refinement per held-out seed; PAR - CRF paired interval pooled over the seeds."""
    confusions: Dict[str, List[np.ndarray]] = {name: [] for name in args.refine}
    per_seed: Dict[str, Dict[str, float]] = {}
    for seed in args.heldout_seeds:
        dataset = make_voc_sized_set(work / f"heldout-{seed}", args.eval_images, seed, args.width, args.height)
        background = dataset.background
        images, maps, _ = score_all(model, dataset, settings, args.batch_size, args.flip)
        seed_conf: Dict[str, List[np.ndarray]] = {name: [] for name in args.refine}
        for image_id, image, result in zip(dataset.ids, images, maps):
            truth = dataset.mask(image_id)
            for name in args.refine:
                labels = pseudo_mask(image, result, _refinement(name, args.device)).labels()
                conf = confusion_matrix(labels, truth, dataset.num_classes, background=background,
                                        ignore=dataset.ignore)
                seed_conf[name].append(conf)
                confusions[name].append(conf)
        per_seed[str(seed)] = {name: float(miou_of_counts(class_counts(np.stack(seed_conf[name])).sum(axis=0)))
                               for name in args.refine}
    result: Dict[str, Any] = {"per_seed": per_seed, "images_per_seed": args.eval_images,
                              "pooled": {name: float(miou_of_counts(class_counts(np.stack(c)).sum(axis=0)))
                                         for name, c in confusions.items()}}
    if "par" in confusions and "crf" in confusions:
        result["par_minus_crf"] = paired_miou_difference(np.stack(confusions["par"]), np.stack(confusions["crf"]))
        result["par_minus_crf_per_seed"] = {seed: values["par"] - values["crf"] for seed, values in per_seed.items()}
    return result


def goals(alone, parallel, runs, miou) -> Dict[str, Any]:
    """The issue's goals with the measured values (None where this run did not measure them)."""
    out: Dict[str, Any] = {}
    if "par" in alone and "crf" in alone:
        out["par_vs_crf_images_per_s_cpu_time"] = alone["crf"]["cpu_s_per_image"] / alone["par"]["cpu_s_per_image"]
        out["par_vs_crf_images_per_s_wall"] = alone["crf"]["wall_s_per_image"] / alone["par"]["wall_s_per_image"]
        out["par_speed_goal_5x_met"] = out["par_vs_crf_images_per_s_cpu_time"] >= 5
    if "par_minus_crf" in miou:
        low = miou["par_minus_crf"]["ci95"][0]
        out["par_miou_within_1_point_met"] = (low is not None and low >= -0.01)
    if "crf/1" in runs and "crf/2" in runs:
        out["pipeline_crf_2_vs_1_workers"] = runs["crf/2"]["images_per_s"] / runs["crf/1"]["images_per_s"]
        out["pipeline_workers_goal_1_7x_met"] = out["pipeline_crf_2_vs_1_workers"] >= 1.7
    crf_parallel = parallel.get("crf", {})
    if "1" in crf_parallel and "2" in crf_parallel:
        out["refine_only_crf_2_vs_1_workers"] = crf_parallel["2"] / crf_parallel["1"]
    return out


def _cell(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(result: Dict[str, Any]) -> str:
    """The Markdown tables of a results dict (printed by a run; the docs generator's too)."""
    alone = result["stages_alone"]
    lines = [f"{result['images']} images of {result['size'][0]}x{result['size'][1]}, model {result['model']}, method "
             f"{result['method']} (network input {result.get('input_size') or 'the image size'}), device "
             f"{result['device']}, {result['cpu_count']} CPU cores, load average "
             f"{result['load_average_start']:.1f} at the start, {result['load_average_end']:.1f} at the end (a shared "
             "machine: compare ratios within one run).", "",
             "Pipeline (`run_pseudo_label`, warm workers): images/s and seconds per image of each stage (worker "
             "seconds summed over workers), and each stage's share of the summed stage seconds.", "",
             "| refinement | workers | images/s | network s/img | refine s/img | write s/img | share network / refine "
             "/ write |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for run in result["pipeline"].values():
        per, share = run["s_per_image"], run["stage_share"]
        shares = " / ".join("-" if share.get(k) is None else f"{share[k]:.0%}" for k in ("network", "refine", "write"))
        lines.append(f"| {run['refine']} | {run['workers']} | {run['images_per_s']:.2f} | {per['network']:.3f} "
                     f"| {per['refine']:.3f} | {per['write']:.4f} | {shares} |")
    lines += ["", f"Each stage alone, one process: network {alone['network_s_per_image']:.3f} s/image (all torch "
              "threads); refinements:", "", "| refinement | wall s/image | CPU s/image | images/s in a pool of 1 "
              "| of 2 | mIoU (pooled held-out seeds) |", "| --- | --- | --- | --- | --- | --- |"]
    parallel, miou = result["refine_parallel"], result["miou"]
    for name, row in alone["refine"].items():
        pool = parallel.get(name, {})
        lines.append(f"| {name} | {row['wall_s_per_image']:.4f} | {row['cpu_s_per_image']:.4f} "
                     f"| {_cell(pool.get('1'), 2)} | {_cell(pool.get('2'), 2)} "
                     f"| {_cell(miou['pooled'].get(name))} |")
    if "par_minus_crf" in miou:
        diff = miou["par_minus_crf"]
        per_seed = ", ".join(f"seed {seed}: {value:+.3f}" for seed, value in miou["par_minus_crf_per_seed"].items())
        lines += ["", f"PAR minus CRF mIoU: {diff['mean']:+.3f}, 95% paired bootstrap interval "
                  f"[{_cell(diff['ci95'][0])}, {_cell(diff['ci95'][1])}] over {diff['images']} held-out images "
                  f"({per_seed})."]
    goal = result["goals"]
    notes = []
    if "par_vs_crf_images_per_s_cpu_time" in goal:
        notes.append(f"PAR / CRF images/s: {goal['par_vs_crf_images_per_s_cpu_time']:.1f}x by CPU time, "
                     f"{goal['par_vs_crf_images_per_s_wall']:.1f}x by wall time (goal >= 5x: "
                     f"{'met' if goal['par_speed_goal_5x_met'] else 'not met'})")
    if "par_miou_within_1_point_met" in goal:
        notes.append(f"PAR mIoU within 1 point of the CRF's (interval's low end >= -0.01): "
                     f"{'met' if goal['par_miou_within_1_point_met'] else 'not met'}")
    if "pipeline_crf_2_vs_1_workers" in goal:
        notes.append(f"pipeline with the CRF, 2 vs 1 workers: {goal['pipeline_crf_2_vs_1_workers']:.2f}x (goal >= "
                     f"1.7x: {'met' if goal['pipeline_workers_goal_1_7x_met'] else 'not met'})")
    if "refine_only_crf_2_vs_1_workers" in goal:
        notes.append(f"the CRF alone in a pool, 2 vs 1 workers: {goal['refine_only_crf_2_vs_1_workers']:.2f}x")
    if notes:
        lines += ["", "Goals: " + "; ".join(notes) + "."]
    return "\n".join(lines)


def _check_smoke(json_path: Path) -> None:
    """Under ``--smoke``: the docs generator's check of the written JSON, when the generator is there."""
    try:
        from scripts.make_docs import check_results
    except ImportError:  # the generator is not on this branch yet: check the fields this script's table reads
        table(json.loads(Path(json_path).read_text()))
        return
    check_results(__file__, json_path)


def main(argv: Sequence[str] | None = None) -> Dict[str, Any]:
    args = parse_args(argv)
    command = shlex.join(["python", "bench/pseudo_label.py", *map(str, args.argv)])
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    work = Path(tempfile.mkdtemp(prefix="glmix-bench-"))
    try:
        dataset = make_voc_sized_set(work / "data", args.images, args.seed, args.width, args.height)
        model, model_name = load_bench_model(args, len(object_names(dataset)))
        settings = ScoreSettings(method=args.method, scales=args.scales, flip=args.flip, device=args.device,
                                 input_size=args.input_size or None)
        images, maps, network_wall = score_all(model, dataset, settings, args.batch_size, args.flip)
        alone = time_refinements_alone(args, images, maps)
        parallel = time_refine_parallel(args, images, maps)
        runs = time_pipelines(args, dataset, model, settings, work)
        miou = evaluate_miou(args, model, settings, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "command": command, "images": args.images, "size": [args.width, args.height], "model": model_name,
        "method": args.method, "scales": args.scales, "flip": args.flip, "device": args.device,
        "input_size": args.input_size or None,
        "smoke": args.smoke, "cpu_count": os.cpu_count(), "torch": torch.__version__,
        "contended": "timings taken on a machine shared with other jobs; compare ratios within this file",
        "load_average_start": load_start,
        "load_average_end": os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan"),
        "refinements": {"crf": CRFParams().to_dict(), "par": PARParams().to_dict()},
        "stages_alone": {"network_s_per_image": network_wall / len(images), "refine": alone},
        "refine_parallel": parallel, "pipeline": runs, "miou": miou,
    }
    result["goals"] = goals(alone, parallel, runs, miou)
    print("\n" + table(result))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    save_bytes_atomic(args.json, (json.dumps(result, indent=2, default=float) + "\n").encode())
    print(f"\nwritten: {args.json}")
    if args.smoke:
        _check_smoke(args.json)
    return result


if __name__ == "__main__":
    main()
