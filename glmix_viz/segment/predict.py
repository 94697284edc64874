"""Segmenter inference: class probabilities at each image's own size (multi-scale, flip), and the batch job.

At scale ``s`` an image of ``H x W`` enters the network at ``round(s * H / 32) * 32 x round(s * W / 32) * 32``
(bilinear); the logits are resized back to ``H x W`` (bilinear) and soft-maxed; scales and the flipped copy are
averaged in probability. :func:`run_segment` is the batch job behind ``glmix-viz segment``: palette PNGs of each
image's size, written atomically, resumable (ids whose PNG exists are skipped), sharded like ``pseudo-label``
(:func:`glmix_viz.data.voc.shard_ids`), optional dense CRF (:func:`glmix_viz.pseudo.crf.dense_crf`), a
``summary.json`` (``summary.shard-K-of-N.json`` for a shard) with counts and failures.
"""

from __future__ import annotations

import datetime as _datetime
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from glmix_viz.errors import GlmixVizError, one_line

__all__ = ["OUTPUT_FORMATS", "VOC_TEST_FOLDER", "explore_segmenter", "network_size", "predict_labels", "predict_probs",
           "run_segment", "segment_output_path"]

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
    from glmix_viz.images import IMAGENET_MEAN, IMAGENET_STD

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
        crf: :class:`~glmix_viz.pseudo.crf.CRFParams` to refine with, or None.

    Returns:
        ``(H, W)`` uint8 class indices (255 only where the CRF confidence rule leaves a pixel uncertain).
    """
    probs = predict_probs(segmenter, [image], scales=scales, flip=flip, device=device)[0].numpy()
    return _labels(image, probs, crf)


def _labels(image: np.ndarray, probs: np.ndarray, crf: Any) -> np.ndarray:
    if crf is None:
        return probs.argmax(axis=0).astype(np.uint8)
    from glmix_viz.pseudo.crf import crf_labels

    return crf_labels(image, probs, crf)


def segment_output_path(out_dir: Union[str, os.PathLike], image_id: str, output_format: str = "voc") -> Path:
    """``OUT/<id>.png``, or ``OUT/results/VOC2012/Segmentation/comp6_test_cls/<id>.png`` for ``voc-test``."""
    if output_format not in OUTPUT_FORMATS:
        raise ValueError(f"output format must be one of {OUTPUT_FORMATS}, got {output_format!r}")
    folder = Path(out_dir) / VOC_TEST_FOLDER if output_format == "voc-test" else Path(out_dir)
    return folder / f"{image_id}.png"


def _batches(ids: Sequence[str], batch_size: int) -> List[List[str]]:
    return [list(ids[start:start + batch_size]) for start in range(0, len(ids), batch_size)]


def _write_json_atomic(path: Path, data: Dict[str, Any]) -> None:
    from glmix_viz.files import save_bytes_atomic

    save_bytes_atomic(path, (json.dumps(data, indent=2, default=str) + "\n").encode("utf-8"))


def _run_batch(segmenter: nn.Module, dataset: Any, batch_ids: Sequence[str], settings: Dict[str, Any],
               failures: List[Dict[str, str]]) -> int:
    """Load, predict and write one batch (images grouped by size); returns how many were written."""
    from glmix_viz.data.voc import label_to_pil
    from glmix_viz.files import save_png_atomic

    loaded: Dict[Tuple[int, int], List[Tuple[str, np.ndarray]]] = {}
    for image_id in batch_ids:
        try:
            image = dataset.load_image(image_id)
        except GlmixVizError as error:
            failures.append({"id": image_id, "reason": one_line(error)})
            continue
        loaded.setdefault(image.shape[:2], []).append((image_id, image))
    written = 0
    for group in loaded.values():
        try:
            probs = predict_probs(segmenter, [image for _, image in group], scales=settings["scales"],
                                  flip=settings["flip"], device=settings["device"]).numpy()
        except (RuntimeError, ValueError) as error:
            failures.extend({"id": image_id, "reason": f"network failed: {one_line(error)}"} for image_id, _ in group)
            continue
        for (image_id, image), image_probs in zip(group, probs):
            try:
                labels = _labels(image, image_probs, settings["crf"])
                save_png_atomic(segment_output_path(settings["out_dir"], image_id, settings["format"]),
                                label_to_pil(labels))
                written += 1
            except (OSError, ValueError) as error:
                failures.append({"id": image_id, "reason": f"writing the prediction failed: {one_line(error)}"})
    return written


def run_segment(
    dataset: Any,
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
) -> Dict[str, Any]:
    """Predict a split with a segmenter; palette PNGs, resumable, sharded, summarised (see the module docstring).

    Args:
        dataset: an image reader (``ids``, ``load_image``, ``class_names``, ``root``, ``split``); no ground truth
            needed.
        out_dir: output folder (created).
        segmenter: the smp model (:func:`glmix_viz.segment.model.load_segmenter`).
        scales, flip: test-time views (:func:`predict_probs`).
        crf: :class:`~glmix_viz.pseudo.crf.CRFParams`, or None.
        output_format: ``"voc"`` (``OUT/<id>.png``) or ``"voc-test"`` (the evaluation server's layout).
        overwrite: redo ids whose PNG exists.
        shard: ``"K/N"``.
        device: where the network runs (default: the segmenter's device).
        batch_size: images per network step (images of equal size are batched together).
        progress: tqdm bar on stderr.

    Returns:
        The summary (also written to ``OUT/summary*.json``): ``status``, ``counts`` (``total``, ``done``,
        ``skipped``, ``failed``), ``failures`` (``id``, ``reason``), ``settings``, ``segmenter``, ``timing``,
        ``summary_path``.
    """
    from tqdm import tqdm

    from glmix_viz.data.voc import shard_ids
    from glmix_viz.pseudo.pipeline import summary_name

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    out_dir = Path(out_dir)
    my_ids = shard_ids(list(dataset.ids), shard)
    todo = [i for i in my_ids if overwrite or not segment_output_path(out_dir, i, output_format).is_file()]
    settings = {"scales": [float(s) for s in scales], "flip": bool(flip), "format": output_format,
                "device": str(device or next(segmenter.parameters()).device), "out_dir": out_dir,
                "crf": crf, "batch_size": batch_size, "shard": shard, "overwrite": overwrite}
    failures: List[Dict[str, str]] = []
    summary: Dict[str, Any] = {
        "status": "running", "started": _now(), "split": getattr(dataset, "split", None),
        "root": str(getattr(dataset, "root", "")), "segmenter": _describe(segmenter),
        "settings": dict(settings, out_dir=str(out_dir), crf=None if crf is None else crf.to_dict()),
        "counts": {"total": len(my_ids), "done": 0, "skipped": len(my_ids) - len(todo), "failed": 0},
        "failures": failures,
    }
    start = time.perf_counter()
    bar = tqdm(total=len(todo), unit="img", desc="segment", disable=not progress, file=sys.stderr)
    try:
        segmenter.eval()
        for batch_ids in _batches(todo, batch_size):
            summary["counts"]["done"] += _run_batch(segmenter, dataset, batch_ids, settings, failures)
            summary["counts"]["failed"] = len(failures)
            bar.update(len(batch_ids))
        summary["status"] = "failed" if failures else "ok"
    except BaseException as error:
        summary["status"] = "interrupted" if isinstance(error, KeyboardInterrupt) else "aborted"
        summary["error"] = one_line(error)
        raise
    finally:
        bar.close()
        wall = time.perf_counter() - start
        summary["finished"] = _now()
        summary["timing"] = {"wall_s": round(wall, 3),
                             "images_per_s": round(summary["counts"]["done"] / wall, 3) if wall > 0 else None}
        summary_path = out_dir / summary_name(shard)
        _write_json_atomic(summary_path, summary)
    summary["summary_path"] = str(summary_path)
    return summary


def _describe(segmenter: nn.Module) -> Dict[str, Any]:
    config = getattr(segmenter, "segmenter_config", None) or {}
    return {key: config.get(key) for key in ("source", "backbone", "decoder", "num_classes", "class_names")}


def _now() -> str:
    return _datetime.datetime.now(_datetime.timezone.utc).isoformat(timespec="seconds")


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
    from glmix_viz.slots.explore import explore_image
    from glmix_viz.segment.model import backbone_of

    if not hasattr(segmenter, "encoder"):
        raise ValueError("explore_segmenter needs a segmenter (open_checkpoint(path).segmenter)")
    exploration = explore_image(backbone_of(segmenter), image, input_size=input_size, device=device)
    return exploration, predict_labels(segmenter, image, scales=scales, flip=flip, device=device)
