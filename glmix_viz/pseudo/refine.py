"""The refinements of the pseudo-label job, under the package that uses them: see :mod:`glmix_viz.refine`.

The code lives in :mod:`glmix_viz.refine`, beside :mod:`glmix_viz.crf`, outside this package on purpose: a worker
process that unpickles :class:`PARParams` or runs :func:`refine` then imports numpy, pydensecrf and (for PAR) torch
only, not this package, whose ``__init__`` loads every score method (torch, timm, pytorch-grad-cam: about 4.7
CPU-seconds per worker measured; see :mod:`glmix_viz.pseudo.workers`).
"""

from __future__ import annotations

from glmix_viz.refine import (  # noqa: F401
    REFINEMENTS,
    PARParams,
    RefineParams,
    _affinity,
    check_device,
    default_params,
    method_of,
    par_refine,
    par_refine_batch,
    refine,
    refined_labels,
)

__all__ = [
    "REFINEMENTS",
    "PARParams",
    "RefineParams",
    "check_device",
    "default_params",
    "method_of",
    "par_refine",
    "par_refine_batch",
    "refine",
    "refined_labels",
]
