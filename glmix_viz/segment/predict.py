"""Segmenter inference: class probabilities at each image's own size (multi-scale, flip), and the batch job.

At scale ``s`` an image of ``H x W`` enters the network at ``round(s * H / 32) * 32 x round(s * W / 32) * 32``
(bilinear); the logits are resized back to ``H x W`` (bilinear) and soft-maxed; scales and the flipped copy are
averaged in probability. :func:`run_segment` is the batch job behind ``glmix-viz segment``: palette PNGs of each
image's size, written atomically, resumable (ids whose PNG exists are skipped), sharded, with the stale
temporaries of a killed run cleared (:func:`glmix_viz.runtime.jobs.plan_job`, as ``pseudo-label``), optional dense
CRF (:func:`glmix_viz.crf.dense_crf`), a ``summary.json`` (``summary.shard-K-of-N.json`` for a shard) with counts
and failures (:class:`glmix_viz.runtime.jobs.RunSummary`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from glmix_viz.crf import CRFParams
from glmix_viz.errors import GlmixVizError, one_line
from glmix_viz.files import save_png_atomic
from glmix_viz.images import IMAGENET_MEAN, IMAGENET_STD
from glmix_viz.data.base import Split
from glmix_viz.labels import label_to_pil
from glmix_viz.runtime.jobs import RunSummary, plan_job
from glmix_viz.segment.model import backbone_of
from glmix_viz.slots.explore import explore_image

__all__ = ["OUTPUT_FORMATS", "VOC_TEST_FOLDER", "SegmentSettings", "explore_segmenter", "network_size",
           "output_folder", "predict_labels", "predict_probs", "run_segment", "segment_output_path"]

OUTPUT_FORMATS: Tuple[str, ...] = ("voc", "voc-test")
VOC_TEST_FOLDER = Path("results") / "VOC2012" / "Segmentation" / "comp6_test_cls"
"""Where the VOC evaluation server wants the test predictions, relative to the output folder."""
_MULTIPLE = 32


def network_size(height: int, width: int, scale: float) -> Tuple[int, int]:
    """The network input size of an ``height x width`` image at ``scale``: both sides rounded to multiples of 32."""
    def side(value: int) -> int:
        return max(_MULTIPLE, int(round(value * scale / _MULTIPLE)) * _MULTIPLE)

    return side(height), side(width)


@torch.no_grad()
def predict_probs(
    segmenter: nn.Module,
    images: Sequence[np.ndarray],
    *,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    device: Optional[Union[str, torch.device]] = None,
) -> torch.Tensor:
    """Class probabilities of equally sized images.

    Args:
        segmenter: the smp model, in eval mode.
        images: ``N`` RGB ``(H, W, 3)`` uint8 arrays of one size.
        scales: input scales, averaged.
        flip: also average the horizontally flipped input (flipped back).
        device: where the network runs (default: the segmenter's device); bf16 autocast on CUDA.

    Returns:
        ``(N, K, H, W)`` float32 probabilities on the CPU.
    """
    device = torch.device(device) if device is not None else next(segmenter.parameters()).device
    batch = torch.from_numpy(np.stack([np.asarray(image, dtype=np.uint8) for image in images]))
    batch = batch.to(device).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    batch = (batch - mean) / std
    height, width = batch.shape[-2:]
    total: Optional[torch.Tensor] = None
    views = 0
    for scale in scales:
        size = network_size(height, width, scale)
        scaled = F.interpolate(batch, size=size, mode="bilinear", align_corners=False) if size != (height, width) \
            else batch
        for flipped in ((False, True) if flip else (False,)):
            inputs = scaled.flip(-1) if flipped else scaled
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = segmenter(inputs)
            logits = logits.float().flip(-1) if flipped else logits.float()
            logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
            probs = logits.softmax(dim=1)
            total = probs if total is None else total + probs
            views += 1
    assert total is not None
    return (total / views).cpu()


def predict_labels(
    segmenter: nn.Module,
    image: np.ndarray,
    *,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    crf: Any = None,
    device: Optional[Union[str, torch.device]] = None,
) -> np.ndarray:
    """The predicted class map of one image (what the app shows next to a pseudo-mask).

    Args:
        segmenter: the smp model (:func:`glmix_viz.segment.model.load_segmenter`).
        image: ``(H, W, 3)`` uint8 RGB.
        scales, flip, device: as in :func:`predict_probs`.
        crf: :class:`~glmix_viz.crf.CRFParams` (dense CRF) or
            :class:`~glmix_viz.refine.PARParams` (PAR, on the CPU) to refine with, or None.

    Returns:
        ``(H, W)`` uint8 class indices (255 only where the CRF confidence rule leaves a pixel uncertain).
    """
    probs = predict_probs(segmenter, [image], scales=scales, flip=flip, device=device)[0].numpy()
    return _labels(image, probs, crf)


def _labels(image: np.ndarray, probs: np.ndarray, crf: Any) -> np.ndarray:
    if crf is None:
        return probs.argmax(axis=0).astype(np.uint8)
    from glmix_viz.refine import refined_labels  # dense CRF or PAR, by the parameters' type

    return refined_labels(image, probs, crf)


def output_folder(out_dir: Union[str, os.PathLike], output_format: str = "voc") -> Path:
    """Where the PNGs go: ``OUT``, or ``OUT/results/VOC2012/Segmentation/comp6_test_cls`` for ``voc-test``."""
    if output_format not in OUTPUT_FORMATS:
        raise ValueError(f"output format must be one of {OUTPUT_FORMATS}, got {output_format!r}")
    return Path(out_dir) / VOC_TEST_FOLDER if output_format == "voc-test" else Path(out_dir)


def segment_output_path(out_dir: Union[str, os.PathLike], image_id: str, output_format: str = "voc") -> Path:
    """``OUT/<id>.png``, or ``OUT/results/VOC2012/Segmentation/comp6_test_cls/<id>.png`` for ``voc-test``."""
    return output_folder(out_dir, output_format) / f"{image_id}.png"


@dataclass(frozen=True)
class SegmentSettings:
    """What one ``segment`` run does with each image.

    Attributes:
        scales, flip: test-time views (:func:`predict_probs`).
        crf: :class:`~glmix_viz.crf.CRFParams` (dense CRF) or
            :class:`~glmix_viz.refine.PARParams` (PAR, on the CPU) to refine with, or None.
        output_format: ``"voc"`` (``OUT/<id>.png``) or ``"voc-test"`` (the evaluation server's layout).
        device: where the network runs.
        batch_size: images per network step (images of equal size are batched together).
    """

    scales: Tuple[float, ...] = (1.0,)
    flip: bool = False
    crf: Any = None  # CRFParams, PARParams or None
    output_format: str = "voc"
    device: str = "cpu"
    batch_size: int = 4

    def __post_init__(self) -> None:
        if self.output_format not in OUTPUT_FORMATS:
            raise ValueError(f"output format must be one of {OUTPUT_FORMATS}, got {self.output_format!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")

    def record(self, out_dir: Path, shard: Optional[str], overwrite: bool) -> Dict[str, Any]:
        """The summary's ``settings`` (the schema ``segment`` has always written)."""
        return {"scales": [float(scale) for scale in self.scales], "flip": self.flip, "format": self.output_format,
                "device": self.device, "out_dir": str(out_dir), "crf": None if self.crf is None else self.crf.to_dict(),
                "batch_size": self.batch_size, "shard": shard, "overwrite": overwrite}


def _batches(ids: Sequence[str], batch_size: int) -> List[List[str]]:
    return [list(ids[start:start + batch_size]) for start in range(0, len(ids), batch_size)]


def _run_batch(segmenter: nn.Module, dataset: Split, batch_ids: Sequence[str], settings: SegmentSettings,
               out_dir: Path, summary: RunSummary, lookup: Optional[np.ndarray] = None) -> None:
    """Load, predict and write one batch (images grouped by size), counting each id in the summary; ``lookup``
    (256,) turns the segmenter's class indices into the data set's ids."""
    loaded: Dict[Tuple[int, int], List[Tuple[str, np.ndarray]]] = {}
    for image_id in batch_ids:
        try:
            image = dataset.image(image_id)
        except GlmixVizError as error:
            summary.fail(image_id, one_line(error))
            continue
        loaded.setdefault(image.shape[:2], []).append((image_id, image))
    for group in loaded.values():
        try:
            probs = predict_probs(segmenter, [image for _, image in group], scales=settings.scales,
                                  flip=settings.flip, device=settings.device).numpy()
        except (RuntimeError, ValueError) as error:
            for image_id, _ in group:
                summary.fail(image_id, f"network failed: {one_line(error)}")
            continue
        for (image_id, image), image_probs in zip(group, probs):
            try:
                labels = _labels(image, image_probs, settings.crf)
                if lookup is not None:
                    labels = lookup[labels]
                save_png_atomic(segment_output_path(out_dir, image_id, settings.output_format), label_to_pil(labels))
            except (OSError, ValueError) as error:
                summary.fail(image_id, f"writing the prediction failed: {one_line(error)}")
                continue
            summary.done()


def run_segment(
    dataset: Split,
    out_dir: Union[str, os.PathLike],
    segmenter: nn.Module,
    *,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    crf: Any = None,
    output_format: str = "voc",
    overwrite: bool = False,
    shard: Optional[str] = None,
    device: Optional[Union[str, torch.device]] = None,
    batch_size: int = 4,
    progress: bool = True,
    label_ids: Optional[Sequence[int]] = None,
) -> Dict[str, Any]:
    """Predict a split with a segmenter; palette PNGs, resumable, sharded, summarised (see the module docstring).

    Args:
        dataset: an image reader (``ids``, ``load_image``, ``class_names``, ``root``, ``split``); no ground truth
            needed.
        out_dir: output folder (created).
        segmenter: the smp model (:func:`glmix_viz.segment.model.load_segmenter`).
        scales, flip: test-time views (:func:`predict_probs`).
        crf: :class:`~glmix_viz.crf.CRFParams`, or None.
        output_format: ``"voc"`` (``OUT/<id>.png``) or ``"voc-test"`` (the evaluation server's layout).
        overwrite: redo ids whose PNG exists.
        shard: ``"K/N"``, ``(K, N)`` or ``"auto"`` (:func:`~glmix_viz.runtime.distributed.resolve_shard`).
        device: where the network runs (default: the segmenter's device).
        batch_size: images per network step (images of equal size are batched together).
        progress: tqdm bar on stderr.
        label_ids: the data set's class id of each segmenter output (e.g. from
            :func:`~glmix_viz.data.classes.match_label_ids`, for a segmenter trained on another numbering);
            ``None``: the outputs are the data set's ids.

    Returns:
        The summary (also written to ``OUT/summary*.json``; :class:`~glmix_viz.runtime.jobs.RunSummary`):
        ``status``, ``counts`` (``total``, ``done``, ``skipped``, ``failed``), ``failures`` (``id``, ``reason``),
        ``split``, ``root``, ``segmenter``, ``settings``, ``timing``, ``summary_path``. On an exception the summary is
        written with status "interrupted" / "aborted" before it propagates.
    """
    settings = SegmentSettings(scales=tuple(float(scale) for scale in scales), flip=bool(flip), crf=crf,
                               output_format=output_format,
                               device=str(device or next(segmenter.parameters()).device), batch_size=batch_size)
    out_dir = Path(out_dir)
    folder = output_folder(out_dir, output_format)
    plan = plan_job(dataset.ids, out_dir, shard=shard, overwrite=overwrite, outputs=[(folder, ".png")],
                    is_done=lambda image_id: (folder / f"{image_id}.png").is_file())
    info = {"split": getattr(dataset, "split", None), "root": str(getattr(dataset, "root", "")),
            "segmenter": _describe(segmenter), "settings": settings.record(out_dir, plan.shard, overwrite)}
    summary = RunSummary(plan.summary_path, total=len(plan.my_ids), skipped=plan.skipped, todo=len(plan.todo),
                         info=info, desc="segment", progress=progress)
    lookup = None
    if label_ids is not None:
        lookup = np.arange(256, dtype=np.uint8)
        lookup[:len(label_ids)] = np.asarray(label_ids, dtype=np.uint8)
    with summary.running():
        segmenter.eval()
        for batch_ids in _batches(plan.todo, settings.batch_size):
            _run_batch(segmenter, dataset, batch_ids, settings, out_dir, summary, lookup)
    return {**summary.data, "summary_path": str(summary.path)}


def _describe(segmenter: nn.Module) -> Dict[str, Any]:
    config = getattr(segmenter, "segmenter_config", None) or {}
    return {key: config.get(key) for key in ("source", "backbone", "decoder", "num_classes", "class_names")}


def explore_segmenter(
    segmenter: nn.Module,
    image: np.ndarray,
    *,
    input_size: Optional[Union[int, Tuple[int, int]]] = None,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    device: Optional[Union[str, torch.device]] = None,
) -> Tuple[Any, np.ndarray]:
    """What the explorer shows for a segmenter checkpoint: its encoder's groupings and its predicted mask.

    Args:
        segmenter: the smp segmenter (``open_checkpoint(path).segmenter``).
        image: ``(H, W, 3)`` uint8 RGB.
        input_size: network input of the grouping pass (as :func:`glmix_viz.slots.explore.explore_image`).
        scales, flip: test-time views of the prediction (:func:`predict_probs`).
        device: where to run (default: the model's device).

    Returns:
        ``(exploration, labels)``: the :class:`~glmix_viz.slots.explore.Exploration` of the encoder (groupings of
        every GLMix block; no class maps, the encoder has no classifier) and the ``(H, W)`` uint8 predicted class
        map, to show beside the pseudo-mask of the same image.
    """
    if not hasattr(segmenter, "encoder"):
        raise ValueError("explore_segmenter needs a segmenter (open_checkpoint(path).segmenter)")
    exploration = explore_image(backbone_of(segmenter), image, input_size=input_size, device=device)
    return exploration, predict_labels(segmenter, image, scales=scales, flip=flip, device=device)
