"""Multi-label classification training of GLNet on image-level labels: the loop behind ``train`` and ``finetune``.

What the loop does, in order:

* reads the image-level labels of a data set (a labelled or segmentation folder, PASCAL VOC, COCO, the
  ``make-shapes`` set: any :class:`~glmix_viz.data.base.Split` of :func:`~glmix_viz.data.registry.open_split`),
  resizes every image to a square ``input_size`` and, when the set fits the
  ``cache_gb`` budget, keeps the whole split in memory as uint8;
* augments on the training device, batch-wise: a per-image affine warp (flips, optional 90-degree rotations, zoom
  and shift) drawn from a seeded generator, so a run is a deterministic function of its seed (on the CPU) and a
  resumed run draws the same augmentations as an uninterrupted one;
* optimises BCE-with-logits with AdamW (timm's ``create_optimizer_v2`` and weight-decay filter: tensors of more than
  one dimension decay; ``slot_scale`` gets ``slot_scale_wd`` when given explicitly, the published recipe decays it
  with the rest), a linear warm-up and a per-step half-cosine (timm's ``CosineLRScheduler``), gradient clipping, and
  mixed precision (bf16) on CUDA;
* optionally adds a weakly supervised *slot MIL* loss: every slot of the chosen GLMix blocks (soft-clustered pixel
  features, before slot attention) is classified by a small linear head and the image's logit of a class is the
  maximum over slots, so a class present in the image must be carried by at least one slot and an absent class by
  none (image-level labels only; the heads live outside the model and are not shipped);
* optionally adds class-free *grouping losses* on the slot weights of chosen GLMix blocks (all off by default):
  a bilateral Potts loss on the dispatch weights, the pixel-assignment and slot-usage entropies, and the colour
  reconstruction through the slots (:mod:`glmix_viz.train.losses`); each term is shown on the progress bar and
  logged per epoch;
* validates each epoch (multi-label mAP, :func:`glmix_viz.scoring.classification.mean_average_precision`) and
  writes ``last.safetensors`` (and ``best.safetensors``) with :func:`~glmix_viz.models.loading.save_checkpoint`,
  plus ``last_state.pt`` (optimiser, schedule, epoch; plain tensors and numbers, read back with ``weights_only=True``) to resume
  (:mod:`glmix_viz.runtime.resume`, the scheme shared with the segmenter's loop);
* runs unchanged under ``torchrun`` (DistributedDataParallel, a ``DistributedSampler`` per epoch, rank 0 writes).

Output folder: ``last.safetensors/.json``, ``best.safetensors/.json``, ``last_state.pt``, ``log.jsonl`` (one JSON line
per epoch) and ``train_config.json``.

Modules: :mod:`~glmix_viz.train.config` (settings, file names), :mod:`~glmix_viz.train.data` (splits,
augmentation), :mod:`~glmix_viz.train.model`, :mod:`~glmix_viz.train.losses`,
:mod:`~glmix_viz.train.setup` (run set-up: parameter groups, optimiser, schedule,
DDP; the process is :mod:`glmix_viz.runtime.distributed`'s),
:mod:`~glmix_viz.train.resume`, :mod:`~glmix_viz.train.epoch` (one epoch), :mod:`~glmix_viz.train.validate`
(validate and save) and :mod:`~glmix_viz.train.loop` (the wiring).
"""

from __future__ import annotations

from glmix_viz.train.config import AUGMENT_MODES, TERM_LOG_NAMES, TrainConfig
from glmix_viz.train.data import LoadedSplit, augment_batch, denormalize_batch, load_split, normalize_batch
from glmix_viz.train.loop import train
from glmix_viz.train.losses import (
    GroupingLosses,
    assignment_entropy,
    bilateral_potts_loss,
    slot_reconstruction_loss,
    usage_entropy,
)
from glmix_viz.train.model import build_model
from glmix_viz.train.setup import build_param_groups
from glmix_viz.train.validate import predict_scores

__all__ = [
    "TrainConfig",
    "train",
    "build_param_groups",
    "augment_batch",
    "normalize_batch",
    "denormalize_batch",
    "load_split",
    "LoadedSplit",
    "build_model",
    "predict_scores",
    "GroupingLosses",
    "bilateral_potts_loss",
    "assignment_entropy",
    "usage_entropy",
    "slot_reconstruction_loss",
    "AUGMENT_MODES",
    "TERM_LOG_NAMES",
]
