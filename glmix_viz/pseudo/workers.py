"""The refinement stage of the pseudo-label job: worker processes that finish images (dense CRF or PAR, label PNG).

The network runs on the main process and hands each image's soft scores to :class:`CRFPool` as a
:class:`FinishTask`; its workers run the refinement and write the outputs while the network goes on. A bounded number
of pending jobs keeps memory flat. With ``workers=0`` the jobs run in the main process, one after another (no overlap;
for debugging). When the main process already refined an image (PAR batched on a GPU), the task carries the refined
maps and its worker only writes.

Start-up cost, measured (issue 28: ``--workers 2`` was slower than ``--workers 0`` on short runs): each ``spawn``-ed
worker imported this module, so the whole ``glmix_viz.pseudo`` package (every score method: torch, timm,
torchvision, pytorch-grad-cam), about 4.7 CPU-seconds per worker, all workers at once on the cores the network needs
(a 2-worker pool took 24-29 s to start on the shared, contended 2-core machine). Now:

* the job a worker runs, :func:`~glmix_viz.finish.finish_image`, and the refinement code it needs
  (:mod:`glmix_viz.refine`, :mod:`glmix_viz.crf`) live outside the package: a CRF worker imports numpy, PIL and
  pydensecrf (about 0.1 CPU-s), a PAR worker torch too (about 1.8 CPU-s);
* workers are forked from a ``forkserver`` that has imported that module and the main script once
  (:func:`pool_context`), and the pool is started on a thread, so the network's first steps overlap it;
* each worker runs torch on one thread (:func:`~glmix_viz.finish.init_worker`): N workers running PAR with every
  core's threads would fight the network for the cores (oversubscription);
* pickling is not the cost: a 500x375 image and its score maps are about 2 MB a task, milliseconds to send.
"""

from __future__ import annotations

import concurrent.futures as futures
import contextlib
import multiprocessing
import threading
import time
from typing import Any, Dict, Iterator, Optional

import torch

from glmix_viz.errors import one_line
from glmix_viz.finish import FinishTask, finish_image
from glmix_viz.finish import init_worker as _init_worker
from glmix_viz.finish import warm_up as _warm_up

__all__ = ["CRFPool", "FinishTask", "RefinePool", "finish_image", "pool_context", "torch_threads"]


def pool_context(load_torch: bool = False) -> Any:
    """The multiprocessing context of the worker pools: ``forkserver`` preloading the worker job's module (and the main
    script, so that the forked workers do not import it again) where the platform has it, else ``spawn``."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["__main__", "glmix_viz.finish", *(["torch"] if load_torch else [])])
        return context
    return multiprocessing.get_context("spawn")


def new_pool(workers: int, load_torch: bool = False) -> futures.ProcessPoolExecutor:
    """A process pool of ``workers`` refinement workers (:func:`pool_context`, one torch thread each); ``load_torch``
    (PAR): the forkserver, when this call starts it, imports torch once for all workers."""
    return futures.ProcessPoolExecutor(max_workers=workers, mp_context=pool_context(load_torch),
                                       initializer=_init_worker)


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
        load_torch: the workers import torch at start-up (PAR), not in the first image's refinement time.
    """

    def __init__(self, summary: Any, *, workers: int, max_pending: int,
                 executor: Optional[futures.Executor] = None, load_torch: bool = False) -> None:
        self.summary = summary
        self.workers = workers
        self.max_pending = max(1, max_pending)
        self.owns_executor = executor is None
        self.load_torch = load_torch
        self.executor = executor
        self.pending: Dict[futures.Future, str] = {}  # future -> image id
        self._starter: Optional[threading.Thread] = None
        self._start_error: Optional[BaseException] = None

    def __enter__(self) -> "CRFPool":
        if self.executor is None and self.workers > 0:
            self.executor = new_pool(self.workers, self.load_torch)
        if self.executor is not None:  # started on a thread: the network's first steps go on meanwhile
            self._starter = threading.Thread(target=self._start_workers, name="start-refine-workers", daemon=True)
            self._starter.start()
        return self

    def _start_workers(self) -> None:
        """Send one warm-up job per worker (starting the processes; with a forkserver, the first start waits for its
        one import of this module); note when all are up in ``worker_startup_s``."""
        try:
            warm_ups = [self.executor.submit(_warm_up, self.load_torch) for _ in range(self.workers)]

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
            self.summary.done(finish_image(task, single_thread=False))
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
