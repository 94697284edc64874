"""docs/results.md is what scripts/make_docs.py makes from the results JSON files, and stale commands are refused."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import make_docs  # noqa: E402

NUMBER = re.compile(r"[-+]?\d+\.\d+")


def _copy_results(tmp_path: Path) -> Path:
    for folder in ("bench/results", "experiments/results"):
        (tmp_path / folder).mkdir(parents=True)
        for path in (ROOT / folder).glob("*.json"):
            shutil.copy(path, tmp_path / folder / path.name)
    return tmp_path


def _first_difference(expected: str, actual: str) -> str:
    for number, (want, got) in enumerate(zip(expected.splitlines(), actual.splitlines()), 1):
        if want != got:
            return f"line {number}: the JSON gives\n  {want}\nbut the doc says\n  {got}"
    return "the docs differ in length"


def test_every_number_in_the_docs_is_its_json():
    docs = make_docs.generate()
    assert "docs/results.md" in docs
    for relative, text in docs.items():
        on_disk = (ROOT / relative).read_text()
        assert on_disk == text, (f"{relative} differs from its results files (rerun python scripts/make_docs.py): "
                                 + _first_difference(text, on_disk))


def test_the_docs_carry_the_headline_numbers_of_the_json():
    """Independent of the generator's formatting code: the segmenter mIoUs of each wsss_segment file, rounded by
    hand, appear in its section next to the command that made it."""
    text = (ROOT / "docs/results.md").read_text()
    for path in sorted((ROOT / "bench/results").glob("wsss_segment*.json")):
        data = json.loads(path.read_text())
        start = text.index(f"`bench/results/{path.name}`")
        section = text[start:text.index("\n### ", start + 1) if "\n### " in text[start + 1:] else len(text)]
        assert data["command"] in section
        for source, entry in data["segmenters"].items():
            assert f"**{round(entry['miou'], 1):.1f}**" in section, (path.name, source)


def test_a_changed_number_changes_the_generated_docs(tmp_path):
    root = _copy_results(tmp_path)
    path = root / "bench/results/wsss_segment_3004.json"
    data = json.loads(path.read_text())
    data["segmenters"]["slot_pool"]["miou"] = 12.345
    path.write_text(json.dumps(data))
    generated = make_docs.generate(root)["docs/results.md"]
    on_disk = (ROOT / "docs/results.md").read_text()
    assert generated != on_disk
    changed = [line for line in generated.splitlines() if line not in on_disk.splitlines()]
    assert any("**12.3**" in line for line in changed), changed


def test_a_renamed_flag_is_refused_with_one_line_and_exit_2(tmp_path):
    root = _copy_results(tmp_path)
    path = root / "bench/results/wsss_segment_3004.json"
    data = json.loads(path.read_text())
    assert "--sources" in data["command"]
    data["command"] = data["command"].replace("--sources", "--label-sources")  # as if the flag had been renamed
    path.write_text(json.dumps(data))
    with pytest.raises(make_docs.StaleResults, match=r"wsss_segment_3004.json: its command no longer parses.*"
                                                     r"--label-sources"):
        make_docs.generate(root)
    result = subprocess.run([sys.executable, str(ROOT / "scripts/make_docs.py"), "--root", str(root)],
                            capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "wsss_segment_3004.json" in lines[0] and "no longer parses" in lines[0], result.stderr
    assert not (root / "docs").exists()


def test_results_without_a_command_or_a_spec_are_refused(tmp_path):
    root = _copy_results(tmp_path)
    path = root / "experiments/results/atlas_shapes.json"
    data = json.loads(path.read_text())
    del data["command"]
    path.write_text(json.dumps(data))
    with pytest.raises(make_docs.StaleResults, match="atlas_shapes.json: no 'command' recorded"):
        make_docs.generate(root)
    path.unlink()
    (root / "bench/results/mystery.json").write_text(json.dumps({"command": "python bench/backbone.py"}))
    with pytest.raises(make_docs.StaleResults, match="mystery.json: no table spec"):
        make_docs.generate(root)


def test_missing_fields_expands_wildcards():
    data = {"command": "x", "a": {"p": {"miou": 1}, "q": {"iou": 2}}, "rows": [{"s": 1}]}
    assert make_docs.missing_fields(data, ["a.*.miou", "rows.0.s", "rows.0.t", "b"]) == ["a.q.miou", "rows.0.t", "b"]
    assert make_docs.missing_fields({}, []) == ["command"]


def test_split_command_finds_the_script():
    assert make_docs.split_command("python3.11 bench/wsss_shapes.py --quick --out 'a b'") == (
        "bench/wsss_shapes.py", ["--quick", "--out", "a b"])
