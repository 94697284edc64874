"""One training epoch: seeded augmentation, BCE plus the enabled auxiliary terms, clipping, the per-step schedule,
and the running mean of every term on the progress bar."""

from __future__ import annotations

import time
from typing import Any, Dict, Optional, Tuple

import torch
import torch.nn.functional as F

from glmix_viz.train.config import TERM_LOG_NAMES
from glmix_viz.train.data import augment_batch, denormalize_batch, maybe_tqdm, normalize_batch, renormalize_batch
from glmix_viz.train.losses import slot_mil_loss
from glmix_viz.train.prototypes import colour_flip_view
from glmix_viz.runtime.resume import Progress
from glmix_viz.train.setup import Run

__all__ = ["train_step", "train_one_epoch"]


def _prototype_terms(run: Run, inputs: torch.Tensor, generator: torch.Generator) -> Dict[str, torch.Tensor]:
    """The cross-view prototype terms: the first view's records are in the probe; a second, colour-changed and
    flipped view is run here without gradients (the target; its BCE and grouping terms are not used)."""
    blocks = run.proto.blocks
    first = {name: (run.probe[name].dispatch, run.probe[name].slots_in) for name in blocks}
    view, flip_x, flip_y = colour_flip_view(denormalize_batch(inputs), generator)
    run.probe.clear()
    with torch.no_grad():  # the second view is the target (stop-gradient): a forward pass only
        run.train_model(renormalize_batch(view))
    second = {name: (run.probe[name].dispatch, run.probe[name].slots_in) for name in blocks}
    return run.proto(first, second, flip_x, flip_y)


def train_step(run: Run, inputs: torch.Tensor, labels: torch.Tensor,
               generator: Optional[torch.Generator] = None) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """Forward and backward of one batch and the optimiser step (the learning rate is set by the caller).

    Args:
        run: the run.
        inputs: (B, 3, S, S) normalised, augmented images on the run's device.
        labels: (B, K) multi-hot labels.
        generator: CPU generator of the prototype loss's second view (default: a fixed seed).

    Returns:
        (BCE loss, the auxiliary terms by name: "slot_mil", "potts", "entropy", "usage_entropy", "recon", "proto",
        "proto_consistency", "proto_usage"), detached.
    """
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    terms: Dict[str, torch.Tensor] = {}
    with torch.autocast(run.process.device.type, dtype=torch.bfloat16, enabled=run.use_amp):
        if run.probe is not None:
            with run.probe:
                logits = run.train_model(inputs)
                if run.grouping.active:
                    terms = run.grouping.terms(run.probe, denormalize_batch(inputs))
                if run.train_aux is not None:
                    terms["slot_mil"] = slot_mil_loss(run.train_aux, run.probe, labels,
                                                      confidence=run.config.slot_mil_confidence)
                if run.proto is not None:
                    terms.update(_prototype_terms(run, inputs, generator))
                run.probe.clear()
        else:
            logits = run.train_model(inputs)
    loss = F.binary_cross_entropy_with_logits(logits.float(), labels)
    total = loss + run.grouping.total({k: v for k, v in terms.items() if k in run.grouping.weight_names})
    if "slot_mil" in terms:
        total = total + run.config.slot_mil_weight * terms["slot_mil"]
    if "proto" in terms:
        total = total + run.config.proto_weight * terms["proto"]
    run.optimizer.zero_grad(set_to_none=True)
    total.backward()
    if run.config.grad_clip > 0:
        params = [p for group in run.optimizer.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(params, run.config.grad_clip)
    run.optimizer.step()
    return loss.detach(), {k: v.detach() for k, v in terms.items()}


def train_one_epoch(run: Run, progress: Progress, epoch: int) -> Dict[str, Any]:
    """Train epoch ``epoch`` (0-based), advancing ``progress.step``; return its log entry (without validation).

    The entry holds ``epoch`` (1-based), ``step``, ``train_loss`` (mean BCE), ``images_per_s``, ``seconds``, the mean
    of every auxiliary term (``TERM_LOG_NAMES``) and each block's ``slot_scale``.
    """
    config, world = run.config, run.process.world
    run.model.train()
    run.sampler.set_epoch(epoch)
    generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch * 1_009 + run.process.rank)
    epoch_start = time.perf_counter()
    seen, loss_sum, term_sums = 0, 0.0, {}
    bar = maybe_tqdm(run.train_set.batches(list(iter(run.sampler)), config.batch_size, drop_last=True), run.show,
                     f"epoch {epoch + 1}/{config.epochs}", run.steps_per_epoch)
    for images, labels in bar:
        lr = run.schedule.set(progress.step)
        device = run.process.device
        inputs = augment_batch(normalize_batch(images.to(device, non_blocking=True)), generator, config.augment)
        loss, terms = train_step(run, inputs, labels.to(device, non_blocking=True), generator)
        progress.step += 1
        seen += images.shape[0]
        loss_sum += float(loss) * images.shape[0]
        for key, value in terms.items():
            term_sums[key] = term_sums.get(key, 0.0) + float(value) * images.shape[0]
        if run.show:
            rate = seen * world / max(time.perf_counter() - epoch_start, 1e-9)
            shown = {TERM_LOG_NAMES[k]: f"{v / seen:.4f}" for k, v in term_sums.items()}
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", **shown, img_s=f"{rate:.0f}", lr=f"{lr:.2e}")
    seconds = time.perf_counter() - epoch_start
    entry: Dict[str, Any] = {"epoch": epoch + 1, "step": progress.step, "train_loss": loss_sum / max(seen, 1),
                             "images_per_s": seen * world / max(seconds, 1e-9), "seconds": seconds}
    for key, value in term_sums.items():
        entry[TERM_LOG_NAMES[key]] = value / max(seen, 1)
    entry["slot_scale"] = [round(float(p.detach()), 4) for n, p in run.model.named_parameters()
                           if n.endswith("slot_scale")]
    return entry
