"""The run summary of the pseudo-label job: counts, failures, settings, timing, a progress bar; one JSON file.

Schema of ``summary*.json``: ``status`` ("running" while it runs; then "ok", "failed", or "interrupted" / "aborted"
with ``error``), ``started``, ``finished``, ``counts`` (``total``, ``done``, ``skipped``, ``failed``), ``failures``
(``id``, ``reason``), ``warnings``, ``settings`` (the score settings' fields plus the job's: ``crf``,
``batch_size``, ``workers``, ``device``, ``torch_threads``, ``overwrite``, ``save_scores``), ``score_settings`` (the
:class:`~glmix_viz.pseudo.settings.ScoreSettings` as a dict), ``model``, ``dataset``, ``timing`` (``wall_s``,
``network_s``, ``crf_s``, ``load_s``, ``write_s``, ``io_s``, ``images_per_s``, ``waiting_for_workers_s``,
``worker_startup_s``; worker times summed over workers).
"""

from __future__ import annotations

import contextlib
import datetime as _datetime
import json
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping

__all__ = ["RunSummary"]

TIMERS = ("network_s", "load_s", "crf_s", "write_s", "waiting_for_workers_s", "worker_startup_s")


def _now() -> str:
    return _datetime.datetime.now(_datetime.timezone.utc).isoformat(timespec="seconds")


class RunSummary:
    """Collects what a run did; :meth:`write` saves it atomically (also when the run stops on an exception).

    Args:
        path: the summary file.
        total: ids in this run's shard; ``skipped``: of those, already done; ``todo``: to do (the bar's length).
        info: the rest of the record: ``warnings``, ``settings``, ``score_settings``, ``model``, ``dataset``.
        progress: show a tqdm bar (images/s) on stderr.
    """

    def __init__(self, path: Path, *, total: int, skipped: int, todo: int, info: Mapping[str, Any],
                 progress: bool = True) -> None:
        from tqdm import tqdm

        self.path = Path(path)
        self.data: Dict[str, Any] = {
            "status": "running", "started": _now(),
            "counts": {"total": total, "done": 0, "skipped": skipped, "failed": 0},
            "failures": [], **{key: value for key, value in info.items()},
        }
        self.timing: Dict[str, float] = {name: 0.0 for name in TIMERS}
        self.started = time.perf_counter()
        self.bar = tqdm(total=todo, unit="img", desc="pseudo-label", disable=not progress, file=sys.stderr,
                        dynamic_ncols=True)

    @property
    def failures(self) -> List[Dict[str, str]]:
        return self.data["failures"]

    def done(self, result: Mapping[str, Any]) -> None:
        """Count a worker's result (``ok`` with its ``crf_s`` / ``write_s``, or a failure with its ``reason``)."""
        if not result["ok"]:
            self.fail(result["id"], result["reason"])
            return
        self.data["counts"]["done"] += 1
        self.timing["crf_s"] += result["crf_s"]
        self.timing["write_s"] += result["write_s"]
        self.bar.update(1)

    def fail(self, image_id: str, reason: str) -> None:
        """Report one id as skipped with its reason (the run goes on)."""
        self.failures.append({"id": image_id, "reason": reason})
        self.data["counts"]["failed"] += 1
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

    def finish(self, error: BaseException | None = None) -> None:
        """Set the final status: "ok" / "failed" (some ids failed), or "interrupted" / "aborted" with ``error``."""
        from glmix_viz.errors import one_line

        if error is None:
            self.data["status"] = "failed" if self.failures else "ok"
        else:
            self.data["status"] = "interrupted" if isinstance(error, KeyboardInterrupt) else "aborted"
            self.data["error"] = one_line(error)

    def write(self) -> Dict[str, Any]:
        """Close the bar, add the timing, write the file atomically; returns the summary (with ``summary_path``)."""
        from glmix_viz.files import save_bytes_atomic

        self.bar.close()
        wall = self.since_start()
        self.data["finished"] = _now()
        self.data["timing"] = {
            "wall_s": round(wall, 3),
            **{key: round(value, 3) for key, value in self.timing.items()},
            "io_s": round(self.timing["load_s"] + self.timing["write_s"], 3),
            "images_per_s": round(self.data["counts"]["done"] / wall, 3) if wall > 0 else None,
        }
        save_bytes_atomic(self.path, (json.dumps(self.data, indent=2, default=str) + "\n").encode("utf-8"))
        return {**self.data, "summary_path": str(self.path)}
