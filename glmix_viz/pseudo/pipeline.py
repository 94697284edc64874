"""Batch jobs over a VOC-layout data set: pseudo-label a split, and evaluate a folder of label PNGs against it.

:func:`run_pseudo_label` runs the network on the main process, a few images at a time (views of equal size batched
by :func:`~glmix_viz.pseudo.scores.compute_scores_batch`), and hands each image's soft scores to a pool of worker
processes that run the dense CRF and write the outputs. The network runs ahead while the CRF works; a bounded number
of pending jobs keeps memory flat. Workers are started with ``spawn`` (safe with torch's thread pools; each worker
pays one import of the package when it starts).

Outputs, in ``out_dir``:

* ``<id>.png``: palette ("P" mode) PNG with the VOC colours, the image's exact size; 255 where the CRF's confidence
  rule left a pixel uncertain.
* ``scores/<id>.npz`` (``save_scores``): ``scores`` (K + 1, H, W) float16, the soft scores before the CRF (background
  first), ``class_indices`` (K + 1,) their label ids, and ``crf`` (K + 1, H, W) float16 after the CRF when it ran.
* ``summary.json`` (or ``summary.shard-K-of-N.json`` for a shard, so that shards sharing a folder never overwrite
  each other's summary): counts, failures with reasons, settings, model, timing.

Every file is written atomically (temporary file + rename), so a killed run leaves no partial output under a final
name. A rerun skips ids whose outputs exist (``overwrite`` redoes them). A missing or corrupt image, or missing
image-level labels, is reported by id and reason and skipped; the run goes on.
"""

from __future__ import annotations

import concurrent.futures as futures
import contextlib
import datetime as _datetime
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from glmix_viz.errors import CheckpointError, DataError, GlmixVizError, one_line
from glmix_viz.pseudo.crf import CRFParams

__all__ = [
    "SCORES_FOLDER",
    "check_classifier",
    "describe_model",
    "evaluate_predictions",
    "output_paths",
    "run_pseudo_label",
    "summary_name",
]

SCORES_FOLDER = "scores"


# ----------------------------------------------------------------------------------------------------------------------
# Helpers shared by the main process and the workers
# ----------------------------------------------------------------------------------------------------------------------


def output_paths(out_dir: Union[str, os.PathLike], image_id: str) -> Tuple[Path, Path]:
    """``(label PNG, scores .npz)`` paths of one image id in an output folder."""
    out_dir = Path(out_dir)
    return out_dir / f"{image_id}.png", out_dir / SCORES_FOLDER / f"{image_id}.npz"


def summary_name(shard: Optional[Union[str, Tuple[int, int]]]) -> str:
    """``summary.json``, or ``summary.shard-K-of-N.json`` for shard ``K/N``."""
    if shard is None:
        return "summary.json"
    from glmix_viz.data.voc import parse_shard

    index, count = parse_shard(shard)
    return f"summary.shard-{index}-of-{count}.json"


def _warm_up() -> bool:
    """Worker job sent once per worker at the start: import what the real jobs need while the network starts."""
    import glmix_viz.data.voc  # noqa: F401
    import glmix_viz.files  # noqa: F401
    import glmix_viz.images  # noqa: F401
    import glmix_viz.pseudo.crf  # noqa: F401

    with contextlib.suppress(ImportError):
        import pydensecrf.densecrf  # noqa: F401
    return True


def _finish_image(task: Dict[str, Any]) -> Dict[str, Any]:
    """Worker job: dense CRF (optional), label map, atomic PNG (and ``.npz``) writes. Never raises.

    Args:
        task: ``id``, ``image`` (H, W, 3) uint8, ``scores`` (K + 1, H, W) float32, ``class_indices`` (K + 1,),
            ``crf`` (a CRFParams dict or None), ``png`` and ``npz`` paths, ``save_scores``.

    Returns:
        ``id``, ``ok``, and ``crf_s`` / ``write_s`` seconds, or ``reason`` when something failed.
    """
    from glmix_viz.data.voc import label_to_pil
    from glmix_viz.files import save_npz_atomic, save_png_atomic
    from glmix_viz.pseudo.crf import confident_labels, dense_crf

    start = time.perf_counter()
    try:
        scores = task["scores"]
        refined = None
        if task["crf"] is not None:
            params = CRFParams(**task["crf"])
            refined = dense_crf(task["image"], scores, params)
            channel = confident_labels(refined, params.confidence)
        else:
            channel = scores.argmax(axis=0).astype(np.uint8)
        lookup = np.full(256, 255, dtype=np.uint8)
        lookup[: len(task["class_indices"])] = task["class_indices"]
        labels = lookup[channel]
        crf_done = time.perf_counter()
        png_path, npz_path = Path(task["png"]), Path(task["npz"])
        if task["save_scores"]:
            arrays = {"scores": scores.astype(np.float16), "class_indices": np.asarray(task["class_indices"], np.uint8)}
            if refined is not None:
                arrays["crf"] = refined.astype(np.float16)
            save_npz_atomic(npz_path, **arrays)
        save_png_atomic(png_path, label_to_pil(labels))  # last: the PNG's presence means the image is done
        return {"id": task["id"], "ok": True, "crf_s": crf_done - start, "write_s": time.perf_counter() - crf_done}
    except Exception as error:  # noqa: BLE001 - reported per image; the run goes on
        return {"id": task["id"], "ok": False, "reason": f"writing outputs failed: {one_line(error)}"}


# ----------------------------------------------------------------------------------------------------------------------
# Model checks
# ----------------------------------------------------------------------------------------------------------------------


def check_classifier(model: Any, num_object_classes: int, class_names: Optional[Sequence[str]] = None) -> List[str]:
    """Refuse a model whose classifier does not fit the data set; return warnings (e.g. differing class names).

    Args:
        model: the classifier.
        num_object_classes: the data set's classes minus the background (20 for VOC).
        class_names: the data set's object class names (background excluded), to compare with the model's.

    Raises:
        CheckpointError: the head has another number of classes (with a specific message for an ImageNet head).
    """
    from glmix_viz.models.loading import class_names as model_class_names

    num_classes = int(getattr(model, "num_classes", 0) or 0)
    if num_classes == 1000 and num_object_classes != 1000:
        raise CheckpointError(
            "model has a 1000-class ImageNet head; pseudo-label needs a multi-label head for the data set's "
            f"{num_object_classes} classes: fine-tune it first (glmix-viz finetune ...)"
        )
    if num_classes != num_object_classes:
        raise CheckpointError(
            f"model has a {num_classes}-class head but the data set has {num_object_classes} object classes "
            "(background excluded); use a model fine-tuned on this data set (glmix-viz finetune ...)"
        )
    warnings = []
    names = model_class_names(model)
    if names is not None and class_names is not None and [n.lower() for n in names] != [n.lower() for n in class_names]:
        warnings.append(f"model class names {list(names)} differ from the data set's {list(class_names)}")
    return warnings


def describe_model(model: Any) -> Dict[str, Any]:
    """Variant, checkpoint, classes and parameter count of a model, for summaries."""
    from glmix_viz.models.loading import class_names

    config = getattr(model, "checkpoint_config", None) or {}
    pretrained = getattr(model, "pretrained_cfg", None) or {}
    return {
        "variant": config.get("variant") or pretrained.get("architecture") or type(model).__name__,
        "checkpoint": config.get("source"),
        "num_classes": int(getattr(model, "num_classes", 0) or 0),
        "class_names": class_names(model) if getattr(model, "num_classes", 0) != 1000 else "imagenet-1k",
        "parameters": int(sum(parameter.numel() for parameter in model.parameters())),
        "trained": config.get("source") is not None,
    }


# ----------------------------------------------------------------------------------------------------------------------
# Pseudo-labelling
# ----------------------------------------------------------------------------------------------------------------------


def _is_done(image_id: str, out_dir: Path, save_scores: bool) -> bool:
    png_path, npz_path = output_paths(out_dir, image_id)
    return png_path.is_file() and (not save_scores or npz_path.is_file())


def _remove_stale_temporaries(out_dir: Path, ids: Sequence[str]) -> int:
    """Delete temporary files a killed run of these ids left (``.<id>.png.<hex>.tmp``); other shards' are kept."""
    wanted = set(ids)
    removed = 0
    for folder, suffix in ((out_dir, ".png"), (out_dir / SCORES_FOLDER, ".npz")):
        if not folder.is_dir():
            continue
        for path in folder.glob(".*.tmp"):
            stem = path.name[1:].rsplit(".", 2)[0]  # ".<id><suffix>.<hex>.tmp" -> "<id><suffix>"
            if stem.endswith(suffix) and stem[: -len(suffix)] in wanted:
                path.unlink(missing_ok=True)
                removed += 1
    return removed


@contextlib.contextmanager
def _torch_threads(count: Optional[int]) -> Iterator[None]:
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


def _now() -> str:
    return _datetime.datetime.now(_datetime.timezone.utc).isoformat(timespec="seconds")


def _write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    from glmix_viz.files import save_bytes_atomic

    save_bytes_atomic(path, (json.dumps(data, indent=2, default=str) + "\n").encode("utf-8"))


def run_pseudo_label(
    dataset: Any,
    out_dir: Union[str, os.PathLike],
    model: Any,
    settings: Optional[Any] = None,
    *,
    crf: Optional[CRFParams] = CRFParams(),
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
    **fields: Any,
) -> Dict[str, Any]:
    """Pseudo-label a split: score maps, optional dense CRF, VOC palette PNGs; resumable, sharded, summarised.

    Args:
        dataset: a :class:`~glmix_viz.data.voc.VOCDataset` (``ids``, ``load_image``, ``image_labels``,
            ``class_names``, ``root``, ``split``).
        out_dir: output folder (created).
        model: a GLNet whose head has ``dataset.num_classes - 1`` classes.
        settings: the score settings (:class:`~glmix_viz.pseudo.settings.ScoreSettings`: method, options, scales,
            flip, background rule, blocks, input size, device), or give its fields as keywords (``method=...``).
        crf: CRF settings, or ``None`` for the arg-max of the scores.
        workers: CRF / writer processes; 0 runs them in the main process (no overlap; for debugging).
        overwrite: redo images whose outputs exist.
        shard: ``"K/N"``: only the ids of that shard (:func:`glmix_viz.data.voc.shard_ids`).
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
        The summary (also written to ``out_dir/summary*.json``): ``status`` ("ok", "failed", or "interrupted" /
        "aborted" with ``error``, written before the exception propagates),
        ``counts`` (``total``, ``done``, ``skipped``, ``failed``), ``failures`` (``id``, ``reason``), ``warnings``,
        ``settings``, ``model``, ``dataset``, ``timing`` (``wall_s``, ``network_s``, ``crf_s``, ``load_s``,
        ``write_s``, ``io_s``, ``images_per_s``, ``waiting_for_workers_s``, ``worker_startup_s`` (from the start until
        every worker process had imported its modules); worker times are summed over workers).

    Raises:
        CheckpointError: the model's head does not fit the data set (e.g. an ImageNet head).
    """
    import torch
    from tqdm import tqdm

    from glmix_viz.data.voc import shard_ids
    from glmix_viz.pseudo.scores import compute_scores_batch, resolve_settings

    settings = resolve_settings(settings, fields)
    device = settings.device
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    class_names = list(dataset.class_names)
    warnings = check_classifier(model, len(class_names) - 1, class_names[1:])
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    all_ids = list(dataset.ids if ids is None else ids)
    my_ids = shard_ids(all_ids, shard)
    summary_path = out_dir / summary_name(shard)
    _remove_stale_temporaries(out_dir, my_ids)
    todo = [image_id for image_id in my_ids if overwrite or not _is_done(image_id, out_dir, save_scores)]
    skipped = len(my_ids) - len(todo)

    device_used = str(next(model.parameters()).device if device is None else torch.device(device))
    if torch_threads is None and device_used == "cpu" and workers > 0:
        torch_threads = max(1, (os.cpu_count() or 1) - workers)
    pending_limit = max_pending if max_pending is not None else 4 * max(workers, 1) + batch_size
    crf_settings = None if crf is None else crf.to_dict()

    summary: Dict[str, Any] = {
        "status": "running",
        "started": _now(),
        "counts": {"total": len(my_ids), "done": 0, "skipped": skipped, "failed": 0},
        "failures": [],
        "warnings": list(warnings),
        "settings": {
            **settings.to_dict(), "crf": crf_settings, "batch_size": batch_size,
            "workers": workers, "device": device_used, "torch_threads": torch_threads, "overwrite": overwrite,
            "save_scores": save_scores,
        },
        "score_settings": settings.to_dict(),
        "model": describe_model(model),
        "dataset": {
            "root": str(getattr(dataset, "root", "")), "split": getattr(dataset, "split", None),
            "shard": None if shard is None else (shard if isinstance(shard, str) else f"{shard[0]}/{shard[1]}"),
            "num_ids_in_split": len(all_ids), "num_ids_in_shard": len(my_ids), "class_names": class_names,
        },
    }
    timing = {"network_s": 0.0, "load_s": 0.0, "crf_s": 0.0, "write_s": 0.0, "waiting_for_workers_s": 0.0,
              "worker_startup_s": 0.0}
    failures: List[Dict[str, str]] = summary["failures"]
    wall_start = time.perf_counter()
    bar = tqdm(total=len(todo), unit="img", desc="pseudo-label", disable=not progress, file=sys.stderr,
               dynamic_ncols=True)

    def record(result: Dict[str, Any]) -> None:
        if result["ok"]:
            summary["counts"]["done"] += 1
            timing["crf_s"] += result["crf_s"]
            timing["write_s"] += result["write_s"]
        else:
            fail(result["id"], result["reason"])
            return
        bar.update(1)

    def fail(image_id: str, reason: str) -> None:
        failures.append({"id": image_id, "reason": reason})
        summary["counts"]["failed"] += 1
        bar.update(1)
        bar.write(f"skipped {image_id}: {reason}", file=sys.stderr)

    owns_executor = executor is None
    if executor is None and workers > 0 and todo:
        executor = futures.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    if executor is not None:
        warm_ups = [executor.submit(_warm_up) for _ in range(workers)]  # start-up overlaps the first network steps

        def note_started(_: futures.Future) -> None:
            if all(future.done() for future in warm_ups):
                timing["worker_startup_s"] = time.perf_counter() - wall_start

        for future in warm_ups:
            future.add_done_callback(note_started)
    pending: Dict[futures.Future, str] = {}  # future -> image id

    def harvest(block_until_below: int) -> None:
        while len(pending) >= max(block_until_below, 1):
            waited = time.perf_counter()
            finished, _ = futures.wait(list(pending), return_when=futures.FIRST_COMPLETED)
            timing["waiting_for_workers_s"] += time.perf_counter() - waited
            for future in finished:
                image_id = pending.pop(future)
                try:
                    record(future.result())
                except futures.BrokenExecutor:  # the pool is gone: stop the run
                    raise
                except Exception as error:  # noqa: BLE001 - e.g. a task that could not be sent to the worker
                    fail(image_id, f"worker failed: {one_line(error)}")

    def submit(task: Dict[str, Any]) -> None:
        if executor is None:
            record(_finish_image(task))
            return
        harvest(pending_limit)
        pending[executor.submit(_finish_image, task)] = task["id"]

    try:
        with _torch_threads(torch_threads):
            for start in range(0, len(todo), batch_size):
                loaded: List[Tuple[str, np.ndarray, np.ndarray]] = []
                for image_id in todo[start:start + batch_size]:
                    began = time.perf_counter()
                    try:
                        image = dataset.load_image(image_id)
                        labels = dataset.image_labels(image_id)
                    except GlmixVizError as error:
                        fail(image_id, one_line(error))
                        continue
                    except Exception as error:  # noqa: BLE001 - an unreadable file must not stop the run
                        fail(image_id, f"cannot read inputs: {one_line(error)}")
                        continue
                    finally:
                        timing["load_s"] += time.perf_counter() - began
                    loaded.append((image_id, image, labels))
                if not loaded:
                    continue
                score_kwargs = dict(batch_size=batch_size * (2 if settings.flip else 1))
                began = time.perf_counter()
                try:
                    results = compute_scores_batch(model, [i for _, i, _ in loaded], [l for _, _, l in loaded],
                                                   settings, **score_kwargs)
                    outcomes = list(zip(loaded, results, [None] * len(loaded)))
                except Exception:  # noqa: BLE001 - find the culprit image by image
                    outcomes = []
                    for item in loaded:
                        try:
                            outcomes.append((item, compute_scores_batch(model, [item[1]], [item[2]], settings,
                                                                          **score_kwargs)[0],
                                             None))
                        except Exception as error:  # noqa: BLE001
                            outcomes.append((item, None, error))
                timing["network_s"] += time.perf_counter() - began
                for (image_id, image, _), result, error in outcomes:
                    if result is None:
                        fail(image_id, f"score maps failed: {one_line(error)}")
                        continue
                    png_path, npz_path = output_paths(out_dir, image_id)
                    submit({
                        "id": image_id, "image": image, "scores": result.scores, "class_indices": result.class_indices,
                        "crf": crf_settings, "png": str(png_path), "npz": str(npz_path), "save_scores": save_scores,
                    })
            harvest(1)
        summary["status"] = "failed" if failures else "ok"
    except BaseException as error:
        summary["status"] = "interrupted" if isinstance(error, KeyboardInterrupt) else "aborted"
        summary["error"] = one_line(error)
        raise
    finally:
        if executor is not None and owns_executor:
            executor.shutdown(wait=summary["status"] in ("ok", "failed"), cancel_futures=True)
        bar.close()
        wall = time.perf_counter() - wall_start
        summary["finished"] = _now()
        summary["timing"] = {
            "wall_s": round(wall, 3),
            **{key: round(value, 3) for key, value in timing.items()},
            "io_s": round(timing["load_s"] + timing["write_s"], 3),
            "images_per_s": round(summary["counts"]["done"] / wall, 3) if wall > 0 else None,
        }
        _write_json_atomic(summary_path, summary)
    summary["summary_path"] = str(summary_path)
    return summary


# ----------------------------------------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------------------------------------


def evaluate_predictions(
    dataset: Any,
    pred_dir: Union[str, os.PathLike],
    *,
    pred_ignore: str = "background",
    missing: str = "fail",
    progress: bool = False,
) -> Dict[str, Any]:
    """Confusion-matrix mIoU of a folder of label PNGs (``<id>.png``) against a split's ground-truth masks.

    Every id of the split is looked up in ``pred_dir`` (a folder that several shards wrote into reads as one).

    Args:
        dataset: a :class:`~glmix_viz.data.voc.VOCDataset`.
        pred_dir: folder of predicted label PNGs (palette or grey values are class indices; 255 = uncertain).
        pred_ignore: ``"background"`` (default, IRN's stricter convention): predicted 255 counts as background;
            ``"ignore"``: such pixels are left out.
        missing: ``"fail"``: an id without a prediction counts as a failure; ``"skip"``: it is only reported.
        progress: show a tqdm bar.

    Returns:
        The scores of :meth:`~glmix_viz.pseudo.metrics.SegmentationMetric.compute`, plus ``missing_predictions``
        (ids), ``failures`` (``id``, ``reason``: unreadable prediction, missing ground truth, size mismatch...),
        ``num_failed``, ``pred_dir``, ``split``.
    """
    from tqdm import tqdm

    from glmix_viz.data.voc import load_label_png
    from glmix_viz.pseudo.metrics import SegmentationMetric

    if missing not in ("fail", "skip"):
        raise ValueError(f"missing must be 'fail' or 'skip', got {missing!r}")
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise DataError(f"{pred_dir}: prediction folder does not exist")
    metric = SegmentationMetric(dataset.num_classes, list(dataset.class_names), pred_ignore=pred_ignore)
    missing_ids: List[str] = []
    failures: List[Dict[str, str]] = []
    for image_id in tqdm(dataset.ids, unit="img", desc="evaluate", disable=not progress, file=sys.stderr):
        pred_path = pred_dir / f"{image_id}.png"
        if not pred_path.is_file():
            missing_ids.append(image_id)
            if missing == "fail":
                failures.append({"id": image_id, "reason": f"{pred_path}: no prediction"})
            continue
        try:
            gt = dataset.load_mask(image_id)
            if gt is None:
                raise DataError(f"{dataset.root}: no ground-truth mask for image {image_id!r}")
            pred = load_label_png(pred_path)
            if pred.shape != gt.shape:
                raise DataError(
                    f"{pred_path}: prediction is {pred.shape[1]}x{pred.shape[0]} but the ground truth is "
                    f"{gt.shape[1]}x{gt.shape[0]}"
                )
            metric.update(pred, gt)
        except (GlmixVizError, ValueError) as error:
            failures.append({"id": image_id, "reason": one_line(error)})
    scores = metric.compute()
    scores.update(
        missing_predictions=missing_ids, failures=failures, num_failed=len(failures), pred_dir=str(pred_dir),
        split=getattr(dataset, "split", None), num_ids=len(dataset.ids),
    )
    return scores
