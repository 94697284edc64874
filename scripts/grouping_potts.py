"""Fine-tune the demo GLNet with BCE plus a bilateral "slot Potts" loss on GLMix dispatch weights, then score grouping.

Idea (regularised losses for weakly-supervised segmentation, Tang et al. 2018): for a GLMix block with dispatch
weights D (B, S, h, w) (softmax over slots) and the input image I resized to (h, w) (RGB in [0, 1]),

    L_potts = mean over 8-neighbour pairs (p, q) of w_pq * (1 - <D_p, D_q>),  w_pq = exp(-|I_p - I_q|^2 / (2 sigma^2))

pulls neighbouring pixels of similar colour into the same slot, so slot regions should follow colour edges. An
optional entropy term (mean over pixels of H(D_p)) sharpens assignments, and an optional "balance" term (minus the
entropy of each image's mean slot usage) counters the trivial all-pixels-in-one-slot solution.

Usage (each ``--setting`` is ``NAME:LAMBDA:BLOCKS[:ENTROPY[:BALANCE]]``, BLOCKS comma-separated or ``all``)::

    python scripts/grouping_potts.py --out /tmp/gp --epochs 3 \
        --setting s0b0:1.0:stages.0.blocks.0 --setting allblk:1.0:all

Writes ``OUT/baseline.json`` (the demo model unchanged) and ``OUT/NAME.json`` per setting, plus ``OUT/NAME.pt``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import glmix_viz
import glmix_viz.images
from glmix_viz.data.shapes import make_shapes
from glmix_viz.grouping import grouping_report, load_grouping_samples
from glmix_viz.probe import GroupingProbe, glmix_block_names
from glmix_viz.train import (build_param_groups, learning_rate_at, load_split, mean_average_precision,
                             normalize_batch, predict_scores)

DEMO = Path(__file__).resolve().parents[1] / "glmix_viz" / "assets" / "demo" / "glnet_tiny_shapes.safetensors"
NEIGHBOUR_OFFSETS = ((0, 1), (1, 0), (1, 1), (1, -1))  # each undirected 8-neighbour pair once


def shifted_pairs(tensor: torch.Tensor, dy: int, dx: int) -> tuple:
    """Views (..., h', w') of ``tensor`` (..., h, w) at p and at q = p + (dy, dx), over the pairs inside the map."""
    h, w = tensor.shape[-2:]
    ys, yq = slice(0, h - dy), slice(dy, h)
    if dx >= 0:
        xs, xq = slice(0, w - dx), slice(dx, w)
    else:
        xs, xq = slice(-dx, w), slice(0, w + dx)
    return tensor[..., ys, xs], tensor[..., yq, xq]


def bilateral_potts_loss(dispatch: torch.Tensor, rgb: torch.Tensor, sigma_rgb: float) -> torch.Tensor:
    """Mean over 8-neighbour pairs of w_pq (1 - <D_p, D_q>).

    Args:
        dispatch: (B, S, h, w) per-pixel slot distributions.
        rgb: (B, 3, H, W) image in [0, 1]; area-resized to (h, w) here.
        sigma_rgb: colour bandwidth.

    Returns:
        Scalar loss.
    """
    small = F.adaptive_avg_pool2d(rgb, dispatch.shape[-2:])
    total, count = dispatch.new_zeros(()), 0
    for dy, dx in NEIGHBOUR_OFFSETS:
        dp, dq = shifted_pairs(dispatch, dy, dx)
        ip, iq = shifted_pairs(small, dy, dx)
        weight = torch.exp(-((ip - iq) ** 2).sum(1) / (2 * sigma_rgb ** 2))  # (B, h', w')
        agreement = (dp * dq).sum(1)
        total = total + (weight * (1 - agreement)).sum()
        count += weight.numel()
    return total / count


def pixel_entropy(dispatch: torch.Tensor) -> torch.Tensor:
    """Mean over pixels of the entropy of D_p (nats). dispatch: (B, S, h, w)."""
    return -(dispatch * dispatch.clamp_min(1e-8).log()).sum(1).mean()


def usage_entropy(dispatch: torch.Tensor) -> torch.Tensor:
    """Mean over images of the entropy of the image's mean slot usage (nats). dispatch: (B, S, h, w)."""
    usage = dispatch.mean((2, 3))
    return -(usage * usage.clamp_min(1e-8).log()).sum(1).mean()


def flip_batch(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random horizontal and vertical flips per image of a (B, 3, H, W) batch."""
    draws = torch.rand(images.shape[0], 2, generator=generator)
    out = images.clone()
    h_flip, v_flip = draws[:, 0] < 0.5, draws[:, 1] < 0.5
    out[h_flip] = out[h_flip].flip(-1)
    out[v_flip] = out[v_flip].flip(-2)
    return out


def heldout_metrics(model: nn.Module, eval_root: str, samples: Sequence, input_size: int) -> Dict:
    """Held-out mAP (all images) and the grouping report (images with >= 2 objects), plus slot-usage diagnostics."""
    split = load_split(eval_root, "val", input_size, workers=0)
    scores, labels = predict_scores(model, split, torch.device("cpu"), amp=False)
    map_value, per_class = mean_average_precision(scores, labels)
    report = grouping_report(model, samples, input_size=input_size)
    diagnostics = slot_usage(model, samples, input_size)
    return {"map": map_value, "ap_per_class": per_class.tolist(), "grouping": report, "slot_usage": diagnostics}


@torch.no_grad()
def slot_usage(model: nn.Module, samples: Sequence, input_size: int) -> Dict[str, Dict[str, float]]:
    """Per block: mean number of distinct hard slots per image and mean max dispatch weight (collapse check)."""
    chosen = [s for s in samples if s.num_instances >= 2][:64]
    inputs = glmix_viz.images.batch_to_tensor([s.image for s in chosen], input_size)
    model.eval()
    with GroupingProbe(model) as probe:
        model(inputs)
        out = {}
        for name in probe.block_names:
            hard = probe[name].hard
            distinct = np.mean([len(torch.unique(h)) for h in hard])
            out[name] = {"distinct_slots": float(distinct), "mean_max_dispatch": float(probe[name].dispatch.max(1)[0]
                                                                                       .mean())}
    return out


def fine_tune(model: nn.Module, train_split, blocks: List[str], lam: float, entropy_weight: float,
              balance_weight: float, sigma_rgb: float, epochs: int, lr: float, batch_size: int, seed: int,
              log) -> Dict:
    """BCE + lam * Potts (+ entropy, - balance) fine-tuning with AdamW and a per-step cosine; returns a log."""
    params = build_param_groups([model], weight_decay=0.05)
    optimizer = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.999))
    generator = torch.Generator().manual_seed(seed)
    steps_per_epoch = len(train_split) // batch_size
    total_steps = steps_per_epoch * epochs
    step, history = 0, []
    start = time.time()
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(train_split), generator=generator).tolist()
        sums = {"bce": 0.0, "potts": 0.0, "entropy": 0.0, "usage_entropy": 0.0}
        epoch_start = time.time()
        for images, labels in train_split.batches(order, batch_size, drop_last=True):
            for group in optimizer.param_groups:
                group["lr"] = learning_rate_at(step, total_steps, 0, lr, 1e-5)
            images = flip_batch(images, generator)
            rgb = images.float() / 255.0
            with GroupingProbe(model, blocks=blocks, detach=False) as probe:
                logits = model(normalize_batch(images))
                bce = F.binary_cross_entropy_with_logits(logits, labels)
                potts = sum(bilateral_potts_loss(probe[b].dispatch, rgb, sigma_rgb) for b in blocks) / len(blocks)
                ent = sum(pixel_entropy(probe[b].dispatch) for b in blocks) / len(blocks)
                usage = sum(usage_entropy(probe[b].dispatch) for b in blocks) / len(blocks)
            loss = bce + lam * potts + entropy_weight * ent - balance_weight * usage
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            step += 1
            for key, value in zip(sums, (bce, potts, ent, usage)):
                sums[key] += float(value)
            if step % 50 == 0:
                log(f"  step {step}/{total_steps} bce {float(bce):.4f} potts {float(potts):.4f} "
                    f"ent {float(ent):.3f} usage_ent {float(usage):.3f} ({time.time() - start:.0f}s)")
        entry = {k: v / steps_per_epoch for k, v in sums.items()}
        entry.update(epoch=epoch + 1, seconds=time.time() - epoch_start)
        history.append(entry)
        log(f" epoch {epoch + 1}: {json.dumps(entry)}")
    model.eval()
    return {"history": history, "train_seconds": time.time() - start}


def parse_setting(text: str, all_blocks: List[str]) -> Dict:
    parts = text.split(":")
    if len(parts) < 3:
        raise SystemExit(f"--setting {text!r}: need NAME:LAMBDA:BLOCKS[:ENTROPY[:BALANCE]]")
    blocks = all_blocks if parts[2] == "all" else parts[2].split(",")
    return {"name": parts[0], "lam": float(parts[1]), "blocks": blocks,
            "entropy": float(parts[3]) if len(parts) > 3 else 0.0,
            "balance": float(parts[4]) if len(parts) > 4 else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/tmp/demo/shapes")
    parser.add_argument("--eval", default="/tmp/gp/eval")
    parser.add_argument("--out", default="/tmp/gp")
    parser.add_argument("--setting", action="append", default=[])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--sigma-rgb", type=float, default=0.12)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log_file = open(out / "log.txt", "a")

    def log(message: str) -> None:
        print(message, flush=True)
        log_file.write(message + "\n")
        log_file.flush()

    if not Path(args.data, "ImageSets").is_dir():
        make_shapes(args.data, num_train=6000, num_val=500, seed=0, image_size=128)
    if not Path(args.eval, "ImageSets").is_dir():
        make_shapes(args.eval, num_train=0, num_val=300, seed=2002, image_size=128)
    samples = load_grouping_samples(args.eval, "val")

    if not args.skip_baseline:
        model = glmix_viz.load_model(str(DEMO), device="cpu").eval()
        metrics = heldout_metrics(model, args.eval, samples, 128)
        (out / "baseline.json").write_text(json.dumps(metrics, indent=1))
        log(f"baseline: mAP {metrics['map']:.4f} best {metrics['grouping']['best_block']} "
            f"{metrics['grouping']['best']} margin {metrics['grouping']['margin']:+.3f}")

    if not args.setting:
        return
    train_split = load_split(args.data, "train", 128, workers=2)
    for text in args.setting:
        torch.manual_seed(args.seed)
        model = glmix_viz.load_model(str(DEMO), device="cpu")
        setting = parse_setting(text, glmix_block_names(model))
        log(f"setting {json.dumps(setting)} epochs {args.epochs} lr {args.lr} sigma {args.sigma_rgb}")
        run = fine_tune(model, train_split, setting["blocks"], setting["lam"], setting["entropy"], setting["balance"],
                        args.sigma_rgb, args.epochs, args.lr, args.batch_size, args.seed, log)
        metrics = heldout_metrics(model, args.eval, samples, 128)
        record = {"setting": setting, "args": vars(args), **run, **metrics}
        (out / f"{setting['name']}.json").write_text(json.dumps(record, indent=1))
        torch.save(model.state_dict(), out / f"{setting['name']}.pt")
        grouping = metrics["grouping"]
        log(f"{setting['name']}: mAP {metrics['map']:.4f} train {run['train_seconds']:.0f}s best "
            f"{grouping['best_block']} {grouping['best']} margin {grouping['margin']:+.3f}")
        for name, block in grouping["blocks"].items():
            log(f"   {name}: trained {block['trained']:.3f} untrained {block['untrained']:.3f} "
                f"grid {block['grid']:.3f} usage {metrics['slot_usage'][name]}")


if __name__ == "__main__":
    main()
