"""A batch job over the ids of a split, written once for every job (``pseudo-label``, ``segment``, ...).

* :func:`plan_job`: make the output folder, pick this process's shard (:func:`~glmix_viz.runtime.distributed.
  shard_ids`), delete the temporary files a killed run of these ids left, skip the ids already done;
* :class:`RunSummary`: counts, failures with reasons, timers, a tqdm bar, and one JSON file written atomically,
  also when the run stops on an exception (status "interrupted" / "aborted").

Every output is written atomically (:func:`~glmix_viz.files.save_bytes_atomic`: ``.<name>.<hex>.tmp`` then a
rename), so a killed run leaves no partial output under a final name, only temporaries that the next plan clears.
A run's summary is ``summary.json``, or ``summary.shard-K-of-N.json`` for a shard, so that shards sharing a folder
never overwrite each other's summary.

Schema of ``summary*.json``: ``status`` ("running" while it runs; then "ok", "failed", or "interrupted" / "aborted"
with ``error``), ``started``, ``finished``, ``counts`` (``total``, ``done``, ``skipped``, ``failed``), ``failures``
(``id``, ``reason``), the job's own record (``info``), ``timing`` (``wall_s``, the job's timers and their sums,
``images_per_s``).
"""

from __future__ import annotations

import contextlib
import datetime as _datetime
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from tqdm import tqdm

from glmix_viz.errors import one_line
from glmix_viz.files import save_bytes_atomic
from glmix_viz.runtime.distributed import Shard, parse_shard, resolve_shard, shard_ids

__all__ = ["JobPlan", "RunSummary", "plan_job", "remove_stale_temporaries", "summary_name"]

PathLike = Union[str, os.PathLike]


def summary_name(shard: Shard) -> str:
    """``summary.json``, or ``summary.shard-K-of-N.json`` for shard ``K/N``."""
    if shard is None:
        return "summary.json"
    index, count = parse_shard(shard)
    return f"summary.shard-{index}-of-{count}.json"


def remove_stale_temporaries(outputs: Sequence[Tuple[PathLike, str]], ids: Sequence[str]) -> int:
    """Delete the temporaries a killed run of these ids left; other shards' are kept.

    Args:
        outputs: ``(folder, suffix)`` of each output of an id (``<folder>/<id><suffix>``); its temporaries are
            ``<folder>/.<id><suffix>.<hex>.tmp``.
        ids: the ids whose temporaries go.

    Returns:
        How many files were deleted.
    """
    wanted = set(ids)
    removed = 0
    for folder, suffix in outputs:
        folder = Path(folder)
        if not folder.is_dir():
            continue
        for path in folder.glob(".*.tmp"):
            stem = path.name[1:].rsplit(".", 2)[0]  # ".<id><suffix>.<hex>.tmp" -> "<id><suffix>"
            if stem.endswith(suffix) and stem[: -len(suffix)] in wanted:
                path.unlink(missing_ok=True)
                removed += 1
    return removed


@dataclass(frozen=True)
class JobPlan:
    """What one run of a job does.

    Attributes:
        out_dir: the output folder (created by :func:`plan_job`).
        all_ids: the ids before sharding (the split's, or those asked for).
        my_ids: this shard's ids (all of them without a shard).
        todo: the ids of ``my_ids`` still to do (all with ``overwrite``).
        shard: the shard as ``"K/N"``, or ``None``.
        summary_path: where the run's summary goes.
        stale_removed: temporaries of a killed run deleted while planning.
    """

    out_dir: Path
    all_ids: List[str]
    my_ids: List[str]
    todo: List[str]
    shard: Optional[str]
    summary_path: Path
    stale_removed: int = 0

    @property
    def skipped(self) -> int:
        """Ids of the shard already done by an earlier run."""
        return len(self.my_ids) - len(self.todo)


def plan_job(ids: Sequence[str], out_dir: PathLike, *, is_done: Callable[[str], bool],
             outputs: Sequence[Tuple[PathLike, str]], shard: Shard = None, overwrite: bool = False) -> JobPlan:
    """Make the output folder, pick this shard's ids, clear what a killed run of them left, skip the done ones.

    Args:
        ids: the split's ids (or those asked for), before sharding.
        out_dir: the output folder.
        is_done: whether an id's outputs are all there.
        outputs: ``(folder, suffix)`` of each output an id gets (:func:`remove_stale_temporaries`).
        shard: ``"K/N"``, ``(K, N)``, ``"auto"`` (:func:`~glmix_viz.runtime.distributed.resolve_shard`) or None.
        overwrite: redo the ids that are done.
    """
    shard = resolve_shard(shard)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    all_ids = list(ids)
    my_ids = shard_ids(all_ids, shard)
    removed = remove_stale_temporaries(outputs, my_ids)
    todo = [image_id for image_id in my_ids if overwrite or not is_done(image_id)]
    shard_text = None if shard is None else "{}/{}".format(*parse_shard(shard))
    return JobPlan(out_dir, all_ids, my_ids, todo, shard_text, out_dir / summary_name(shard), removed)


def _now() -> str:
    return _datetime.datetime.now(_datetime.timezone.utc).isoformat(timespec="seconds")


class RunSummary:
    """Collects what a run did; :meth:`write` saves it atomically (also when the run stops on an exception).

    Args:
        path: the summary file.
        total: ids in this run's shard; ``skipped``: of those, already done; ``todo``: to do (the bar's length).
        info: the job's own record (settings, model, data set ...), kept after ``counts`` and ``failures``.
        timers: names of the job's timers (seconds, summed), in the order they are written.
        sums: derived timers written after them, e.g. ``{"io_s": ("load_s", "write_s")}``.
        desc: the bar's label; progress: show a tqdm bar (images/s) on stderr.
    """

    def __init__(self, path: Path, *, total: int, skipped: int, todo: int, info: Mapping[str, Any],
                 timers: Sequence[str] = (), sums: Optional[Mapping[str, Sequence[str]]] = None,
                 desc: str = "job", progress: bool = True) -> None:
        self.path = Path(path)
        self.data: Dict[str, Any] = {
            "status": "running", "started": _now(),
            "counts": {"total": total, "done": 0, "skipped": skipped, "failed": 0},
            "failures": [], **dict(info),
        }
        self.timing: Dict[str, float] = {name: 0.0 for name in timers}
        self.sums = dict(sums or {})
        self.started = time.perf_counter()
        self.bar = tqdm(total=todo, unit="img", desc=desc, disable=not progress, file=sys.stderr, dynamic_ncols=True)

    @property
    def failures(self) -> List[Dict[str, str]]:
        return self.data["failures"]

    @property
    def counts(self) -> Dict[str, int]:
        return self.data["counts"]

    def done(self, result: Optional[Mapping[str, Any]] = None) -> None:
        """Count one finished id. ``result``: a worker's record (``ok``; ``id`` and ``reason`` when not ok; any of
        the timers, added to them)."""
        result = {"ok": True} if result is None else result
        if not result["ok"]:
            self.fail(result["id"], result["reason"])
            return
        self.counts["done"] += 1
        for name in self.timing:
            self.timing[name] += float(result.get(name, 0.0))
        self.bar.update(1)

    def fail(self, image_id: str, reason: str) -> None:
        """Report one id as skipped with its reason (the run goes on)."""
        self.failures.append({"id": image_id, "reason": reason})
        self.counts["failed"] += 1
        self.bar.update(1)
        self.bar.write(f"skipped {image_id}: {reason}", file=sys.stderr)

    @contextlib.contextmanager
    def timed(self, name: str) -> Iterator[None]:
        """Add the time spent in the block to timer ``name``."""
        began = time.perf_counter()
        try:
            yield
        finally:
            self.timing[name] += time.perf_counter() - began

    def since_start(self) -> float:
        return time.perf_counter() - self.started

    def finish(self, error: Optional[BaseException] = None) -> None:
        """Set the final status: "ok" / "failed" (some ids failed), or "interrupted" / "aborted" with ``error``."""
        if error is None:
            self.data["status"] = "failed" if self.failures else "ok"
        else:
            self.data["status"] = "interrupted" if isinstance(error, KeyboardInterrupt) else "aborted"
            self.data["error"] = one_line(error)

    def write(self) -> Dict[str, Any]:
        """Close the bar, add the timing, write the file atomically; returns the summary (with ``summary_path``)."""
        self.bar.close()
        wall = self.since_start()
        self.data["finished"] = _now()
        self.data["timing"] = {
            "wall_s": round(wall, 3),
            **{key: round(value, 3) for key, value in self.timing.items()},
            **{key: round(sum(self.timing[part] for part in parts), 3) for key, parts in self.sums.items()},
            "images_per_s": round(self.counts["done"] / wall, 3) if wall > 0 else None,
        }
        save_bytes_atomic(self.path, (json.dumps(self.data, indent=2, default=str) + "\n").encode("utf-8"))
        return {**self.data, "summary_path": str(self.path)}

    @contextlib.contextmanager
    def running(self) -> Iterator["RunSummary"]:
        """``with summary.running():`` sets the final status from how the block ends and always writes the file."""
        try:
            yield self
            self.finish()
        except BaseException as error:
            self.finish(error)
            raise
        finally:
            self.write()
