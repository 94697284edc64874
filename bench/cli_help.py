"""How fast the command line answers ``--help``, side by side with importing torch and timm.

``glmix-viz --help`` once took seconds because building the parser imported torch and timm; command modules now import
the library inside ``run()``. This times, alternating in one run so that both see the same machine load, fresh
interpreters doing:

* ``python -m glmix_viz --help`` (what the ``glmix-viz`` script runs),
* ``python -m glmix_viz pseudo-label --help`` (the command with the longest help),
* ``python -c "import torch, timm"`` (the reference: what ``--help`` used to pay at least),

and writes the medians and the ratio help / reference (goal: under 0.25) to ``bench/results/cli_help.json``.

Usage::

    python bench/cli_help.py                # 7 runs of each, after one warm-up each
    python bench/cli_help.py --smoke --out /tmp/cli_help.json   # 1 run each, no warm-up (seconds)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.make_docs import check_results, command_line, smoke_folder  # noqa: E402

DEFAULT_OUT = ROOT / "bench" / "results" / "cli_help.json"
GOAL = 0.25
HELPS = {
    "glmix-viz --help": ["-m", "glmix_viz", "--help"],
    "glmix-viz pseudo-label --help": ["-m", "glmix_viz", "pseudo-label", "--help"],
}
REFERENCE = ("import torch, timm", ["-c", "import torch, timm"])
SMOKE_REFERENCE = ("python -c pass (smoke: no torch import)", ["-c", "pass"])


def time_once(arguments: List[str]) -> float:
    """Wall seconds of one fresh interpreter running ``arguments`` (it must exit 0)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    start = time.perf_counter()
    subprocess.run([sys.executable, *arguments], check=True, stdout=subprocess.DEVNULL, env=env, cwd=ROOT)
    return time.perf_counter() - start


def measure(cases: Dict[str, List[str]], runs: int, warmup: bool) -> Dict[str, List[float]]:
    """Seconds of every case, ``runs`` times, the cases alternating (after one untimed warm-up round)."""
    if warmup:
        for arguments in cases.values():
            time_once(arguments)
    times: Dict[str, List[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, arguments in cases.items():
            times[name].append(time_once(arguments))
    return times


def table(result: Dict) -> str:
    """Medians and ratios to the reference (the docs' table)."""
    lines = [f"{result['runs']} run(s) of each, alternating; reference: `{result['reference']}`; load "
             f"{result['machine']['load_1min']:.1f} (contended: compare the ratios, not the seconds)", "",
             "| command | median s | vs the reference |", "| --- | --- | --- |"]
    for name, value in result["median_s"].items():
        ratio = result["ratio_to_reference"].get(name)
        lines.append(f"| `{name}` | {value:.3f} | {'' if ratio is None else f'{ratio:.3f}'} |")
    if result["goal_met"] is not None:
        lines += ["", f"Goal: every --help under {result['goal_ratio']} of the reference: "
                      f"{'met' if result['goal_met'] else 'NOT met'}."]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's arguments (the docs generator re-parses recorded commands with it)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs of each case (default 7)")
    parser.add_argument("--out", type=Path, default=None,
                        help="results JSON (default bench/results/cli_help.json; --smoke: a temporary folder)")
    parser.add_argument("--smoke", action="store_true",
                        help="one run of each, no warm-up, and `python -c pass` as the reference (a check that it "
                             "works, in seconds; its ratio means nothing)")
    return parser


def main(argv: List[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.out is None:
        args.out = smoke_folder(__file__) / "cli_help.json" if args.smoke else DEFAULT_OUT
    runs = 1 if args.smoke else args.runs
    reference_name, reference_arguments = SMOKE_REFERENCE if args.smoke else REFERENCE
    times = measure({**HELPS, reference_name: reference_arguments}, runs, warmup=not args.smoke)
    medians = {name: statistics.median(values) for name, values in times.items()}
    ratios = {name: medians[name] / medians[reference_name] for name in HELPS}
    result = {
        "command": command_line(__file__, argv),
        "smoke": args.smoke,
        "runs": runs,
        "contended": True,  # a shared machine: compare the ratios (measured side by side), not the seconds
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "load_1min": os.getloadavg()[0]},
        "reference": reference_name,
        "median_s": {name: round(value, 4) for name, value in medians.items()},
        "runs_s": {name: [round(value, 4) for value in values] for name, values in times.items()},
        "ratio_to_reference": {name: round(value, 4) for name, value in ratios.items()},
        "goal_ratio": GOAL,
        "goal_met": None if args.smoke else all(value < GOAL for value in ratios.values()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(args.out)
    for name, value in medians.items():
        ratio = f"  ({ratios[name]:.3f} of the reference)" if name in ratios else ""
        print(f"{name:<32} median {value:.3f} s{ratio}")
    print(f"written to {args.out}")
    if args.smoke:
        check_results(__file__, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
