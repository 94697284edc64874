"""``glmix-viz train``: train a GLNet from scratch on the image-level labels of a VOC-layout data set."""

from __future__ import annotations

import argparse
import json
from typing import Any, Dict

from glmix_viz.errors import GlmixVizError

HELP = "train a GLNet from scratch (multi-label classification on a VOC-layout set, e.g. make-shapes output)"


def add_common_arguments(
    parser: argparse.ArgumentParser, *, default_epochs: int, default_lr: float, split_flag: str = "--train-split",
    split_default: str = "train",
) -> None:
    """Options shared by ``train`` and ``finetune`` (everything but the data root and the initial weights).

    The training split's flag differs: ``--train-split`` for ``train``, ``--split`` (default train_aug) for
    ``finetune``; both set ``args.train_split``.
    """
    parser.add_argument("--out", required=True, help="output folder (checkpoints, log.jsonl); a run there resumes")
    parser.add_argument("--model", default="glnet_tiny", help="registered GLNet variant (default: glnet_tiny)")
    parser.add_argument("--model-args", default="{}", metavar="JSON",
                        help='constructor overrides recorded in the checkpoint, e.g. \'{"num_slots": 9}\'')
    parser.add_argument(split_flag, *(["--split"] if split_flag != "--split" else []), dest="train_split",
                        default=split_default,
                        help=f"training split (default: {split_default})")
    parser.add_argument("--val-split", default="val", help="validation split ('' to skip validation)")
    parser.add_argument("--epochs", type=int, default=default_epochs)
    parser.add_argument("--batch-size", type=int, default=64, help="per process (torchrun: per GPU)")
    parser.add_argument("--lr", type=float, default=default_lr, help="peak AdamW learning rate")
    parser.add_argument("--min-lr", type=float, default=1e-5)
    parser.add_argument("--warmup-epochs", type=float, default=1.0)
    parser.add_argument("--weight-decay", type=float, default=0.05, help="decay of tensors with more than one dim")
    parser.add_argument("--slot-scale-wd", type=float, default=None,
                        help="weight decay of slot_scale (and learned slots); default: 0, or --weight-decay with "
                             "--wd-recipe official")
    parser.add_argument("--wd-recipe", choices=("ndim", "official"), default=None,
                        help="ndim: only >1-dim tensors decay; official: slot_scale decays too (GLMix ImageNet "
                             "recipe); default: official for the published variants, ndim for glnet_tiny")
    parser.add_argument("--slot-scale-init", type=float, default=None,
                        help="initial slot temperature of every GLMix block (default: the model's C**-0.5)")
    parser.add_argument("--input-size", type=int, default=None, help="square input side (default: the model's)")
    parser.add_argument("--grad-clip", type=float, default=5.0)
    parser.add_argument("--drop-path", type=float, default=None, help="stochastic depth (default: the recipe's)")
    parser.add_argument("--augment", choices=("shapes", "flips", "standard", "none"), default=None,
                        help="shapes: flips + 90-degree turns + mild zoom; flips: h/v flips only; standard: h-flip + "
                             "zoomed crops")
    parser.add_argument("--slot-mil-weight", type=float, default=0.0,
                        help="weight of the slot MIL loss (per-slot classification, max over slots); 0: off")
    parser.add_argument("--slot-mil-blocks", default="", help="comma-separated GLMix block paths for the MIL loss")
    parser.add_argument("--slot-mil-background", action="store_true",
                        help="slot MIL with a background column: a softmax over the classes and the background per "
                             "slot (every slot picks one), the background claimed by some slot in every image")
    parser.add_argument("--slot-mil-cosine", type=float, default=0.0, metavar="TEMPERATURE",
                        help="slot MIL with a cosine classifier at this temperature (e.g. 0.1): the slots of a class "
                             "are pulled to one direction; 0 (default): LayerNorm + linear")
    parser.add_argument("--slot-mil-confidence", type=float, default=0.0, metavar="WEIGHT",
                        help="with --slot-mil-background: every slot must pick one class of its image or the "
                             "background (per-slot mass outside them and entropy, this weight); 0 (default): off")
    add_grouping_arguments(parser)
    add_prototype_arguments(parser)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: CUDA when available)")
    parser.add_argument("--no-amp", action="store_true", help="no bf16 autocast on CUDA")
    parser.add_argument("--workers", type=int, default=2, help="data-loading processes")
    parser.add_argument("--cache-gb", type=float, default=4.0, help="keep a split in memory up to this size")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--max-minutes", type=float, default=0.0, help="stop after the epoch that passes this")
    parser.add_argument("--stop-after-epoch", type=int, default=0,
                        help="stop after this epoch, keeping the --epochs schedule (train in pieces)")
    parser.add_argument("--no-resume", action="store_true", help="start afresh even if --out holds a run")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_grouping_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the class-free grouping losses (all off by default; see glmix_viz.train.losses)."""
    group = parser.add_argument_group("grouping losses (on GLMix slot weights; all off by default)")
    group.add_argument("--grouping-blocks", default="",
                       help="comma-separated GLMix block paths the grouping losses act on (default: every GLMix block)")
    group.add_argument("--potts-weight", type=float, default=0.0,
                       help="weight of the bilateral Potts loss on the dispatch weights (Tang et al. 2018)")
    group.add_argument("--potts-sigma-rgb", type=float, default=0.12, help="its colour kernel width (RGB in [0, 1])")
    group.add_argument("--potts-sigma-xy", type=float, default=None,
                       help="its position kernel width in block-map pixels (default: flat 8-neighbourhood)")
    group.add_argument("--entropy-weight", type=float, default=0.0,
                       help="weight of the pixel-assignment entropy (minimised: confident assignments)")
    group.add_argument("--usage-entropy-weight", type=float, default=0.0,
                       help="weight of the slot-usage entropy, maximised (positive: no collapse onto few slots; "
                            "negative: fewer slots per image)")
    group.add_argument("--recon-weight", type=float, default=0.0,
                       help="weight of the colour reconstruction through the slots (cluster, then dispatch)")


def add_prototype_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the cross-view prototype consistency of the slots (off by default; glmix_viz.train.prototypes)."""
    group = parser.add_argument_group("slot prototypes (cross-view consistency, SlotCon-like; off by default)")
    group.add_argument("--proto-weight", type=float, default=0.0,
                       help="weight of the cross-view prototype consistency of the slots (a second, colour-changed "
                            "and flipped view per batch: one more forward pass); 0: off")
    group.add_argument("--proto-count", type=int, default=8, help="learned prototypes per GLMix block (default 8)")
    group.add_argument("--proto-temperature", type=float, default=0.1,
                       help="temperature of the slot-to-prototype softmax on cosines (default 0.1)")
    group.add_argument("--proto-entropy-weight", type=float, default=1.0,
                       help="weight of the prototype-usage entropy, maximised (default 1)")
    group.add_argument("--proto-blocks", default="",
                       help="comma-separated GLMix block paths of the prototype loss (default: every GLMix block)")


def config_kwargs(args: argparse.Namespace) -> Dict[str, Any]:
    """Flat TrainConfig settings (:meth:`~glmix_viz.train.config.TrainConfig.from_flat`) from the parsed options."""
    try:
        model_args = json.loads(args.model_args)
    except json.JSONDecodeError as error:
        raise GlmixVizError(f"--model-args is not valid JSON ({error})") from None
    if not isinstance(model_args, dict):
        raise GlmixVizError("--model-args must be a JSON object")
    return dict(
        out=args.out, model=args.model, model_args=model_args, train_split=args.train_split,
        val_split=args.val_split, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, min_lr=args.min_lr,
        warmup_epochs=args.warmup_epochs, weight_decay=args.weight_decay, slot_scale_wd=args.slot_scale_wd,
        weight_decay_recipe=args.wd_recipe, slot_scale_init=args.slot_scale_init, input_size=args.input_size,
        grad_clip=args.grad_clip, drop_path=args.drop_path, slot_mil_weight=args.slot_mil_weight,
        slot_mil_blocks=[b for b in args.slot_mil_blocks.split(",") if b], slot_mil_background=args.slot_mil_background,
        slot_mil_cosine=args.slot_mil_cosine, slot_mil_confidence=args.slot_mil_confidence,
        grouping_blocks=[b for b in args.grouping_blocks.split(",") if b], potts_weight=args.potts_weight,
        potts_sigma_rgb=args.potts_sigma_rgb, potts_sigma_xy=args.potts_sigma_xy, entropy_weight=args.entropy_weight,
        usage_entropy_weight=args.usage_entropy_weight, recon_weight=args.recon_weight,
        proto_weight=args.proto_weight, proto_count=args.proto_count, proto_temperature=args.proto_temperature,
        proto_entropy_weight=args.proto_entropy_weight, proto_blocks=[b for b in args.proto_blocks.split(",") if b],
        seed=args.seed,
        device=args.device,
        amp=not args.no_amp, workers=args.workers, cache_gb=args.cache_gb, threads=args.threads,
        max_minutes=args.max_minutes, stop_after_epoch=args.stop_after_epoch, resume=not args.no_resume,
        progress=not args.no_progress,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True,
                        help="data set folder with image-level labels: labelled or segmentation folder, VOC layout "
                             "(e.g. make-shapes output) or COCO-2014 (docs/own_data.md)")
    add_common_arguments(parser, default_epochs=30, default_lr=2e-3)


def run(args: argparse.Namespace) -> int:
    from glmix_viz.train import TrainConfig, train

    config = make_config(TrainConfig, data=args.data, augment=args.augment or "shapes", **config_kwargs(args))
    report(train(config), config.out)
    return 0


def make_config(config_class, **settings):
    """``config_class.from_flat(**settings)``, its refusal of inconsistent settings made the CLI's one-line error
    (shared with ``finetune``)."""
    try:
        return config_class.from_flat(**settings)
    except ValueError as error:
        raise GlmixVizError(f"training settings: {error}") from None


def report(summary: dict, out) -> None:
    """Print the one-line end-of-run summary of ``train`` (shared with ``finetune``)."""
    if summary:
        final = summary["final"]
        print(f"done: {summary['epochs_done']} epochs, final val mAP {final.get('val_map', float('nan')):.4f}, "
              f"best {summary['best_val_map']:.4f}; checkpoints in {out}")
