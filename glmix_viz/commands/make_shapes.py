"""``glmix-viz make-shapes``: write the synthetic shapes data set in the PASCAL VOC layout or as a segmentation
folder."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from glmix_viz.commands.library_values import VALUES

SHAPE_CLASSES = VALUES["make_shapes"]["shape_classes"]  # glmix_viz.data.shapes's, without importing torch
DEFAULT_SHAPE_CLASSES = VALUES["make_shapes"]["default_shape_classes"]

HELP = ("Write a synthetic data set of textured shapes (classes differ by shape, not colour), in the VOC layout or "
        "as a segmentation folder (--format folder).")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="output folder (the VOC2012-style root)")
    parser.add_argument("--num-train", type=int, required=True, help="images in the train split")
    parser.add_argument("--num-val", type=int, required=True, help="images in the val split")
    parser.add_argument("--num-test", type=int, default=0, help="images in an extra test split (default 0)")
    parser.add_argument("--seed", type=int, required=True, help="the same seed writes the same bytes")
    parser.add_argument("--image-size", type=int, default=128, help="side of the square images (default 128)")
    parser.add_argument("--classes", nargs="+", default=list(DEFAULT_SHAPE_CLASSES), choices=SHAPE_CLASSES,
                        help=f"shape classes (default: {' '.join(DEFAULT_SHAPE_CLASSES)})")
    parser.add_argument("--max-objects", type=int, default=3, help="objects per image: 1 to this (default 3)")
    parser.add_argument("--image-format", choices=("png", "jpg"), default="png")
    parser.add_argument("--format", dest="layout", choices=("voc", "folder"), default="voc",
                        help="voc: the PASCAL VOC layout (default); folder: a segmentation folder (images/, masks/, "
                             "classes.txt, splits/), the format of docs/own_data.md")
    parser.add_argument("--overwrite", action="store_true", help="replace a shapes set already in --out")


def run(args: argparse.Namespace) -> int:
    from glmix_viz.data.shapes import ShapesConfig, make_shapes

    config = ShapesConfig(image_size=args.image_size, classes=tuple(args.classes), max_objects=args.max_objects)
    summary = make_shapes(
        args.out, config, num_train=args.num_train, num_val=args.num_val, num_test=args.num_test, seed=args.seed,
        image_format=args.image_format, overwrite=args.overwrite, layout=args.layout,
    )
    print(json.dumps(summary, indent=2, default=str))
    return 0
