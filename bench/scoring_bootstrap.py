"""The one bootstrap of glmix_viz.scoring.stats: does its 95 % interval hold the truth 95 % of the time, and what
does it cost at the sizes the package meets?

1. Coverage: for data sets drawn from known distributions (a skewed per-image difference, exponential, whose true
   mean is known; and the data-set mIoU difference of per-image confusion matrices, whose population value is taken
   from a draw 200 times larger), the share of ``--trials`` data sets whose interval contains the true value, for BCa (the
   default) and the percentile interval, on the same data sets. A well-calibrated 95 % interval covers about 0.95.
2. Cost: seconds of ``evaluate --compare``'s two intervals on a VOC-sized split (1449 images, 21 classes) and of the
   atlas's purity interval on 10 000 images (16 concepts, 21 classes), BCa beside percentile, measured side by side in
   one run (the machine is shared: compare the ratios, not the seconds).

Writes ``bench/results/scoring_bootstrap.json``.

Usage::

    python bench/scoring_bootstrap.py
    python bench/scoring_bootstrap.py --smoke     # tiny sizes, seconds; writes into a temporary folder
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from glmix_viz.scoring.grouping import image_tables, purity_statistic  # noqa: E402
from scripts.make_docs import check_results, command_line, smoke_folder  # noqa: E402
from glmix_viz.scoring.stats import (  # noqa: E402
    DEFAULT_RESAMPLES,
    class_counts,
    image_bootstrap,
    mean_interval,
    miou_difference_statistic,
    miou_of_counts,
)

DEFAULT_OUT = ROOT / "bench" / "results" / "scoring_bootstrap.json"
METHODS = ("BCa", "percentile")


def _confusions(rng: np.random.Generator, images: int, classes: int, quality: float) -> np.ndarray:
    """``(images, classes, classes)`` per-image confusion matrices: each image holds a few classes, a share
    ``quality`` (varying per image) of each class's pixels right, the rest called background (class 0)."""
    conf = np.zeros((images, classes, classes))
    for index in range(images):
        present = [0] + list(rng.choice(np.arange(1, classes), size=rng.integers(1, 4), replace=False))
        for klass in present:
            pixels = rng.integers(50, 500)
            right = rng.binomial(pixels, np.clip(quality + rng.normal(0, 0.15), 0.05, 0.99))
            conf[index, klass, klass] += right
            conf[index, klass, 0] += pixels - right
    return conf


def coverage(trials: int, images: int, resamples: int, seed: int) -> Dict[str, Any]:
    """Share of trials whose interval holds the true value, per method, for a mean and an mIoU difference."""
    rng = np.random.default_rng(seed)
    hits = {"mean_of_exponential": {m: 0 for m in METHODS}, "miou_difference": {m: 0 for m in METHODS}}
    widths: Dict[str, Dict[str, List[float]]] = {k: {m: [] for m in METHODS} for k in hits}
    # the population value of the mIoU difference (a ratio of summed counts): its value on a very large draw
    classes, large = 6, 200 * images
    truth = float(miou_difference_statistic(class_counts(_confusions(rng, large, classes, 0.7)),
                                            class_counts(_confusions(rng, large, classes, 0.6)))(np.ones(large)))
    for trial in range(trials):
        values = rng.exponential(1.0, images)  # true mean 1
        a, b = _confusions(rng, images, classes, 0.7), _confusions(rng, images, classes, 0.6)
        statistic = miou_difference_statistic(class_counts(a), class_counts(b))
        for method in METHODS:
            low, high = mean_interval(values, resamples=resamples, method=method, seed=trial)
            hits["mean_of_exponential"][method] += int(low <= 1.0 <= high)
            widths["mean_of_exponential"][method].append(high - low)
            interval = image_bootstrap(images, statistic, resamples=resamples, method=method, seed=trial)
            hits["miou_difference"][method] += int(interval.low <= truth <= interval.high)
            widths["miou_difference"][method].append(interval.high - interval.low)
    return {"trials": trials, "images": images, "resamples": resamples, "miou_difference_truth": round(truth, 5),
            "coverage_standard_error": round(float(np.sqrt(0.95 * 0.05 / trials)), 4),
            "coverage": {k: {m: round(v / trials, 4) for m, v in by.items()} for k, by in hits.items()},
            "mean_width": {k: {m: round(float(np.mean(v)), 5) for m, v in by.items()} for k, by in widths.items()}}


def _seconds(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def cost(split_images: int, atlas_images: int, resamples: int, seed: int) -> Dict[str, Any]:
    """Seconds of the compare intervals on a split and of the atlas purity interval, per method, side by side."""
    rng = np.random.default_rng(seed)
    a, b = _confusions(rng, split_images, 21, 0.7), _confusions(rng, split_images, 21, 0.65)
    counts_a, counts_b = class_counts(a), class_counts(b)
    per_image = miou_of_counts(counts_b) - miou_of_counts(counts_a)
    statistic = miou_difference_statistic(counts_b, counts_a)
    regions = atlas_images * 16
    tables = image_tables(np.repeat(np.arange(atlas_images), 16), rng.integers(0, 16, regions),
                          rng.integers(0, 21, regions), images=atlas_images, concepts=16, classes=21)
    purity = purity_statistic(tables, 16, 21)
    seconds: Dict[str, Dict[str, float]] = {"compare_split": {}, "atlas_purity": {}}
    for method in METHODS:
        options = dict(resamples=resamples, method=method, seed=seed)
        seconds["compare_split"][method] = round(_seconds(lambda: (
            mean_interval(per_image, **options), image_bootstrap(split_images, statistic, **options))), 3)
        seconds["atlas_purity"][method] = round(_seconds(lambda: image_bootstrap(atlas_images, purity, **options)), 3)
    return {"split_images": split_images, "atlas_images": atlas_images, "resamples": resamples, "seconds": seconds,
            "bca_over_percentile": {k: round(v["BCa"] / max(v["percentile"], 1e-9), 3) for k, v in seconds.items()}}


def table(result: Dict[str, Any]) -> str:
    """Coverage and cost of the bootstrap (the docs' table)."""
    lines = [f"{result['default_resamples']} resamples; contended machine (load {result['machine']['load_1min']:.1f}):"
             " read the cost as ratios.", "",
             "| data sets | images | statistic | BCa covers | percentile covers | BCa width | percentile width |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for run in result["coverage"]:
        for name, by_method in run["coverage"].items():
            widths = run["mean_width"][name]
            lines.append(f"| {run['trials']} | {run['images']} | {name.replace('_', ' ')} | {by_method['BCa']:.3f} | "
                         f"{by_method['percentile']:.3f} | {widths['BCa']:.4f} | {widths['percentile']:.4f} |")
    lines.append("")
    lines.append(f"Monte-Carlo standard error of a coverage: {result['coverage'][0]['coverage_standard_error']:.3f}.")
    cost_run = result["cost"]
    lines += ["", "| interval | images | BCa s | percentile s | BCa / percentile |", "| --- | --- | --- | --- | --- |"]
    for name, seconds in cost_run["seconds"].items():
        images = cost_run["split_images"] if name == "compare_split" else cost_run["atlas_images"]
        lines.append(f"| {name.replace('_', ' ')} | {images} | {seconds['BCa']:.2f} | {seconds['percentile']:.2f} | "
                     f"{cost_run['bca_over_percentile'][name]:.2f} |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's arguments (the docs generator re-parses recorded commands with it)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=300, help="simulated data sets for the coverage (default 300)")
    parser.add_argument("--images", default="30,120",
                        help="images per simulated data set, one coverage run per size (default 30,120)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None,
                        help=f"results JSON (default {DEFAULT_OUT.relative_to(ROOT)}; --smoke: a temporary folder)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: a check that it runs, in seconds")
    return parser


def main(argv: List[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.out is None:
        args.out = smoke_folder(__file__) / "scoring_bootstrap.json" if args.smoke else DEFAULT_OUT
    if args.smoke:
        found = {"coverage": [coverage(4, 8, 100, args.seed)], "cost": cost(20, 50, 100, args.seed)}
    else:
        sizes = [int(size) for size in args.images.split(",")]
        found = {"coverage": [coverage(args.trials, size, DEFAULT_RESAMPLES, args.seed) for size in sizes],
                 "cost": cost(1449, 10000, DEFAULT_RESAMPLES, args.seed)}
    result = {
        "command": command_line(__file__, argv),
        "smoke": args.smoke,
        "contended": True,  # a shared machine: compare the ratios (measured side by side), not the seconds
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "load_1min": os.getloadavg()[0]},
        "default_resamples": DEFAULT_RESAMPLES,
        **found,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(args.out)
    print(table(result))
    print(f"written to {args.out}")
    if args.smoke:
        check_results(__file__, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
