"""glmix-viz: see what a GLMix network groups, and turn the groupings into segmentation labels.

The names below are loaded on first use (PEP 562), so that ``import glmix_viz`` (and ``glmix-viz --help``, which
imports the package) does not import torch and timm: ``glmix_viz.load_model`` or ``from glmix_viz import GLNet``
imports them then. The GLNet variants are registered with timm by :mod:`glmix_viz.models`: import it (or use any
model name below) before ``timm.create_model("glnet_...")``.
"""

from __future__ import annotations

import importlib
from typing import Any

from glmix_viz.errors import CheckpointError, DataError, GlmixVizError, ImageLoadError

__version__ = "0.1.0"

# name -> the module that defines it, imported when the name is first asked for
_LAZY = {
    "GLNet": "glmix_viz.models",
    "class_names": "glmix_viz.models.info",
    "default_device": "glmix_viz.models.loading",
    "load_model": "glmix_viz.models.loading",
    "save_checkpoint": "glmix_viz.models.loading",
    "Opened": "glmix_viz.open",
    "demo_checkpoint": "glmix_viz.open",
    "open_checkpoint": "glmix_viz.open",
    "GroupingProbe": "glmix_viz.probe",
    "GroupingRecord": "glmix_viz.probe",
    "glmix_block_names": "glmix_viz.probe",
}

__all__ = ["CheckpointError", "DataError", "GlmixVizError", "ImageLoadError", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'glmix_viz' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(_LAZY))
