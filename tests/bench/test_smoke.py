"""Every script in bench/ and experiments/ runs end to end with ``--smoke`` (seconds), and what it writes is what the
docs generator reads.

The scripts are found by glob, so a new script without ``--smoke`` fails here (argparse refuses the flag: exit 2).
Each runs in its own process (two at a time, started together by one fixture) with PYTHONPATH at this checkout and
TMPDIR in its own temporary folder; a smoke run must leave the committed results alone and check its own JSON
(``scripts/make_docs.check_results`` prints "smoke check: ... has the N fields the docs generator reads").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(path.relative_to(ROOT).as_posix() for folder in ("bench", "experiments")
                 for path in (ROOT / folder).glob("*.py") if not path.name.startswith("_"))
WATCHED = ("bench/results", "experiments/results", "glmix_viz/assets")


def _changed() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--", *WATCHED], cwd=ROOT, capture_output=True,
                          text=True).stdout


def test_the_glob_finds_the_scripts():
    assert {"bench/wsss_segment.py", "bench/backbone.py", "experiments/train_demo.py"} <= set(SCRIPTS)


def _run(script: str, folder: Path) -> subprocess.CompletedProcess:
    folder.mkdir(parents=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TMPDIR=str(folder),
               MPLBACKEND="Agg")
    return subprocess.run([sys.executable, script, "--smoke"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)


@pytest.fixture(scope="module")
def smoke_runs(request, tmp_path_factory):
    """The ``--smoke`` run of every selected script (two processes at a time; ``-k NAME`` runs only those), its
    temporary folder, and what changed in the repo."""
    selected = [item.callspec.params["script"] for item in request.session.items
                if getattr(item, "callspec", None) is not None and "script" in item.callspec.params]
    scripts = [script for script in SCRIPTS if script in selected]
    base = tmp_path_factory.mktemp("smoke")
    before = _changed()
    folders = {script: base / script.replace("/", "_") for script in scripts}
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip(scripts, pool.map(lambda script: _run(script, folders[script]), scripts)))
    return {script: (results[script], folders[script]) for script in scripts}, before, _changed()


@pytest.mark.parametrize("script", SCRIPTS)
def test_smoke(script, smoke_runs):
    runs, before, after = smoke_runs
    result, folder = runs[script]
    shown = f"{script} --smoke (exit {result.returncode}):\n{result.stdout[-1500:]}\n{result.stderr[-3000:]}"
    assert result.returncode == 0, shown
    assert "smoke check: " in result.stdout and " fields the docs generator reads" in result.stdout, shown
    commands = []
    for path in folder.rglob("*.json"):
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(data, dict) and isinstance(data.get("command"), str):
            commands.append(data["command"])
    assert any(command.startswith(f"python {script} ") and "--smoke" in command for command in commands), (
        f"{script}: no JSON with its --smoke command under {folder}: {commands}")
    assert after == before, f"a --smoke run wrote into {WATCHED}: {after}"
