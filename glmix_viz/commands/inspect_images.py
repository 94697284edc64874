"""``glmix-viz inspect``: one PNG per image showing what every chosen GLMix block groups."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from glmix_viz.commands.common import load_model_from_args
from glmix_viz.errors import GlmixVizError

HELP = "Draw the slot groupings of GLMix blocks for images (input, hard groupings, soft slot maps, top-5)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", type=Path, help="image files (JPEG, PNG, WebP, BMP, TIFF, ...)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", type=Path, help="a GLNet checkpoint (.pth or .safetensors); default: demo")
    source.add_argument("--model", help="a registered variant with random weights (e.g. glnet_stl), for smoke tests")
    parser.add_argument("--blocks", nargs="+", default=None,
                        help="GLMix blocks to draw: paths (stages.2.blocks.0) or indices (0, -1); default: up to 4 "
                             "spread over the network")
    parser.add_argument("--size", type=int, default=None, help="longer input side (default: the model's)")
    parser.add_argument("--out", type=Path, default=Path("inspect_out"), help="output folder (default: inspect_out)")
    parser.add_argument("--alpha", type=float, default=0.5, help="opacity of the slot colours (default 0.5)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")


def _spread(names: list, count: int = 4) -> list:
    if len(names) <= count:
        return names
    step = (len(names) - 1) / (count - 1)
    return [names[round(i * step)] for i in range(count)]


def _parse_blocks(blocks):
    return None if blocks is None else [int(b) if b.lstrip("-").isdigit() else b for b in blocks]


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from glmix_viz.figures import grouping_figure  # here: plotly is heavy, and only this command draws figures
    from glmix_viz.files import save_png_atomic
    from glmix_viz.images import check_min_size, load_image
    from glmix_viz.models.info import model_input_size
    from glmix_viz.probe import GroupingProbe
    from glmix_viz.slots.explore import explore_image, top_predictions


    model, description = load_model_from_args(args)
    print(f"model: {description}", file=sys.stderr)
    blocks = _parse_blocks(args.blocks)
    try:
        names = GroupingProbe(model, blocks).block_names  # validates the choice before any image is read
    except ValueError as error:
        raise GlmixVizError(f"--blocks: {error}") from None
    if blocks is None:
        names = _spread(names)
    failures = []
    for path in tqdm(args.images, desc="inspect", unit="img", disable=len(args.images) < 2):
        try:
            image = load_image(path)
            check_min_size(image, name=str(path))
            exploration = explore_image(model, image, input_size=args.size or model_input_size(model))
            top = [(p.name, p.probability) for p in top_predictions(exploration.probabilities,
                                                                     exploration.class_names)]
            figure = grouping_figure(image, {name: exploration.dispatch(name) for name in names},
                                     predictions=top, alpha=args.alpha)
            target = args.out / f"{path.stem}_groupings.png"
            save_png_atomic(target, figure)
            tqdm.write(f"{path}: {target}" + (f"  top-1 {top[0][0]} ({top[0][1]:.2f})" if top else ""))
        except GlmixVizError as error:
            failures.append(str(error))
            tqdm.write(f"error: {error}", file=sys.stderr)
    if failures:
        print(f"{len(failures)} of {len(args.images)} images failed", file=sys.stderr)
        return 1
    return 0
