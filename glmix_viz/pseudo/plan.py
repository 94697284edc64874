"""Planning stage of the pseudo-label job: which ids this run (or shard) does, where their outputs go.

Outputs of an id in an output folder: ``<id>.png`` (written last: its presence means the id is done) and, with
``save_scores``, ``scores/<id>.npz``. A run's summary is ``summary.json``, or ``summary.shard-K-of-N.json`` for a
shard, so that shards sharing a folder never overwrite each other's summary.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

__all__ = ["SCORES_FOLDER", "RunPlan", "output_paths", "plan_run", "summary_name"]

SCORES_FOLDER = "scores"
Shard = Union[None, str, Tuple[int, int]]


def output_paths(out_dir: Union[str, os.PathLike], image_id: str) -> Tuple[Path, Path]:
    """``(label PNG, scores .npz)`` paths of one image id in an output folder."""
    out_dir = Path(out_dir)
    return out_dir / f"{image_id}.png", out_dir / SCORES_FOLDER / f"{image_id}.npz"


def summary_name(shard: Shard) -> str:
    """``summary.json``, or ``summary.shard-K-of-N.json`` for shard ``K/N``."""
    if shard is None:
        return "summary.json"
    from glmix_viz.data.voc import parse_shard

    index, count = parse_shard(shard)
    return f"summary.shard-{index}-of-{count}.json"


def _is_done(image_id: str, out_dir: Path, save_scores: bool) -> bool:
    png_path, npz_path = output_paths(out_dir, image_id)
    return png_path.is_file() and (not save_scores or npz_path.is_file())


def _remove_stale_temporaries(out_dir: Path, ids: Sequence[str]) -> int:
    """Delete temporary files a killed run of these ids left (``.<id>.png.<hex>.tmp``); other shards' are kept."""
    wanted = set(ids)
    removed = 0
    for folder, suffix in ((out_dir, ".png"), (out_dir / SCORES_FOLDER, ".npz")):
        if not folder.is_dir():
            continue
        for path in folder.glob(".*.tmp"):
            stem = path.name[1:].rsplit(".", 2)[0]  # ".<id><suffix>.<hex>.tmp" -> "<id><suffix>"
            if stem.endswith(suffix) and stem[: -len(suffix)] in wanted:
                path.unlink(missing_ok=True)
                removed += 1
    return removed


@dataclass(frozen=True)
class RunPlan:
    """What one run does.

    Attributes:
        out_dir: the output folder (created by :func:`plan_run`).
        all_ids: the ids before sharding (the split's, or those asked for).
        my_ids: this shard's ids (all of them without a shard).
        todo: the ids of ``my_ids`` still to do (all with ``overwrite``).
        shard: the shard as ``"K/N"``, or ``None``.
        summary_path: where the run's summary goes.
    """

    out_dir: Path
    all_ids: List[str]
    my_ids: List[str]
    todo: List[str]
    shard: Optional[str]
    summary_path: Path

    @property
    def skipped(self) -> int:
        """Ids of the shard already done by an earlier run."""
        return len(self.my_ids) - len(self.todo)


def plan_run(ids: Sequence[str], out_dir: Union[str, os.PathLike], *, shard: Shard = None, overwrite: bool = False,
             save_scores: bool = False) -> RunPlan:
    """Make the output folder, pick this shard's ids, clear what a killed run of them left, skip the done ones.

    ``shard`` is ``"K/N"``, ``(K, N)``, ``"auto"`` (from torchrun / a SLURM array: :func:`~glmix_viz.data.voc.
    resolve_shard`) or ``None``.
    """
    from glmix_viz.data.voc import parse_shard, resolve_shard, shard_ids

    shard = resolve_shard(shard)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    all_ids = list(ids)
    my_ids = shard_ids(all_ids, shard)
    _remove_stale_temporaries(out_dir, my_ids)
    todo = [image_id for image_id in my_ids if overwrite or not _is_done(image_id, out_dir, save_scores)]
    shard_text = None if shard is None else "{}/{}".format(*parse_shard(shard))
    return RunPlan(out_dir, all_ids, my_ids, todo, shard_text, out_dir / summary_name(shard))
