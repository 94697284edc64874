"""Run folders as the explorer's run browser sees them: what ran, with which model and settings, how far it got.

A run folder is any folder holding a ``summary*.json`` written by ``pseudo-label`` (``model``, ``dataset``,
``score_settings``) or ``segment`` (``segmenter``, ``root``, ``split``); several shards may share one folder (one
summary each). ``eval.json`` beside it (``glmix-viz evaluate``) holds its scores, per image since
:mod:`glmix_viz.evaluate` writes them.

* :func:`find_runs` - every run folder below a root.
* :func:`read_run` - one folder as a :class:`Run`: its summaries merged, its evaluation, its model file, its progress.
* :func:`open_run_dataset` - the data set the run was made on (any format open_split knows), for its images and ground truth.

Nothing here draws or needs Streamlit; :mod:`glmix_viz.app.runs` shows it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from glmix_viz.data.base import Split
from glmix_viz.data.registry import open_split
from glmix_viz.errors import DataError, one_line
from glmix_viz.evaluate import run_summaries

__all__ = ["EVAL_FILE", "Run", "RunProgress", "find_runs", "open_recorded_dataset", "open_run_dataset", "read_run"]

EVAL_FILE = "eval.json"
SUMMARY_GLOB = "summary*.json"
MAX_DEPTH = 6  # folders searched below the root


@dataclass(frozen=True)
class RunProgress:
    """How complete a run folder is.

    Attributes:
        expected: ids the run (all its shards) set out to do, when its summaries say (else ``None``).
        written: label PNGs in the folder.
        missing_shards: ``"K/N"`` of shards without a summary although another shard of ``N`` wrote one.
        running: summaries whose status is still "running" (a job at work, or one that was killed).
    """

    expected: Optional[int]
    written: int
    missing_shards: Tuple[str, ...]
    running: int

    @property
    def missing(self) -> Optional[int]:
        """Ids still without a PNG (``None`` when the expected number is unknown)."""
        return None if self.expected is None else max(0, self.expected - self.written)

    @property
    def complete(self) -> bool:
        return not self.missing_shards and not self.running and not self.missing

    def describe(self) -> str:
        """One line: what is missing, or that nothing is."""
        if self.complete:
            return f"complete: {self.written} label maps"
        parts = [f"{self.written} of {self.expected if self.expected is not None else '?'} label maps written"]
        if self.missing_shards:
            parts.append(f"no summary yet from shard(s) {', '.join(self.missing_shards)}")
        if self.running:
            parts.append(f"{self.running} job(s) still running or killed")
        return "; ".join(parts)


@dataclass(frozen=True)
class Run:
    """One run folder.

    Attributes:
        path: the folder.
        name: its path relative to the root it was found under (the folder's name when read alone).
        kind: ``"pseudo-label"`` or ``"segment"``.
        summaries: the parsed ``summary*.json`` files (each with ``file``), in file-name order.
        evaluation: ``eval.json``, or ``None`` when there is none (or it cannot be read: see ``problems``).
        progress: :class:`RunProgress`.
        problems: one line per file that could not be read.
    """

    path: Path
    name: str
    kind: str
    summaries: Tuple[Dict[str, Any], ...]
    evaluation: Optional[Dict[str, Any]]
    progress: RunProgress
    problems: Tuple[str, ...] = field(default=())

    @property
    def first(self) -> Dict[str, Any]:
        return self.summaries[0] if self.summaries else {}

    @property
    def model(self) -> Dict[str, Any]:
        """The model as the summary records it (pseudo-label: ``model``; segment: ``segmenter``)."""
        return dict(self.first.get("model") or self.first.get("segmenter") or {})

    @property
    def model_path(self) -> Optional[str]:
        """The checkpoint file the run used (``None``: the bundled demo model or random weights)."""
        return self.model.get("checkpoint") or self.model.get("source")

    def model_file_problem(self) -> Optional[str]:
        """One line when the run's model file is not there any more, else ``None``."""
        path = self.model_path
        if path is None or Path(path).expanduser().is_file():
            return None
        return f"{path}: the run's model file is not there any more (scores and masks still shown)"

    @property
    def settings(self) -> Dict[str, Any]:
        return dict(self.first.get("settings") or {})

    @property
    def score_settings(self) -> Optional[Dict[str, Any]]:
        """The pseudo-label run's :class:`~glmix_viz.pseudo.settings.ScoreSettings` fields (``None`` for segment)."""
        settings = self.first.get("score_settings")
        return dict(settings) if settings else None

    @property
    def data_root(self) -> Optional[str]:
        return (self.first.get("dataset") or {}).get("root") or self.first.get("root")

    @property
    def split(self) -> Optional[str]:
        dataset = self.first.get("dataset") or {}
        return dataset.get("split") or self.first.get("split") or (self.evaluation or {}).get("split")

    @property
    def status(self) -> str:
        """"running" if any summary is, else "failed" / "interrupted" / "aborted" if any is, else "ok"."""
        statuses = [summary.get("status") or "unknown" for summary in self.summaries]
        for status in ("running", "aborted", "interrupted", "failed", "unknown"):
            if status in statuses:
                return status
        return "ok"

    @property
    def per_image(self) -> List[Dict[str, Any]]:
        return list((self.evaluation or {}).get("per_image") or [])

    def evaluation_is_stale(self) -> bool:
        """Whether ``eval.json`` is older than a summary (the run went on after it was evaluated)."""
        evaluation = self.path / EVAL_FILE
        if self.evaluation is None or not evaluation.is_file():
            return False
        newest = max((self.path / summary["file"]).stat().st_mtime for summary in self.summaries)
        return evaluation.stat().st_mtime < newest


def find_runs(root: Union[str, os.PathLike], *, max_depth: int = MAX_DEPTH) -> List[Path]:
    """Every folder at or below ``root`` (at most ``max_depth`` levels; hidden folders skipped) holding a
    ``summary*.json``, sorted by path.

    Raises:
        DataError: ``root`` is not a folder.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: runs folder does not exist")
    found = []
    for folder, subfolders, files in os.walk(root):
        depth = len(Path(folder).relative_to(root).parts)
        subfolders[:] = sorted(name for name in subfolders if not name.startswith(".")) if depth < max_depth else []
        if any(name.startswith("summary") and name.endswith(".json") for name in files):
            found.append(Path(folder))
    return sorted(found)


def _read_json(path: Path, problems: List[str]) -> Optional[Dict[str, Any]]:
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return data
    except (OSError, ValueError) as error:
        problems.append(f"{path}: cannot read ({one_line(error)})")
        return None


def _expected_ids(summaries: List[Mapping[str, Any]], shards_missing: bool) -> Optional[int]:
    """Ids the whole run set out to do: the split's size (pseudo-label records it), else the sum of the shards'
    totals when no shard is missing, else unknown."""
    for summary in summaries:
        in_split = (summary.get("dataset") or {}).get("num_ids_in_split")
        if in_split is not None:
            return int(in_split)
    totals = [(summary.get("counts") or {}).get("total") for summary in summaries]
    if shards_missing or not totals or any(total is None for total in totals):
        return None
    return int(sum(totals))


def read_run(folder: Union[str, os.PathLike], root: Optional[Union[str, os.PathLike]] = None) -> Run:
    """One run folder (see :class:`Run`); unreadable files are listed in ``problems``, never raised.

    Args:
        folder: the run folder.
        root: the folder it was found under (names the run by its relative path).
    """
    folder = Path(folder).expanduser()
    problems: List[str] = []
    summaries = []
    for path in sorted(folder.glob(SUMMARY_GLOB)):
        data = _read_json(path, problems)
        if data is not None:
            summaries.append({**data, "file": path.name})
    evaluation = _read_json(folder / EVAL_FILE, problems) if (folder / EVAL_FILE).is_file() else None
    shards = tuple(run_summaries(folder)["missing_shards"])
    progress = RunProgress(
        expected=_expected_ids(summaries, bool(shards)),
        written=sum(1 for _ in folder.glob("*.png")),
        missing_shards=shards,
        running=sum(1 for summary in summaries if summary.get("status") == "running"),
    )
    kind = "segment" if any("segmenter" in summary for summary in summaries) else "pseudo-label"
    name = str(folder.relative_to(root)) if root is not None and folder != Path(root) else folder.name
    return Run(path=folder, name=name or folder.name, kind=kind, summaries=tuple(summaries), evaluation=evaluation,
               progress=progress, problems=tuple(problems))


def open_recorded_dataset(data_root: Union[str, os.PathLike], split: str) -> Split:
    """The data set a summary records (root and split), in whatever format :func:`~glmix_viz.data.registry.open_split`
    recognises.

    Raises:
        DataError: the folder is not there (e.g. the run was copied from another machine) or is not a data set.
    """
    if not Path(data_root).expanduser().is_dir():
        raise DataError(f"{data_root}: the run's data set is not there (images and ground truth unavailable)")
    return open_split(data_root, split)


def open_run_dataset(run: Run) -> Split:
    """The data set a run was made on (:func:`open_recorded_dataset` of its summary's root and split).

    Raises:
        DataError: the summary names no data set, or it is not there.
    """
    if not run.data_root or not run.split:
        raise DataError(f"{run.path}: the run's summary names no data set")
    return open_recorded_dataset(run.data_root, run.split)
