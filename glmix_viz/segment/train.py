"""Training the segmenter on label PNGs: the loop behind ``glmix-viz segment-train``.

* Loss: cross-entropy, label 255 ignored. Optimiser: AdamW, the encoder at ``lr * backbone_lr_ratio``, the decoder at
  ``lr``; 1-dim tensors (norms, biases, slot temperatures) never decay. Schedule: linear warm-up, then the poly rule
  ``lr * (1 - t / T) ** 0.9`` over all steps ``T``.
* Data: :mod:`glmix_viz.segment.data` (ids with bad labels reported and left out; albumentations augmentation).
* Each epoch: ``OUT/last.safetensors`` (+ ``last.json``, ``last.state.pt``: optimiser and counters, read back with
  ``weights_only=True``); with ground truth on the validation split, mIoU at each image's own size
  (:class:`~glmix_viz.pseudo.metrics.SegmentationMetric`) and ``best.safetensors`` when it improves (without it,
  ``best`` is the last epoch); ``history.json``. A rerun in the same ``OUT`` resumes after the last finished epoch.
* Runs unchanged under ``torchrun`` (DistributedDataParallel, a ``DistributedSampler``; rank 0 validates and writes);
  bf16 autocast on CUDA.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from glmix_viz.errors import DataError, GlmixVizError
from glmix_viz.train.setup import launcher_ranks

__all__ = ["SegmentTrainConfig", "evaluate_segmenter", "poly_learning_rate", "train_segmenter"]

IGNORE_INDEX = 255


@dataclass
class SegmentTrainConfig:
    """Settings of :func:`train_segmenter`.

    Attributes:
        out: run folder (checkpoints, history); a rerun resumes in it.
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
        workers: data loader processes.
        seed: seeds torch, numpy and the augmentation.
        device: ``cpu``, ``cuda`` ... (default: CUDA when available).
        amp: bf16 autocast on CUDA.
        progress: tqdm bars.
    """

    out: str
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
    workers: int = 2
    seed: int = 0
    device: Optional[str] = None
    amp: bool = True
    progress: bool = True


def poly_learning_rate(step: int, total_steps: int, peak: float, warmup_steps: int = 0, power: float = 0.9) -> float:
    """Linear warm-up to ``peak`` over ``warmup_steps``, then ``peak * (1 - step / total_steps) ** power``."""
    if warmup_steps > 0 and step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    return peak * max(0.0, 1.0 - step / max(total_steps, 1)) ** power


def _param_groups(segmenter: nn.Module, config: SegmentTrainConfig) -> List[Dict[str, Any]]:
    groups: Dict[Tuple[str, bool], Dict[str, Any]] = {}
    for name, param in segmenter.named_parameters():
        if not param.requires_grad:
            continue
        part = "encoder" if name.startswith("encoder.") else "decoder"
        decay = param.ndim > 1
        ratio = config.backbone_lr_ratio if part == "encoder" else 1.0
        name = f"{part}_{'decay' if decay else 'no_decay'}"
        group = groups.setdefault((part, decay), dict(params=[], weight_decay=config.weight_decay if decay else 0.0,
                                                      lr_ratio=ratio, name=name))
        group["params"].append(param)
    return list(groups.values())


def _build(config: SegmentTrainConfig, num_classes: int) -> Tuple[nn.Module, Dict[str, Any]]:
    """The segmenter and its backbone record; the encoder initialised from ``config.init`` when given."""
    from glmix_viz.segment.model import build_segmenter, init_backbone, read_backbone

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


def _check_ids(dataset: Any, labels: Optional[str], progress: bool, what: str, *, quiet: bool = False) -> List[str]:
    from glmix_viz.segment.data import check_pairs

    check = check_pairs(dataset, dataset.ids, labels, dataset.num_classes, progress=progress)
    for failure in [] if quiet else check.failures:
        print(f"{what}: left out {failure['id']}: {failure['reason']}", file=sys.stderr)
    if not check.ids:
        source = labels if labels is not None else f"the ground truth of {dataset.root}"
        raise DataError(f"{what}: no usable image of split {getattr(dataset, 'split', '?')!r} "
                        f"({len(check.failures)} left out; labels from {source})")
    return check.ids


def _val_ids(dataset: Any) -> List[str]:
    """The ids of a validation split that have ground truth (all or nothing: a split without masks is skipped)."""
    ids = [image_id for image_id in dataset.ids if dataset.mask_path(image_id) is not None]
    return ids if len(ids) == len(dataset.ids) else []


@torch.no_grad()
def evaluate_segmenter(segmenter: nn.Module, dataset: Any, ids: Sequence[str], device: torch.device,
                       *, progress: bool = False, batch_size: int = 8) -> Dict[str, Any]:
    """mIoU of a segmenter on ground-truth ids, single scale at each image's own size.

    Returns:
        :meth:`~glmix_viz.pseudo.metrics.SegmentationMetric.compute`'s scores, plus ``loss``: the mean pixel
        cross-entropy of the predicted probabilities against the ground truth (255 ignored).
    """
    from tqdm import tqdm

    from glmix_viz.pseudo.metrics import SegmentationMetric
    from glmix_viz.segment.predict import predict_probs

    metric = SegmentationMetric(dataset.num_classes, list(dataset.class_names))
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


def _resume(out: Path, segmenter: nn.Module, optimizer: torch.optim.Optimizer, record: Dict[str, Any],
            config: SegmentTrainConfig) -> Tuple[int, int, float, List[Dict[str, Any]]]:
    """Load ``out/last.*`` when it exists and fits; return (epoch, step, best mIoU, history)."""
    from glmix_viz.models.loading import read_checkpoint_config
    from glmix_viz.segment.model import _read_safetensors

    last = out / "last.safetensors"
    if not last.is_file():
        return 0, 0, -1.0, []
    saved = read_checkpoint_config(last) or {}
    wanted = {"variant": record["variant"], "decoder": config.decoder, "num_classes": saved.get("num_classes")}
    found = {"variant": (saved.get("backbone") or {}).get("variant"), "decoder": saved.get("decoder"),
             "num_classes": saved.get("num_classes")}
    if wanted != found:
        raise GlmixVizError(f"{last}: a different run ({found}) is in {out}; use another --out")
    segmenter.load_state_dict(_read_safetensors(last), strict=True)
    epoch, step = int(saved.get("epoch", 0)), int(saved.get("step", 0))
    state_path = out / "last.state.pt"
    state = torch.load(state_path, map_location="cpu", weights_only=True) if state_path.is_file() else {}
    if state.get("epoch") == epoch:
        optimizer.load_state_dict(state["optimizer"])
    else:  # a run killed between the two writes: the weights are newer than the optimiser state
        print(f"warning: {state_path} does not match {last} (epoch {epoch}); the optimiser starts afresh",
              file=sys.stderr)
    history_path = out / "history.json"
    history = json.loads(history_path.read_text()) if history_path.is_file() else []
    history = [row for row in history if row["epoch"] <= epoch]
    best = max([row["val_miou"] for row in history if row.get("val_miou") is not None], default=-1.0)
    print(f"resuming {out} after epoch {epoch}", file=sys.stderr)
    return epoch, step, best, history


def _save(out: Path, segmenter: nn.Module, optimizer: torch.optim.Optimizer, meta: Dict[str, Any],
          epoch: int, step: int, improved: bool, history: List[Dict[str, Any]]) -> None:
    import io

    from glmix_viz.files import save_bytes_atomic
    from glmix_viz.segment.model import save_segmenter

    config = dict(meta, epoch=epoch, step=step, metrics=history[-1] if history else {})
    save_segmenter(segmenter, out / "last.safetensors", config)
    buffer = io.BytesIO()
    torch.save({"optimizer": optimizer.state_dict(), "epoch": epoch, "step": step}, buffer)
    save_bytes_atomic(out / "last.state.pt", buffer.getvalue())
    if improved:
        save_segmenter(segmenter, out / "best.safetensors", config)
    save_bytes_atomic(out / "history.json", (json.dumps(history, indent=2) + "\n").encode())


def _loader(pairs: Any, config: SegmentTrainConfig, world: int, rank: int) -> torch.utils.data.DataLoader:
    sampler = None
    if world > 1:
        sampler = torch.utils.data.distributed.DistributedSampler(pairs, num_replicas=world, rank=rank,
                                                                  seed=config.seed, drop_last=True)
    drop_last = len(pairs) >= config.batch_size * world
    return torch.utils.data.DataLoader(
        pairs, batch_size=config.batch_size, shuffle=sampler is None, sampler=sampler, drop_last=drop_last,
        num_workers=config.workers, persistent_workers=config.workers > 0,
        generator=torch.Generator().manual_seed(config.seed), worker_init_fn=_seed_worker,
    )


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    import random

    random.seed(seed)


def _epoch(model: nn.Module, loader: Any, optimizer: torch.optim.Optimizer, state: Dict[str, Any],
           device: torch.device, config: SegmentTrainConfig, epoch: int) -> float:
    """One pass over the loader; returns the mean loss. ``state`` holds ``step`` and ``total_steps``."""
    from tqdm import tqdm

    model.train()
    if config.backbone_lr_ratio == 0:  # frozen: its norms keep their statistics too
        getattr(model, "module", model).encoder.eval()
    if hasattr(loader.sampler, "set_epoch"):
        loader.sampler.set_epoch(epoch)
    use_amp = config.amp and device.type == "cuda"
    losses: List[float] = []
    start, seen = time.perf_counter(), 0
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not config.progress, leave=False,
               file=sys.stderr, total=min(len(loader), config.max_steps) if config.max_steps else len(loader))
    for index, (images, labels) in enumerate(bar):
        if config.max_steps and index >= config.max_steps:
            break
        lr = poly_learning_rate(state["step"], state["total_steps"], config.lr, config.warmup_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr * group["lr_ratio"]
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            logits = model(images)
        loss = F.cross_entropy(logits.float(), labels, ignore_index=IGNORE_INDEX)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        state["step"] += 1
        losses.append(float(loss.detach()))
        seen += images.shape[0]
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", img_s=f"{seen / (time.perf_counter() - start):.1f}",
                        lr=f"{lr:.2e}")
    bar.close()
    return float(np.mean(losses)) if losses else float("nan")


def _setup(config: SegmentTrainConfig) -> Tuple[int, int, torch.device]:
    from glmix_viz.models.loading import default_device

    rank, world, local_rank = launcher_ranks()
    if world > 1:
        import torch.distributed as dist

        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
        device = torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    else:
        device = default_device(config.device)
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)
    torch.manual_seed(config.seed + rank)
    np.random.seed(config.seed + rank)
    return rank, world, device


def train_segmenter(config: SegmentTrainConfig, dataset: Any, val_dataset: Optional[Any] = None) -> Dict[str, Any]:
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
    from glmix_viz.segment.data import SegmentationPairs, build_augmentation

    if config.input_size % 32 or config.input_size < 32:
        raise GlmixVizError(f"--input-size must be a positive multiple of 32, got {config.input_size}")
    rank, world, device = _setup(config)
    out = Path(config.out)
    train_ids = _check_ids(dataset, config.labels, config.progress and rank == 0, "segment-train", quiet=rank != 0)
    val_ids = _val_ids(val_dataset) if val_dataset is not None else []
    if val_dataset is not None and not val_ids and rank == 0:
        print(f"note: split {getattr(val_dataset, 'split', '?')!r} lacks ground truth for some ids: no validation",
              file=sys.stderr)
    segmenter, record = _build(config, dataset.num_classes)
    segmenter.to(device)
    optimizer = torch.optim.AdamW(_param_groups(segmenter, config), lr=config.lr)
    start_epoch, step, best, history = _resume(out, segmenter, optimizer, record, config)
    model: nn.Module = segmenter
    if world > 1:
        model = nn.parallel.DistributedDataParallel(segmenter, device_ids=[device.index] if device.index is not None
                                                    else None)
    pairs = SegmentationPairs(dataset, train_ids, config.labels, build_augmentation(config.input_size,
                                                                                     tuple(config.scale_range)))
    loader = _loader(pairs, config, world, rank)
    per_epoch = min(len(loader), config.max_steps) if config.max_steps else len(loader)
    state = {"step": step, "total_steps": per_epoch * config.epochs}
    meta = {"backbone": {"variant": record["variant"], "model_args": record["model_args"]}, "init": record["init"],
            "decoder": config.decoder, "decoder_args": config.decoder_args, "num_classes": dataset.num_classes,
            "class_names": list(dataset.class_names), "input_size": config.input_size,
            "train": dict(asdict(config), split=getattr(dataset, "split", None), root=str(dataset.root),
                          images=len(train_ids))}
    out.mkdir(parents=True, exist_ok=True)
    for epoch in range(start_epoch, config.epochs):
        started = time.perf_counter()
        loss = _epoch(model, loader, optimizer, state, device, config, epoch)
        seconds = round(time.perf_counter() - started, 2)
        row: Dict[str, Any] = {"epoch": epoch + 1, "train_loss": loss, "seconds": seconds}
        if rank == 0:
            if val_ids:
                scores = evaluate_segmenter(segmenter, val_dataset, val_ids, device, progress=config.progress)
                row["val_miou"], row["val_loss"] = scores["miou"], scores["loss"]
            history.append(row)
            score = row.get("val_miou", -1.0)
            improved = score > best or not val_ids
            best = max(best, score)
            _save(out, segmenter, optimizer, meta, epoch + 1, state["step"], improved, history)
            print(f"epoch {epoch + 1}/{config.epochs}: loss {loss:.4f}" + (f", val mIoU {100 * score:.2f}" if val_ids
                  else "") + f" ({row['seconds']} s)", file=sys.stderr)
        if world > 1:
            torch.distributed.barrier()
    if world > 1:
        torch.distributed.destroy_process_group()
    return {"out": str(out), "epochs": len(history), "best_miou": best if val_ids else None, "history": history,
            "left_out": len(dataset.ids) - len(train_ids), "train_images": len(train_ids), "rank": rank}
