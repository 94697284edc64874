"""``glmix-viz finetune``: fine-tune a GLNet checkpoint (e.g. official ImageNet weights) on image-level labels."""

from __future__ import annotations

import argparse

from glmix_viz.commands.common import add_dataset_arguments
from glmix_viz.commands.train import add_common_arguments, config_kwargs, make_config, report

HELP = ("fine-tune a GLNet checkpoint with a new multi-label head on image-level labels (--data: a labelled or "
        "segmentation folder, PASCAL VOC train_aug..., COCO-2014)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataset_arguments(parser)  # --data PATH (--voc-root / --coco-root)
    parser.add_argument("--init", required=True, help="checkpoint to start from (official .pth or .safetensors)")
    add_common_arguments(parser, default_epochs=20, default_lr=1e-4, split_flag="--split", split_default="train_aug")
    parser.set_defaults(model=None)  # default: the variant the --init checkpoint holds


def run(args: argparse.Namespace) -> int:
    from glmix_viz.models.loading import load_model
    from glmix_viz.train import TrainConfig, train

    kwargs = config_kwargs(args)
    if args.model is None:  # the variant of the initial checkpoint
        kwargs["model"] = load_model(args.init, device="cpu").checkpoint_config["variant"]
    config = make_config(TrainConfig, data=str(args.data), init=args.init, augment=args.augment or "standard",
                         **kwargs)
    if config.input_size is None:
        config.input_size = 224
    report(train(config), config.out)
    return 0
