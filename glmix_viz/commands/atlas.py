"""``glmix-viz atlas``: the concepts of GLMix blocks over a data set (slot features clustered), with their purity,
typical regions and a figure."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Tuple, Union

from glmix_viz.commands.common import add_dataset_arguments, load_model_from_args, open_dataset
from glmix_viz.commands.library_values import VALUES
from glmix_viz.errors import GlmixVizError
from glmix_viz.scoring.stats import DEFAULT_RESAMPLES

if TYPE_CHECKING:
    from glmix_viz.data.base import Split

HELP = ("slot atlas: collect every image's slot regions for the chosen blocks, cluster them into concepts "
        "(scikit-learn k-means, or --concepts slot: each learned slot is a concept), write purity, typical regions "
        "and a figure (resumable, bounded memory)")
DEFAULT_CLUSTERS = 8
CONCEPT_SOURCES = VALUES["atlas"]["concept_sources"]  # glmix_viz.atlas.sources's, without importing torch
DEFAULT_CONCEPTS = VALUES["atlas"]["default_concepts"]


def _blocks(values: List[str]) -> List[Union[int, str]]:
    parts = [part.strip() for value in values for part in value.split(",") if part.strip()]
    return [int(part) if part.lstrip("-").isdigit() else part for part in parts]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = add_dataset_arguments(parser, split="val")  # --data PATH (--voc-root / --coco-root), --split
    source.add_argument("--images", dest="data", type=Path, metavar="DIR",
                        help="alias of --data for a plain folder of images (no labels: no purity)")
    parser.add_argument("--checkpoint", type=Path, help="GLNet checkpoint (default: the bundled demo model)")
    parser.add_argument("--block", action="append", default=None, metavar="B",
                        help="GLMix block: path (stages.1.blocks.0) or index (-1); repeatable or comma list (default: "
                             "the block the explorer opens on: for the demo model the one that groups best on its "
                             "benchmark, else the first GLMix block)")
    parser.add_argument("--concepts", choices=CONCEPT_SOURCES, default=DEFAULT_CONCEPTS,
                        help=f"where a region's concept comes from (default {DEFAULT_CONCEPTS}): kmeans clusters "
                             "the slot features into --clusters concepts; slot makes each region's concept its slot "
                             "index (one concept per slot), for blocks whose initial slots are learned (slot_init "
                             "'param', e.g. glnet_stl_paramslot); refused for pooled slots")
    parser.add_argument("--allow-pooled-slots", action="store_true",
                        help="with --concepts slot, accept blocks whose slots are pooled from the input "
                             "(slot_init 'ada_avgpool'): slot k is then the k-th grid cell, so the atlas is a "
                             "positional baseline, not learned identities")
    parser.add_argument("--clusters", type=int, default=None,
                        help=f"concepts per block with --concepts kmeans (default {DEFAULT_CLUSTERS}); with "
                             "--concepts slot it is each block's slot count, and another number is refused")
    parser.add_argument("--out", type=Path, required=True, help="the atlas folder")
    parser.add_argument("--feature", choices=("slots_in", "slots_out"), default="slots_in",
                        help="slot feature clustered: before (default) or after slot attention")
    parser.add_argument("--input-size", type=int, default=None, help="square input side (default: the model's)")
    parser.add_argument("--batch-size", type=int, default=16, help="images per forward pass (default 16)")
    parser.add_argument("--chunk-size", type=int, default=256,
                        help="images per chunk file: the unit of resume and of memory (default 256)")
    parser.add_argument("--examples", type=int, default=8, help="typical regions per concept (default 8)")
    parser.add_argument("--resamples", type=int, default=DEFAULT_RESAMPLES,
                        help=f"bootstrap resamples of the purity over images (default {DEFAULT_RESAMPLES})")
    parser.add_argument("--seed", type=int, default=0, help="seed of k-means, the map sample and the bootstrap")
    parser.add_argument("--importance", action="store_true",
                        help="also concept importance: remove each concept's slots from every image and measure each "
                             "class's probability change (needs labels: --voc-root / --coco-root)")
    parser.add_argument("--shard", default=None, metavar="K/N|auto", help="collect only shard K of N of the chunks")
    parser.add_argument("--overwrite", action="store_true", help="drop the regions collected before")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: CUDA when available)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def open_source(args: argparse.Namespace) -> "Split":
    """The split of ``--data`` (or its aliases ``--images``, ``--voc-root``, ``--coco-root``)."""
    return open_dataset(args)


def chosen_blocks(args: argparse.Namespace, model: Any, info: Any) -> Tuple[Union[int, str], ...]:
    """``--block``'s blocks, else the one block the explorer opens on (:func:`glmix_viz.grouping.opening_block`)."""
    if args.block:
        return tuple(_blocks(args.block))
    from glmix_viz.grouping import benchmark_best_block, opening_block
    from glmix_viz.open import demo_checkpoint
    from glmix_viz.probe import glmix_block_names

    demo = demo_checkpoint()
    is_demo = demo is not None and info.path is not None and Path(info.path).resolve() == demo.resolve()
    block = opening_block(glmix_block_names(model), benchmark_best_block() if is_demo else None)
    print(f"no --block: {block}, the block the explorer opens on", file=sys.stderr)
    return (block,)


def run(args: argparse.Namespace) -> int:
    from glmix_viz.atlas import AtlasSettings, run_atlas

    if args.concepts == "kmeans" and args.clusters is None:
        args.clusters = DEFAULT_CLUSTERS
    if args.allow_pooled_slots and args.concepts != "slot":
        raise GlmixVizError("--allow-pooled-slots applies only to --concepts slot")
    for flag in ("clusters", "batch_size", "chunk_size", "examples", "resamples"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            raise GlmixVizError(f"--{flag.replace('_', '-')} must be at least 1, got {getattr(args, flag)}")
    source = open_source(args)
    if args.importance and not source.has_labels:
        raise GlmixVizError(f"--importance needs image-level labels: {args.data} ({source.format}) has none")
    model, description = load_model_from_args(args)
    print(f"model: {description}", file=sys.stderr)
    settings = AtlasSettings(blocks=chosen_blocks(args, model, description), feature=args.feature, input_size=args.input_size,
                             batch_size=args.batch_size, chunk_size=args.chunk_size)
    result = run_atlas(source, model, args.out, settings, args.clusters, concepts=args.concepts,
                       allow_pooled=args.allow_pooled_slots, shard=args.shard, overwrite=args.overwrite,
                       progress=args.progress, seed=args.seed, examples=args.examples, resamples=args.resamples)
    counts = result["summary"]["counts"]
    print(f"{counts['done']} images read, {counts['skipped']} already collected, {counts['failed']} failed of "
          f"{counts['total']}; summary: {result['summary']['summary_path']}")
    for failure in result["summary"]["failures"]:
        print(f"failed: {failure['id']}: {failure['reason']}", file=sys.stderr)
    for block in (result["atlas"] or {}).get("blocks", []):
        purity = f", purity {block['purity']:.3f} (95% {block['purity_ci95'][0]:.3f}-{block['purity_ci95'][1]:.3f})" \
            if "purity" in block else ""
        identity = " (slot identity)" if args.concepts == "slot" else ""
        print(f"{block['name']}: {len(block['concepts'])} concepts{identity} over {block['regions']} regions{purity}; "
              f"figure {args.out / block['figure']}")
    if args.importance and result["atlas"]:
        from glmix_viz.atlas.importance import concept_importance

        importance = concept_importance(args.out, model, source, resamples=args.resamples, seed=args.seed,
                                        progress=args.progress)
        for failure in importance["failures"]:
            print(f"importance failed: {failure['id']}: {failure['reason']}", file=sys.stderr)
        print(f"concept importance written to {args.out / 'atlas.json'}")
    return 1 if counts["failed"] else 0
