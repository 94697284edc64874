"""Mutation testing with mutmut: how many one-line faults in a module its tests catch.

    scripts/mutation.sh                       # every module below (long: run it by hand, never in CI)
    scripts/mutation.sh runs compare          # some of them
    python scripts/mutation.py --report-only  # rewrite the table in docs/testing.md from docs/mutation.json

Each module is mutated in a copy of the repository of its own (``$TMPDIR/glmix_mutation/NAME``), with its own fast
test selection, by ``mutmut run`` (mutmut 3 runs, for each mutant, only the selected tests that reach the mutated
function). Its counts (killed, survived, no tests, timeout ...) and the names of the surviving mutants go to
``docs/mutation.json``; the score table in ``docs/testing.md`` (between the ``mutation-table`` markers) is written from
that file. ``mutmut show NAME`` in the module's copy shows a survivor's diff.

A module's score is killed / checked (timeouts count as killed; a mutant that no selected test reaches counts as
checked and not killed); ``--minutes`` stops a module's run and reports the mutants checked so far.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Sequence

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "mutation.json"
DOC = ROOT / "docs" / "testing.md"
BEGIN, END = "<!-- mutation-table: begin -->", "<!-- mutation-table: end -->"
GOAL = 0.85

# name -> what is mutated (mutmut's only_mutate globs) and the fast tests that guard it
MODULES: Dict[str, Dict[str, List[str]]] = {
    "scoring": {
        "mutate": ["glmix_viz/scoring/*"],
        "tests": ["tests/scoring"],
        # the explorer's side of this check runs the app (slow): the evaluate side stays covered by the others
        "deselect": ["tests/scoring/test_scoring_faults.py::test_the_explorer_and_evaluate_compare_give_the_same_interval"],
    },
    "links": {
        "mutate": ["glmix_viz/app/links.py"],
        "tests": [
            "tests/test_app_links.py::test_a_state_goes_to_the_query_and_back",
            "tests/test_app_links.py::test_odd_values_are_dropped_with_a_reason_and_unknown_parameters_ignored",
            "tests/test_app_links.py::test_a_subclass_adds_fields_without_code",
            "tests/test_app_links.py::test_files_resolve_only_inside_the_app_folders",
            "tests/test_app_links.py::test_the_upload_store_names_files_by_digest",
            "tests/test_app_links_refusals.py",
        ],
    },
    "runs": {
        "mutate": ["glmix_viz/runs.py"],
        "tests": ["tests/test_runs_stale.py", "tests/test_runs.py"],
    },
    "atlas_concepts": {
        "mutate": ["glmix_viz/atlas/concepts.py"],
        "tests": ["tests/test_atlas_concepts.py", "tests/test_atlas.py::test_purity_of_a_hand_made_table"],
    },
    "compare": {
        "mutate": ["glmix_viz/slots/compare.py"],
        "tests": ["tests/test_slots_compare.py", "tests/test_compare.py"],
    },
}
COPIED = ("glmix_viz", "tests", "pyproject.toml", "app")


def _toml_list(values: Sequence[str]) -> str:
    return "[" + ", ".join(json.dumps(value) for value in values) + "]"


def prepare(name: str, work: Path) -> Path:
    """A fresh copy of the repository for ``name``, its pyproject holding the module's mutmut settings."""
    folder = work / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for item in COPIED:
        source = ROOT / item
        if source.is_dir():
            shutil.copytree(source, folder / item, ignore=shutil.ignore_patterns("__pycache__", "results", "*.png"))
        elif source.is_file():
            shutil.copy2(source, folder / item)
    spec = MODULES[name]
    settings = "\n".join([
        "", "[tool.mutmut]",
        'source_paths = ["glmix_viz"]',
        f"only_mutate = {_toml_list(spec['mutate'])}",
        f"pytest_add_cli_args_test_selection = {_toml_list(spec['tests'])}",
        "pytest_add_cli_args = " + _toml_list(["-q", "-p", "no:cacheprovider",
                                              *(f"--deselect={test}" for test in spec.get("deselect", []))]),
        "timeout_multiplier = 15.0",  # mutmut's default: on a loaded machine a tighter limit times out sound mutants
        "timeout_constant = 5.0",
        "use_git_change_detection = false",
        "",
    ])
    with open(folder / "pyproject.toml", "a", encoding="utf-8") as stream:
        stream.write(settings)
    return folder


def _mutmut(folder: Path, *arguments: str, log, minutes: float = 0) -> int:
    """Run ``mutmut ARGUMENTS`` in ``folder`` (the copy's own glmix_viz: no PYTHONPATH); stopped (its process group,
    which it started) after ``minutes`` when that is > 0. Returns its exit code (-1: stopped)."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "CI")}
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("MKL_NUM_THREADS", "1")
    process = subprocess.Popen([sys.executable, "-m", "mutmut", *arguments], cwd=folder, env=env, stdout=log,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        return process.wait(timeout=minutes * 60 if minutes > 0 else None)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        return -1


def survivors(folder: Path) -> List[str]:
    """The names of the mutants that survived (mutmut results lists the ones not killed)."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-m", "mutmut", "results"], cwd=folder, env=env, capture_output=True,
                            text=True)
    names = []
    for line in result.stdout.splitlines():
        if ":" in line and "survived" in line:
            names.append(line.split(":")[0].strip())
    return names


def run_module(name: str, work: Path, max_children: int, minutes: float) -> Dict[str, object]:
    folder = prepare(name, work)
    start = time.time()
    with open(folder / "mutmut.log", "w", encoding="utf-8") as log:
        code = _mutmut(folder, "run", "--max-children", str(max_children), log=log, minutes=minutes)
        _mutmut(folder, "export-cicd-stats", log=log)
    stats_path = folder / "mutants" / "mutmut-cicd-stats.json"
    entry: Dict[str, object] = {"mutated": MODULES[name]["mutate"], "tests": MODULES[name]["tests"],
                                "seconds": round(time.time() - start, 1), "exit_code": code,
                                "stopped_after_minutes": minutes if code == -1 else None, "work": str(folder)}
    if not stats_path.is_file():
        entry["error"] = (f"stopped after {minutes} min before any mutant was checked" if code == -1 else
                          f"mutmut wrote no stats (exit {code}); see {folder / 'mutmut.log'}")
        return entry
    stats = json.loads(stats_path.read_text())
    checked = sum(int(stats.get(key, 0)) for key in ("killed", "survived", "timeout", "suspicious", "no_tests",
                                                        "segfault"))
    killed = int(stats.get("killed", 0)) + int(stats.get("timeout", 0))
    entry.update(stats=stats, killed=killed, tested=checked, total=int(stats.get("total", 0)),
                 score=round(killed / checked, 4) if checked else None, survivors=survivors(folder))
    return entry


def table(results: Dict[str, object]) -> str:
    """The markdown table of docs/testing.md."""
    lines = [f"Run of {results['date']} (`{results['command']}`, mutmut {results['mutmut']}; goal: "
             f"{GOAL:.0%} killed per module).", "",
             "| module | mutated | killed / checked | score | survived | no tests | timeouts (in killed) | checked of all "
             "mutants | minutes |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, entry in results["modules"].items():
        if "error" in entry:
            lines.append(f"| {name} | {', '.join(entry['mutated'])} | not finished: {entry['error']} | | | | | | |")
            continue
        stats = entry["stats"]
        score = "n/a" if entry["score"] is None else f"{entry['score']:.1%}"
        lines.append(f"| {name} | `{'`, `'.join(entry['mutated'])}` | {entry['killed']} / {entry['tested']} | "
                     f"{score} | {stats.get('survived', 0)} | {stats.get('no_tests', 0)} | {stats.get('timeout', 0)} | "
                     f"{entry['tested']} of {entry['total']}{' (stopped)' if entry.get('stopped_after_minutes') else ''}"
                     f" | {entry['seconds'] / 60:.1f} |")
    return "\n".join(lines)


def write_doc(results: Dict[str, object]) -> None:
    text = DOC.read_text(encoding="utf-8")
    block = f"{BEGIN}\n{table(results)}\n{END}"
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(text, encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help=f"modules to mutate: {', '.join(MODULES)} (default: all)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "glmix_mutation",
                        help="where the copies go (default: $TMPDIR/glmix_mutation)")
    parser.add_argument("--max-children", type=int, default=2, help="mutants tested at once (default 2)")
    parser.add_argument("--minutes", type=float, default=0,
                        help="stop each module's run after this long and report the mutants checked (default: none)")
    parser.add_argument("--report-only", action="store_true", help="only rewrite docs/testing.md from the JSON")
    args = parser.parse_args(argv)
    unknown = [name for name in args.modules if name not in MODULES]
    if unknown:
        parser.error(f"no module {', '.join(unknown)}; choose from {', '.join(MODULES)}")
    if args.report_only:
        write_doc(json.loads(RESULTS.read_text()))
        return 0
    from importlib.metadata import version

    previous = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"modules": {}}
    results = {"command": " ".join(["scripts/mutation.sh", *(argv if argv is not None else sys.argv[1:])]),
               "date": datetime.date.today().isoformat(), "mutmut": version("mutmut"), "contended": True,
               "modules": dict(previous.get("modules", {}))}
    for name in args.modules or list(MODULES):
        print(f"mutation: {name} ...", flush=True)
        entry = run_module(name, args.work, args.max_children, args.minutes)
        results["modules"][name] = entry
        shown = entry.get("error") or f"{entry['killed']} / {entry['tested']} checked killed of {entry['total']}"
        print(f"mutation: {name}: {shown}", flush=True)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")  # after every module: a stopped run keeps its part
        write_doc(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
