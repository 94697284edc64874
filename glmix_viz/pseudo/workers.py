"""The refinement stage of the pseudo-label job: worker processes that finish images (dense CRF or PAR, label PNG).

The network runs on the main process and hands each image's soft scores to :class:`CRFPool` as a
:class:`FinishTask`; its workers run the refinement and write the outputs while the network goes on. A bounded number
of pending jobs keeps memory flat. With ``workers=0`` the jobs run in the main process, one after another (no overlap;
for debugging). When the main process already refined an image (PAR batched on a GPU), the task carries the refined
maps and its worker only writes.

Start-up cost, measured (issue 28: ``--workers 2`` was slower than ``--workers 0`` on short runs): a worker that
imports this module imports the whole package (``import glmix_viz`` registers the GLNet variants with timm, so torch,
timm and torchvision come with it): about 4 CPU-seconds per worker, paid by every ``spawn``-ed worker at once on the
same cores the network needs. The pool therefore starts its workers from a ``forkserver`` that imports this module
once (:func:`pool_context`): one import per run instead of one per worker, and each worker is a cheap fork of an
already-loaded process (a fork of a process that has not run torch's thread pools, so fork-safe). The pool is
started on a thread (the first fork waits for the server's import), so the network's first steps overlap it; measured
on the shared 2-core machine (contended): a 2-worker pool took 24-29 s to start with spawn, 19 s with the forkserver
for the first pool of a process and 0.2 s for the next. Each worker then
sets torch to one thread (:func:`_init_worker`): N workers each running PAR with all cores' threads would fight over
the cores with the network (oversubscription). The tasks' arrays are small beside the work (a 500x375 image and its
scores are about 2 MB to pickle, milliseconds).
"""

from __future__ import annotations

import concurrent.futures as futures
import contextlib
import multiprocessing
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

import numpy as np
import torch

from glmix_viz.errors import one_line
from glmix_viz.files import save_npz_atomic, save_png_atomic
from glmix_viz.labels import label_to_pil
from glmix_viz.crf import confident_labels
from glmix_viz.pseudo.masks import PseudoMask, pseudo_mask
from glmix_viz.pseudo.refine import RefineParams

__all__ = ["CRFPool", "FinishTask", "RefinePool", "finish_image", "pool_context", "torch_threads"]


@dataclass(frozen=True)
class FinishTask:
    """One image's job for a worker: its score maps, and where the outputs go.

    Attributes:
        image_id: the image's id (reported back with the result).
        image: ``(H, W, 3)`` uint8 RGB image (the refinement's colour kernel reads it).
        scores: ``(K + 1, H, W)`` float32 scores, background first (``ScoreMaps.scores``).
        class_indices: ``(K + 1,)`` label id of every channel (``ScoreMaps.class_indices``).
        crf: the refinement's settings (:class:`~glmix_viz.crf.CRFParams` or
            :class:`~glmix_viz.pseudo.refine.PARParams`), or ``None`` for the arg-max of the scores.
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


def _warm_up() -> bool:
    """Worker job sent once per worker at the start: the worker is started and has imported this module (what the
    real jobs need) while the network starts."""
    return True


def _init_worker() -> None:
    """Worker initializer: one torch thread per worker process (no oversubscription of the cores)."""
    torch.set_num_threads(1)


def pool_context() -> Any:
    """The multiprocessing context of the worker pools: ``forkserver`` preloading this module where the platform has
    it (one import per run; see the module docstring), else ``spawn``."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        return context
    return multiprocessing.get_context("spawn")


def new_pool(workers: int) -> futures.ProcessPoolExecutor:
    """A process pool of ``workers`` refinement workers (:func:`pool_context`, one torch thread each)."""
    return futures.ProcessPoolExecutor(max_workers=workers, mp_context=pool_context(), initializer=_init_worker)


def finish_image(task: FinishTask) -> Dict[str, Any]:
    """Worker job: the pseudo-mask (:func:`~glmix_viz.pseudo.masks.pseudo_mask`: the refinement when asked, or the
    refined maps the task carries), atomic PNG (and ``.npz``) writes. Never raises.

    Returns:
        ``id``, ``ok``, and ``refine_s`` / ``write_s`` seconds, or ``reason`` when something failed.
    """
    start = time.perf_counter()
    try:
        if task.refined is not None:  # refined already (on the GPU): the confidence rule only
            before = np.asarray(task.scores).argmax(axis=0).astype(np.uint8)
            channels = confident_labels(task.refined, getattr(task.crf, "confidence", None))
            mask = PseudoMask(channels, before, np.asarray(task.class_indices), task.refined)
        else:
            mask = pseudo_mask(task.image, task, task.crf)  # the task carries the scores and class indices it reads
        labels = mask.labels()
        crf_done = time.perf_counter()
        if task.save_scores:
            arrays = {"scores": task.scores.astype(np.float16),
                      "class_indices": np.asarray(task.class_indices, np.uint8)}
            if mask.refined is not None:
                arrays["crf"] = mask.refined.astype(np.float16)
            save_npz_atomic(task.npz, **arrays)
        save_png_atomic(task.png, label_to_pil(labels))  # last: the PNG's presence means the image is done
        return {"id": task.image_id, "ok": True, "refine_s": crf_done - start,
                "write_s": time.perf_counter() - crf_done}
    except Exception as error:  # noqa: BLE001 - reported per image; the run goes on
        return {"id": task.image_id, "ok": False, "reason": f"writing outputs failed: {one_line(error)}"}


@contextlib.contextmanager
def torch_threads(count: Optional[int]) -> Iterator[None]:
    """Set torch's CPU threads for the block (``None``: leave them), restoring them afterwards."""
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
    """Worker processes that run :func:`finish_image` (refinement and writing) while the network goes on; a context
    manager. (:data:`RefinePool` is the same class under the name that says what it does since PAR.)

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
        self._starter: Optional[threading.Thread] = None
        self._start_error: Optional[BaseException] = None

    def __enter__(self) -> "CRFPool":
        if self.executor is None and self.workers > 0:
            self.executor = new_pool(self.workers)
        if self.executor is not None:  # started on a thread: the network's first steps go on meanwhile
            self._starter = threading.Thread(target=self._start_workers, name="start-refine-workers", daemon=True)
            self._starter.start()
        return self

    def _start_workers(self) -> None:
        """Send one warm-up job per worker (starting the processes; with a forkserver, the first start waits for its
        one import of this module); note when all are up in ``worker_startup_s``."""
        try:
            warm_ups = [self.executor.submit(_warm_up) for _ in range(self.workers)]

            def note_started(_: futures.Future) -> None:
                if all(future.done() for future in warm_ups):
                    self.summary.timing["worker_startup_s"] = self.summary.since_start()

            for future in warm_ups:
                future.add_done_callback(note_started)
        except BaseException as error:  # noqa: BLE001 - raised on the main thread by _ready
            self._start_error = error

    def _ready(self) -> None:
        """Wait for the start-up thread (once); raise what it failed with."""
        if self._starter is not None:
            self._starter.join()
            self._starter = None
            if self._start_error is not None:
                raise self._start_error

    def submit(self, task: FinishTask) -> None:
        """Hand one image's job to a worker (waiting while ``max_pending`` are out), or run it here without workers."""
        if self.executor is None:
            self.summary.done(finish_image(task))
            return
        self._ready()
        self.harvest(self.max_pending)
        self.pending[self.executor.submit(finish_image, task)] = task.image_id

    def harvest(self, block_until_below: int = 1) -> None:
        """Collect finished jobs until fewer than ``block_until_below`` are pending (1: all of them)."""
        self._ready()
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
        if self._starter is not None:
            self._starter.join()
        if self.executor is not None and self.owns_executor:
            self.executor.shutdown(wait=error is None, cancel_futures=True)


RefinePool = CRFPool
