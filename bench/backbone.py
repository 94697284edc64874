"""Backbone benchmark: forward latency and peak memory of GLNet beside timm's ConvNeXt-T and Swin-T, and the cost
of the grouping probe.

Run by hand (never in the test suite), on a quiet machine:

    .venv/bin/python bench/backbone.py                       # CPU, 2 threads, 224/448/896
    .venv/bin/python bench/backbone.py --device cuda --sizes 224 448 896 1792

Latency: batch 1, float32, inference mode, random weights. Models are timed round-robin (one forward of each
model per round, ``--repeats`` rounds after ``--warmup`` rounds), so a burst of load from elsewhere hits every model
alike; the table gives the median of each model and its ratio to convnext_tiny's median from the same rounds.
Probe overhead: glnet_stl with and without a GroupingProbe on all its GLMix blocks, interleaved the same way.
Peak memory: the most bytes the tensors of one inference forward hold at once, weights excluded (exact, on the meta
device; on CUDA the allocator's peak). Results also go to a JSON file.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

MODELS = ("glnet_stl", "glnet_4g", "convnext_tiny", "swin_tiny_patch4_window7_224")


def build(name: str, size: int) -> torch.nn.Module:
    import timm

    import glmix_viz  # noqa: F401  (registers GLNet)

    kwargs = {"img_size": size} if name.startswith("swin") else {}  # timm's Swin checks the input size
    torch.manual_seed(0)
    return timm.create_model(name, **kwargs).eval()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_round_robin(runs: dict, x: torch.Tensor, warmup: int, repeats: int) -> dict:
    """Median seconds per callable in ``runs``, timed one after another in each round."""
    times = {name: [] for name in runs}
    with torch.inference_mode():
        for round_index in range(warmup + repeats):
            for name, fn in runs.items():
                sync(x.device)
                start = time.perf_counter()
                fn(x)
                sync(x.device)
                if round_index >= warmup:
                    times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def peak_memory_mb(model: torch.nn.Module, size: int) -> float:
    """Peak memory of one inference forward pass beyond the weights, in MiB.

    CUDA: ``torch.cuda.max_memory_allocated`` growth over the forward. CPU: the exact peak of bytes held at once by
    tensors the forward creates (``glmix_viz.profiling.peak_activation_bytes``, computed on the meta device: no
    allocator noise, the same on every machine).
    """
    from glmix_viz.profiling import peak_activation_bytes

    device = next(model.parameters()).device
    if device.type == "cuda":
        x = torch.randn(1, 3, size, size, device=device)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        with torch.inference_mode():
            model(x)
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    with torch.device("meta"):
        meta_model = build(model.pretrained_cfg["architecture"], size) if hasattr(model, "pretrained_cfg") else None
    with torch.inference_mode():
        return peak_activation_bytes(meta_model, size) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 448, 896])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    parser.add_argument("--out", type=Path, default=Path("bench/results/backbone.json"))
    args = parser.parse_args()

    from glmix_viz import GroupingProbe

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    results = {"device": str(device), "threads": args.threads, "torch": torch.__version__, "rows": []}
    print(f"device {device}, {args.threads} threads, torch {torch.__version__}, {args.repeats} rounds", flush=True)
    for size in args.sizes:
        models = {name: build(name, size).to(device) for name in args.models}
        x = torch.randn(1, 3, size, size, device=device)
        latency = time_round_robin(models, x, args.warmup, args.repeats)
        reference = latency.get("convnext_tiny")
        for name, seconds in latency.items():
            memory = None if args.no_memory else peak_memory_mb(models[name], size)
            row = {"size": size, "model": name, "median_ms": seconds * 1e3,
                   "vs_convnext_tiny": seconds / reference if reference else None, "peak_mb": memory}
            results["rows"].append(row)
            print(json.dumps(row), flush=True)
        if "glnet_stl" in models:
            model = models["glnet_stl"]
            probe = GroupingProbe(model)

            def with_probe(inputs):
                with probe:
                    return model(inputs)

            overhead = time_round_robin({"plain": model, "probe": with_probe}, x, args.warmup, args.repeats)
            row = {"size": size, "probe_overhead": overhead["probe"] / overhead["plain"] - 1.0,
                   "plain_ms": overhead["plain"] * 1e3, "probe_ms": overhead["probe"] * 1e3}
            results["rows"].append(row)
            print(json.dumps(row), flush=True)
        del models

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print("\n| size | model | median ms | vs convnext_tiny | peak MB |\n| --- | --- | --- | --- | --- |")
    for row in results["rows"]:
        if "model" in row:
            ratio = f"{row['vs_convnext_tiny']:.2f}x" if row["vs_convnext_tiny"] else "-"
            memory = f"{row['peak_mb']:.0f}" if row["peak_mb"] is not None else "-"
            print(f"| {row['size']} | {row['model']} | {row['median_ms']:.1f} | {ratio} | {memory} |")
    print("\n| size | forward ms | with probe ms | probe overhead |\n| --- | --- | --- | --- |")
    for row in results["rows"]:
        if "probe_overhead" in row:
            print(f"| {row['size']} | {row['plain_ms']:.1f} | {row['probe_ms']:.1f} | {row['probe_overhead']:+.1%} |")


if __name__ == "__main__":
    main()
