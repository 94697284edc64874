"""The ``glmix-viz`` command line: one subcommand per module of ``glmix_viz.commands``, each thin over the library.

Each command module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int`` (the exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

from glmix_viz.errors import GlmixVizError

# subcommand name -> module in glmix_viz.commands
COMMANDS = {
    "inspect": "inspect_images",
    "make-shapes": "make_shapes",
    "train": "train",
    "finetune": "finetune",
    "pseudo-label": "pseudo_label",
    "evaluate": "evaluate",
    "app": "app",
    "segment-train": "segment_train",
    "segment": "segment",
    "atlas": "atlas",
    "faithfulness": "faithfulness",
    "grouping-scores": "grouping_scores",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="glmix-viz",
        description="See what a GLMix network groups, and turn its groupings into segmentation labels.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"glmix_viz.commands.{module_name}")
        sub = subparsers.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(handler=module.run)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except GlmixVizError as error:
        print(f"glmix-viz {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"glmix-viz {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
