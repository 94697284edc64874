"""The worker job of the pseudo-label pipeline: refine one image's score maps and write its outputs.

Kept out of :mod:`glmix_viz.pseudo` on purpose: a worker process imports this module (and, through the pickled task,
:mod:`glmix_viz.crf` or :mod:`glmix_viz.refine`), that is numpy, PIL, pydensecrf and (for PAR) torch, and not the
``glmix_viz.pseudo`` package, whose ``__init__`` loads every score method (torch, timm, pytorch-grad-cam). The pool
that hands these jobs out is :class:`glmix_viz.pseudo.workers.CRFPool`; the labels are those of
:func:`glmix_viz.pseudo.masks.pseudo_mask` (tested to agree).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np

from glmix_viz.crf import confident_labels
from glmix_viz.errors import one_line
from glmix_viz.files import save_npz_atomic, save_png_atomic
from glmix_viz.labels import IGNORE_INDEX, channels_to_labels, label_to_pil
from glmix_viz.refine import RefineParams, method_of, refine

__all__ = ["FinishTask", "finish_image"]


@dataclass(frozen=True)
class FinishTask:
    """One image's job for a worker: its score maps, and where the outputs go.

    Attributes:
        image_id: the image's id (reported back with the result).
        image: ``(H, W, 3)`` uint8 RGB image (the refinement's colour kernel reads it).
        scores: ``(K + 1, H, W)`` float32 scores, background first (``ScoreMaps.scores``).
        class_indices: ``(K + 1,)`` label id of every channel (``ScoreMaps.class_indices``).
        crf: the refinement's settings (:class:`~glmix_viz.crf.CRFParams` or :class:`~glmix_viz.refine.PARParams`),
            or ``None`` for the arg-max of the scores.
        png: the label PNG to write (last: its presence means the image is done).
        npz: the ``.npz`` of the scores (and the refined probabilities), written when ``save_scores``.
        save_scores: also write ``npz``.
        refined: ``(K + 1, H, W)`` refined probabilities already computed (PAR batched on the GPU), or ``None``.
    """

    image_id: str
    image: np.ndarray
    scores: np.ndarray
    class_indices: np.ndarray
    crf: RefineParams
    png: Path
    npz: Path
    save_scores: bool = False
    refined: Optional[np.ndarray] = None


def warm_up(load_torch: bool = False) -> bool:
    """Sent once per worker at the start: the worker is up and has imported this module; with ``load_torch`` (PAR)
    torch is imported and put on one thread here, at start-up, not inside the first image's refinement time."""
    if load_torch:
        import torch  # noqa: F401

        _one_torch_thread()
    return True


def init_worker() -> None:
    """Worker initializer: one torch thread per worker process (no oversubscription of the cores), set only when
    torch is loaded (a CRF worker never imports it; PAR's first call does, and :func:`finish_image` sets it then)."""
    _one_torch_thread()


def _one_torch_thread() -> None:
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != 1:
        torch.set_num_threads(1)


def finish_image(task: FinishTask, *, single_thread: bool = True) -> Dict[str, Any]:
    """Worker job: the refinement (or the refined maps the task carries), its confidence rule, the label ids, atomic
    PNG (and ``.npz``) writes. Never raises.

    Args:
        task: the image's job.
        single_thread: keep torch on one thread (in a worker process); ``False`` in the main process.

    Returns:
        ``id``, ``ok``, and ``refine_s`` / ``write_s`` seconds, or ``reason`` when something failed.
    """
    start = time.perf_counter()
    try:
        scores = np.asarray(task.scores, dtype=np.float32)
        if scores.shape[0] > IGNORE_INDEX:
            raise ValueError(f"{scores.shape[0]} score channels: a pseudo-mask holds at most {IGNORE_INDEX}")
        refined = task.refined
        if refined is None and task.crf is not None:
            if single_thread and method_of(task.crf) == "par":
                import torch  # noqa: F401  (loaded here, so that the thread count applies before PAR runs)

                _one_torch_thread()
            refined = refine(method_of(task.crf), task.image, scores, task.crf)
        if refined is None:
            channels = scores.argmax(axis=0).astype(np.uint8)
        else:
            channels = confident_labels(refined, getattr(task.crf, "confidence", None))
        labels = channels_to_labels(channels, task.class_indices)
        refined_at = time.perf_counter()
        if task.save_scores:
            arrays = {"scores": scores.astype(np.float16), "class_indices": np.asarray(task.class_indices, np.uint8)}
            if refined is not None:
                arrays["crf"] = np.asarray(refined).astype(np.float16)
            save_npz_atomic(task.npz, **arrays)
        save_png_atomic(task.png, label_to_pil(labels))  # last: the PNG's presence means the image is done
        return {"id": task.image_id, "ok": True, "refine_s": refined_at - start,
                "write_s": time.perf_counter() - refined_at}
    except Exception as error:  # noqa: BLE001 - reported per image; the run goes on
        return {"id": task.image_id, "ok": False, "reason": f"writing outputs failed: {one_line(error)}"}
