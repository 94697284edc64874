"""A run's evaluation is reported stale exactly when a summary of the run is newer than its ``eval.json`` (the run went
on after it was scored), whichever of several shard summaries that is."""

from __future__ import annotations

import json
import os

from glmix_viz.runs import read_run


def _write(path, data, mtime):
    path.write_text(json.dumps(data))
    os.utime(path, (mtime, mtime))


def _summary(shard=None):
    return {"status": "ok", "counts": {"total": 2, "done": 2, "failed": 0, "skipped": 0},
            "dataset": {"split": "val", "shard": shard}}


def test_evaluated_after_the_run_is_fresh_and_before_it_is_stale(tmp_path):
    _write(tmp_path / "summary.json", _summary(), 1_000_000)
    _write(tmp_path / "eval.json", {"miou": 0.5, "per_image": []}, 1_000_100)
    assert not read_run(tmp_path).evaluation_is_stale()
    os.utime(tmp_path / "summary.json", (1_000_200, 1_000_200))  # the run wrote again after the evaluation
    assert read_run(tmp_path).evaluation_is_stale()


def test_one_shard_newer_than_the_evaluation_makes_it_stale(tmp_path):
    _write(tmp_path / "summary.shard-1-of-2.json", _summary("1/2"), 1_000_000)
    _write(tmp_path / "eval.json", {"miou": 0.5, "per_image": []}, 1_000_100)
    _write(tmp_path / "summary.shard-2-of-2.json", _summary("2/2"), 1_000_200)
    assert read_run(tmp_path).evaluation_is_stale()
    os.utime(tmp_path / "eval.json", (1_000_300, 1_000_300))
    assert not read_run(tmp_path).evaluation_is_stale()


def test_a_run_without_evaluation_is_not_stale(tmp_path):
    _write(tmp_path / "summary.json", _summary(), 1_000_000)
    assert not read_run(tmp_path).evaluation_is_stale()


def test_progress_names_every_missing_shard_and_the_running_jobs():
    from glmix_viz.runs import RunProgress

    progress = RunProgress(expected=10, written=4, missing_shards=("2/3", "3/3"), running=1)
    assert progress.missing == 6 and not progress.complete
    assert progress.describe() == ("4 of 10 label maps written; no summary yet from shard(s) 2/3, 3/3; "
                                   "1 job(s) still running or killed")
    assert RunProgress(expected=None, written=4, missing_shards=(), running=0).describe().startswith("complete")


def test_only_folders_with_a_summary_are_runs(tmp_path):
    from glmix_viz.runs import find_runs

    for name, files in {"run": ["summary.json"], "shard": ["summary.shard-1-of-2.json"],
                        "scored_only": ["eval.json"], "notes": ["summary.txt"]}.items():
        (tmp_path / name).mkdir()
        for file in files:
            (tmp_path / name / file).write_text("{}")
    assert [path.name for path in find_runs(tmp_path)] == ["run", "shard"]


def test_a_missing_data_set_is_one_line_naming_its_folder(tmp_path):
    import pytest

    from glmix_viz.errors import DataError
    from glmix_viz.runs import open_recorded_dataset

    with pytest.raises(DataError, match=f"^{tmp_path / 'gone'}: the run's data set is not there"):
        open_recorded_dataset(tmp_path / "gone", "val")
