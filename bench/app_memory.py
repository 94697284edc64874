"""Server memory of the explorer when visitors open large-model links one after another (issue 26).

Each link (``?model=random:<variant>&resolution=64``) is opened in a new AppTest session of the checkout's
``app/main.py``, in this process, as a new visitor would; the process's resident memory (RSS, ``psutil``) is read
after the demo page (the baseline) and after each link. Two configurations run in their own processes, side by side:

* ``bounded``: the app's defaults (``--models-cached 3 --model-cache-mb 160``): the model cache drops the least
  recently used models, so the four links leave one large model in memory;
* ``unbounded``: ``--models-cached 100 --model-cache-mb 100000``, what the app did before issue 26 (every model
  stays).

The claim checked: after the four links, bounded RSS <= baseline + the largest model's weights + a slack (the
activations and results caches, 64 MiB). Writes ``bench/results/app_memory.json`` (with ``"command"``) and, with
``--docs``, the table between the markers of ``docs/explorer.md``.

Usage::

    python bench/app_memory.py                     # 4 variants of ~100-116 MiB, both configurations
    python bench/app_memory.py --docs docs/explorer.md
    python bench/app_memory.py --smoke --out /tmp/app_memory.json   # two small links, seconds
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.make_docs import check_results, command_line, smoke_folder  # noqa: E402

APP = ROOT / "app" / "main.py"
RESULTS = ROOT / "bench" / "results" / "app_memory.json"
LARGE = ("glnet_4g", "glnet_stl", "glnet_stl_paramslot", "glnet_4g_tklb")
SMOKE = ("glnet_tiny", "glnet_stl")
SLACK_MIB = 64
CONFIGS = {"bounded": {}, "unbounded": {"GLMIX_MODELS_CACHED": "100", "GLMIX_MODEL_CACHE_MB": "100000"}}
BEGIN, END = "<!-- app_memory:begin (bench/app_memory.py --docs) -->", "<!-- app_memory:end -->"


def rss_mib() -> float:
    """Resident memory after a collection, with freed heap given back to the system (glibc's malloc_trim, as the
    model cache does on eviction): memory the C library merely keeps for reuse is not memory the server holds."""
    import psutil

    from glmix_viz.app.modelcache import _release_memory

    _release_memory()
    return psutil.Process().memory_info().rss / 2**20


def measure(variants: List[str]) -> Dict[str, Any]:
    """In this process: the demo page, then one link per variant, each in a new session; RSS after each."""
    import torch
    from streamlit.testing.v1 import AppTest

    from glmix_viz.app.modelcache import MODELS
    from glmix_viz.app.threads import interactive_threads

    torch.set_num_threads(interactive_threads())

    def open_link(query: Dict[str, str]) -> None:
        at = AppTest.from_file(str(APP), default_timeout=600)
        at.query_params.update(query)
        at.run()
        if at.exception:
            raise RuntimeError(at.exception[0].value)
        warnings = [w.value for w in at.warning if w.value.startswith("link")]
        if warnings:
            raise RuntimeError(warnings[0])

    open_link({"model": "demo", "resolution": "64"})
    baseline = rss_mib()
    steps, sizes = [], {}
    for variant in variants:
        start = time.perf_counter()
        open_link({"model": f"random:{variant}", "resolution": "64"})
        held = MODELS.held()
        sizes[variant] = next(size for key, size in held if key[:2] == ("random", variant)) / 2**20
        steps.append({"link": f"model=random:{variant}", "rss_mib": round(rss_mib(), 1),
                      "models_held": len(held), "weights_held_mib": round(sum(s for _, s in held) / 2**20, 1),
                      "seconds": round(time.perf_counter() - start, 2)})
    largest = max(sizes.values())
    final = steps[-1]["rss_mib"]
    return {"baseline_rss_mib": round(baseline, 1), "steps": steps,
            "model_mib": {name: round(size, 1) for name, size in sizes.items()},
            "largest_model_mib": round(largest, 1), "final_rss_mib": final,
            "growth_mib": round(final - baseline, 1),
            "within_baseline_plus_largest": final <= baseline + largest + SLACK_MIB}


def run_config(name: str, variants: List[str]) -> Dict[str, Any]:
    """One configuration in a fresh process (its own memory), with the app's limits in its environment."""
    env = dict(os.environ, **CONFIGS[name], GLMIX_RANDOM_VARIANTS=",".join(variants),
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env.pop("GLMIX_APP_DEBUG", None)
    for variable in ("GLMIX_MODELS_CACHED", "GLMIX_MODEL_CACHE_MB"):
        if variable not in CONFIGS[name]:
            env.pop(variable, None)
    output = subprocess.run([sys.executable, __file__, "--child", ",".join(variants)], env=env, cwd=ROOT,
                            check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def table(result: Dict[str, Any]) -> str:
    """The markdown table of a result (the docs generator's and docs/explorer.md's)."""
    lines = ["| configuration | baseline RSS (MiB) | after 4 links (MiB) | growth (MiB) | largest model (MiB) | "
             "models held | within baseline + largest |", "|---|---|---|---|---|---|---|"]
    for name, config in result["configurations"].items():
        last = config["steps"][-1]
        lines.append(f"| {name} | {config['baseline_rss_mib']:.0f} | {config['final_rss_mib']:.0f} | "
                     f"{config['growth_mib']:.0f} | {config['largest_model_mib']:.0f} | {last['models_held']} | "
                     f"{'yes' if config['within_baseline_plus_largest'] else 'no'} |")
    return "\n".join(lines)


def docs_table(result: Dict[str, Any]) -> str:
    """The table between the markers of docs/explorer.md, with the command and file that made it."""
    return "\n".join([BEGIN, "", f"Measured by `{result['command']}` ({result['machine']}); "
                      f"`bench/results/{Path(result['out']).name}`.", "", table(result), "", END])


def write_docs(path: Path, result: Dict[str, Any]) -> None:
    text = path.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    path.write_text(text[:start] + docs_table(result) + text[end:])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None,
                        help="results JSON (default bench/results/app_memory.json; --smoke: a temporary folder)")
    parser.add_argument("--smoke", action="store_true", help="two small links, the bounded configuration only")
    parser.add_argument("--docs", type=Path, default=None, help="rewrite the table between the markers of this file")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    return parser


def main(argv: List[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.out is None:
        args.out = smoke_folder(__file__) / "app_memory.json" if args.smoke else RESULTS
    if args.child:
        print(json.dumps(measure(args.child.split(","))))
        return 0
    variants = list(SMOKE if args.smoke else LARGE)
    configs = ["bounded"] if args.smoke else list(CONFIGS)
    result = {"command": command_line(__file__, argv),
              "machine": f"{os.cpu_count()} CPUs, shared (contended)", "variants": variants,
              "slack_mib": SLACK_MIB, "out": str(args.out),
              "configurations": {name: run_config(name, variants) for name in configs}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, args.out)
    if args.docs:
        write_docs(args.docs, result)
    if args.smoke:
        check_results(__file__, args.out)
    for name, config in result["configurations"].items():
        print(f"{name}: baseline {config['baseline_rss_mib']:.0f} MiB -> {config['final_rss_mib']:.0f} MiB after "
              f"{len(variants)} links (largest model {config['largest_model_mib']:.0f} MiB; within: "
              f"{config['within_baseline_plus_largest']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
