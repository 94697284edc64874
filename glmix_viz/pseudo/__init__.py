"""From slots to segmentation labels: class score maps, background rule, dense CRF, batch pipeline, mIoU metrics.

The public names below are loaded on first use (``glmix_viz.pseudo.ScoreSettings`` imports the settings module
then), so that light tools (e.g. evaluation) that import ``glmix_viz.pseudo.metrics`` do not pull in torch or
pydensecrf:

* :class:`ScoreSettings` - what the score maps depend on (:mod:`glmix_viz.pseudo.settings`);
* :data:`METHODS`, :func:`register_method`, :class:`MapContext` - the method registry
  (:mod:`glmix_viz.pseudo.registry`; the built-in methods in :mod:`glmix_viz.pseudo.methods`);
* :func:`compute_scores`, :func:`compute_scores_batch` - the scoring (:mod:`glmix_viz.pseudo.scores`);
* :func:`pseudo_mask` - scores (+ dense CRF) to label ids with 255 for unsure (:mod:`glmix_viz.pseudo.masks`).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ScoreSettings": "glmix_viz.pseudo.settings",
    "METHODS": "glmix_viz.pseudo.registry",
    "MapContext": "glmix_viz.pseudo.registry",
    "ScoreMethod": "glmix_viz.pseudo.registry",
    "register_method": "glmix_viz.pseudo.registry",
    "default_method": "glmix_viz.pseudo.registry",
    "ScoreMaps": "glmix_viz.pseudo.scores",
    "compute_scores": "glmix_viz.pseudo.scores",
    "compute_scores_batch": "glmix_viz.pseudo.scores",
    "PseudoMask": "glmix_viz.pseudo.masks",
    "pseudo_mask": "glmix_viz.pseudo.masks",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list:
    return sorted(set(globals()) | set(_EXPORTS))
