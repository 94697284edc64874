"""Multi-label classification training of GLNet on a VOC-layout data set: the loop behind ``train`` and ``finetune``.

What the loop does, in order:

* reads the image-level labels of a VOC-layout data set (real PASCAL VOC or the ``make-shapes`` set) through
  :class:`~glmix_viz.data.voc.VOCDataset`, resizes every image to a square ``input_size`` and, when the set fits the
  ``cache_gb`` budget, keeps the whole split in memory as uint8;
* augments on the training device, batch-wise: a per-image affine warp (flips, optional 90-degree rotations, zoom
  and shift) drawn from a seeded generator, so a run is a deterministic function of its seed (on the CPU) and a
  resumed run draws the same augmentations as an uninterrupted one;
* optimises BCE-with-logits with AdamW (weight decay on tensors of more than one dimension; ``slot_scale`` gets
  ``slot_scale_wd`` when given explicitly, the published recipe decays it with the rest), a linear warm-up and a
  per-step half-cosine, gradient clipping, and mixed precision (bf16) on CUDA;
* optionally adds a weakly supervised *slot MIL* loss: every slot of the chosen GLMix blocks (soft-clustered pixel
  features, before slot attention) is classified by a small linear head and the image's logit of a class is the
  maximum over slots, so a class present in the image must be carried by at least one slot and an absent class by
  none (image-level labels only; the heads live outside the model and are not shipped);
* validates each epoch (multi-label mAP, :func:`mean_average_precision`) and writes ``last.safetensors`` (and
  ``best.safetensors``) with :func:`~glmix_viz.models.loading.save_checkpoint`, plus ``last_state.pt``
  (optimiser, schedule, epoch; plain tensors and numbers, read back with ``weights_only=True``) to resume;
* runs unchanged under ``torchrun`` (DistributedDataParallel, a ``DistributedSampler`` per epoch, rank 0 writes).

Output folder: ``last.safetensors/.json``, ``best.safetensors/.json``, ``last_state.pt``, ``log.jsonl`` (one JSON line
per epoch) and ``train_config.json``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import timm
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

import glmix_viz.models  # noqa: F401  (registers the GLNet variants with timm)
from glmix_viz.data.voc import VOCDataset
from glmix_viz.errors import CheckpointError, DataError
from glmix_viz.images import IMAGENET_MEAN, IMAGENET_STD
from glmix_viz.models.registry import VARIANTS
from glmix_viz.models.tap import tap_infos
from glmix_viz.models.loading import default_device, load_model, load_state_dict, save_checkpoint
from glmix_viz.probe import GroupingProbe, glmix_block_names

__all__ = [
    "TrainConfig",
    "train",
    "average_precision",
    "mean_average_precision",
    "build_param_groups",
    "learning_rate_at",
    "augment_batch",
    "load_split",
    "predict_scores",
    "STATE_FILE",
]

STATE_FILE = "last_state.pt"
LOG_FILE = "log.jsonl"


@dataclass
class TrainConfig:
    """Every setting of a training run; stored in ``train_config.json`` and in each checkpoint's config.

    Attributes:
        data: root of a VOC-layout data set.
        out: output folder.
        model: registered GLNet variant.
        model_args: constructor overrides (e.g. ``{"num_slots": 9}``), recorded in the checkpoint.
        init: checkpoint to start from (fine-tuning); its classifier is replaced by a fresh multi-label head.
        train_split, val_split: split names (``val_split=""`` skips validation).
        epochs, batch_size: per-process batch size (DDP: global batch = batch_size x world size).
        lr: peak learning rate (AdamW).
        min_lr: final learning rate of the cosine.
        warmup_epochs: linear warm-up length, in epochs (fractions allowed).
        weight_decay: decay of tensors with more than one dimension.
        slot_scale_wd: decay of ``slot_scale`` when given; None keeps the published recipe (decayed with the rest
            when ``weight_decay_recipe`` is "official", not decayed when "ndim").
        weight_decay_recipe: "ndim" (only tensors of > 1 dim decay) or "official" (also ``slot_scale`` and learned
            slots, as the GLMix ImageNet recipe does); None: "official" for the published variants, "ndim" for
            ``glnet_tiny``.
        slot_scale_init: initial slot temperature tau of every GLMix block (None: the model's default C**-0.5).
        input_size: square training and validation side (None: the model's default cfg).
        grad_clip: max gradient norm (0: off).
        drop_path: stochastic depth rate (None: the recipe's value for the variant).
        augment: "shapes" (flips, 90-degree rotations, mild zoom and shift) or "standard" (horizontal flip,
            zoom 1-2.5x crops, shift) or "none".
        slot_mil_weight: weight of the slot MIL loss (0: off).
        slot_mil_blocks: GLMix block paths for the slot MIL loss (empty: the GLMix blocks of the deepest stage that
            has any).
        seed: seed of weights, sampling and augmentation.
        device: "cpu", "cuda", "cuda:1"... (None: CUDA if available).
        amp: bf16 autocast on CUDA.
        workers: data-loading processes (decoding and resizing).
        cache_gb: keep a split in memory as uint8 when it takes at most this many GB.
        max_minutes: stop (after a full epoch, with a checkpoint) once this much wall time has passed (0: no limit).
        stop_after_epoch: stop after this epoch (0: run all), keeping the schedule of ``epochs``: a run can be done in
            pieces, and a resumed run may be given another ``epochs`` (its cosine then ends there).
        resume: continue from ``out/last_state.pt`` when it exists.
        progress: show tqdm bars.
        threads: torch CPU threads (0: leave as is).
    """

    data: str
    out: str
    model: str = "glnet_tiny"
    model_args: Dict[str, Any] = field(default_factory=dict)
    init: Optional[str] = None
    train_split: str = "train"
    val_split: str = "val"
    epochs: int = 30
    batch_size: int = 64
    lr: float = 2e-3
    min_lr: float = 1e-5
    warmup_epochs: float = 1.0
    weight_decay: float = 0.05
    slot_scale_wd: Optional[float] = None
    weight_decay_recipe: Optional[str] = None
    slot_scale_init: Optional[float] = None
    input_size: Optional[int] = None
    grad_clip: float = 5.0
    drop_path: Optional[float] = None
    augment: str = "shapes"
    slot_mil_weight: float = 0.0
    slot_mil_blocks: List[str] = field(default_factory=list)
    seed: int = 0
    device: Optional[str] = None
    amp: bool = True
    workers: int = 2
    cache_gb: float = 4.0
    max_minutes: float = 0.0
    stop_after_epoch: int = 0
    resume: bool = True
    progress: bool = True
    threads: int = 0

    def __post_init__(self) -> None:
        if self.model not in VARIANTS:
            raise ValueError(f"unknown model {self.model!r}; known: {', '.join(VARIANTS)}")
        if self.augment not in ("shapes", "standard", "none"):
            raise ValueError(f"augment must be shapes, standard or none, got {self.augment!r}")
        if self.weight_decay_recipe is None:
            self.weight_decay_recipe = "official" if VARIANTS[self.model].official else "ndim"
        if self.weight_decay_recipe not in ("ndim", "official"):
            raise ValueError(f"weight_decay_recipe must be 'ndim' or 'official', got {self.weight_decay_recipe!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be positive")


# ----------------------------------------------------------------------------------------------------------- metrics
def average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Average precision of one class: the mean, over the positives, of the precision at each positive's rank.

    Ties are broken pessimistically (a negative with the same score ranks first), so the value does not depend on
    the input order.

    Args:
        scores: (N,) scores (higher = more confident).
        targets: (N,) 0/1 ground truth.

    Returns:
        AP in [0, 1]; NaN if there is no positive.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    targets = np.asarray(targets).reshape(-1) > 0.5
    if scores.shape != targets.shape:
        raise ValueError(f"scores {scores.shape} and targets {targets.shape} differ in shape")
    num_positive = int(targets.sum())
    if num_positive == 0:
        return float("nan")
    order = np.lexsort((targets, -scores))  # by descending score, negatives first among ties
    hits = targets[order]
    precision_at_rank = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision_at_rank[hits].sum() / num_positive)


def mean_average_precision(scores: np.ndarray, targets: np.ndarray) -> Tuple[float, np.ndarray]:
    """Multi-label mAP: the mean over classes (with at least one positive) of :func:`average_precision`.

    Args:
        scores: (N, K) scores.
        targets: (N, K) 0/1 labels.

    Returns:
        (mAP, per-class AP (K,), NaN for classes without positives).
    """
    scores = np.asarray(scores)
    targets = np.asarray(targets)
    if scores.ndim != 2 or scores.shape != targets.shape:
        raise ValueError(f"need (N, K) scores and targets of one shape, got {scores.shape} and {targets.shape}")
    per_class = np.array([average_precision(scores[:, k], targets[:, k]) for k in range(scores.shape[1])])
    valid = ~np.isnan(per_class)
    return (float(per_class[valid].mean()) if valid.any() else float("nan")), per_class


# -------------------------------------------------------------------------------------------------------------- data
class _ResizedSplit(torch.utils.data.Dataset):
    """Images of a VOC split resized to a square side, as uint8 (3, S, S) tensors, with multi-hot labels (K,)."""

    def __init__(self, voc: VOCDataset, size: int) -> None:
        self.voc = voc
        self.size = size

    def __len__(self) -> int:
        return len(self.voc.ids)

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, torch.Tensor]:
        import cv2

        image_id = self.voc.ids[index]
        image = self.voc.load_image(image_id)
        if image.shape[:2] != (self.size, self.size):
            shrink = max(image.shape[:2]) > self.size
            interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
            image = cv2.resize(image, (self.size, self.size), interpolation=interpolation)
        labels = self.voc.image_labels(image_id)
        return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1), torch.from_numpy(labels)


class LoadedSplit:
    """A split ready for training: either fully in memory or streamed through a DataLoader.

    Attributes:
        voc: the data set reader.
        size: square side of the images.
        images: (N, 3, S, S) uint8 when cached, else None.
        labels: (N, K) float32 multi-hot labels (always in memory).
    """

    def __init__(self, voc: VOCDataset, size: int, cache_gb: float, workers: int, progress: bool) -> None:
        self.voc = voc
        self.size = size
        self.workers = workers
        self.dataset = _ResizedSplit(voc, size)
        self.labels = torch.from_numpy(np.stack([voc.image_labels(i) for i in voc.ids])).float()
        self.images: Optional[torch.Tensor] = None
        if len(voc.ids) * 3 * size * size <= cache_gb * 1e9:
            loader = torch.utils.data.DataLoader(self.dataset, batch_size=64, num_workers=workers)
            chunks = []
            for images, _ in _maybe_tqdm(loader, progress, f"loading {voc.split}", len(loader)):
                chunks.append(images)
            self.images = torch.cat(chunks)

    def __len__(self) -> int:
        return len(self.labels)

    def batches(
        self, indices: Sequence[int], batch_size: int, drop_last: bool
    ) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        """Yield (uint8 images (B, 3, S, S), labels (B, K)) in the order of ``indices``."""
        indices = list(indices)
        stop = len(indices) - len(indices) % batch_size if drop_last else len(indices)
        if self.images is not None:
            for start in range(0, stop, batch_size):
                chosen = torch.as_tensor(indices[start:start + batch_size])
                yield self.images[chosen], self.labels[chosen]
            return
        loader = torch.utils.data.DataLoader(
            torch.utils.data.Subset(self.dataset, indices[:stop]), batch_size=batch_size, num_workers=self.workers,
            persistent_workers=False, pin_memory=torch.cuda.is_available(),
        )
        yield from loader


def load_split(root: str, split: str, size: int, *, cache_gb: float = 4.0, workers: int = 2,
               progress: bool = False) -> LoadedSplit:
    """Open a VOC-layout split for training or evaluation.

    Raises:
        DataError: missing folder or split, or a split without images.
    """
    voc = VOCDataset(root, split)
    if len(voc.ids) == 0:
        raise DataError(f"{root}: split {split!r} has no images")
    return LoadedSplit(voc, size, cache_gb, workers, progress)


def _maybe_tqdm(iterable: Any, enabled: bool, desc: str, total: Optional[int] = None) -> Any:
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True)


def normalize_batch(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float (B, 3, H, W) normalised with the ImageNet mean and std."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
    return (images.float() / 255.0 - mean) / std


def augment_batch(images: torch.Tensor, generator: torch.Generator, mode: str) -> torch.Tensor:
    """Random per-image affine warp of a normalised batch (flips, rotations by 90 degrees, zoom, shift).

    The parameters are drawn on the CPU from ``generator`` (so they are the same on every device) and applied with
    one ``grid_sample`` (bilinear, border padding).

    Args:
        images: (B, 3, H, W) float.
        generator: CPU generator.
        mode: "shapes" (h/v flips, 90-degree rotations, zoom 1-1.25x, shift up to 8%), "standard" (h flip, zoom
            1-2.5x with the crop kept inside the image) or "none".

    Returns:
        (B, 3, H, W) augmented images.
    """
    if mode == "none":
        return images
    batch = images.shape[0]
    uniform = torch.rand(batch, 6, generator=generator)
    flip_x = torch.where(uniform[:, 0] < 0.5, -1.0, 1.0)
    if mode == "shapes":
        flip_y = torch.where(uniform[:, 1] < 0.5, -1.0, 1.0)
        quarter_turns = (uniform[:, 2] * 4).floor().clamp(max=3)
        zoom = 1.0 + 0.25 * uniform[:, 3]
        max_shift = 0.08
    else:
        flip_y = torch.ones(batch)
        quarter_turns = torch.zeros(batch)
        zoom = 1.0 + 1.5 * uniform[:, 3]
        max_shift = None
    scale = 1.0 / zoom
    angle = quarter_turns * (math.pi / 2)
    cos, sin = torch.cos(angle).round(), torch.sin(angle).round()
    if max_shift is None:
        room = 1.0 - scale
        shift_x, shift_y = (2 * uniform[:, 4] - 1) * room, (2 * uniform[:, 5] - 1) * room
    else:
        shift_x, shift_y = (2 * uniform[:, 4] - 1) * max_shift, (2 * uniform[:, 5] - 1) * max_shift
    theta = torch.zeros(batch, 2, 3)
    theta[:, 0, 0] = cos * scale * flip_x
    theta[:, 0, 1] = -sin * scale * flip_y
    theta[:, 1, 0] = sin * scale * flip_x
    theta[:, 1, 1] = cos * scale * flip_y
    theta[:, 0, 2] = shift_x
    theta[:, 1, 2] = shift_y
    grid = F.affine_grid(theta.to(images.device, images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


# --------------------------------------------------------------------------------------------------------- optimiser
def build_param_groups(
    modules: Sequence[nn.Module], weight_decay: float, slot_scale_wd: Optional[float] = None, recipe: str = "ndim"
) -> List[Dict[str, Any]]:
    """AdamW parameter groups.

    Tensors with more than one dimension decay with ``weight_decay``; biases, norms and other 1-dim tensors never
    decay. ``slot_scale`` (0-dim) and learned ``init_slots``: ``slot_scale_wd`` if given, else ``weight_decay`` under
    the "official" recipe (as the GLMix ImageNet training does) and 0 under "ndim".

    Returns:
        Up to three groups, each with ``params``, ``weight_decay`` and ``name``.
    """
    slot_decay = slot_scale_wd if slot_scale_wd is not None else (weight_decay if recipe == "official" else 0.0)
    groups: Dict[str, Dict[str, Any]] = {
        "decay": dict(params=[], weight_decay=weight_decay, name="decay"),
        "no_decay": dict(params=[], weight_decay=0.0, name="no_decay"),
        "slots": dict(params=[], weight_decay=slot_decay, name="slots"),
    }
    seen = set()
    for module in modules:
        for name, param in module.named_parameters():
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            if name.endswith("slot_scale") or name.endswith("init_slots"):
                groups["slots"]["params"].append(param)
            elif param.ndim > 1:
                groups["decay"]["params"].append(param)
            else:
                groups["no_decay"]["params"].append(param)
    return [group for group in groups.values() if group["params"]]


def learning_rate_at(step: int, total_steps: int, warmup_steps: int, peak: float, floor: float) -> float:
    """Linear warm-up from 0 to ``peak`` over ``warmup_steps``, then a half-cosine from ``peak`` to ``floor``."""
    if warmup_steps > 0 and step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
    progress = min(max(progress, 0.0), 1.0)
    return floor + 0.5 * (peak - floor) * (1.0 + math.cos(math.pi * progress))


# ------------------------------------------------------------------------------------------------------------- model
def _model_overrides(config: TrainConfig) -> Dict[str, Any]:
    overrides = dict(config.model_args)
    if config.slot_scale_init is not None:
        overrides["slot_scale_init"] = float(config.slot_scale_init)
    return overrides


def _tupleize(args: Dict[str, Any]) -> Dict[str, Any]:
    return {key: tuple(value) if isinstance(value, list) else value for key, value in args.items()}


def build_model(config: TrainConfig, num_classes: int) -> Tuple[nn.Module, Dict[str, Any]]:
    """The GLNet to train and the constructor overrides to record in its checkpoints.

    From scratch: ``timm.create_model(config.model, num_classes=..., **overrides)``. With ``config.init``: the weights
    of that checkpoint (official ``.pth`` or glmix-viz ``.safetensors``), its classifier replaced by a fresh
    ``num_classes`` head.
    """
    overrides = _model_overrides(config)
    drop_path = config.drop_path if config.drop_path is not None else VARIANTS[config.model].drop_path
    if config.init:
        source = load_model(config.init, device="cpu")
        variant = source.checkpoint_config["variant"]
        if variant != config.model:
            raise CheckpointError(f"{config.init}: holds a {variant}, but the run asks for {config.model}")
        recorded = {k: v for k, v in source.checkpoint_config.get("model_args", {}).items() if k != "num_classes"}
        overrides = dict(recorded, **overrides)
        model = timm.create_model(variant, num_classes=num_classes, drop_path_rate=drop_path, **_tupleize(overrides))
        state = {k: v for k, v in load_state_dict(config.init).items() if not k.startswith(("head.", "tklb_aux_head."))}
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or any(not key.startswith(("head.", "tklb_aux_head.")) for key in missing):
            raise CheckpointError(
                f"{config.init}: does not fit {variant} (missing {missing[:3]}, unexpected {unexpected[:3]})")
        if config.slot_scale_init is not None:
            with torch.no_grad():
                for name, param in model.named_parameters():
                    if name.endswith("slot_scale"):
                        param.fill_(config.slot_scale_init)
    else:
        model = timm.create_model(config.model, num_classes=num_classes, drop_path_rate=drop_path,
                                  **_tupleize(overrides))
    return model, overrides


def _default_slot_mil_blocks(model: nn.Module) -> List[str]:
    names = glmix_block_names(model)
    if not names:
        return []
    deepest = max(int(name.split(".")[1]) for name in names)
    return [name for name in names if int(name.split(".")[1]) == deepest]


class SlotMILHeads(nn.Module):
    """One linear classifier per chosen GLMix block, applied to every slot; the image logit is the max over slots."""

    def __init__(self, model: nn.Module, blocks: Sequence[str], num_classes: int) -> None:
        super().__init__()
        infos = tap_infos(model)
        self.blocks = list(blocks)
        self.heads = nn.ModuleList()
        for name in self.blocks:
            if name not in infos:
                raise ValueError(f"{name!r} is not a GLMix block of the model")
            dim = infos[name].width
            self.heads.append(nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, num_classes)))

    def forward(self, probe: GroupingProbe) -> List[torch.Tensor]:
        """Per block, (B, K) image logits = max over slots of the slot logits."""
        return [head(probe[name].slots_in.float()).amax(dim=1) for name, head in zip(self.blocks, self.heads)]


# --------------------------------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def predict_scores(model: nn.Module, split: LoadedSplit, device: torch.device, batch_size: int = 128,
                   amp: bool = True) -> Tuple[np.ndarray, np.ndarray]:
    """Sigmoid scores (N, K) of every image of a split, and its labels (N, K)."""
    was_training = model.training
    model.eval()
    scores = []
    for images, _ in split.batches(range(len(split)), batch_size, drop_last=False):
        inputs = normalize_batch(images.to(device, non_blocking=True))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda"):
            logits = model(inputs)
        scores.append(torch.sigmoid(logits.float()).cpu())
    model.train(was_training)
    return torch.cat(scores).numpy(), split.labels.numpy()


# ------------------------------------------------------------------------------------------------------ distribution
def _distributed() -> Tuple[int, int, int]:
    """(rank, world size, local rank) from the torchrun environment; (0, 1, 0) when not distributed."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0
    return int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0"))


# --------------------------------------------------------------------------------------------------------- the loop
def _save_state(path: Path, optimizer: torch.optim.Optimizer, aux: Optional[nn.Module], epoch: int, step: int,
                best: float, history: List[Dict[str, Any]]) -> None:
    state = {
        "optimizer": optimizer.state_dict(),
        "epoch": torch.tensor(epoch),
        "step": torch.tensor(step),
        "best_map": torch.tensor(best),
        "history_json": json.dumps(history),
    }
    if aux is not None:
        state["aux"] = aux.state_dict()
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _config_record(config: TrainConfig) -> Dict[str, Any]:
    record = dataclasses.asdict(config)
    for key in ("out", "progress", "resume", "device", "workers", "threads", "cache_gb", "stop_after_epoch",
                "max_minutes"):
        record.pop(key, None)
    return record


def train(config: TrainConfig) -> Dict[str, Any]:
    """Train (or resume) a run; return its summary (epochs done, final and best validation mAP, timing).

    Raises:
        DataError: bad data folder or splits.
        CheckpointError: unreadable ``init`` checkpoint or a ``last_state.pt`` that does not fit the run.
    """
    rank, world, local_rank = _distributed()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    if world > 1 and torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = default_device(config.device)
    is_main = rank == 0
    show = config.progress and is_main
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)

    state_path = out / STATE_FILE
    if config.resume and config.stop_after_epoch and state_path.is_file():
        done = torch.load(state_path, map_location="cpu", weights_only=True)
        if int(done["epoch"]) >= config.stop_after_epoch:  # nothing to do in this piece: skip loading the data
            history = json.loads(done["history_json"])
            if is_main:
                print(f"{out}: already at epoch {int(done['epoch'])} (--stop-after-epoch {config.stop_after_epoch})")
            return {"epochs_done": int(done["epoch"]), "final": history[-1] if history else {},
                    "best_val_map": float(done["best_map"]), "seconds": 0.0, "out": str(out)}

    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    probe_model = timm.create_model(config.model, num_classes=0, **_tupleize(_model_overrides(config))) \
        if not config.init else None
    size = config.input_size or (probe_model.pretrained_cfg["input_size"][-1] if probe_model is not None else 224)
    del probe_model
    train_set = load_split(config.data, config.train_split, size, cache_gb=config.cache_gb, workers=config.workers,
                           progress=show)
    val_set = load_split(config.data, config.val_split, size, cache_gb=config.cache_gb, workers=config.workers,
                         progress=show) if config.val_split else None
    class_names = list(train_set.voc.class_names[1:])
    num_classes = len(class_names)

    torch.manual_seed(config.seed)
    model, overrides = build_model(config, num_classes)
    model.to(device)
    aux = None
    if config.slot_mil_weight > 0:
        blocks = config.slot_mil_blocks or _default_slot_mil_blocks(model)
        if not blocks:
            raise ValueError(f"{config.model} has no GLMix block for the slot MIL loss")
        config.slot_mil_blocks = list(blocks)
        aux = SlotMILHeads(model, blocks, num_classes).to(device)
    optimizer = torch.optim.AdamW(
        build_param_groups([model] + ([aux] if aux is not None else []), config.weight_decay, config.slot_scale_wd,
                           config.weight_decay_recipe),
        lr=config.lr, betas=(0.9, 0.999),
    )

    steps_per_epoch = len(train_set) // (config.batch_size * world)
    if steps_per_epoch == 0:
        raise DataError(f"{config.data}: {len(train_set)} training images are fewer than one batch "
                        f"({config.batch_size} x {world} processes)")
    total_steps = steps_per_epoch * config.epochs
    warmup_steps = int(round(config.warmup_epochs * steps_per_epoch))

    start_epoch, step, best_map, history = 0, 0, -1.0, []
    if config.resume and state_path.is_file() and (out / "last.safetensors").is_file():
        try:
            state = torch.load(state_path, map_location="cpu", weights_only=True)
            weights = load_state_dict(out / "last.safetensors")
            model.load_state_dict(weights, strict=True)
            optimizer.load_state_dict(state["optimizer"])
            if aux is not None and "aux" in state:
                aux.load_state_dict(state["aux"])
        except (RuntimeError, KeyError, ValueError) as error:
            raise CheckpointError(f"{state_path}: cannot resume this run ({str(error).splitlines()[0][:160]}); "
                                  "use another --out or --no-resume") from None
        start_epoch, step = int(state["epoch"]), int(state["step"])
        best_map = float(state["best_map"])
        history = json.loads(state["history_json"])
        if is_main:
            print(f"resuming {out} at epoch {start_epoch + 1}/{config.epochs}", flush=True)
    elif is_main:
        (out / LOG_FILE).write_text("")

    record = _config_record(config)
    if is_main:
        (out / "train_config.json").write_text(json.dumps(dict(record, input_size=size), indent=2) + "\n")
    train_model: nn.Module = model
    train_aux: Optional[nn.Module] = aux
    if world > 1:
        device_ids = [device.index] if device.type == "cuda" else None
        train_model = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
        if aux is not None:
            train_aux = nn.parallel.DistributedDataParallel(aux, device_ids=device_ids)
    sampler = torch.utils.data.DistributedSampler(
        range(len(train_set)), num_replicas=world, rank=rank, shuffle=True, seed=config.seed, drop_last=True)
    use_amp = config.amp and device.type == "cuda"
    probe = GroupingProbe(model, blocks=config.slot_mil_blocks, detach=False) if aux is not None else None

    started = time.perf_counter()
    summary: Dict[str, Any] = {}
    for epoch in range(start_epoch, config.epochs):
        if config.stop_after_epoch and epoch >= config.stop_after_epoch:
            if is_main:
                print(f"stopping after epoch {epoch} as asked (--stop-after-epoch); run again without it to go on",
                      flush=True)
            break
        model.train()
        sampler.set_epoch(epoch)
        generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch * 1_009 + rank)
        epoch_start = time.perf_counter()
        seen, loss_sum, mil_sum = 0, 0.0, 0.0
        bar = _maybe_tqdm(train_set.batches(list(iter(sampler)), config.batch_size, drop_last=True), show,
                          f"epoch {epoch + 1}/{config.epochs}", steps_per_epoch)
        for images, labels in bar:
            lr = learning_rate_at(step, total_steps, warmup_steps, config.lr, config.min_lr)
            for group in optimizer.param_groups:
                group["lr"] = lr
            inputs = augment_batch(normalize_batch(images.to(device, non_blocking=True)), generator, config.augment)
            labels = labels.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                if probe is not None:
                    with probe:
                        logits = train_model(inputs)
                        mil_logits = train_aux(probe)
                        probe.clear()
                else:
                    logits = train_model(inputs)
            loss = F.binary_cross_entropy_with_logits(logits.float(), labels)
            mil_loss = torch.zeros((), device=device)
            if probe is not None:
                mil_loss = sum(F.binary_cross_entropy_with_logits(m.float(), labels) for m in mil_logits)
                mil_loss = mil_loss / len(mil_logits)
                loss_total = loss + config.slot_mil_weight * mil_loss
            else:
                loss_total = loss
            optimizer.zero_grad(set_to_none=True)
            loss_total.backward()
            if config.grad_clip > 0:
                params = [p for group in optimizer.param_groups for p in group["params"]]
                torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
            optimizer.step()
            step += 1
            seen += images.shape[0]
            loss_sum += float(loss.detach()) * images.shape[0]
            mil_sum += float(mil_loss.detach()) * images.shape[0]
            if show:
                rate = seen * world / max(time.perf_counter() - epoch_start, 1e-9)
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}", img_s=f"{rate:.0f}", lr=f"{lr:.2e}")
        epoch_seconds = time.perf_counter() - epoch_start
        entry: Dict[str, Any] = {
            "epoch": epoch + 1, "step": step, "train_loss": loss_sum / max(seen, 1),
            "images_per_s": seen * world / max(epoch_seconds, 1e-9), "seconds": epoch_seconds,
        }
        if aux is not None:
            entry["slot_mil_loss"] = mil_sum / max(seen, 1)
        entry["slot_scale"] = [round(float(p.detach()), 4) for n, p in model.named_parameters()
                               if n.endswith("slot_scale")]
        if world > 1:
            dist.barrier()
        if is_main:
            if val_set is not None:
                scores, targets = predict_scores(model, val_set, device, amp=config.amp)
                entry["val_map"], per_class = mean_average_precision(scores, targets)
                entry["val_ap"] = {name: round(float(ap), 4) for name, ap in zip(class_names, per_class)}
            history.append(entry)
            current = entry.get("val_map", -entry["train_loss"])
            extra = {"train": dict(record, input_size=size, epoch=epoch + 1), "input_size": [3, size, size],
                     "metrics": {k: entry[k] for k in ("val_map", "train_loss") if k in entry}}
            save_checkpoint(model, out / "last.safetensors", variant=config.model, model_args=overrides,
                            class_names=class_names, extra=extra)
            if current > best_map:
                best_map = current
                save_checkpoint(model, out / "best.safetensors", variant=config.model, model_args=overrides,
                                class_names=class_names, extra=extra)
            _save_state(state_path, optimizer, aux, epoch + 1, step, best_map, history)
            with open(out / LOG_FILE, "a") as handle:
                handle.write(json.dumps(entry) + "\n")
            message = f"epoch {epoch + 1}/{config.epochs} loss {entry['train_loss']:.4f}"
            if "val_map" in entry:
                message += f" val mAP {entry['val_map']:.4f}"
            print(message + f" ({entry['images_per_s']:.0f} img/s, {epoch_seconds:.1f} s)", flush=True)
        if world > 1:
            dist.barrier()
        if config.max_minutes > 0 and time.perf_counter() - started > 60 * config.max_minutes:
            if is_main:
                print(f"stopping after epoch {epoch + 1}: time limit of {config.max_minutes} min reached", flush=True)
            break
    if history:
        summary = {"epochs_done": history[-1]["epoch"], "final": history[-1], "best_val_map": best_map,
                   "seconds": time.perf_counter() - started, "out": str(out)}
    if world > 1:
        dist.destroy_process_group()
    return summary
