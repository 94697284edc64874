"""glmix_viz.runs: run folders found, read and opened as the run browser sees them (real pseudo-label runs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from glmix_viz.data.voc import VOCDataset
from glmix_viz.errors import DataError
from glmix_viz.runs import find_runs, open_run_dataset, read_run


def test_find_runs_lists_every_folder_with_a_summary_and_skips_hidden_ones(run_tree, tmp_path):
    assert find_runs(run_tree["runs"]) == sorted(run_tree[name] for name in ("cam", "gone", "sharded", "slot_pool"))
    (tmp_path / ".cache" / "old").mkdir(parents=True)
    (tmp_path / ".cache" / "old" / "summary.json").write_text("{}")
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "summary.shard-1-of-2.json").write_text("{}")
    assert find_runs(tmp_path) == [tmp_path / "a" / "b"]
    assert find_runs(tmp_path, max_depth=1) == []
    with pytest.raises(DataError, match="runs folder does not exist"):
        find_runs(tmp_path / "nowhere")


def test_a_complete_run_reads_its_model_settings_scores_and_data_set(run_tree):
    run = read_run(run_tree["slot_pool"], run_tree["runs"])
    assert run.name == "slot_pool" and run.kind == "pseudo-label" and run.status == "ok"
    assert run.model_path == str(run_tree["model"]) and run.model_file_problem() is None
    assert run.model["variant"] == "glnet_tiny" and run.score_settings["method"] == "slot_pool"
    assert run.progress.complete and run.progress.written == 6 and run.progress.expected == 6
    assert run.progress.describe() == "complete: 6 label maps"
    assert len(run.per_image) == 6 and run.evaluation["miou"] == pytest.approx(
        json.loads((run_tree["slot_pool"] / "eval.json").read_text())["miou"])
    assert not run.evaluation_is_stale()
    dataset = open_run_dataset(run)
    assert isinstance(dataset, VOCDataset) and dataset.ids == [row["id"] for row in run.per_image]


def test_a_run_whose_model_file_is_gone_says_so_in_one_line(run_tree):
    run = read_run(run_tree["gone"], run_tree["runs"])
    problem = run.model_file_problem()
    assert problem.startswith(str(Path(run.model_path))) and "not there any more" in problem
    assert "\n" not in problem and len(run.per_image) == 6


def test_a_run_with_a_missing_shard_says_how_much_is_missing(run_tree):
    run = read_run(run_tree["sharded"], run_tree["runs"])
    assert run.name == str(Path("nested") / "sharded") and run.evaluation is None
    progress = run.progress
    written = len(list(run_tree["sharded"].glob("*.png")))
    assert 0 < written < 6 and progress.missing_shards == ("2/2",) and not progress.complete
    assert progress.expected == 6 and progress.missing == 6 - written
    assert progress.describe() == f"{written} of 6 label maps written; no summary yet from shard(s) 2/2"


def test_unreadable_files_are_problems_not_errors(tmp_path):
    (tmp_path / "summary.json").write_text("{broken")
    (tmp_path / "eval.json").write_text("[]")
    run = read_run(tmp_path)
    assert run.summaries == () and run.evaluation is None and len(run.problems) == 2
    assert all(str(tmp_path) in problem for problem in run.problems)
    with pytest.raises(DataError, match="names no data set"):
        open_run_dataset(run)


def test_a_segment_run_reads_its_segmenter_and_data_set_from_its_own_summary_schema(run_tree, tmp_path):
    """``segment`` writes ``segmenter``, ``root``, ``split`` and the shard in ``settings`` (two shards of three)."""
    for index in (1, 3):
        (tmp_path / f"summary.shard-{index}-of-3.json").write_text(json.dumps({
            "status": "running" if index == 3 else "ok", "split": "val", "root": str(run_tree["data"]),
            "segmenter": {"source": str(tmp_path / "seg.safetensors"), "backbone": "glnet_tiny", "decoder": "fpn"},
            "settings": {"scales": [1.0], "flip": False, "shard": f"{index}/3"},
            "counts": {"total": 2, "done": 2, "skipped": 0, "failed": 0}}))
    run = read_run(tmp_path)
    assert run.kind == "segment" and run.status == "running" and run.score_settings is None
    assert run.model["decoder"] == "fpn" and run.model_path == str(tmp_path / "seg.safetensors")
    assert run.model_file_problem().endswith("not there any more (scores and masks still shown)")
    assert run.progress.missing_shards == ("2/3",) and run.progress.expected is None and run.progress.running == 1
    assert run.progress.describe() == ("0 of ? label maps written; no summary yet from shard(s) 2/3; "
                                       "1 job(s) still running or killed")
    assert open_run_dataset(run).ids == VOCDataset(run_tree["data"], "val").ids
