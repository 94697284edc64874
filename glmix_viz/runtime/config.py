"""The run-time settings both training configurations share (:class:`~glmix_viz.train.config.TrainConfig`,
:class:`~glmix_viz.segment.train.SegmentTrainConfig`): where a run writes and runs, not what it learns.

Checkpoints record what is learned; the fields named in :data:`RUNTIME_FIELDS` are left out of that record.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Optional, Tuple

__all__ = ["RUNTIME_FIELDS", "RuntimeConfig"]


@dataclass(kw_only=True)
class RuntimeConfig:
    """Where a training run writes and runs (keyword-only; a training configuration extends it).

    Attributes:
        out: the run folder (checkpoints, resume state, log); a rerun there resumes.
        device: "cpu", "cuda", "cuda:1"... (None: CUDA when available; under a launcher, ``cuda:LOCAL_RANK``).
        workers: data-loading processes.
        progress: show tqdm bars (rank 0 only).
    """

    out: str
    device: Optional[str] = None
    workers: int = 2
    progress: bool = True


RUNTIME_FIELDS: Tuple[str, ...] = tuple(item.name for item in fields(RuntimeConfig))
"""The names of :class:`RuntimeConfig`'s fields."""
