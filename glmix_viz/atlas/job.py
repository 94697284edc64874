"""The atlas job: collect every image's regions (chunk files on disk), then cluster them into concepts and write the
atlas. Resumable, shardable, summarised like the other batch jobs.

Layout of an atlas folder::

    features/plan.json            what the chunks hold: ids' hash, chunk size, blocks (and their slot count and
                                  initialisation, ``slots``), feature, input size, model
    features/chunk-NNNNN.npz      regions of ``chunk_size`` consecutive images (:mod:`glmix_viz.atlas.collect`)
    images.json                   ids and image paths (the explorer opens images from here)
    summary.json                  the collecting run (counts, failures, timing); summary.shard-K-of-N.json per shard
    atlas.json                    the concepts of every block (written last; :mod:`glmix_viz.atlas.build`)
    block-J.npz, crops/J/, atlas-J.png   centroids and map, typical regions, figure of the J-th block

A chunk file is written atomically once all its images are read, so a killed run loses at most the chunk under way;
a rerun removes the temporaries it left and does the chunks that are missing (the plan and the summary are
:mod:`glmix_viz.runtime.jobs`'s, the ids of the plan are the chunks). The chunks hold no concept: changing
``--clusters`` (or ``--concepts``) reclusters without running the model again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from glmix_viz.atlas import collect
from glmix_viz.atlas.build import build_atlas
from glmix_viz.atlas.collect import BlockRows, FEATURES_FOLDER, block_rows, chunk_paths
from glmix_viz.atlas.sources import DEFAULT_SOURCE, block_slots, check_source
from glmix_viz.data.base import Split
from glmix_viz.errors import DataError, GlmixVizError, one_line
from glmix_viz.files import save_bytes_atomic
from glmix_viz.images import batch_to_tensor, check_min_size
from glmix_viz.models.info import input_mean_std, model_input_size, model_summary
from glmix_viz.probe import GroupingProbe
from glmix_viz.runtime.jobs import RunSummary, plan_job

__all__ = ["AtlasSettings", "chunk_paths", "collect_regions", "run_atlas"]


@dataclass(frozen=True)
class AtlasSettings:
    """How regions are collected (a rerun must use the same; see ``features/plan.json``).

    Attributes:
        blocks: GLMix block paths or indices (at least one).
        feature: ``slots_in`` or ``slots_out`` (:mod:`glmix_viz.atlas.collect`).
        input_size: square side the images are resized to (None: the model's).
        batch_size: images per forward pass.
        chunk_size: images per chunk file (the unit of resume and of memory).
    """

    blocks: Tuple[Union[int, str], ...]
    feature: str = "slots_in"
    input_size: Optional[int] = None
    batch_size: int = 16
    chunk_size: int = 256


def _ids_hash(ids: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(ids).encode("utf-8")).hexdigest()[:16]


def _manifest(source: Split, model: Any, settings: AtlasSettings, blocks: List[str], input_size: int) -> Dict[str, Any]:
    names = list(source.class_names or ()) if source.has_masks else []
    return {"format": "glmix-viz-atlas/1", "ids": _ids_hash(source.ids), "num_images": len(source.ids),
            "chunk_size": settings.chunk_size, "blocks": blocks, "slots": block_slots(model, blocks),
            "feature": settings.feature, "input_size": input_size,
            "model": model_summary(model), "class_names": names or None,
            "background": source.background if names else None,
            "source": {"root": str(Path(getattr(source, "root", "")).resolve()),
                       "split": getattr(source, "split", None), "format": source.format}}


def _check_manifest(path: Path, manifest: Dict[str, Any], overwrite: bool) -> None:
    """Write the plan, or make sure the folder's chunks were made with the same one (``overwrite`` clears them)."""
    keys = ("ids", "num_images", "chunk_size", "blocks", "feature", "input_size")
    if path.is_file() and not overwrite:
        old = json.loads(path.read_text())
        changed = [key for key in keys if old.get(key) != manifest[key]]
        if old.get("model", {}).get("checkpoint") != manifest["model"]["checkpoint"]:
            changed.append("model")
        if changed:
            raise DataError(f"{path.parent}: holds regions collected with other {', '.join(changed)}; use another "
                            "--out, or --overwrite to start again")
        if "slots" not in old:  # collected before the slots were recorded: the same model, so record them now
            save_bytes_atomic(path, (json.dumps({**old, "slots": manifest["slots"]}, indent=2, default=str)
                                     + "\n").encode("utf-8"))
        return
    if overwrite and path.parent.is_dir():
        for old_chunk in path.parent.glob("*chunk-*"):
            old_chunk.unlink()
    save_bytes_atomic(path, (json.dumps(manifest, indent=2, default=str) + "\n").encode("utf-8"))


def _write_images_list(out_dir: Path, source: Split) -> None:
    target = out_dir / "images.json"
    if target.is_file():
        return
    paths = [str(Path(source.image_path(i)).resolve()) for i in source.ids]
    save_bytes_atomic(target, json.dumps({"ids": list(source.ids), "paths": paths}).encode("utf-8"))


def _read_batch(source: Split, ids: Sequence[str], summary: Any) -> List[Tuple[str, np.ndarray, Optional[np.ndarray]]]:
    """Image and mask of each id; an unreadable one is reported on the summary and left out."""
    loaded = []
    for image_id in ids:
        with summary.timed("load_s"):
            try:
                image = source.image(image_id)
                check_min_size(image, name=str(source.image_path(image_id)))
                loaded.append((image_id, image, source.mask(image_id)))
            except GlmixVizError as error:
                summary.fail(image_id, one_line(error, with_type=False))
            except Exception as error:  # noqa: BLE001 - an unreadable file must not stop the run
                summary.fail(image_id, f"cannot read inputs: {one_line(error)}")
    return loaded


@torch.inference_mode()
def _collect_chunk(source: Split, model: Any, ids: Sequence[str], first: int, blocks: List[str],
                   settings: AtlasSettings, input_size: int, summary: Any):
    """Rows of every block for one chunk's images, and the chunk's failures."""
    mean, std = input_mean_std(model)
    device = next(model.parameters()).device
    failed_before = len(summary.failures)
    parts: Dict[str, list] = {name: [] for name in blocks}
    read_ids, read_index = [], []
    position = {image_id: first + offset for offset, image_id in enumerate(ids)}
    for start in range(0, len(ids), settings.batch_size):
        loaded = _read_batch(source, ids[start:start + settings.batch_size], summary)
        if not loaded:
            continue
        inputs = batch_to_tensor([image for _, image, _ in loaded], input_size, mean=mean, std=std).to(device)
        with summary.timed("network_s"), GroupingProbe(model, blocks) as probe:
            model.forward_features(inputs)
        index = [position[image_id] for image_id, _, _ in loaded]
        for name in blocks:
            parts[name].append(block_rows(probe[name], [mask for _, _, mask in loaded], index, settings.feature))
        read_ids += [image_id for image_id, _, _ in loaded]
        read_index += index
        for _ in loaded:
            summary.done()
    rows = [BlockRows.concat(parts[name]) if parts[name] else None for name in blocks]
    return rows, read_ids, read_index, summary.failures[failed_before:]


def _empty_rows(model: Any, blocks: List[str], input_size: int, feature: str):
    """Zero-row :class:`BlockRows` of every block (a chunk where no image could be read)."""
    device = next(model.parameters()).device
    blank = np.zeros((input_size, input_size, 3), np.uint8)
    with torch.inference_mode(), GroupingProbe(model, blocks) as probe:
        model.forward_features(batch_to_tensor([blank], input_size).to(device))
    rows = [block_rows(probe[name], [None], [0], feature) for name in blocks]
    return [BlockRows(*(getattr(r, f)[:0] for f in ("features", "image", "slot", "area", "confidence", "label",
                                                    "label_share", "hard"))) for r in rows]


def collect_regions(source: Split, model: Any, out_dir: Union[str, os.PathLike], settings: AtlasSettings, *,
                    shard: Any = None, overwrite: bool = False, progress: bool = True) -> Dict[str, Any]:
    """Collect the regions of every image of ``source`` into chunk files (resumable; see the module docstring).

    Args:
        source: a :class:`~glmix_viz.data.base.Split` (masks give the purity; without them, e.g. a labelled or
            plain image folder, there is none).
        model: a GLNet (eval mode, on its device).
        out_dir: the atlas folder.
        settings: what to collect.
        shard: ``"K/N"`` / ``"auto"``: only that shard of the chunks.
        overwrite: drop the chunks already there.
        progress: a tqdm bar (images).

    Returns:
        The run summary (also in ``summary*.json``), with ``summary_path`` and ``complete`` (every chunk of the job
        exists, also other shards').
    """
    out_dir = Path(out_dir)
    try:
        blocks = GroupingProbe(model, list(settings.blocks)).block_names
    except ValueError as error:
        raise GlmixVizError(f"--block: {error}") from None
    input_size = int(settings.input_size or model_input_size(model))
    manifest = _manifest(source, model, settings, blocks, input_size)
    (out_dir / FEATURES_FOLDER).mkdir(parents=True, exist_ok=True)
    _check_manifest(out_dir / FEATURES_FOLDER / "plan.json", manifest, overwrite)
    _write_images_list(out_dir, source)
    chunks = chunk_paths(out_dir, len(source.ids), settings.chunk_size)
    folder = out_dir / FEATURES_FOLDER
    plan = plan_job([path.stem for path in chunks], out_dir, is_done=lambda name: (folder / f"{name}.npz").is_file(),
                    outputs=[(folder, ".npz")], shard=shard, overwrite=overwrite)
    size = settings.chunk_size
    todo = [folder / f"{name}.npz" for name in plan.todo]
    todo_images = sum(len(source.ids[int(n[6:]) * size:(int(n[6:]) + 1) * size]) for n in plan.todo)
    mine_images = sum(len(source.ids[int(n[6:]) * size:(int(n[6:]) + 1) * size]) for n in plan.my_ids)
    info = {"warnings": [], "settings": {**asdict(settings), "blocks": blocks, "input_size": input_size,
                                         "device": str(next(model.parameters()).device)},
            "model": manifest["model"], "dataset": {**manifest["source"], "shard": plan.shard,
                                                    "num_ids": len(source.ids), "chunks": len(chunks)}}
    summary = RunSummary(plan.summary_path, total=mine_images, skipped=mine_images - todo_images, todo=todo_images,
                         info=info, timers=("load_s", "network_s", "write_s"), desc="atlas", progress=progress)
    with summary.running():
        for path in todo:
            first = int(path.stem[6:]) * size
            ids = source.ids[first:first + size]
            rows, read_ids, index, failures = _collect_chunk(source, model, ids, first, blocks, settings, input_size,
                                                             summary)
            if any(r is None for r in rows):
                rows = _empty_rows(model, blocks, input_size, settings.feature)
            with summary.timed("write_s"):
                collect.write_chunk(path, rows, read_ids, index, failures)
    return {**summary.data, "summary_path": str(summary.path), "complete": all(path.is_file() for path in chunks)}


def _files_under(folder: Path) -> Optional[set]:
    """Every file and folder under ``folder`` (None when it does not exist)."""
    return set(folder.rglob("*")) if folder.is_dir() else None


def _remove_new(folder: Path, before: Optional[set]) -> None:
    """Remove what appeared under ``folder`` since ``before`` (:func:`_files_under`); the folder itself when it did
    not exist then."""
    if before is None:
        shutil.rmtree(folder, ignore_errors=True)
        return
    for path in sorted(_files_under(folder) - before, key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def run_atlas(source: Split, model: Any, out_dir: Union[str, os.PathLike], settings: AtlasSettings,
              clusters: Optional[int], *, concepts: str = DEFAULT_SOURCE, allow_pooled: bool = False,
              shard: Any = None, overwrite: bool = False, progress: bool = True, **build: Any) -> Dict[str, Any]:
    """Collect the regions, then (once every chunk exists) cluster them and write the atlas.

    ``concepts`` / ``allow_pooled`` / ``clusters`` are checked against the model's blocks before any image is read
    (:func:`glmix_viz.atlas.sources.check_source`: a slot-identity atlas of pooled slots is refused up front).

    Returns:
        ``{"summary": the collecting run's summary, "atlas": the atlas (atlas.json) or None while chunks are
        missing}``; ``build`` goes to :func:`glmix_viz.atlas.build.build_atlas` (seed, examples, resamples, ...).

    Raises:
        GlmixVizError: a concept source that does not fit the blocks.
        DataError: no image could be read and none was collected before: what this run wrote (the folder itself when
            it made it) is removed first, so no half-made atlas folder is left behind.
    """
    out_dir = Path(out_dir)
    try:
        names = GroupingProbe(model, list(settings.blocks)).block_names
    except ValueError as error:
        raise GlmixVizError(f"--block: {error}") from None
    check_source(concepts, names, block_slots(model, names), clusters=clusters if concepts == "slot" else None,
                 allow_pooled=allow_pooled)
    before = _files_under(out_dir)
    summary = collect_regions(source, model, out_dir, settings, shard=shard, overwrite=overwrite, progress=progress)
    counts = summary["counts"]
    if counts["done"] == 0 and counts["skipped"] == 0 and counts["failed"] > 0:
        _remove_new(out_dir, before)
        failures = summary["failures"]
        first = f"; first: {failures[0]['id']}: {failures[0]['reason']}" if failures else ""
        raise DataError(f"{out_dir}: no image could be read ({counts['failed']} of {counts['total']} failed{first}); "
                        "removed what this run wrote")
    if not summary["complete"]:
        print(f"regions of this shard collected; the atlas is built once every shard is done", file=sys.stderr)
        return {"summary": summary, "atlas": None}
    return {"summary": summary, "atlas": build_atlas(out_dir, clusters, concepts=concepts, allow_pooled=allow_pooled,
                                                     progress=progress, **build)}
