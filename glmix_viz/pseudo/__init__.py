"""From slots to segmentation labels: class score maps, background rule, dense CRF, batch pipeline, mIoU metrics.

This package face is the one place that loads the built-in pseudo-mask methods: it imports the registry (a leaf),
then :mod:`~glmix_viz.pseudo.methods` (``cam``, ``slic_cam``, the slot methods), :mod:`~glmix_viz.pseudo.gradcam`
(the pytorch-grad-cam baselines) and :mod:`~glmix_viz.pseudo.ablate` (``slot_ablate``), in that order. Python runs this file before any submodule, so :data:`METHODS` is
complete and in that order whichever module of the package a caller imports first.

* :class:`ScoreSettings` - what the score maps depend on (:mod:`glmix_viz.pseudo.settings`);
* :data:`METHODS`, :func:`register_method`, :class:`MapContext`, :func:`default_method` - the method registry
  (:mod:`glmix_viz.pseudo.registry`);
* :func:`compute_scores`, :func:`compute_scores_batch` - the scoring (:mod:`glmix_viz.pseudo.scores`), made of the
  building blocks of :mod:`glmix_viz.pseudo.evidence`;
* :func:`pseudo_mask` - scores (+ a refinement) to label ids with 255 for unsure (:mod:`glmix_viz.pseudo.masks`);
* the refinements, dense CRF, PAR or none: :mod:`glmix_viz.refine` (code in :mod:`glmix_viz.refine`).
"""

from __future__ import annotations

from glmix_viz.pseudo.registry import (
    METHODS,
    MapContext,
    ScoreMethod,
    baseline_methods,
    default_method,
    reference_baseline,
    register_method,
)

# isort: off
# Registration, in this order (it is the order of METHODS): the built-in methods, the pytorch-grad-cam baselines,
# then slot_ablate (slot interventions).
from glmix_viz.pseudo import methods as _builtin_methods  # noqa: F401
from glmix_viz.pseudo import gradcam as _gradcam_methods  # noqa: F401
from glmix_viz.pseudo import ablate as _ablate_methods  # noqa: F401
# isort: on

from glmix_viz.pseudo.masks import PseudoMask, pseudo_mask
from glmix_viz.pseudo.scores import ScoreMaps, compute_scores, compute_scores_batch
from glmix_viz.pseudo.settings import ScoreSettings

__all__ = [
    "METHODS",
    "MapContext",
    "PseudoMask",
    "ScoreMaps",
    "ScoreMethod",
    "ScoreSettings",
    "baseline_methods",
    "compute_scores",
    "compute_scores_batch",
    "default_method",
    "pseudo_mask",
    "reference_baseline",
    "register_method",
]
