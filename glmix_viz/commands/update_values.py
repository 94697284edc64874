"""Write :mod:`glmix_viz.commands.library_values`: the library's values that the commands' ``--help`` shows.

``glmix-viz --help`` and ``glmix-viz COMMAND --help`` build every command's parser; some options show values that live
in modules which import torch (the pseudo-mask methods, the segmenter's decoders, the training defaults). The parser
reads a copy of those values instead, and ``tests/test_cli_help.py`` fails when the copy differs from the library,
naming the command that rewrites it::

    python -m glmix_viz.commands.update_values
"""

from __future__ import annotations

import dataclasses
import pprint
from pathlib import Path
from typing import Any, Dict

TARGET = Path(__file__).with_name("library_values.py")
HEADER = '''"""The library's values shown by the commands' --help, copied so that building the parser imports no torch.

Written by ``python -m glmix_viz.commands.update_values`` (do not edit by hand); tests/test_cli_help.py fails when a
value here differs from the library's.
"""

'''


def compute() -> Dict[str, Any]:
    """The values, read from the library (imports torch)."""
    from glmix_viz.atlas.sources import CONCEPT_SOURCES, DEFAULT_SOURCE
    from glmix_viz.data.shapes import DEFAULT_SHAPE_CLASSES, SHAPE_CLASSES
    from glmix_viz.pseudo import METHODS, default_method
    from glmix_viz.pseudo.evidence import BG_RULES, DEFAULT_POWER_ALPHA
    from glmix_viz.refine import REFINEMENTS, PARParams
    from glmix_viz.segment.model import DECODERS
    from glmix_viz.segment.predict import OUTPUT_FORMATS
    from glmix_viz.segment.train import SegmentTrainConfig

    segment_train = dataclasses.asdict(SegmentTrainConfig(out=""))
    return {
        "pseudo_label": {
            "methods": [
                {"name": name, "description": method.description, "baseline": method.baseline,
                 "bg_threshold": method.bg_threshold, "options": dict(method.options)}
                for name, method in METHODS.items()
            ],
            "default_method": default_method(),
            "bg_rules": tuple(BG_RULES),
            "default_power_alpha": DEFAULT_POWER_ALPHA,
        },
        "refine": {"refinements": tuple(REFINEMENTS),
                   "par_defaults": {key: value for key, value in PARParams().to_dict().items()
                                    if key not in ("method", "device")}},
        "segment": {"output_formats": tuple(OUTPUT_FORMATS)},
        "segment_train": {
            "decoders": tuple(DECODERS),
            "defaults": {key: segment_train[key] for key in (
                "decoder", "epochs", "batch_size", "input_size", "scale_range", "lr", "backbone_lr_ratio",
                "weight_decay", "warmup_steps")},
        },
        "make_shapes": {"shape_classes": tuple(SHAPE_CLASSES), "default_shape_classes": tuple(DEFAULT_SHAPE_CLASSES)},
        "atlas": {"concept_sources": tuple(CONCEPT_SOURCES), "default_concepts": DEFAULT_SOURCE},
    }


def source(values: Dict[str, Any]) -> str:
    """The text of :mod:`glmix_viz.commands.library_values` holding ``values``."""
    return HEADER + "VALUES = " + pprint.pformat(values, width=116, sort_dicts=False) + "\n"


def main() -> int:
    TARGET.write_text(source(compute()), encoding="utf-8")
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
