"""Planning stage of the pseudo-label job: where an id's outputs go, and the job plan on :mod:`glmix_viz.runtime.jobs`.

Outputs of an id in an output folder: ``<id>.png`` (written last: its presence means the id is done) and, with
``save_scores``, ``scores/<id>.npz``. The shards, the stale temporaries and the summary's name are the runtime's.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence, Tuple, Union

from glmix_viz.runtime.distributed import Shard
from glmix_viz.runtime.jobs import JobPlan, plan_job

__all__ = ["SCORES_FOLDER", "output_paths", "plan_run"]

SCORES_FOLDER = "scores"


def output_paths(out_dir: Union[str, os.PathLike], image_id: str) -> Tuple[Path, Path]:
    """``(label PNG, scores .npz)`` paths of one image id in an output folder."""
    out_dir = Path(out_dir)
    return out_dir / f"{image_id}.png", out_dir / SCORES_FOLDER / f"{image_id}.npz"


def plan_run(ids: Sequence[str], out_dir: Union[str, os.PathLike], *, shard: Shard = None, overwrite: bool = False,
             save_scores: bool = False) -> JobPlan:
    """The pseudo-label job's plan: an id is done when its PNG (and with ``save_scores`` its ``.npz``) exists.

    ``shard`` is ``"K/N"``, ``(K, N)``, ``"auto"`` (:func:`~glmix_viz.runtime.distributed.resolve_shard`) or None.
    """
    out_dir = Path(out_dir)

    def is_done(image_id: str) -> bool:
        png_path, npz_path = output_paths(out_dir, image_id)
        return png_path.is_file() and (not save_scores or npz_path.is_file())

    return plan_job(ids, out_dir, is_done=is_done, outputs=[(out_dir, ".png"), (out_dir / SCORES_FOLDER, ".npz")],
                    shard=shard, overwrite=overwrite)
