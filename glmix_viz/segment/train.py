"""Training the segmenter on label PNGs: the loop behind ``glmix-viz segment-train``, on :mod:`glmix_viz.runtime`.

* Loss: cross-entropy, label 255 ignored. Optimiser: AdamW (timm's ``create_optimizer_v2``), the encoder at
  ``lr * backbone_lr_ratio``, the decoder at ``lr``; 1-dim tensors (norms, biases, slot temperatures) never decay
  (timm's weight-decay filter). Schedule: linear warm-up, then the poly rule ``lr * (1 - t / T) ** 0.9`` over all
  steps ``T`` (timm's ``PolyLRScheduler``).
* Data: :mod:`glmix_viz.segment.data` (ids with bad labels reported and left out; albumentations augmentation seeded
  per item from the seed, the epoch and the index).
* Each epoch: ``OUT/last.safetensors`` (+ ``last.json``), the resume state ``last_state.pt`` and ``log.jsonl``
  (:mod:`glmix_viz.runtime.resume`; runs that wrote ``last.state.pt`` and ``history.json`` still resume); with
  ground truth on the validation split, mIoU at each image's own size (:class:`~glmix_viz.scoring.segmentation.SegmentationMetric`)
  and ``best.safetensors`` when it improves (without it, ``best`` is the last epoch). A rerun in the same ``OUT``
  resumes after the last finished epoch and ends where an uninterrupted run ends; another run's folder is refused.
* Runs unchanged under torchrun or SLURM (DistributedDataParallel; rank 0 validates and writes); bf16 autocast on CUDA.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from glmix_viz.checkpoints import read_config, read_safetensors
from glmix_viz.data.base import Split
from glmix_viz.errors import DataError, GlmixVizError
from glmix_viz.labels import IGNORE_INDEX
from glmix_viz.scoring.segmentation import SegmentationMetric
from glmix_viz.runtime.config import RuntimeConfig
from glmix_viz.runtime.distributed import Process, start_process, stop_process, wrap_ddp
from glmix_viz.runtime.optim import StepSchedule, create_adamw, decay_groups, in_first_use_order, poly_schedule
from glmix_viz.runtime.resume import (
    BEST_WEIGHTS,
    LAST_WEIGHTS,
    Progress,
    load_state,
    read_state,
    save_progress,
    start_log,
    state_path,
)
from glmix_viz.segment.data import EpochSampler, SegmentationPairs, build_augmentation, check_pairs
from glmix_viz.segment.model import build_segmenter, init_backbone, read_backbone, save_segmenter
from glmix_viz.segment.predict import predict_probs

__all__ = ["SegmentTrainConfig", "evaluate_segmenter", "param_groups", "train_segmenter"]


@dataclass
class SegmentTrainConfig(RuntimeConfig):
    """Settings of :func:`train_segmenter` (the run-time ones, ``out``, ``device``, ``workers``, ``progress``, are
    :class:`~glmix_viz.runtime.config.RuntimeConfig`'s).

    Attributes:
        labels: folder of ``<id>.png`` training labels (pseudo-masks); None trains on the ground truth.
        backbone: GLNet variant; taken from ``init`` when None.
        init: checkpoint whose backbone initialises the encoder (official, ``train`` or ``finetune``); None: random.
        decoder: ``upernet``, ``fpn`` or ``unet``.
        decoder_args: smp decoder options.
        epochs, batch_size: as usual; ``max_steps`` (>0) caps the steps of each epoch (smoke tests).
        input_size: side of the square training crop (multiple of 32).
        scale_range: random rescale range of the augmentation.
        lr, backbone_lr_ratio, weight_decay, warmup_steps: optimiser and schedule; ``backbone_lr_ratio=0`` freezes
            the encoder (no gradients through it: about twice as fast on a CPU).
        seed: seeds the weights, the sampling and the augmentation (two runs with one seed are equal on a CPU).
        amp: bf16 autocast on CUDA.
    """

    labels: Optional[str] = None
    backbone: Optional[str] = None
    init: Optional[str] = None
    decoder: str = "upernet"
    decoder_args: Dict[str, Any] = field(default_factory=dict)
    epochs: int = 20
    batch_size: int = 8
    max_steps: int = 0
    input_size: int = 512
    scale_range: Tuple[float, float] = (0.5, 2.0)
    lr: float = 6e-4
    backbone_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    warmup_steps: int = 50
    seed: int = 0
    amp: bool = True


def param_groups(segmenter: nn.Module, config: SegmentTrainConfig) -> List[Dict[str, Any]]:
    """AdamW groups ``encoder_decay``, ``encoder_no_decay`` (at ``lr_ratio = backbone_lr_ratio``; none when frozen),
    ``decoder_decay``, ``decoder_no_decay`` (decoder and heads, ratio 1), in the order their tensors come."""
    groups = []
    if any(param.requires_grad for param in segmenter.encoder.parameters()):
        groups += decay_groups(segmenter.encoder, config.weight_decay, prefix="encoder_",
                               lr_ratio=config.backbone_lr_ratio)
    rest = nn.ModuleList([module for name, module in segmenter.named_children() if name != "encoder"])
    groups += decay_groups(rest, config.weight_decay, prefix="decoder_", lr_ratio=1.0)
    return in_first_use_order(groups, segmenter)


def _build(config: SegmentTrainConfig, num_classes: int) -> Tuple[nn.Module, Dict[str, Any]]:
    """The segmenter and its backbone record; the encoder initialised from ``config.init`` when given."""
    variant, model_args, state = config.backbone, {}, None
    if config.init is not None:
        init_variant, model_args, state = read_backbone(config.init)
        if variant is not None and variant != init_variant:
            raise GlmixVizError(f"{config.init}: holds a {init_variant} backbone, not the requested {variant}")
        variant = init_variant
    if variant is None:
        raise GlmixVizError("no backbone: pass --backbone NAME or --init CHECKPOINT")
    try:
        segmenter = build_segmenter(variant, num_classes, decoder=config.decoder, model_args=model_args,
                                    decoder_args=config.decoder_args)
    except ValueError as error:
        raise GlmixVizError(str(error)) from None
    if state is not None:
        init_backbone(segmenter, state, source=str(config.init))
    if config.backbone_lr_ratio == 0:  # a frozen encoder: no gradients through it at all
        segmenter.encoder.requires_grad_(False)
    return segmenter, {"variant": variant, "model_args": model_args, "init": config.init}


def _check_ids(dataset: Split, labels: Optional[str], progress: bool, what: str, *, quiet: bool = False) -> List[str]:
    check = check_pairs(dataset, dataset.ids, labels, dataset.num_classes, progress=progress)
    for failure in [] if quiet else check.failures:
        print(f"{what}: left out {failure['id']}: {failure['reason']}", file=sys.stderr)
    if not check.ids:
        source = labels if labels is not None else f"the ground truth of {dataset.root}"
        raise DataError(f"{what}: no usable image of split {getattr(dataset, 'split', '?')!r} "
                        f"({len(check.failures)} left out; labels from {source})")
    return check.ids


def _val_ids(dataset: Split) -> List[str]:
    """The ids of a validation split that have ground truth (all or nothing: a split without masks is skipped)."""
    if not dataset.has_masks:
        return []
    ids = [image_id for image_id in dataset.ids if dataset.mask_path(image_id) is not None]
    return ids if len(ids) == len(dataset.ids) else []


@torch.no_grad()
def evaluate_segmenter(segmenter: nn.Module, dataset: Split, ids: Sequence[str], device: torch.device,
                       *, progress: bool = False, batch_size: int = 8) -> Dict[str, Any]:
    """mIoU of a segmenter on ground-truth ids, single scale at each image's own size.

    Returns:
        :meth:`~glmix_viz.scoring.segmentation.SegmentationMetric.compute`'s scores, plus ``loss``: the mean pixel
        cross-entropy of the predicted probabilities against the ground truth (255 ignored).
    """
    metric = SegmentationMetric(dataset.num_classes, list(dataset.class_names), background=dataset.background,
                                ignore=dataset.ignore)
    nll, pixels = 0.0, 0
    was_training = segmenter.training
    segmenter.eval()
    ids = list(ids)
    for start in tqdm(range(0, len(ids), batch_size), desc="validate", disable=not progress, leave=False,
                      file=sys.stderr):
        groups: Dict[Tuple[int, int], List[Tuple[np.ndarray, np.ndarray]]] = {}
        for image_id in ids[start:start + batch_size]:
            image = dataset.load_image(image_id)
            groups.setdefault(image.shape[:2], []).append((image, dataset.load_mask(image_id)))
        for group in groups.values():
            probs = predict_probs(segmenter, [image for image, _ in group], device=device)
            for (_, gt), image_probs in zip(group, probs):
                metric.update(image_probs.argmax(0).numpy().astype(np.uint8), gt)
                keep = torch.from_numpy(gt.reshape(-1) != IGNORE_INDEX)
                known = torch.from_numpy(gt.reshape(-1).astype(np.int64))[keep]
                picked = image_probs.reshape(image_probs.shape[0], -1)[:, keep]
                nll -= float(picked.gather(0, known[None]).clamp_min(1e-8).log().sum())
                pixels += int(known.numel())
    segmenter.train(was_training)
    return dict(metric.compute(), loss=nll / max(pixels, 1))


def _resume(out: Path, segmenter: nn.Module, optimizer: torch.optim.Optimizer, wanted: Dict[str, Any]) -> Progress:
    """Load ``out/last.*`` when it exists and fits (``wanted``: variant, decoder, class count); else start afresh.

    Raises:
        GlmixVizError: another run's checkpoints are in ``out`` (one line).
    """
    last = out / LAST_WEIGHTS
    if not last.is_file():
        start_log(out)
        return Progress()
    saved = read_config(last) or {}
    found = {"variant": (saved.get("backbone") or {}).get("variant"), "decoder": saved.get("decoder"),
             "num_classes": saved.get("num_classes")}
    if wanted != found:
        raise GlmixVizError(f"{last}: a different run ({found}) is in {out}; use another --out")
    segmenter.load_state_dict(read_safetensors(last)[0], strict=True)
    epoch, step = int(saved.get("epoch", 0)), int(saved.get("step", 0))
    state = read_state(out)
    if state is not None and state[1].epoch == epoch:
        load_state(state[0], state_path(out), optimizer)
        progress = state[1]
    else:  # a run killed between the two writes: the weights are newer than the optimiser state
        print(f"warning: the resume state in {out} does not match {last} (epoch {epoch}); the optimiser starts "
              "afresh", file=sys.stderr)
        history = state[1].history if state is not None else []
        progress = Progress(epoch, step, -1.0, [row for row in history if row["epoch"] <= epoch])
    progress.best = max([row["val_miou"] for row in progress.history if row.get("val_miou") is not None],
                        default=-1.0)
    print(f"resuming {out} after epoch {epoch}", file=sys.stderr)
    return progress


def _save(out: Path, segmenter: nn.Module, optimizer: torch.optim.Optimizer, meta: Dict[str, Any],
          progress: Progress, improved: bool) -> None:
    """The weights (``last``, and ``best`` when ``improved``) first, then the resume state and the log."""
    config = dict(meta, epoch=progress.epoch, step=progress.step,
                  metrics=progress.history[-1] if progress.history else {})
    save_segmenter(segmenter, out / LAST_WEIGHTS, config)
    if improved:
        save_segmenter(segmenter, out / BEST_WEIGHTS, config)
    save_progress(out, optimizer, progress)


def _loader(pairs: SegmentationPairs, config: SegmentTrainConfig, process: Process) -> torch.utils.data.DataLoader:
    sampler = EpochSampler(len(pairs), world=process.world, rank=process.rank, seed=config.seed)
    return torch.utils.data.DataLoader(
        pairs, batch_size=config.batch_size, sampler=sampler,
        drop_last=len(pairs) >= config.batch_size * process.world, num_workers=config.workers,
        persistent_workers=config.workers > 0, generator=torch.Generator().manual_seed(config.seed),
    )


def _epoch(model: nn.Module, loader: Any, optimizer: torch.optim.Optimizer, schedule: StepSchedule,
           progress: Progress, device: torch.device, config: SegmentTrainConfig, epoch: int) -> float:
    """One pass over the loader, advancing ``progress.step``; returns the mean loss."""
    model.train()
    if config.backbone_lr_ratio == 0:  # frozen: its norms keep their statistics too
        getattr(model, "module", model).encoder.eval()
    loader.sampler.set_epoch(epoch)
    use_amp = config.amp and device.type == "cuda"
    losses: List[float] = []
    start, seen = time.perf_counter(), 0
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not config.progress, leave=False,
               file=sys.stderr, total=min(len(loader), config.max_steps) if config.max_steps else len(loader))
    for index, (images, labels) in enumerate(bar):
        if config.max_steps and index >= config.max_steps:
            break
        lr = schedule.set(progress.step)
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            logits = model(images)
        loss = F.cross_entropy(logits.float(), labels, ignore_index=IGNORE_INDEX)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        progress.step += 1
        losses.append(float(loss.detach()))
        seen += images.shape[0]
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", img_s=f"{seen / (time.perf_counter() - start):.1f}",
                        lr=f"{lr:.2e}")
    bar.close()
    return float(np.mean(losses)) if losses else float("nan")


def _seed(seed: int, epoch: int, rank: int) -> None:
    """Seed torch and numpy for one epoch of one rank (dropout, drop-path): the same in a straight and a resumed run."""
    value = int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])
    torch.manual_seed(value)
    np.random.seed(value)


def _meta(config: SegmentTrainConfig, record: Dict[str, Any], dataset: Split, images: int) -> Dict[str, Any]:
    """What every checkpoint of the run records."""
    return {"backbone": {"variant": record["variant"], "model_args": record["model_args"]}, "init": record["init"],
            "decoder": config.decoder, "decoder_args": config.decoder_args, "num_classes": dataset.num_classes,
            "class_names": list(dataset.class_names), "input_size": config.input_size,
            "train": dict(asdict(config), split=getattr(dataset, "split", None), root=str(dataset.root),
                          images=images)}


def train_segmenter(config: SegmentTrainConfig, dataset: Split, val_dataset: Optional[Split] = None) -> Dict[str, Any]:
    """Train a segmenter on a split's label PNGs (see the module docstring).

    Args:
        config: the settings.
        dataset: the training split's reader (``ids``, ``load_image``, ``load_mask``, ``image_path``, ``mask_path``,
            ``class_names``, ``num_classes``, ``root``).
        val_dataset: a validation split's reader; scored each epoch when every id has ground truth.

    Returns:
        ``out``, ``epochs`` (finished), ``best_miou`` (None without validation), ``history``, ``left_out`` (ids whose
        labels were unusable), ``train_images``, ``rank`` (the process's rank under torchrun; only rank 0 has the
        history).

    Raises:
        DataError: no id has usable labels.
        GlmixVizError: bad settings, or another run's checkpoints in ``out``.
    """
    if config.input_size % 32 or config.input_size < 32:
        raise GlmixVizError(f"--input-size must be a positive multiple of 32, got {config.input_size}")
    process = start_process(config.device)
    rank, out = process.rank, Path(config.out)
    torch.manual_seed(config.seed + rank)  # the weights (DDP hands rank 0's to the others)
    np.random.seed(config.seed + rank)
    train_ids = _check_ids(dataset, config.labels, config.progress and rank == 0, "segment-train", quiet=rank != 0)
    val_ids = _val_ids(val_dataset) if val_dataset is not None else []
    if val_dataset is not None and not val_ids and rank == 0:
        print(f"note: split {getattr(val_dataset, 'split', '?')!r} lacks ground truth for some ids: no validation",
              file=sys.stderr)
    segmenter, record = _build(config, dataset.num_classes)
    segmenter.to(process.device)
    optimizer = create_adamw(param_groups(segmenter, config), lr=config.lr)
    out.mkdir(parents=True, exist_ok=True)
    progress = _resume(out, segmenter, optimizer, {"variant": record["variant"], "decoder": config.decoder,
                                                   "num_classes": dataset.num_classes})
    model = wrap_ddp(segmenter, process)
    augmentation = build_augmentation(config.input_size, tuple(config.scale_range))
    loader = _loader(SegmentationPairs(dataset, train_ids, config.labels, augmentation, seed=config.seed), config,
                     process)
    per_epoch = min(len(loader), config.max_steps) if config.max_steps else len(loader)
    schedule = poly_schedule(optimizer, per_epoch * config.epochs, config.warmup_steps)
    meta = _meta(config, record, dataset, len(train_ids))
    for epoch in range(progress.epoch, config.epochs):
        _seed(config.seed, epoch, rank)
        started = time.perf_counter()
        loss = _epoch(model, loader, optimizer, schedule, progress, process.device, config, epoch)
        if rank == 0:
            _finish_epoch(segmenter, optimizer, progress, meta, val_dataset, val_ids, config, epoch + 1, loss,
                          round(time.perf_counter() - started, 2), process.device)
        if process.world > 1:
            torch.distributed.barrier()
    stop_process(process)
    return {"out": str(out), "epochs": len(progress.history), "best_miou": progress.best if val_ids else None,
            "history": progress.history, "left_out": len(dataset.ids) - len(train_ids),
            "train_images": len(train_ids), "rank": rank}


def _finish_epoch(segmenter: nn.Module, optimizer: torch.optim.Optimizer, progress: Progress, meta: Dict[str, Any],
                  val_dataset: Optional[Split], val_ids: Sequence[str], config: SegmentTrainConfig, epoch: int, loss: float,
                  seconds: float, device: torch.device) -> None:
    """Rank 0 after an epoch: validate, log, save (``best`` when the mIoU improves, or every epoch without one)."""
    row: Dict[str, Any] = {"epoch": epoch, "train_loss": loss, "seconds": seconds}
    if val_ids:
        scores = evaluate_segmenter(segmenter, val_dataset, val_ids, device, progress=config.progress)
        row["val_miou"], row["val_loss"] = scores["miou"], scores["loss"]
    progress.history.append(row)
    progress.epoch = epoch
    score = row.get("val_miou", -1.0)
    improved = score > progress.best or not val_ids
    progress.best = max(progress.best, score)
    _save(Path(config.out), segmenter, optimizer, meta, progress, improved)
    print(f"epoch {epoch}/{config.epochs}: loss {loss:.4f}" + (f", val mIoU {100 * score:.2f}" if val_ids else "")
          + f" ({seconds} s)", file=sys.stderr)
