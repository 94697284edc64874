"""Pseudo-label pipeline benchmark: images per second on VOC-sized images, split into network, CRF and I/O.

Run by hand (never in the test suite), ideally on a quiet machine:

    .venv/bin/python bench/pseudo_label.py                         # 32 images, 1 and 2 workers
    .venv/bin/python bench/pseudo_label.py --images 64 --checkpoint runs/shapes/best.safetensors --method slot_pool

Data: synthetic shapes images of 500x375 pixels (rendered at 500x500 by the shapes generator, then cropped),
written as JPEG in the VOC layout with image-level labels in ``cls_labels.json``. Model: ``--checkpoint``, else the
bundled demo model if installed, else a randomly initialised ``glnet_tiny`` (timings only; its labels are noise).

Rows of the table:

* network alone: :func:`compute_scores_batch` over the images in batches, main process, all torch threads;
* CRF alone: :func:`dense_crf` on the same scores, one process, one image after another;
* I/O alone: decode the image and labels, write the palette PNG atomically;
* pipeline with N workers: :func:`run_pseudo_label`, CRF in N spawned worker processes while the network runs.
  its workers are started and warmed before the clock starts (worker start-up, a one-off of a few seconds per run,
  is reported separately), so "s/image" is the steady state; its ratio to "CRF alone" is the target (<= 1.25).

Results also go to ``--json``.
"""

from __future__ import annotations

import argparse
import concurrent.futures as futures
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import glmix_viz.models  # noqa: E402,F401  (registers the GLNet variants with timm)
from glmix_viz.data.shapes import ShapesConfig, render_shapes_image  # noqa: E402
from glmix_viz.data.base import Split, object_names  # noqa: E402
from glmix_viz.data.classes import ClassMatch, match_classes  # noqa: E402
from glmix_viz.data.registry import open_split  # noqa: E402
from glmix_viz.labels import label_to_pil  # noqa: E402
from glmix_viz.models.info import class_names  # noqa: E402
from glmix_viz.files import save_bytes_atomic, save_png_atomic  # noqa: E402
from glmix_viz.crf import CRFParams, dense_crf  # noqa: E402
from glmix_viz.pseudo.pipeline import run_pseudo_label  # noqa: E402
from glmix_viz.pseudo.registry import METHODS, reference_baseline  # noqa: E402
from glmix_viz.pseudo.scores import compute_scores_batch  # noqa: E402
from glmix_viz.pseudo.settings import ScoreSettings  # noqa: E402
from scripts.make_docs import check_results, command_line, smoke_folder  # noqa: E402

WIDTH, HEIGHT = 500, 375


def _warm_up(_: int) -> bool:
    """Worker start-up: import what the pipeline's jobs need; sleep so that every worker gets one task."""
    import glmix_viz.pseudo.pipeline  # noqa: F401

    time.sleep(0.5)
    return True


def make_voc_sized_set(root: Path, count: int, seed: int) -> Split:
    """``count`` 500x375 JPEG shapes images in the VOC layout, labels in ``cls_labels.json``."""
    from PIL import Image

    config = ShapesConfig(image_size=WIDTH)
    rng = np.random.default_rng(seed)
    (root / "JPEGImages").mkdir(parents=True)
    labels = {}
    for index in range(count):
        sample = render_shapes_image(rng, config)
        top = int(rng.integers(0, WIDTH - HEIGHT + 1))
        image = sample.image[top:top + HEIGHT]
        present = np.unique(sample.class_mask[top:top + HEIGHT])
        vector = np.zeros(len(config.classes), dtype=np.float32)
        vector[[int(k) - 1 for k in present if 0 < k < 255]] = 1.0
        if not vector.any():
            vector[0] = 1.0
        image_id = f"bench_{index:04d}"
        Image.fromarray(image).save(root / "JPEGImages" / f"{image_id}.jpg", quality=90)
        labels[image_id] = vector.tolist()
    (root / "classes.txt").write_text("\n".join(config.class_names) + "\n")
    (root / "cls_labels.json").write_text(json.dumps(labels))
    (root / "bench.txt").write_text("\n".join(sorted(labels)) + "\n")
    return open_split(root, "bench")


def load_bench_model(args: argparse.Namespace, num_classes: int):
    from glmix_viz.open import resolve_model

    opened = resolve_model(args.checkpoint, num_classes=num_classes, device=args.device, fallback="glnet_tiny")
    return opened.model, str(opened.info.path) if opened.info.trained else str(opened.info)


SMOKE = {"images": 2, "workers": [0], "batch_size": 2}


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's arguments (the docs generator re-parses recorded commands with it)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--data", type=Path, default=None, metavar="PATH",
                        help="time on this data set (any --data format with image-level labels; its first --images "
                             "images) instead of generated VOC-sized shapes images")
    parser.add_argument("--split", default=None, help="split of --data (default: the format's)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                        help="pipeline rows: CRF worker processes (0: the CRF in the main process)")
    parser.add_argument("--method", default=reference_baseline(), choices=list(METHODS))
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0])
    parser.add_argument("--no-flip", dest="flip", action="store_false")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="results file (default bench/results/pseudo_label.json; "
                        "--smoke: a temporary folder)")
    parser.add_argument("--smoke", action="store_true", help="seconds: 2 images, the pipeline with no worker "
                        "process; checks the JSON (give --json a temporary path)")
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)
    if args.smoke:
        vars(args).update(SMOKE)
    if args.json is None:
        args.json = smoke_folder(__file__) / "pseudo_label.json" if args.smoke else ROOT / "bench/results/pseudo_label.json"
    return args


def time_stages_alone(args: argparse.Namespace, dataset: Split, model: torch.nn.Module, settings: ScoreSettings,
                      work: Path, match: ClassMatch) -> list:
    """Rows ``(setting, s/image, network, CRF, I/O)`` of the network, the CRF and the I/O, each alone."""
    images = [dataset.image(image_id) for image_id in dataset.ids]
    labels = [match.model_labels(dataset.labels(image_id)) for image_id in dataset.ids]
    compute_scores_batch(model, images[:1], labels[:1], settings)  # warm-up

    start = time.perf_counter()
    scores = []
    for first in range(0, len(images), args.batch_size):
        scores += compute_scores_batch(model, images[first:first + args.batch_size],
                                       labels[first:first + args.batch_size], settings,
                                       batch_size=args.batch_size * (2 if args.flip else 1))
    network = (time.perf_counter() - start) / len(images)

    start = time.perf_counter()
    for image, result in zip(images, scores):
        dense_crf(image, result.scores, CRFParams())
    crf_alone = (time.perf_counter() - start) / len(images)

    start = time.perf_counter()
    for image_id, result in zip(dataset.ids, scores):
        dataset.image(image_id)
        dataset.labels(image_id)
        save_png_atomic(work / "io" / f"{image_id}.png", label_to_pil(result.labels()))
    io_alone = (time.perf_counter() - start) / len(images)
    return [
        ("network alone", network, network, None, None),
        ("CRF alone (1 process)", crf_alone, None, crf_alone, None),
        ("I/O alone (decode + PNG write)", io_alone, None, None, io_alone),
    ]


def time_pipelines(args: argparse.Namespace, dataset: Split, model: torch.nn.Module, settings: ScoreSettings,
                   work: Path) -> tuple:
    """Rows of the pipeline with each worker count (warm workers), and each run's timing."""
    rows, runs = [], {}
    for workers in args.workers:
        if workers == 0:
            summary = run_pseudo_label(dataset, work / "out-0", model, settings, crf=CRFParams(), workers=0,
                                       overwrite=True, progress=False, batch_size=args.batch_size)
            timing = dict(summary["timing"], worker_startup_s=0.0)
            done = summary["counts"]["done"]
            runs[workers] = timing
            rows.append(("pipeline, CRF in the main process", timing["wall_s"] / done, timing["network_s"] / done,
                         timing["crf_s"] / done, timing["io_s"] / done))
            continue
        context = multiprocessing.get_context("spawn")
        with futures.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            started = time.perf_counter()
            list(pool.map(_warm_up, range(workers)))  # one task each: every worker started and warm
            startup = time.perf_counter() - started
            summary = run_pseudo_label(
                dataset, work / f"out-{workers}", model, settings, crf=CRFParams(), workers=workers, overwrite=True,
                progress=False, batch_size=args.batch_size, executor=pool,
            )
        timing = dict(summary["timing"], worker_startup_s=startup)
        done = summary["counts"]["done"]
        per_image = timing["wall_s"] / done
        runs[workers] = timing
        rows.append((f"pipeline, {workers} worker{'s' if workers > 1 else ''}", per_image,
                     timing["network_s"] / done, timing["crf_s"] / done, timing["io_s"] / done))
    return rows, runs


def table(result: dict) -> str:
    """The Markdown table of a results dict (the docs generator's too)."""
    rows = result["rows"]
    crf_alone = next(row["s_per_image"] for row in rows if row["setting"].startswith("CRF alone"))
    lines = [f"{result['images']} images of {result['size'][0]}x{result['size'][1]}, model {result['model']}, method "
             f"{result['method']}, scales {result['scales']}, flip {result['flip']}, device {result['device']}, "
             f"{result['cpu_count']} CPU cores, load average at the end {result['load_average']:.1f}", "",
             "| setting | images/s | s/image | network s/image | CRF s/image | I/O s/image | vs CRF alone |",
             "| --- | --- | --- | --- | --- | --- | --- |"]

    def cell(value):
        return "" if value is None else f"{value:.3f}"

    for row in rows:
        lines.append(f"| {row['setting']} | {1 / row['s_per_image']:.2f} | {row['s_per_image']:.3f} | "
                     f"{cell(row['network_s'])} | {cell(row['crf_s'])} | {cell(row['io_s'])} | "
                     f"{row['s_per_image'] / crf_alone:.2f}x |")
    lines += ["", "Pipeline network/CRF/I/O columns are summed over processes per image (CRF and writes run in the "
              "workers, concurrently with the network)."]
    return "\n".join(lines)


def report(args: argparse.Namespace, model_name: str, rows: list, runs: dict) -> None:
    """Print the markdown table and write ``--json``."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    result = {
        "command": command_line(__file__, args.argv),
        "images": args.images, "size": [WIDTH, HEIGHT], "model": model_name, "method": args.method,
        "scales": args.scales, "flip": args.flip, "device": args.device, "cpu_count": os.cpu_count(),
        "load_average": load, "torch": torch.__version__,
        "rows": [dict(zip(("setting", "s_per_image", "network_s", "crf_s", "io_s"), row)) for row in rows],
        "pipeline_timing": {str(key): value for key, value in runs.items()},
    }
    print()
    print(table(result))
    for workers, timing in runs.items():
        if workers:
            print(f"\n{workers} worker(s): worker start-up {timing['worker_startup_s']:.1f} s (once per run), wall "
                  f"{timing['wall_s']:.1f} s, main process waiting for workers {timing['waiting_for_workers_s']:.1f} s")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    save_bytes_atomic(args.json, (json.dumps(result, indent=2) + "\n").encode())


def main(argv=None) -> None:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="glmix-bench-"))
    try:
        if args.data is not None:  # the user's data set: its first --images images
            dataset = open_split(args.data, args.split)
            dataset.ids = list(dataset.ids)[:args.images]
        else:
            dataset = make_voc_sized_set(work / "data", args.images, args.seed)
        model, model_name = load_bench_model(args, len(object_names(dataset)))
        match = match_classes(class_names(model), dataset, num_model_classes=model.num_classes)
        settings = ScoreSettings(method=args.method, scales=args.scales, flip=args.flip, device=args.device)
        rows = time_stages_alone(args, dataset, model, settings, work, match)
        pipeline_rows, runs = time_pipelines(args, dataset, model, settings, work)
        report(args, model_name, rows + pipeline_rows, runs)
        if args.smoke:
            check_results(__file__, args.json)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
