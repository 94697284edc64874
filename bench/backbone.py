"""Backbone benchmark: forward latency and peak memory of GLNet beside timm's ConvNeXt-T and Swin-T, the cost of the
grouping probe, and the optional fast paths (channels-last, bf16 autocast, torch.compile) against the exact path.

Run by hand (never in the test suite), on a machine as quiet as you can get:

    .venv/bin/python bench/backbone.py                                     # CPU, 2 threads, batch 1 and 8, 224/448/896
    .venv/bin/python bench/backbone.py --batches 1 --sizes 224 448 --repeats 3 --runs 3   # shorter
    .venv/bin/python bench/backbone.py --device cuda --sizes 224 448 896 1792
    .venv/bin/python bench/backbone.py --fast-paths --sizes 224            # only the fast-path table

Latency: float32, inference mode, random weights. In one *run* every model is timed round-robin (one forward of each
model per round, ``--repeats`` rounds after ``--warmup``), so a burst of load from elsewhere hits every model alike;
the run's ratio is a model's median over convnext_tiny's median from the same rounds. ``--runs`` independent runs
give the reported ratio (their median) and its spread (min to max). Probe overhead: glnet_stl with and without a
GroupingProbe on all its GLMix blocks, interleaved the same way. Peak memory: the most bytes the tensors of one
inference forward hold at once, weights excluded (exact, on the meta device: ``glmix_viz.profiling``; on CUDA the
allocator's peak). Results also go to a JSON file.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from glmix_viz.profiling import peak_activation_bytes, time_round_robin  # noqa: E402
from scripts.make_docs import check_results, command_line, smoke_folder  # noqa: E402

MODELS = ("glnet_stl", "glnet_4g", "convnext_tiny", "swin_tiny_patch4_window7_224")
REFERENCE = "convnext_tiny"


def build(name: str, size: int) -> torch.nn.Module:
    import timm

    import glmix_viz.models  # noqa: F401  (registers GLNet)

    kwargs = {"img_size": size} if name.startswith("swin") else {}  # timm's Swin checks the input size
    torch.manual_seed(0)
    return timm.create_model(name, **kwargs).eval()


def peak_memory_mb(name: str, size: int, batch: int, device: torch.device) -> float:
    """Peak memory of one inference forward pass beyond the weights, in MiB (CUDA: the allocator's peak growth;
    else exact, on the meta device)."""
    if device.type == "cuda":
        model = build(name, size).to(device)
        x = torch.randn(batch, 3, size, size, device=device)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        with torch.inference_mode():
            model(x)
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    with torch.device("meta"):
        return peak_activation_bytes(build(name, size), size, batch=batch) / 2**20


def _spread(values: List[float]) -> Dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def latency_rows(args: argparse.Namespace, device: torch.device, size: int, batch: int) -> List[dict]:
    """One row per model: medians and ratios to the reference over ``args.runs`` runs."""
    models = {name: build(name, size).to(device) for name in args.models}
    x = torch.randn(batch, 3, size, size, device=device)
    runs = [time_round_robin(models, x, args.warmup, args.repeats) for _ in range(args.runs)]
    rows = []
    for name in models:
        ratios = [run[name] / run[REFERENCE] for run in runs] if REFERENCE in models else []
        row = {"size": size, "batch": batch, "model": name, "median_ms": [run[name] * 1e3 for run in runs],
               "ratio": _spread(ratios) if ratios else None,
               "peak_mb": None if args.no_memory else peak_memory_mb(name, size, batch, device)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def probe_row(args: argparse.Namespace, device: torch.device, size: int) -> dict:
    """Overhead of a GroupingProbe on all GLMix blocks of glnet_stl (batch 1), per run and overall."""
    from glmix_viz import GroupingProbe

    model = build("glnet_stl", size).to(device)
    probe = GroupingProbe(model)

    def with_probe(inputs: torch.Tensor) -> torch.Tensor:
        with probe:
            return model(inputs)

    x = torch.randn(1, 3, size, size, device=device)
    runs = [time_round_robin({"plain": model, "probe": with_probe}, x, args.warmup, args.repeats)
            for _ in range(args.runs)]
    overhead = [run["probe"] / run["plain"] - 1.0 for run in runs]
    row = {"size": size, "probe_overhead": _spread(overhead), "plain_ms": [run["plain"] * 1e3 for run in runs],
           "probe_ms": [run["probe"] * 1e3 for run in runs]}
    print(json.dumps(row), flush=True)
    return row


def fast_path_rows(args: argparse.Namespace, device: torch.device, size: int) -> List[dict]:
    """glnet_stl's optional fast paths beside the exact path: speed ratio and max |logit error|."""
    model = build("glnet_stl", size).to(device)
    x = torch.randn(1, 3, size, size, device=device)
    paths: Dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"exact": model}
    last = build("glnet_stl", size).to(device).to(memory_format=torch.channels_last)
    paths["channels-last"] = lambda inputs: last(inputs.contiguous(memory_format=torch.channels_last))

    def bf16(inputs: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            return model(inputs)

    paths["bf16 autocast"] = bf16
    if args.compile:
        paths["torch.compile"] = torch.compile(build("glnet_stl", size).to(device))
    with torch.inference_mode():
        exact = model(x).float()
        errors = {name: (fn(x).float() - exact).abs().max().item() for name, fn in paths.items()}
    runs = [time_round_robin(paths, x, args.warmup, args.repeats) for _ in range(args.runs)]
    rows = []
    for name in paths:
        row = {"size": size, "fast_path": name, "ratio_to_exact": _spread([run[name] / run["exact"] for run in runs]),
               "max_abs_logit_error": errors[name], "logit_scale": exact.abs().max().item()}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def table(results: dict) -> str:
    """The Markdown tables of a results dict (the docs generator's too)."""
    lines: List[str] = []
    print = lines.append  # noqa: A001  (the rows below were printed once; now they are collected)
    runs = results.get("runs", 1)  # the first version made one run and did not record it
    print(f"\n| batch | size | model | median ms (per run) | vs {REFERENCE}: median of {runs} runs [min, max] | "
          "peak MB |\n| --- | --- | --- | --- | --- | --- |")
    for row in results["rows"]:
        if "model" in row:
            ratio = row.get("ratio")
            if ratio is None and f"vs_{REFERENCE}" in row:  # results of the first version: one run, batch 1
                ratio = dict.fromkeys(("median", "min", "max"), row[f"vs_{REFERENCE}"])
            shown = f"{ratio['median']:.2f} [{ratio['min']:.2f}, {ratio['max']:.2f}]" if ratio else "-"
            memory = f"{row['peak_mb']:.0f}" if row.get("peak_mb") is not None else "-"
            times = " / ".join(f"{value:.0f}" for value in (
                row["median_ms"] if isinstance(row["median_ms"], list) else [row["median_ms"]]))
            print(f"| {row.get('batch', 1)} | {row['size']} | {row['model']} | {times} | {shown} | {memory} |")
    print("\n| size | forward ms | with probe ms | probe overhead: median [min, max] |\n| --- | --- | --- | --- |")
    for row in results["rows"]:
        if "probe_overhead" in row:
            spread = row["probe_overhead"]
            if not isinstance(spread, dict):  # the first version: one run
                spread = dict.fromkeys(("median", "min", "max"), spread)
            plain, probe = (statistics.median(v if isinstance(v, list) else [v]) for v in (row["plain_ms"],
                                                                                          row["probe_ms"]))
            print(f"| {row['size']} | {plain:.1f} | {probe:.1f} | {spread['median']:+.1%} "
                  f"[{spread['min']:+.1%}, {spread['max']:+.1%}] |")
    print("\n| size | path | time vs exact: median [min, max] | max abs logit error (logit scale) |\n"
          "| --- | --- | --- | --- |")
    for row in results["rows"]:
        if "fast_path" in row:
            ratio = row["ratio_to_exact"]
            print(f"| {row['size']} | {row['fast_path']} | {ratio['median']:.2f} [{ratio['min']:.2f}, "
                  f"{ratio['max']:.2f}] | {row['max_abs_logit_error']:.1e} ({row['logit_scale']:.1f}) |")
    text = "\n".join(lines)
    sections = [part for part in text.split("\n\n") if part.count("\n") > 1]  # tables with rows only
    return f"{results['device']}, {results['threads']} thread(s), torch {results['torch']}\n\n" + "\n\n".join(
        part.strip("\n") for part in sections) + "\n"


SMOKE = {"sizes": [64], "batches": [1], "models": ["glnet_stl", "convnext_tiny"], "repeats": 1, "runs": 1,
         "warmup": 0, "threads": 1}


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's arguments (the docs generator re-parses recorded commands with it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 448, 896])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per run")
    parser.add_argument("--runs", type=int, default=3, help="independent runs (ratio spread)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    parser.add_argument("--no-probe", action="store_true", help="skip the probe-overhead measurement")
    parser.add_argument("--fast-paths", action="store_true", help="only measure the optional fast paths")
    parser.add_argument("--compile", action="store_true", help="include torch.compile among the fast paths")
    parser.add_argument("--out", type=Path, default=None, help="results file (default bench/results/backbone.json; "
                        "--smoke: a temporary folder)")
    parser.add_argument("--smoke", action="store_true", help="seconds: glnet_stl and convnext_tiny at 64 px, one "
                        "round, one thread; checks the JSON has what the docs read (give --out a temporary path)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    if args.smoke:
        vars(args).update(SMOKE)
    if args.out is None:
        args.out = smoke_folder(__file__) / "backbone.json" if args.smoke else ROOT / "bench/results/backbone.json"

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    results = {"command": command_line(__file__, argv), "device": str(device), "threads": args.threads, "torch": torch.__version__, "runs": args.runs,
               "repeats": args.repeats, "rows": []}
    print(f"device {device}, {args.threads} threads, torch {torch.__version__}, {args.runs} runs of "
          f"{args.repeats} rounds", flush=True)
    for size in args.sizes:
        if args.fast_paths:
            results["rows"] += fast_path_rows(args, device, size)
            continue
        for batch in args.batches:
            results["rows"] += latency_rows(args, device, size, batch)
        if not args.no_probe and "glnet_stl" in args.models:
            results["rows"].append(probe_row(args, device, size))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    if args.smoke:
        check_results(__file__, args.out)


if __name__ == "__main__":
    main()
