"""The CRF stage of the pseudo-label job: a pool of worker processes that finish images (dense CRF, label PNG).

The network runs on the main process and hands each image's soft scores to :class:`CRFPool`; its workers run the
dense CRF and write the outputs while the network goes on. A bounded number of pending jobs keeps memory flat.
Workers are started with ``spawn`` (safe with torch's thread pools; each worker pays one import of the package when
it starts). With ``workers=0`` the jobs run in the main process, one after another (no overlap; for debugging).
"""

from __future__ import annotations

import concurrent.futures as futures
import contextlib
import multiprocessing
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, Iterator, Optional

import numpy as np

from glmix_viz.errors import one_line

__all__ = ["CRFPool", "finish_image", "torch_threads"]


def _warm_up() -> bool:
    """Worker job sent once per worker at the start: import what the real jobs need while the network starts."""
    import glmix_viz.data.voc  # noqa: F401
    import glmix_viz.files  # noqa: F401
    import glmix_viz.images  # noqa: F401
    import glmix_viz.crf  # noqa: F401
    import glmix_viz.pseudo.masks  # noqa: F401

    with contextlib.suppress(ImportError):
        import pydensecrf.densecrf  # noqa: F401
    return True


def finish_image(task: Dict[str, Any]) -> Dict[str, Any]:
    """Worker job: the pseudo-mask (:func:`~glmix_viz.pseudo.masks.pseudo_mask`: dense CRF when asked), atomic PNG
    (and ``.npz``) writes. Never raises.

    Args:
        task: ``id``, ``image`` (H, W, 3) uint8, ``scores`` (K + 1, H, W) float32 and ``class_indices`` (K + 1,) of
            its score maps (plain arrays: a worker need not import torch), ``crf`` (a CRFParams dict or None),
            ``png`` and ``npz`` paths, ``save_scores``.

    Returns:
        ``id``, ``ok``, and ``crf_s`` / ``write_s`` seconds, or ``reason`` when something failed.
    """
    from glmix_viz.data.voc import label_to_pil
    from glmix_viz.files import save_npz_atomic, save_png_atomic
    from glmix_viz.crf import CRFParams
    from glmix_viz.pseudo.masks import pseudo_mask

    start = time.perf_counter()
    try:
        maps = SimpleNamespace(scores=task["scores"], class_indices=task["class_indices"])
        mask = pseudo_mask(task["image"], maps, None if task["crf"] is None else CRFParams(**task["crf"]))
        labels = mask.labels()
        crf_done = time.perf_counter()
        png_path, npz_path = Path(task["png"]), Path(task["npz"])
        if task["save_scores"]:
            arrays = {"scores": maps.scores.astype(np.float16),
                      "class_indices": np.asarray(maps.class_indices, np.uint8)}
            if mask.refined is not None:
                arrays["crf"] = mask.refined.astype(np.float16)
            save_npz_atomic(npz_path, **arrays)
        save_png_atomic(png_path, label_to_pil(labels))  # last: the PNG's presence means the image is done
        return {"id": task["id"], "ok": True, "crf_s": crf_done - start, "write_s": time.perf_counter() - crf_done}
    except Exception as error:  # noqa: BLE001 - reported per image; the run goes on
        return {"id": task["id"], "ok": False, "reason": f"writing outputs failed: {one_line(error)}"}


@contextlib.contextmanager
def torch_threads(count: Optional[int]) -> Iterator[None]:
    """Set torch's CPU threads for the block (``None``: leave them), restoring them afterwards."""
    import torch

    if count is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, int(count)))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class CRFPool:
    """Worker processes that run :func:`finish_image` while the network goes on; a context manager.

    Args:
        summary: the :class:`~glmix_viz.runtime.jobs.RunSummary` that counts results and times the waits.
        workers: processes to start (0: run each job in the main process when submitted).
        max_pending: most jobs handed out and not yet finished (``submit`` waits below it).
        executor: a process pool to use instead of starting one (kept open afterwards, e.g. warm workers reused
            across runs); ``workers`` warm-up jobs are still sent to it.
    """

    def __init__(self, summary: Any, *, workers: int, max_pending: int,
                 executor: Optional[futures.Executor] = None) -> None:
        self.summary = summary
        self.workers = workers
        self.max_pending = max(1, max_pending)
        self.owns_executor = executor is None
        self.executor = executor
        self.pending: Dict[futures.Future, str] = {}  # future -> image id

    def __enter__(self) -> "CRFPool":
        if self.executor is None and self.workers > 0:
            context = multiprocessing.get_context("spawn")
            self.executor = futures.ProcessPoolExecutor(max_workers=self.workers, mp_context=context)
        if self.executor is not None:
            warm_ups = [self.executor.submit(_warm_up) for _ in range(self.workers)]  # overlaps the first steps

            def note_started(_: futures.Future) -> None:
                if all(future.done() for future in warm_ups):
                    self.summary.timing["worker_startup_s"] = self.summary.since_start()

            for future in warm_ups:
                future.add_done_callback(note_started)
        return self

    def submit(self, task: Dict[str, Any]) -> None:
        """Hand one image's job to a worker (waiting while ``max_pending`` are out), or run it here without workers."""
        if self.executor is None:
            self.summary.done(finish_image(task))
            return
        self.harvest(self.max_pending)
        self.pending[self.executor.submit(finish_image, task)] = task["id"]

    def harvest(self, block_until_below: int = 1) -> None:
        """Collect finished jobs until fewer than ``block_until_below`` are pending (1: all of them)."""
        while len(self.pending) >= max(block_until_below, 1):
            with self.summary.timed("waiting_for_workers_s"):
                finished, _ = futures.wait(list(self.pending), return_when=futures.FIRST_COMPLETED)
            for future in finished:
                image_id = self.pending.pop(future)
                try:
                    self.summary.done(future.result())
                except futures.BrokenExecutor:  # the pool is gone: stop the run
                    raise
                except Exception as error:  # noqa: BLE001 - e.g. a task that could not be sent to the worker
                    self.summary.fail(image_id, f"worker failed: {one_line(error)}")

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> None:
        if self.executor is not None and self.owns_executor:
            self.executor.shutdown(wait=error is None, cancel_futures=True)
