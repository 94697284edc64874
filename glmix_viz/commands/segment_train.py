"""``glmix-viz segment-train``: train a segmentation network (smp decoder on a GLNet encoder) on label PNGs."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from types import SimpleNamespace

from glmix_viz.commands.common import add_dataset_arguments, open_dataset
from glmix_viz.commands.library_values import VALUES

DECODERS = VALUES["segment_train"]["decoders"]  # glmix_viz.segment.model's, without importing torch

HELP = "train a segmenter (smp decoder on a GLNet encoder) on pseudo-masks or ground truth; resumes in --out"


def _scale_range(text: str):
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"scale range looks like LOW,HIGH (e.g. 0.5,2.0), got {text!r}") from None
    if not 0 < low <= high:
        raise argparse.ArgumentTypeError(f"scale range needs 0 < LOW <= HIGH, got {text!r}")
    return low, high


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = SimpleNamespace(**VALUES["segment_train"]["defaults"])  # SegmentTrainConfig's
    add_dataset_arguments(parser, split="train")  # --data PATH (--voc-root / --coco-root), --split
    parser.add_argument("--val-split", default="val",
                        help="split scored (mIoU) after each epoch when it has ground truth; 'none' to skip")
    parser.add_argument("--labels", type=Path, default=None, metavar="DIR",
                        help="folder of <id>.png training labels (pseudo-masks); default: the ground truth")
    parser.add_argument("--out", required=True, type=Path, help="run folder: last/best .safetensors + .json, history")
    parser.add_argument("--backbone", default=None, help="GLNet variant (default: the --init checkpoint's)")
    parser.add_argument("--init", type=Path, default=None, metavar="CHECKPOINT",
                        help="official, train or finetune checkpoint; only its backbone is kept (default: random)")
    parser.add_argument("--decoder", choices=list(DECODERS), default=defaults.decoder,
                        help="smp decoder (default %(default)s; fpn needs the standard 4/8/16/32 strides)")
    parser.add_argument("--decoder-channels", type=int, default=None,
                        help="decoder width C (upernet C; unet C..C/16; fpn C, ~C/2; default: smp's)")
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="images per step (per process)")
    parser.add_argument("--max-steps", type=int, default=0, help="cap the steps of each epoch (0: no cap)")
    parser.add_argument("--input-size", type=int, default=defaults.input_size, help="square crop side (multiple of 32)")
    parser.add_argument("--scale-range", type=_scale_range, default=defaults.scale_range,
                        help="random rescale LOW,HIGH (default 0.5,2.0)")
    parser.add_argument("--lr", type=float, default=defaults.lr, help="decoder learning rate (peak of the poly rule)")
    parser.add_argument("--backbone-lr-ratio", type=float, default=defaults.backbone_lr_ratio,
                        help="encoder learning rate as a fraction of --lr (0: a frozen encoder)")
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    parser.add_argument("--warmup-steps", type=int, default=defaults.warmup_steps)
    parser.add_argument("--workers", type=int, default=min(4, max(0, (os.cpu_count() or 1) - 1)),
                        help="data loader processes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: CUDA when available)")
    parser.add_argument("--no-amp", dest="amp", action="store_false", help="no bf16 autocast on CUDA")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from glmix_viz.segment.train import SegmentTrainConfig, train_segmenter

    dataset = open_dataset(args)
    val_dataset = None if args.val_split.lower() == "none" else open_dataset(args, args.val_split)
    decoder_args = {} if args.decoder_channels is None else {"decoder_channels": args.decoder_channels}
    config = SegmentTrainConfig(
        out=str(args.out), labels=None if args.labels is None else str(args.labels), backbone=args.backbone,
        init=None if args.init is None else str(args.init), decoder=args.decoder, decoder_args=decoder_args,
        epochs=args.epochs, batch_size=args.batch_size, max_steps=args.max_steps, input_size=args.input_size,
        scale_range=args.scale_range, lr=args.lr, backbone_lr_ratio=args.backbone_lr_ratio,
        weight_decay=args.weight_decay, warmup_steps=args.warmup_steps, workers=args.workers, seed=args.seed,
        device=args.device, amp=args.amp, progress=args.progress,
    )
    result = train_segmenter(config, dataset, val_dataset)
    if result["rank"] != 0:
        return 0
    best = result["best_miou"]
    print(json.dumps({key: result[key] for key in ("out", "epochs", "best_miou", "train_images", "left_out")}))
    print(f"{result['train_images']} training images ({result['left_out']} left out); "
          + (f"best val mIoU {100 * best:.2f}; " if best is not None else "no validation; ")
          + f"checkpoints in {result['out']}")
    return 0
