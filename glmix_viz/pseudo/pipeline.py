"""The pseudo-label batch job over a data set (a :class:`~glmix_viz.data.base.Split`; evaluation of its output:
:mod:`glmix_viz.evaluate`).

:func:`run_pseudo_label` wires four stages, each in its own module:

1. plan (:mod:`glmix_viz.pseudo.plan` on :func:`glmix_viz.runtime.jobs.plan_job`): this shard's ids, the ones still
   to do, the output paths;
2. load and score (here): a few images at a time on the main process (views of equal size batched by
   :func:`~glmix_viz.pseudo.scores.compute_scores_batch`); when a batch fails, image by image, so that one bad
   image is reported and skipped;
3. refine and write (:mod:`glmix_viz.pseudo.workers`): a pool of worker processes runs the refinement
   (:mod:`glmix_viz.refine`: dense CRF or PAR) and writes the outputs while the network runs ahead; PAR on a
   CUDA device instead runs here, batched on the GPU right after the network, and the workers only write;
4. summary (:class:`glmix_viz.runtime.jobs.RunSummary`): counts, failures with reasons, settings, model, timing, and
   ``stage_share``: each stage's share of the summed stage seconds (load, network, refine, write; worker seconds
   summed over workers).

Outputs, in ``out_dir``:

* ``<id>.png``: palette ("P" mode) PNG with the VOC colours, the image's exact size; 255 where the refinement's
  confidence rule left a pixel uncertain.
* ``scores/<id>.npz`` (``save_scores``): ``scores`` (K + 1, H, W) float16, the soft scores before the refinement
  (background first), ``class_indices`` (K + 1,) their label ids, and ``crf`` (K + 1, H, W) float16 after the
  refinement (dense CRF or PAR; the key keeps its first name) when one ran.
* ``summary.json`` (or ``summary.shard-K-of-N.json`` for a shard, so that shards sharing a folder never overwrite
  each other's summary): counts, failures with reasons, settings, model, timing.

Every file is written atomically (temporary file + rename), so a killed run leaves no partial output under a final
name. A rerun skips ids whose outputs exist (``overwrite`` redoes them). A missing or corrupt image, or missing
image-level labels, is reported by id and reason and skipped; the run goes on.
"""

from __future__ import annotations

import concurrent.futures as futures
import dataclasses
import os
import sys
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from glmix_viz.crf import CRFParams
from glmix_viz.data.base import Split, object_names
from glmix_viz.data.classes import ClassMatch, match_classes
from glmix_viz.refine import PARParams, RefineParams, check_device, method_of, par_refine_batch
from glmix_viz.errors import CheckpointError, DataError, GlmixVizError, one_line
from glmix_viz.models.info import class_names as model_class_names
from glmix_viz.models.info import model_summary
from glmix_viz.pseudo.plan import SCORES_FOLDER, output_paths, plan_run
from glmix_viz.pseudo.scores import compute_scores_batch
from glmix_viz.pseudo.settings import ScoreSettings
from glmix_viz.pseudo.workers import CRFPool, FinishTask
from glmix_viz.pseudo.workers import torch_threads as threads_set_to
from glmix_viz.runtime.jobs import JobPlan, RunSummary

__all__ = [
    "SCORES_FOLDER",
    "check_classifier",
    "load_images",
    "output_paths",
    "run_pseudo_label",
    "score_images",
]

TIMERS = ("network_s", "load_s", "refine_s", "write_s", "waiting_for_workers_s", "worker_startup_s")
STAGES = ("load_s", "network_s", "refine_s", "write_s")
"""The stages whose shares the summary reports (``stage_share``)."""
"""The job's timers in the summary (worker times summed over workers); ``io_s`` is ``load_s + write_s``."""
Loaded = Tuple[str, np.ndarray, np.ndarray]  # (id, (H, W, 3) uint8 image, (num_classes,) image-level labels)


# ----------------------------------------------------------------------------------------------------------------------
# Model checks
# ----------------------------------------------------------------------------------------------------------------------


def check_classifier(model: Any, dataset: Split) -> Tuple[ClassMatch, List[str]]:
    """Match the model's classes to the data set's by name; refuse a model that fits it nowhere.

    Returns:
        The :class:`~glmix_viz.data.classes.ClassMatch` and warnings (data-set classes the model does not know,
        reported once for the run).

    Raises:
        CheckpointError: an ImageNet head, or a head whose classes share nothing with the data set.
    """
    num_classes = int(getattr(model, "num_classes", 0) or 0)
    num_objects = len(object_names(dataset))
    if num_classes == 1000 and num_objects != 1000:
        raise CheckpointError(
            "model has a 1000-class ImageNet head; pseudo-label needs a multi-label head for the data set's "
            f"{num_objects} classes: fine-tune it first (glmix-viz finetune ...)"
        )
    try:
        match = match_classes(model_class_names(model), dataset, num_model_classes=num_classes)
    except DataError as error:
        raise CheckpointError(f"{one_line(error, with_type=False)} (glmix-viz finetune ...)") from None
    warning = match.warning()
    return match, [] if warning is None else [warning]


# ----------------------------------------------------------------------------------------------------------------------
# Pseudo-labelling
# ----------------------------------------------------------------------------------------------------------------------


def load_images(dataset: Split, ids: Sequence[str], summary: Any, match: Optional[ClassMatch] = None) -> List[Loaded]:
    """Load stage: image and image-level labels of each id (over the model's classes when ``match`` is given); an
    unreadable one is reported and left out."""
    loaded: List[Loaded] = []
    for image_id in ids:
        with summary.timed("load_s"):
            try:
                labels = dataset.labels(image_id)
                loaded.append((image_id, dataset.image(image_id),
                               labels if match is None else match.model_labels(labels)))
            except GlmixVizError as error:
                summary.fail(image_id, one_line(error))
            except Exception as error:  # noqa: BLE001 - an unreadable file must not stop the run
                summary.fail(image_id, f"cannot read inputs: {one_line(error)}")
    return loaded


def score_images(model: Any, loaded: Sequence[Loaded], settings: Any, batch_size: int) -> List[Tuple[Any, Any]]:
    """Score stage: ``(ScoreMaps or None, error or None)`` per loaded image; a failed batch is redone one by one."""
    try:
        results = compute_scores_batch(model, [image for _, image, _ in loaded], [labels for _, _, labels in loaded],
                                       settings, batch_size=batch_size)
        return [(result, None) for result in results]
    except Exception:  # noqa: BLE001 - find the culprit image by image
        outcomes: List[Tuple[Any, Any]] = []
        for _, image, labels in loaded:
            try:
                outcomes.append((compute_scores_batch(model, [image], [labels], settings, batch_size=batch_size)[0],
                                 None))
            except Exception as error:  # noqa: BLE001
                outcomes.append((None, error))
        return outcomes


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _run_info(dataset: Split, model: Any, plan: JobPlan, settings: Any, job: Dict[str, Any],
              warnings: List[str]) -> Dict[str, Any]:
    """The summary's record of the run: warnings, settings (score settings and the job's), model, data set."""
    return {
        "warnings": list(warnings),
        "settings": {**settings.to_dict(), **job},
        "score_settings": settings.to_dict(),
        "model": model_summary(model),
        "dataset": {
            "root": str(getattr(dataset, "root", "")), "split": getattr(dataset, "split", None), "shard": plan.shard,
            "num_ids_in_split": len(plan.all_ids), "num_ids_in_shard": len(plan.my_ids),
            "class_names": list(dataset.class_names), "background": dataset.background,
        },
    }


def _job_settings(model: Any, settings: Any, crf: RefineParams, workers: int, torch_threads: Optional[int],
                  **flags: Any) -> Dict[str, Any]:
    """The job's own settings; ``torch_threads`` defaults on the CPU to the cores minus ``workers`` (at least 1)."""
    device = str(next(model.parameters()).device if settings.device is None else torch.device(settings.device))
    if torch_threads is None and device == "cpu" and workers > 0:
        torch_threads = max(1, (os.cpu_count() or 1) - workers)
    return {"refine": method_of(crf), "crf": None if crf is None else crf.to_dict(),
            "batch_size": flags.pop("batch_size"), "workers": workers,
            "device": device, "torch_threads": torch_threads, **flags}


def stage_shares(timing: Dict[str, float]) -> Dict[str, Optional[float]]:
    """Each stage's share (0..1) of the summed stage seconds (:data:`STAGES`), rounded to 3 places."""
    total = sum(float(timing.get(name, 0.0)) for name in STAGES)
    return {name[:-2]: (round(float(timing.get(name, 0.0)) / total, 3) if total > 0 else None) for name in STAGES}


def refine_in_main(kept: Sequence[Tuple[str, np.ndarray, Any]], crf: PARParams, device: str,
                   summary: Any) -> List[Optional[np.ndarray]]:
    """PAR on ``device``, batched over the images of equal size (and channel count), in the main process: the
    pipeline's path for a CUDA device (the workers then only write). ``kept``: ``(id, image, ScoreMaps)``. A batch
    that fails gives ``None`` for its images (the workers refine them on the CPU)."""
    refined: List[Optional[np.ndarray]] = [None] * len(kept)
    by_size: Dict[Tuple[int, ...], List[int]] = {}
    for index, (_, image, result) in enumerate(kept):
        by_size.setdefault((*image.shape, result.scores.shape[0]), []).append(index)
    with summary.timed("refine_s"):
        for indices in by_size.values():
            try:
                images = torch.from_numpy(np.stack([kept[i][1] for i in indices])).to(device)
                images = images.permute(0, 3, 1, 2).float()
                maps = torch.from_numpy(np.stack([np.asarray(kept[i][2].scores, np.float32) for i in indices]))
                out = par_refine_batch(images, maps.to(device), crf).cpu().numpy()
            except Exception as error:  # noqa: BLE001 - the workers refine these one by one instead
                print(f"warning: PAR on {device} failed for a batch ({one_line(error)}); refining on the CPU",
                      file=sys.stderr)
                continue
            for position, index in enumerate(indices):
                refined[index] = out[position]
    return refined


def run_pseudo_label(
    dataset: Split,
    out_dir: Union[str, os.PathLike],
    model: Any,
    settings: Optional[ScoreSettings] = None,
    *,
    crf: RefineParams = CRFParams(),
    refinement: Any = "crf",
    workers: int = 1,
    overwrite: bool = False,
    shard: Optional[Union[str, Tuple[int, int]]] = None,
    save_scores: bool = False,
    batch_size: int = 4,
    max_pending: Optional[int] = None,
    torch_threads: Optional[int] = None,
    progress: bool = True,
    ids: Optional[Sequence[str]] = None,
    executor: Optional[futures.Executor] = None,
) -> Dict[str, Any]:
    """Pseudo-label a split: score maps, a refinement (dense CRF, PAR or none), VOC palette PNGs; resumable, sharded,
    summarised.

    Args:
        dataset: a :class:`~glmix_viz.data.base.Split` with image-level labels.
        out_dir: output folder (created).
        model: a GLNet classifier; its classes are matched to the data set's by name
            (:func:`~glmix_viz.data.classes.match_classes`), and the masks hold the data set's class ids (its
            background id, or 255 where it has no background).
        settings: the score settings (:class:`~glmix_viz.pseudo.settings.ScoreSettings`: method, options, scales,
            flip, background rule, blocks, input size, device); ``None``: its defaults (the default method).
        crf: the refinement's settings: :class:`~glmix_viz.crf.CRFParams` (dense CRF, the default),
            :class:`~glmix_viz.refine.PARParams` (PAR; with a CUDA ``device`` it runs batched on the GPU in
            the main process), or ``None`` for the arg-max of the scores.
        refinement: the same, under the name that says what it is (given, it replaces ``crf``).
        workers: refinement / writer processes; 0 runs them in the main process (no overlap; for debugging).
        overwrite: redo images whose outputs exist.
        shard: ``"K/N"``: only the ids of that shard (:func:`glmix_viz.runtime.distributed.shard_ids`).
        save_scores: also write ``scores/<id>.npz``.
        batch_size: images per network step.
        max_pending: most images handed to the workers and not yet finished (default ``4 * workers + batch_size``).
        torch_threads: torch's CPU threads while running; default on the CPU: the cores minus ``workers`` (at least 1),
            so the network and the CRF do not fight over cores. Restored afterwards.
        progress: show a tqdm bar (images/s) on stderr.
        ids: run these ids instead of the dataset's split (before sharding).
        executor: a process pool to use instead of starting ``workers`` processes (kept open afterwards; e.g. to
            reuse warm workers across runs). ``workers`` then only sets the default ``torch_threads``.

    Returns:
        The summary (also written to ``out_dir/summary*.json``; schema in :mod:`glmix_viz.runtime.jobs`), with
        ``summary_path``. On an exception the summary is written with status "interrupted" / "aborted" before it
        propagates.

    Raises:
        CheckpointError: the model's head does not fit the data set (e.g. an ImageNet head).
    """
    settings = ScoreSettings() if settings is None else settings
    if not isinstance(settings, ScoreSettings):
        raise ValueError(f"settings must be a ScoreSettings, got {type(settings).__name__}")
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not isinstance(refinement, str):
        crf = refinement
    method_of(crf)  # a bad parameter object: refused before any image
    par_device = check_device(crf.device) if isinstance(crf, PARParams) else "cpu"
    worker_crf = dataclasses.replace(crf, device=None) if par_device != "cpu" else crf  # workers refine on the CPU
    match, warnings = check_classifier(model, dataset)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    plan = plan_run(dataset.ids if ids is None else ids, out_dir, shard=shard, overwrite=overwrite,
                    save_scores=save_scores)
    job = _job_settings(model, settings, crf, workers, torch_threads, batch_size=batch_size, overwrite=overwrite,
                        save_scores=save_scores)
    summary = RunSummary(plan.summary_path, total=len(plan.my_ids), skipped=plan.skipped, todo=len(plan.todo),
                         info=_run_info(dataset, model, plan, settings, job, warnings), timers=TIMERS,
                         sums={"io_s": ("load_s", "write_s")}, desc="pseudo-label", progress=progress)
    pending = max_pending if max_pending is not None else 4 * max(workers, 1) + batch_size
    try:
        with threads_set_to(job["torch_threads"]), CRFPool(summary, workers=workers if plan.todo else 0,
                                                           max_pending=pending, executor=executor,
                                                           load_torch=isinstance(worker_crf, PARParams)) as pool:
            for chunk in _chunks(plan.todo, batch_size):
                loaded = load_images(dataset, chunk, summary, match)
                with summary.timed("network_s"):
                    outcomes = score_images(model, loaded, settings, batch_size * (2 if settings.flip else 1))
                kept = []
                for (image_id, image, _), (result, error) in zip(loaded, outcomes):
                    if result is None:
                        summary.fail(image_id, f"score maps failed: {one_line(error)}")
                    else:
                        kept.append((image_id, image, result))
                refined = (refine_in_main(kept, crf, par_device, summary) if par_device != "cpu"
                           else [None] * len(kept))
                for (image_id, image, result), maps in zip(kept, refined):
                    png_path, npz_path = output_paths(plan.out_dir, image_id)
                    label_ids = match.label_ids[np.asarray(result.class_indices, dtype=np.int64)]
                    pool.submit(FinishTask(image_id, image, result.scores, label_ids, worker_crf, png_path,
                                           npz_path, save_scores, maps))
            pool.harvest(1)  # the last images' jobs
        summary.finish()
        summary.data["stage_share"] = stage_shares(summary.timing)
    except BaseException as error:
        summary.finish(error)
        raise
    finally:
        written = summary.write()
    return written
