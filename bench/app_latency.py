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

Prints a markdown table: median seconds per step over ``--runs`` runs (after one warm-up run).
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import timm
import torch
from PIL import Image

import glmix_viz.models  # noqa: F401  (registers the GLNet variants)
from glmix_viz.data.shapes import render_shapes_image
from glmix_viz.app.threads import interactive_threads
from glmix_viz.slots.explore import explore_image
from glmix_viz.open import resolve_model
from glmix_viz.images import check_min_size, load_image_with_info, to_tensor
from glmix_viz.figures import soft_maps_figure
from glmix_viz.viz import grouping_overlay, label_legend, slot_palette

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


def models() -> List[Tuple[str, str, torch.nn.Module, int]]:
    """``(row name, target key, model, input resolution)`` for the demo model and glnet_stl (random weights)."""
    rows = []
    opened = resolve_model(device="cpu", fallback="glnet_tiny", num_classes=4)
    demo, info = opened.model, opened.info
    name = f"demo ({info.path.name})" if info.trained else "demo stand-in (glnet_tiny, untrained)"
    demo_resolution = info.input_size[-1]
    rows.append((name, "demo", demo, demo_resolution))
    rows.append((f"{name} at 512", "demo", demo, 512))
    stl = timm.create_model("glnet_stl").eval()
    rows.append(("glnet_stl (random weights)", "glnet_stl", stl, 224))
    rows.append(("glnet_stl (random weights) at 512", "glnet_stl", stl, 512))
    return rows


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per model (median reported)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: the app's choice, app.threads.interactive_threads())")
    parser.add_argument("--side", type=int, default=512, help="side of the square test image")
    args = parser.parse_args(argv)
    args.threads = args.threads or interactive_threads()
    torch.set_num_threads(args.threads)
    data = test_image_bytes(args.side)
    print(f"Image: {args.side}x{args.side} JPEG ({len(data) / 1024:.0f} KiB); {args.runs} runs, median seconds; "
          f"torch threads {args.threads}; block #5 (or the last); model loading not counted.\n")
    print("| model | input | " + " | ".join(STEPS) + " | total | target |")
    print("|---|---|" + "---|" * (len(STEPS) + 2))
    for name, target_key, model, resolution in models():
        medians = measure(model, data, resolution, args.runs)
        target = TARGETS[target_key]
        verdict = f"< {target:g} s {'ok' if medians['total'] < target else 'MISSED'}"
        cells = " | ".join(f"{medians[step]:.3f}" for step in STEPS)
        print(f"| {name} | {resolution} | {cells} | **{medians['total']:.2f}** | {verdict} |")


if __name__ == "__main__":
    main()
