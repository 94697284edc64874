"""The batch-job plan (shard, todo, stale temporaries) and the run summary, without any job around them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from glmix_viz.runtime.distributed import shard_ids
from glmix_viz.runtime.jobs import RunSummary, plan_job, remove_stale_temporaries, summary_name

IDS = [f"img_{index:03d}" for index in range(12)]


def _plan(out: Path, **kwargs):
    return plan_job(IDS, out, is_done=lambda image_id: (out / f"{image_id}.png").is_file(),
                    outputs=[(out, ".png"), (out / "scores", ".npz")], **kwargs)


def test_summary_names():
    assert summary_name(None) == "summary.json"
    assert summary_name("2/3") == summary_name((2, 3)) == "summary.shard-2-of-3.json"
    with pytest.raises(ValueError, match="1-based"):
        summary_name("0/3")


def test_plan_skips_done_ids_of_its_shard_and_redoes_them_with_overwrite(tmp_path):
    out = tmp_path / "new" / "folder"
    first = _plan(out, shard="1/2")
    mine = shard_ids(IDS, "1/2")
    assert out.is_dir() and first.all_ids == IDS and first.my_ids == first.todo == mine and first.skipped == 0
    assert first.shard == "1/2" and first.summary_path == out / "summary.shard-1-of-2.json"
    (out / f"{mine[0]}.png").write_bytes(b"done")
    (out / f"{shard_ids(IDS, '2/2')[0]}.png").write_bytes(b"another shard's")
    again = _plan(out, shard=(1, 2))
    assert again.todo == mine[1:] and again.skipped == 1
    assert _plan(out, shard="1/2", overwrite=True).todo == mine
    whole = _plan(out)
    assert whole.shard is None and whole.summary_path == out / "summary.json" and len(whole.todo) == len(IDS) - 2


def test_plan_clears_only_its_own_ids_stale_temporaries(tmp_path):
    mine, theirs = shard_ids(IDS, "1/2"), shard_ids(IDS, "2/2")
    (tmp_path / "scores").mkdir()
    stale = [tmp_path / f".{mine[0]}.png.3fa2c1.tmp", tmp_path / "scores" / f".{mine[1]}.npz.00aa11.tmp"]
    kept = [tmp_path / f".{theirs[0]}.png.3fa2c1.tmp",  # another shard's run may still be writing it
            tmp_path / f".{mine[0]}.npz.3fa2c1.tmp",  # not an output of this folder
            tmp_path / f"{mine[2]}.png"]  # a finished output
    for path in stale + kept:
        path.write_bytes(b"x")
    plan = _plan(tmp_path, shard="1/2")
    assert plan.stale_removed == 2 and not any(path.exists() for path in stale) and all(p.exists() for p in kept)
    assert remove_stale_temporaries([(tmp_path / "absent", ".png")], mine) == 0


def test_summary_counts_times_and_writes_one_json(tmp_path, capsys):
    path = tmp_path / "summary.json"
    summary = RunSummary(path, total=5, skipped=1, todo=4, info={"settings": {"a": 1}}, timers=("load_s", "write_s"),
                         sums={"io_s": ("load_s", "write_s")}, progress=False)
    summary.done({"ok": True, "id": "a", "load_s": 0.25, "write_s": 0.5})
    summary.done()
    summary.done({"ok": False, "id": "c", "reason": "unreadable"})
    summary.fail("d", "no labels")
    summary.finish()
    written = summary.write()
    on_disk = json.loads(path.read_text())
    assert written["summary_path"] == str(path) and {k: v for k, v in written.items() if k != "summary_path"} == on_disk
    assert on_disk["status"] == "failed" and on_disk["counts"] == {"total": 5, "done": 2, "skipped": 1, "failed": 2}
    assert on_disk["failures"] == [{"id": "c", "reason": "unreadable"}, {"id": "d", "reason": "no labels"}]
    assert list(on_disk) == ["status", "started", "counts", "failures", "settings", "finished", "timing"]
    timing = on_disk["timing"]
    assert (timing["load_s"], timing["write_s"], timing["io_s"]) == (0.25, 0.5, 0.75)
    assert list(timing) == ["wall_s", "load_s", "write_s", "io_s", "images_per_s"]
    assert "skipped c: unreadable" in capsys.readouterr().err
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically


@pytest.mark.parametrize("error, status", [(KeyboardInterrupt(), "interrupted"),
                                           (RuntimeError("disk\nfull"), "aborted")])
def test_a_run_that_stops_still_writes_its_summary(tmp_path, error, status):
    summary = RunSummary(tmp_path / "s.json", total=3, skipped=0, todo=3, info={}, progress=False)
    with pytest.raises(type(error)):
        with summary.running():
            summary.done()
            raise error
    on_disk = json.loads((tmp_path / "s.json").read_text())
    assert on_disk["status"] == status and on_disk["counts"]["done"] == 1 and "\n" not in on_disk["error"]
    clean = RunSummary(tmp_path / "ok.json", total=1, skipped=0, todo=1, info={}, progress=False)
    with clean.running():
        clean.done()
    assert json.loads((tmp_path / "ok.json").read_text())["status"] == "ok"
