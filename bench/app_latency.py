"""Latency of the explorer: from an uploaded image's bytes to the groupings on the page.

Times what the app does for a new upload, with the same library calls and no cache: decode the bytes
(``io.load_image_with_info``), preprocess (``io.to_tensor``), run the network inside the grouping probe
(``explore.explore_image``, which also computes the class maps), draw the hard-grouping overlay and legend of one block
(``viz.grouping_overlay``, ``viz.label_legend``) and build the interactive grid of soft maps
(``figures.soft_maps_figure``, serialised to JSON as Streamlit sends it). Model loading is not counted (the app loads a
model once per process).

Usage::

    python bench/app_latency.py                 # 512x512 image; demo model (or untrained glnet_tiny) and glnet_stl
    python bench/app_latency.py --runs 7 --threads 2   # default threads: the app's (all cores but one)

Prints a markdown table: median seconds per step over ``--runs`` runs (after one warm-up run); then the Slot tab's
removal panel: all single-slot effects of the block the explorer opens on, for the default image
(:func:`glmix_viz.slots.slot_effects`, exact), as seconds and as a ratio to one plain forward (goal: under 2 s on 2
cores).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import timm
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import glmix_viz.models  # noqa: F401,E402  (registers the GLNet variants)
from glmix_viz.data.shapes import render_shapes_image
from glmix_viz.app.threads import interactive_threads
from glmix_viz.slots.explore import explore_image
from glmix_viz.open import resolve_model
from glmix_viz.images import check_min_size, load_image_with_info, to_tensor
from glmix_viz.figures import soft_maps_figure
from glmix_viz.viz import grouping_overlay, label_legend, slot_palette  # noqa: E402
from scripts.make_docs import check_results, command_line, smoke_folder  # noqa: E402

STEPS = ("decode", "preprocess", "forward + probe", "overlay + legend", "soft-map figure")
TARGETS = {"demo": 2.0, "glnet_stl": 5.0}


def test_image_bytes(side: int = 512) -> bytes:
    """A ``side`` x ``side`` JPEG of the synthetic shapes (an upload as a user would make it)."""
    image = render_shapes_image(np.random.default_rng([7, 0]), image_size=side).image
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def one_run(model: torch.nn.Module, data: bytes, resolution: int, block_index: int) -> Dict[str, float]:
    """Seconds of every step for one upload."""
    times: Dict[str, float] = {}

    def timed(step: str, work: Callable):
        start = time.perf_counter()
        result = work()
        times[step] = time.perf_counter() - start
        return result

    image, _ = timed("decode", lambda: load_image_with_info(data, name="upload.jpg", max_side=1024))
    check_min_size(image, 32, name="upload.jpg")
    timed("preprocess", lambda: to_tensor(image, size=resolution))
    exploration = timed("forward + probe", lambda: explore_image(model, image, input_size=resolution))
    # explore_image preprocesses again internally; count that time once, under "preprocess".
    times["forward + probe"] = max(0.0, times["forward + probe"] - times["preprocess"])
    block = exploration.block_names[min(block_index, len(exploration.block_names) - 1)]
    dispatch = exploration.dispatch(block)

    def draw() -> None:
        palette = slot_palette(dispatch.shape[0])
        grouping_overlay(image, dispatch, alpha=0.55, boundaries=True, palette=palette)
        label_legend(palette, cols=4, column_width=130)

    timed("overlay + legend", draw)
    columns = int(np.ceil(np.sqrt(dispatch.shape[0])))
    timed("soft-map figure", lambda: soft_maps_figure(dispatch, cols=columns).to_json())
    return times


def measure(model: torch.nn.Module, data: bytes, resolution: int, runs: int, block_index: int = 4) -> Dict[str, float]:
    """Median seconds per step (and ``"total"``) over ``runs`` runs after one warm-up run."""
    one_run(model, data, resolution, block_index)
    samples: List[Dict[str, float]] = [one_run(model, data, resolution, block_index) for _ in range(runs)]
    medians = {step: statistics.median(sample[step] for sample in samples) for step in STEPS}
    medians["total"] = statistics.median(sum(sample[step] for step in STEPS) for sample in samples)
    return medians


def slot_effect_latency(model: torch.nn.Module, image: np.ndarray, resolution: int, block: str, runs: int
                        ) -> Dict[str, float]:
    """Median seconds of one plain forward and of all slot effects of ``block`` (exact, batched), and their ratio."""
    from glmix_viz.slots.interventions import slot_effects

    inputs = to_tensor(image, size=resolution)

    def median(work: Callable) -> float:
        work()
        samples = []
        for _ in range(runs):
            start = time.perf_counter()
            work()
            samples.append(time.perf_counter() - start)
        return statistics.median(samples)

    with torch.inference_mode():
        forward = median(lambda: model(inputs))
    effects = median(lambda: slot_effects(model, image, block, input_size=resolution))
    return {"forward_s": forward, "effects_s": effects, "ratio": effects / forward}


def default_image_effects(runs: int, resolution: Optional[int] = None) -> Dict[str, Any]:
    """:func:`slot_effect_latency` for the app's default image (gallery draw [2024, 7], 256 px) on the demo model at
    its own resolution (or ``resolution``), for the block the explorer opens on (the benchmark's best-grouping
    block)."""
    from glmix_viz.grouping import benchmark_best_block

    opened = resolve_model(device="cpu", fallback="glnet_tiny", num_classes=4)
    image = render_shapes_image(np.random.default_rng([2024, 7]), image_size=256).image
    block = (benchmark_best_block() or {}).get("block", "stages.0.blocks.0")
    resolution = resolution or opened.info.input_size[-1]
    result = slot_effect_latency(opened.model, image, resolution, block, runs)
    return {"block": block, "input": resolution, **result, "goal_s": 2.0}


def models(smoke: bool = False) -> List[Tuple[str, str, torch.nn.Module, int]]:
    """``(row name, target key, model, input resolution)`` for the demo model and glnet_stl (random weights);
    ``smoke``: the demo model at 64 px only."""
    rows = []
    opened = resolve_model(device="cpu", fallback="glnet_tiny", num_classes=4)
    demo, info = opened.model, opened.info
    name = f"demo ({info.path.name})" if info.trained else "demo stand-in (glnet_tiny, untrained)"
    demo_resolution = info.input_size[-1]
    if smoke:
        return [(name, "demo", demo, 64)]
    rows.append((name, "demo", demo, demo_resolution))
    rows.append((f"{name} at 512", "demo", demo, 512))
    stl = timm.create_model("glnet_stl").eval()
    rows.append(("glnet_stl (random weights)", "glnet_stl", stl, 224))
    rows.append(("glnet_stl (random weights) at 512", "glnet_stl", stl, 512))
    return rows


def table(results: Dict[str, Any]) -> str:
    """The Markdown table of a results dict (the docs generator's too)."""
    lines = [f"Image: {results['side']}x{results['side']} JPEG; {results['runs']} runs, median seconds; torch threads "
             f"{results['threads']}; block #5 (or the last); model loading not counted.", "",
             "| model | input | " + " | ".join(STEPS) + " | total | target |", "|---|---|" + "---|" * (len(STEPS) + 2)]
    for row in results["rows"]:
        verdict = f"< {row['target']:g} s {'ok' if row['total'] < row['target'] else 'MISSED'}"
        cells = " | ".join(f"{row['steps'][step]:.3f}" for step in STEPS)
        lines.append(f"| {row['model']} | {row['input']} | {cells} | **{row['total']:.2f}** | {verdict} |")
    effects = results.get("slot_effects")
    if effects:
        lines += ["", f"Slot tab, all slot effects of {effects['block']} for the default image at {effects['input']} "
                      f"px: {effects['effects_s']:.3f} s = {effects['ratio']:.1f} x one plain forward "
                      f"({effects['forward_s'] * 1000:.1f} ms); goal < {effects['goal_s']:g} s "
                      f"{'ok' if effects['effects_s'] < effects['goal_s'] else 'MISSED'}."]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's arguments (the docs generator re-parses recorded commands with it)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per model (median reported)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: the app's choice, app.threads.interactive_threads())")
    parser.add_argument("--side", type=int, default=512, help="side of the square test image")
    parser.add_argument("--json", type=Path, default=None, help="results file (the docs' table is made from it; default "
                        "bench/results/app_latency.json; --smoke: a temporary folder)")
    parser.add_argument("--smoke", action="store_true", help="seconds: the demo model at 64 px, a 64 px image, one "
                        "run, one thread; checks the JSON (give --json a temporary path)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    if args.smoke:
        args.runs, args.side, args.threads = 1, 64, 1
    if args.json is None:
        args.json = smoke_folder(__file__) / "app_latency.json" if args.smoke else ROOT / "bench/results/app_latency.json"
    args.threads = args.threads or interactive_threads()
    torch.set_num_threads(args.threads)
    data = test_image_bytes(args.side)
    results: Dict[str, Any] = {"command": command_line(__file__, argv), "side": args.side,
                               "bytes": len(data), "runs": args.runs, "threads": args.threads,
                               "cpu_count": os.cpu_count(), "torch": torch.__version__, "rows": []}
    for name, target_key, model, resolution in models(args.smoke):
        medians = measure(model, data, resolution, args.runs)
        results["rows"].append({"model": name, "input": resolution, "steps": {step: medians[step] for step in STEPS},
                                "total": medians["total"], "target": TARGETS[target_key]})
    results["slot_effects"] = default_image_effects(args.runs, 64 if args.smoke else None)
    results["load_average"] = os.getloadavg()[0]
    print(table(results))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1) + "\n")
    if args.smoke:
        check_results(__file__, args.json)


if __name__ == "__main__":
    main()
