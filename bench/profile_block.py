"""Where the time of a GLMix block, and of a whole GLNet, goes: torch.profiler, grouped by the block's parts.

Run by hand (never in the test suite):

    .venv/bin/python bench/profile_block.py                           # CPU, 2 threads, glnet_stl at 224
    .venv/bin/python bench/profile_block.py --model glnet_4g --size 448 --rounds 5
    .venv/bin/python bench/profile_block.py --device cuda              # records CUDA kernel time as well

Every part of the blocks is wrapped in a ``torch.profiler.record_function`` range (by forward hooks and by wrapping
the block's methods on this instance, so the model code is unchanged): per GLMix block the conv positional
encoding, the two norms, the slot attention, the local depthwise-convolution branch and the MLP; what the GLMix block
spends outside those is the clustering itself (initial-slot pooling, similarity logits, the two softmaxes, the
pooling and dispatching products) and the residual sums. Full-attention blocks and the stem / transitions are timed as wholes. The tables give milliseconds per forward
(median over ``--rounds`` profiled forwards, batch ``--batch``, float32, inference mode, random weights) and the
share of the total, then the ten costliest operators inside the clustering part and the layout operators (copies,
``contiguous``, ``permute``) of the whole net. ``--out`` writes the tables as Markdown.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch
import torch.nn as nn
from torch.profiler import ProfilerActivity, profile, record_function

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.make_docs import check_results, command_line, smoke_folder  # noqa: E402

LAYOUT_OPS = ("aten::copy_", "aten::contiguous", "aten::clone", "aten::permute", "aten::transpose",
              "aten::reshape", "aten::_unsafe_view")
MODULE_PARTS = {"pos_conv": "positional conv", "relation_mha": "slot attention"}  # sub-modules called as modules


def _wrap(module: nn.Module, label: str, handles: List) -> None:
    """Enter a record_function range named ``label`` around every forward of ``module``."""
    def enter(mod: nn.Module, args) -> None:
        mod._profile_range = record_function(label)
        mod._profile_range.__enter__()

    def leave(mod: nn.Module, args, out) -> None:
        mod._profile_range.__exit__(None, None, None)

    handles += [module.register_forward_pre_hook(enter), module.register_forward_hook(leave)]


def _labelled(fn, label: str):
    """``fn`` inside a record_function range named ``label``."""
    def run(*args, **kwargs):
        with record_function(label):
            return fn(*args, **kwargs)

    return run


def instrument(model: nn.Module) -> List:
    """Label the parts of every block of a GLNet; returns the hook handles."""
    from glmix_viz.models import glnet
    from glmix_viz.models.glnet import GLMixBlock, MHSABlockNCHW, MHSABlockTokens

    handles: List = []
    if not hasattr(glnet._channel_norm, "__wrapped_norm__"):  # the blocks' norms are applied in token layout
        glnet._channel_norm = _labelled(glnet._channel_norm, "GLMix: norms")
        glnet._channel_norm.__wrapped_norm__ = True
    for module in model.modules():
        if isinstance(module, GLMixBlock):
            _wrap(module, "GLMix block", handles)
            for attribute, label in MODULE_PARTS.items():
                part = getattr(module, attribute, None)
                if isinstance(part, nn.Module):
                    _wrap(part, f"GLMix: {label}", handles)
            module.local_branch = _labelled(module.local_branch, "GLMix: local depthwise branch")
            module.mlp.forward_tokens = _labelled(module.mlp.forward_tokens, "GLMix: MLP")
        elif isinstance(module, (MHSABlockNCHW, MHSABlockTokens)):
            _wrap(module, "full-attention blocks", handles)
    for layer in getattr(model, "downsample_layers", []):
        _wrap(layer, "stem and transitions", handles)
    return handles


def _time(event, cuda: bool) -> float:
    return (event.device_time_total if cuda else event.cpu_time_total) / 1e3


def _inside(event, name: str) -> bool:
    parent = event.cpu_parent
    while parent is not None and parent.name != name:
        parent = parent.cpu_parent
    return parent is not None


def _nearest_label(event) -> str:
    parent = event.cpu_parent
    while parent is not None and not (parent.name.startswith("GLMix") or parent.name in (
            "full-attention blocks", "stem and transitions", "forward")):
        parent = parent.cpu_parent
    return parent.name if parent is not None else ""


def profile_once(model: nn.Module, x: torch.Tensor, cuda: bool) -> Dict[str, Dict[str, float]]:
    """One profiled forward: ms per label, ms per operator in the clustering part, ms per layout operator."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with torch.inference_mode(), profile(activities=activities) as prof:
        with record_function("forward"):
            model(x)
        if cuda:
            torch.cuda.synchronize()
    labels: Dict[str, float] = defaultdict(float)
    clustering_ops: Dict[str, float] = defaultdict(float)
    layout: Dict[str, float] = defaultdict(float)
    for event in prof.events():
        name = event.name
        if name.startswith("GLMix: "):
            if _inside(event, "GLMix block"):  # (norms of full-attention blocks are counted with those blocks)
                labels[name] += _time(event, cuda)
        elif name in ("forward", "GLMix block", "full-attention blocks", "stem and transitions"):
            labels[name] += _time(event, cuda)
        elif event.cpu_parent is not None and _nearest_label(event) == "GLMix block" and (
                event.cpu_parent.name == "GLMix block"):
            clustering_ops[name] += _time(event, cuda)
        if name in LAYOUT_OPS and event.cpu_parent is not None and event.cpu_parent.name not in LAYOUT_OPS:
            layout[name] += _time(event, cuda)
    parts = sum(value for key, value in labels.items() if key.startswith("GLMix: "))
    labels["GLMix: clustering, softmaxes, residuals"] = labels["GLMix block"] - parts
    labels["other (head, final norm, stage glue)"] = labels["forward"] - sum(
        labels[key] for key in ("GLMix block", "full-attention blocks", "stem and transitions"))
    return {"labels": dict(labels), "clustering_ops": dict(clustering_ops), "layout": dict(layout)}


def _median_tables(samples: List[Dict[str, Dict[str, float]]]) -> Dict[str, Dict[str, float]]:
    out: Dict[str, Dict[str, float]] = {}
    for table in samples[0]:
        keys = {key for sample in samples for key in sample[table]}
        out[table] = {key: statistics.median(sample[table].get(key, 0.0) for sample in samples) for key in keys}
    return out


def markdown(tables: Dict[str, Dict[str, float]], title: str) -> str:
    """The three tables as Markdown."""
    labels = tables["labels"]
    total = labels["forward"]
    order = ["stem and transitions", "GLMix: positional conv", "GLMix: norms",
             "GLMix: clustering, softmaxes, residuals", "GLMix: slot attention", "GLMix: local depthwise branch",
             "GLMix: MLP", "full-attention blocks", "other (head, final norm, stage glue)"]
    lines = [f"### {title}", "", "| part | ms | share |", "| --- | --- | --- |"]
    lines += [f"| {key} | {labels[key]:.2f} | {labels[key] / total:.1%} |" for key in order if labels.get(key)]
    lines += [f"| **total** | **{total:.2f}** | 100% |", "", "| operator in the clustering part | ms |",
              "| --- | --- |"]
    ops = sorted(tables["clustering_ops"].items(), key=lambda item: -item[1])[:10]
    lines += [f"| `{name}` | {value:.2f} |" for name, value in ops]
    lines += ["", "| layout operator (whole net) | ms |", "| --- | --- |"]
    lines += [f"| `{name}` | {value:.2f} |" for name, value in sorted(tables["layout"].items(), key=lambda i: -i[1])]
    return "\n".join(lines) + "\n"


def table(results: Dict[str, Any]) -> str:
    """The tables of a results JSON (the docs generator's too)."""
    return markdown(results["tables"], results["title"])


SMOKE = {"model": "glnet_tiny", "size": 64, "rounds": 1, "threads": 1, "device": "cpu"}


def build_parser() -> argparse.ArgumentParser:
    """The profiler's arguments (the docs generator re-parses recorded commands with it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="glnet_stl")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3, help="profiled forwards (median reported)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=None, help="also write the tables to this Markdown file")
    parser.add_argument("--json", type=Path, default=None,
                        help="also write the tables and the command to this JSON file (bench/results/profile_*.json "
                             "is what the docs are made from)")
    parser.add_argument("--smoke", action="store_true", help="seconds: glnet_tiny at 64 px, one round, one thread; "
                        "checks the JSON (give --json a temporary path)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    if args.smoke:
        vars(args).update(SMOKE)
        args.json = args.json or smoke_folder(__file__) / "profile.json"

    import timm

    import glmix_viz.models  # noqa: F401  (registers GLNet)

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = timm.create_model(args.model).eval().to(device)
    instrument(model)
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    with torch.inference_mode():
        model(x)  # warm-up
    samples = [profile_once(model, x, device.type == "cuda") for _ in range(args.rounds)]
    clock = "CUDA kernel" if device.type == "cuda" else f"CPU, {args.threads} threads"
    title = f"{args.model}, batch {args.batch}, {args.size}x{args.size}, {clock}, median of {args.rounds}"
    tables = _median_tables(samples)
    text = markdown(tables, title)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        results = {"command": command_line(__file__, argv), "title": title, "tables": tables,
                   "settings": {key: str(value) for key, value in vars(args).items()}}
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    if args.smoke:
        check_results(__file__, args.json)


if __name__ == "__main__":
    main()
