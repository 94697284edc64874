"""The CRF stage on its own: one worker job (finish_image) and the pool that hands jobs out (CRFPool)."""

from __future__ import annotations

import concurrent.futures as futures
import contextlib
import threading
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest

from glmix_viz.data.voc import load_label_png
from glmix_viz.crf import CRFParams
from glmix_viz.pseudo.workers import CRFPool, FinishTask, finish_image


class FakeSummary:
    """What CRFPool needs of a run summary: done / fail / timed / timing / since_start, recorded."""

    def __init__(self) -> None:
        self.results: List[Dict[str, Any]] = []
        self.failures: List[tuple] = []
        self.timed_names: List[str] = []
        self.timing: Dict[str, float] = {}

    def done(self, result: Dict[str, Any]) -> None:
        self.results.append(result)

    def fail(self, image_id: str, reason: str) -> None:
        self.failures.append((image_id, reason))

    @contextlib.contextmanager
    def timed(self, name: str):
        self.timed_names.append(name)
        yield

    def since_start(self) -> float:
        return 1.5


def _task(tmp_path: Path, image_id: str = "a", *, crf: Any = None, save_scores: bool = False) -> FinishTask:
    """A 4x6 image whose scores put label 3 on the left half and label 7 on the right (background 0.5)."""
    image = np.zeros((4, 6, 3), np.uint8)
    image[:, 3:] = 200
    scores = np.full((3, 4, 6), 0.1, np.float32)
    scores[0] = 0.5
    scores[1, :, :3] = 0.9
    scores[2, :, 3:] = 0.8
    return FinishTask(image_id, image, scores, np.array([0, 3, 7]), crf, tmp_path / f"{image_id}.png",
                      tmp_path / "scores" / f"{image_id}.npz", save_scores)


EXPECTED = np.array([[3, 3, 3, 7, 7, 7]] * 4)  # the arg-max of the scores above, as label ids


def test_finish_image_writes_the_arg_max_labels_and_the_scores(tmp_path):
    result = finish_image(_task(tmp_path, save_scores=True))
    assert result["id"] == "a" and result["ok"] and result["refine_s"] >= 0 and result["write_s"] >= 0
    assert np.array_equal(load_label_png(tmp_path / "a.png"), EXPECTED)
    stored = np.load(tmp_path / "scores" / "a.npz")
    assert stored["scores"].dtype == np.float16 and stored["class_indices"].tolist() == [0, 3, 7]
    assert np.allclose(stored["scores"], _task(tmp_path).scores, atol=1e-3) and "crf" not in stored


def test_finish_image_with_the_crf_stores_the_refined_probabilities(tmp_path):
    result = finish_image(_task(tmp_path, crf=CRFParams(iterations=2), save_scores=True))
    assert result["ok"]
    refined = np.load(tmp_path / "scores" / "a.npz")["crf"].astype(np.float32)
    assert refined.shape == (3, 4, 6) and np.allclose(refined.sum(axis=0), 1.0, atol=1e-2)
    assert np.array_equal(load_label_png(tmp_path / "a.png"), np.array([0, 3, 7])[refined.argmax(axis=0)])


def test_finish_image_reports_a_failure_instead_of_raising(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the output folder should be")
    task = _task(tmp_path)
    task = FinishTask(task.image_id, task.image, task.scores, task.class_indices, None, blocker / "a.png",
                      blocker / "a.npz", False)
    result = finish_image(task)
    assert result["id"] == "a" and result["ok"] is False
    assert result["reason"].startswith("writing outputs failed: ") and "\n" not in result["reason"]


def test_without_workers_each_job_runs_when_submitted(tmp_path):
    summary = FakeSummary()
    with CRFPool(summary, workers=0, max_pending=4) as pool:
        pool.submit(_task(tmp_path, "a"))
        assert [result["id"] for result in summary.results] == ["a"]  # done before submit returned
        pool.submit(_task(tmp_path, "b"))
        pool.harvest(1)  # nothing pending: returns at once
    assert pool.executor is None and [result["ok"] for result in summary.results] == [True, True]
    assert summary.timed_names == [] and "worker_startup_s" not in summary.timing


class GatedExecutor(futures.ThreadPoolExecutor):
    """A thread pool whose jobs wait for a gate: the test decides when they may finish."""

    def __init__(self) -> None:
        super().__init__(max_workers=4)
        self.gate = threading.Event()
        self.submitted: List[str] = []

    def submit(self, function, *args, **kwargs):
        if function is finish_image:
            self.submitted.append(args[0].image_id)

            def gated(*inner_args):
                self.gate.wait(timeout=30)
                return function(*inner_args)

            return super().submit(gated, *args)
        return super().submit(function, *args, **kwargs)


def test_a_given_executor_gets_warm_ups_a_bounded_number_of_jobs_and_stays_open(tmp_path):
    summary = FakeSummary()
    executor = GatedExecutor()
    try:
        with CRFPool(summary, workers=2, max_pending=2, executor=executor) as pool:
            pool.submit(_task(tmp_path, "a"))
            pool.submit(_task(tmp_path, "b"))
            assert len(pool.pending) == 2 and summary.results == []  # both out, none finished
            executor.gate.set()
            pool.submit(_task(tmp_path, "c"))  # waits until fewer than 2 are pending
            assert len(pool.pending) <= 2 and len(summary.results) >= 1
            pool.harvest(1)
        assert pool.pending == {} and sorted(result["id"] for result in summary.results) == ["a", "b", "c"]
        assert all(result["ok"] for result in summary.results) and executor.submitted == ["a", "b", "c"]
        assert "waiting_for_workers_s" in summary.timed_names
        assert summary.timing["worker_startup_s"] == 1.5  # both warm-up jobs done
        assert executor.submit(lambda: 42).result() == 42  # not shut down: the caller owns it
    finally:
        executor.gate.set()
        executor.shutdown()
    for image_id in "abc":
        assert np.array_equal(load_label_png(tmp_path / f"{image_id}.png"), EXPECTED)


class FailingExecutor(futures.Executor):
    """Every job fails as if it could not reach the worker (e.g. an argument that does not pickle)."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def submit(self, function, *args, **kwargs):
        future: futures.Future = futures.Future()
        if function is finish_image:
            future.set_exception(self.error)
        else:
            future.set_result(True)
        return future


def test_a_job_that_never_reached_a_worker_is_reported_per_image(tmp_path):
    summary = FakeSummary()
    with CRFPool(summary, workers=1, max_pending=4, executor=FailingExecutor(ValueError("cannot pickle\nit"))) as pool:
        pool.submit(_task(tmp_path, "a"))
        pool.harvest(1)
    assert summary.results == [] and summary.failures == [("a", "worker failed: ValueError: cannot pickle it")]


def test_a_broken_pool_stops_the_run(tmp_path):
    summary = FakeSummary()
    with pytest.raises(futures.BrokenExecutor):
        with CRFPool(summary, workers=1, max_pending=4,
                     executor=FailingExecutor(futures.BrokenExecutor("a worker died"))) as pool:
            pool.submit(_task(tmp_path, "a"))
            pool.harvest(1)
    assert summary.failures == []


def test_pool_workers_run_torch_on_one_thread_each(tmp_path):
    from glmix_viz.refine import PARParams
    from glmix_viz.pseudo.workers import new_pool

    with new_pool(1) as pool:  # one worker: both jobs run in the same process
        assert pool.submit(finish_image, _task(tmp_path, crf=PARParams(iterations=1))).result()["ok"]
        assert pool.submit(_threads, 0).result() == 1


def _threads(_: int) -> int:
    import torch

    return torch.get_num_threads()


def test_a_task_carrying_refined_maps_is_only_written(tmp_path):
    from glmix_viz.refine import PARParams

    refined = np.zeros((3, 4, 6), np.float32)
    refined[2] = 0.6  # label 7 everywhere, though the scores say 3 on the left
    refined[0] = 0.4
    task = _task(tmp_path, crf=PARParams(confidence=0.5))
    task = FinishTask(*[getattr(task, name) for name in ("image_id", "image", "scores", "class_indices", "crf", "png",
                                                         "npz", "save_scores")], refined)
    assert finish_image(task)["ok"]
    assert (load_label_png(tmp_path / "a.png") == 7).all()


def test_a_worker_job_puts_torch_on_one_thread_for_par_and_the_main_process_keeps_its_threads(tmp_path):
    import torch

    from glmix_viz.refine import PARParams
    from glmix_viz.pseudo.workers import torch_threads

    with torch_threads(2):
        assert finish_image(_task(tmp_path, "a", crf=PARParams(iterations=1)), single_thread=False)["ok"]
        assert torch.get_num_threads() == 2
        assert finish_image(_task(tmp_path, "b", crf=PARParams(iterations=1)))["ok"]
        assert torch.get_num_threads() == 1


@pytest.mark.parametrize("refinement", ["none", "crf", "par"])
def test_the_worker_job_writes_the_labels_of_pseudo_mask(tmp_path, refinement):
    from glmix_viz.pseudo.masks import pseudo_mask
    from glmix_viz.refine import default_params

    params = default_params(refinement) if refinement != "crf" else CRFParams(iterations=3, confidence=0.6)
    task = _task(tmp_path, crf=params, save_scores=True)
    assert finish_image(task)["ok"]
    expected = pseudo_mask(task.image, task, params)
    assert np.array_equal(load_label_png(task.png), expected.labels())
    if expected.refined is not None:
        assert np.allclose(np.load(task.npz)["crf"].astype(np.float32), expected.refined, atol=1e-3)
