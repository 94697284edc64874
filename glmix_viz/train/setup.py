"""Setting up a run: everything the epochs need (data, model, objectives, parameter groups, optimiser, schedule, the
DDP wrappers and the grouping probe), on the process of :func:`glmix_viz.runtime.distributed.start_process`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import timm
import torch
import torch.nn as nn

from glmix_viz.data.base import object_names
from glmix_viz.errors import DataError, GlmixVizError
from glmix_viz.probe import GroupingProbe, glmix_block_names
from glmix_viz.runtime.distributed import Process, wrap_ddp
from glmix_viz.runtime.optim import StepSchedule, cosine_schedule, create_adamw, decay_groups
from glmix_viz.train.config import TrainConfig, config_record
from glmix_viz.train.data import LoadedSplit, load_split
from glmix_viz.train.losses import GroupingLosses, SlotMILHeads
from glmix_viz.train.prototypes import SlotPrototypes
from glmix_viz.train.model import build_model, default_slot_mil_blocks, model_overrides, tupleize

__all__ = ["Run", "SLOT_PARAMETERS", "build_param_groups", "build_run"]

SLOT_PARAMETERS = ("*slot_scale", "*init_slots")
"""The GLMix slot temperature and learned slots: their own weight decay (``slot_scale_wd`` / the recipe)."""


@dataclass
class Run:
    """Everything a run's epochs need, built once by :func:`build_run`.

    Attributes:
        config, process, out: the run's settings, process and output folder.
        size: square input side; train_set, val_set (None: no validation); class_names (K,).
        model: the network (unwrapped); train_model: the module to call (DDP around ``model`` when distributed).
        overrides: constructor overrides recorded in the checkpoints; record: the configuration they record.
        aux, train_aux: the slot MIL heads (and their DDP wrapper), or None.
        proto: the slot prototypes of the cross-view consistency loss, or None (not wrapped: used on one process;
            under DDP their gradients are not averaged).
        grouping: the grouping losses; probe: a probe keeping the autograd graph of the blocks the losses read, or
            None when no loss reads a block.
        optimizer, schedule, sampler, steps_per_epoch, total_steps, warmup_steps, use_amp: the optimisation.
    """

    config: TrainConfig
    process: Process
    out: Path
    size: int
    train_set: LoadedSplit
    val_set: Optional[LoadedSplit]
    class_names: List[str]
    model: nn.Module
    train_model: nn.Module
    overrides: Dict[str, Any]
    record: Dict[str, Any]
    aux: Optional[nn.Module]
    train_aux: Optional[nn.Module]
    grouping: GroupingLosses
    probe: Optional[GroupingProbe]
    optimizer: torch.optim.Optimizer
    schedule: StepSchedule
    sampler: Any
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    use_amp: bool
    proto: Optional[SlotPrototypes] = None

    @property
    def show(self) -> bool:
        """Progress bars on (rank 0 only)."""
        return self.config.progress and self.process.is_main


def build_param_groups(modules: Sequence[nn.Module], weight_decay: float, slot_scale_wd: Optional[float] = None,
                       recipe: str = "ndim") -> List[Dict[str, Any]]:
    """AdamW groups ``decay``, ``no_decay`` (timm's filter: 1-dim tensors and biases) and ``slots``.

    ``slot_scale`` (0-dim) and learned ``init_slots`` decay with ``slot_scale_wd`` if given, else with
    ``weight_decay`` under the "official" recipe (as the GLMix ImageNet training does) and not under "ndim".
    """
    slot_decay = slot_scale_wd if slot_scale_wd is not None else (weight_decay if recipe == "official" else 0.0)
    module = modules[0] if len(modules) == 1 else nn.ModuleList(modules)
    return decay_groups(module, weight_decay, own={"slots": SLOT_PARAMETERS}, own_decay={"slots": slot_decay})


def _input_size(config: TrainConfig) -> int:
    """The run's square input side: the configured one, else the variant's default (224 when fine-tuning)."""
    if config.input_size:
        return config.input_size
    if config.init:
        return 224
    probe_model = timm.create_model(config.model, num_classes=0, **tupleize(model_overrides(config)))
    return probe_model.pretrained_cfg["input_size"][-1]


def _objectives(config: TrainConfig, model: nn.Module, num_classes: int, device: torch.device):
    """(slot MIL heads or None, grouping losses, slot prototypes or None); fills in the blocks each one defaults to.

    Raises:
        GlmixVizError: a grouping block that is not a GLMix block of the model.
    """
    aux = None
    if config.slot_mil_weight > 0:
        blocks = config.slot_mil_blocks or default_slot_mil_blocks(model)
        if not blocks:
            raise ValueError(f"{config.model} has no GLMix block for the slot MIL loss")
        config.slot_mil_blocks = list(blocks)
        aux = SlotMILHeads(model, blocks, num_classes, background=config.slot_mil_background,
                           cosine=config.slot_mil_cosine).to(device)
    known = glmix_block_names(model)
    unknown = [name for name in config.grouping.blocks if name not in known]
    if unknown:
        raise GlmixVizError(f"--grouping-blocks: {', '.join(unknown)} not a GLMix block of {config.model} "
                            f"(its GLMix blocks: {', '.join(known)})")
    grouping = GroupingLosses.from_config(config.grouping, default_blocks=known)
    if grouping.active:
        config.grouping.blocks = list(grouping.blocks)
    proto = None
    if config.proto_weight > 0:
        unknown = [name for name in config.proto_blocks if name not in known]
        if unknown:
            raise GlmixVizError(f"--proto-blocks: {', '.join(unknown)} not a GLMix block of {config.model} "
                                f"(its GLMix blocks: {', '.join(known)})")
        config.proto_blocks = list(config.proto_blocks) or list(known)
        proto = SlotPrototypes(model, config.proto_blocks, config.proto_count, config.proto_temperature,
                               config.proto_entropy_weight).to(device)
    return aux, grouping, proto


def build_run(config: TrainConfig, process: Process) -> Run:
    """Load the data, build the model, its objectives and optimiser, and the schedule of a run.

    Raises:
        DataError: bad data folder or splits, or fewer training images than one (global) batch.
        CheckpointError: an unreadable or unfitting ``init`` checkpoint.
    """
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    size = _input_size(config)
    show = config.progress and process.is_main
    load = dict(cache_gb=config.cache_gb, workers=config.workers, progress=show)
    train_set = load_split(config.data, config.train_split, size, **load)
    val_set = load_split(config.data, config.val_split, size, **load) if config.val_split else None
    class_names = object_names(train_set.split)  # every class but the background, wherever it stands

    torch.manual_seed(config.seed)
    model, overrides = build_model(config, len(class_names))
    model.to(process.device)
    aux, grouping, proto = _objectives(config, model, len(class_names), process.device)
    extra = [module for module in (aux, proto) if module is not None]
    optimizer = create_adamw(build_param_groups([model] + extra, config.weight_decay,
                                                config.slot_scale_wd, config.weight_decay_recipe), lr=config.lr)
    steps_per_epoch = len(train_set) // (config.batch_size * process.world)
    if steps_per_epoch == 0:
        raise DataError(f"{config.data}: {len(train_set)} training images are fewer than one batch "
                        f"({config.batch_size} x {process.world} processes)")
    probe_blocks = list(dict.fromkeys((config.slot_mil_blocks if aux is not None else [])
                                      + (list(grouping.blocks) if grouping.active else [])
                                      + (list(config.proto_blocks) if proto is not None else [])))
    sampler = torch.utils.data.DistributedSampler(range(len(train_set)), num_replicas=process.world,
                                                  rank=process.rank, shuffle=True, seed=config.seed, drop_last=True)
    total_steps = steps_per_epoch * config.epochs
    warmup_steps = int(round(config.warmup_epochs * steps_per_epoch))
    return Run(
        config=config, process=process, out=Path(config.out), size=size, train_set=train_set, val_set=val_set,
        class_names=class_names, model=model, train_model=wrap_ddp(model, process), overrides=overrides,
        record=config_record(config), aux=aux, train_aux=wrap_ddp(aux, process), grouping=grouping,
        probe=GroupingProbe(model, blocks=probe_blocks, detach=False) if probe_blocks else None,
        optimizer=optimizer, schedule=cosine_schedule(optimizer, total_steps, warmup_steps, config.min_lr),
        sampler=sampler, steps_per_epoch=steps_per_epoch, total_steps=total_steps, warmup_steps=warmup_steps,
        use_amp=config.amp and process.device.type == "cuda", proto=proto,
    )
