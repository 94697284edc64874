"""``grouping-scores``: do a model's slots group objects in each image, and do they mean the same class across
images? Every GLMix block of a model (and of a control) is scored on a labelled split, as the object-centric
literature scores slots:

* **mBO** at the instance and the class level, and the instance mBO after merging each image's slots to K groups
  (:mod:`glmix_viz.grouping` and :mod:`glmix_viz.scoring.grouping`: the functions the held-out bench uses);
* DINOSAUR's data-set-level **semantic mIoU**: k-means over the features of every slot that owns pixels in the split,
  clusters matched to classes by the Hungarian algorithm, at K = the number of classes (background included) and at
  2 K (:func:`glmix_viz.scoring.grouping.semantic_miou`);
* the **object purity** of those same clusters (the atlas's ``object_purity``): of the slots whose majority class is an
  object class, the share that falls in the majority object class of their cluster
  (:func:`glmix_viz.scoring.grouping.object_purity`);
* the **slot-identity purity**: the same with each slot's index in its block as its concept. With learned slot
  initialisations (``"slot_init": "param"``) slot k starts from the same vector in every image, and this says whether
  it also ends up meaning the same class; with pooled slots the index is a grid cell, so it measures position.

Means over images carry 95 % bootstrap intervals over the images (:mod:`glmix_viz.scoring.stats`, the project's one
bootstrap); the data-set-level scores (semantic mIoU, purity) resample images with the clustering held fixed. With a control, every score also gets its paired
difference (model - control) with a paired interval.

The job streams the split in chunks of images: each chunk's per-image scores and per-slot features go to one
``chunks/<model|control>/chunk-NNNNN.npz`` written atomically, so a killed run resumes at the first missing chunk
(:func:`glmix_viz.runtime.jobs.plan_job`) and memory holds one chunk of images at a time; only the slot features
(a few hundred numbers per slot) are gathered for the k-means.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch.nn as nn

from glmix_viz.data.base import Split
from glmix_viz.data.registry import open_split
from glmix_viz.errors import DataError, GlmixVizError, one_line
from glmix_viz.files import save_bytes_atomic
from glmix_viz.grouping import GroupingSample, per_image_object_scores, untrained_copy
from glmix_viz.labels import IGNORE_INDEX
from glmix_viz.probe import glmix_block_names
from glmix_viz.scoring.grouping import cluster_class_regions, object_purity, object_table, purity_draws, semantic_miou
from glmix_viz.scoring.stats import (
    class_counts,
    image_bootstrap,
    mean_interval,
    miou_of_counts,
    paired_difference,
    paired_miou_difference,
)
from glmix_viz.runtime.jobs import RunSummary, plan_job

__all__ = ["GroupingScoreSettings", "run_grouping_scores", "slot_identity_scores", "RESULTS_FILE", "FORMAT"]

FORMAT = "glmix-viz/grouping-scores/1"
RESULTS_FILE = "grouping_scores.json"
PLAN_FILE = "plan.json"
CHUNKS = "chunks"
PathLike = Union[str, os.PathLike]


@dataclass
class GroupingScoreSettings:
    """How a split is scored.

    Attributes:
        clusters: k-means clusters of the semantic mIoU and purity (None: the split's classes, background included);
            the scores are also given at twice that.
        merge_k: groups each image's slots are merged to for the merged mBO (None: the split's classes, background
            included; a block with fewer slots then keeps its own).
        input_size: square input side (None: the model's).
        batch_size: images per forward pass.
        chunk_size: images per chunk file (the unit of resume and of memory).
        control: "untrained" (a freshly initialised copy, seed ``control_seed``) or None.
        control_seed: seed of the control's weights.
        resamples: bootstrap resamples of every interval.
        seed: seed of k-means and of the bootstrap.
    """

    clusters: Optional[int] = None
    merge_k: Optional[int] = None
    input_size: Optional[int] = None
    batch_size: int = 16
    chunk_size: int = 64
    control: Optional[str] = None
    control_seed: int = 0
    resamples: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("batch_size", "chunk_size", "resamples"):
            if getattr(self, name) < 1:
                raise GlmixVizError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        for name in ("clusters", "merge_k"):
            value = getattr(self, name)
            if value is not None and value < 2:
                raise GlmixVizError(f"--{name.replace('_', '-')} must be at least 2, got {value}")
        if self.control not in (None, "untrained"):
            raise GlmixVizError(f"--control must be 'untrained', got {self.control!r}")


# ------------------------------------------------------------------------------------------------- reading the split
def _check_split(voc: Split) -> bool:
    """Raise on an empty split or one without class masks; return whether it has instance masks."""
    if not voc.ids:
        raise DataError(f"{voc.root}: split {voc.split!r} has no images")
    first = voc.mask_path(voc.ids[0]) if voc.has_masks else None
    if first is None or not Path(first).is_file():
        raise DataError(f"{voc.root}: split {voc.split!r} has no class masks (none for {voc.ids[0]!r}); "
                        "grouping-scores needs pixel labels")
    return voc.instances(voc.ids[0]) is not None


def _load_sample(voc: Split, image_id: str, instances: bool) -> GroupingSample:
    """One image with its class map and (where the set has them) its instance mask; without instance masks the
    class map stands in (the instance scores are then left out)."""
    image = voc.image(image_id)
    classes = voc.mask(image_id)
    if classes is None:
        raise DataError(f"{image_id}: class mask missing")
    if classes.shape != image.shape[:2]:
        raise DataError(f"{voc.mask_path(image_id)}: class mask size {classes.shape} differs from the image's "
                        f"{image.shape[:2]}")
    objects = classes
    if instances:
        objects = voc.instances(image_id)
        if objects is None:
            raise DataError(f"{voc.root}: instance mask of {image_id!r} missing")
        if objects.shape != image.shape[:2]:
            raise DataError(f"{voc.root}: instance mask of {image_id!r} differs in size from the image")
    valid = classes[classes != IGNORE_INDEX]
    if valid.size and int(valid.max()) >= voc.num_classes:
        raise DataError(f"{voc.mask_path(image_id)}: class id {int(valid.max())} outside 0..{voc.num_classes - 1}")
    return GroupingSample(image_id, image, objects, classes, voc.background)


# ----------------------------------------------------------------------------------------------------- chunk files
def _chunk_arrays(model: nn.Module, samples: Sequence[GroupingSample], *, input_size: int, num_classes: int,
                  merge_k: int, batch_size: int) -> Dict[str, np.ndarray]:
    """Per-image scores and per-slot features of one chunk, for every block (keys ``b<j>/<field>``)."""
    scores = per_image_object_scores(model, samples, input_size=input_size, num_classes=num_classes,
                                     merge_sizes=(merge_k,), batch_size=batch_size)
    arrays: Dict[str, np.ndarray] = {}
    for j, block in enumerate(scores.blocks.values()):
        arrays[f"b{j}/mbo_instance"] = block.mbo["instance"]
        arrays[f"b{j}/mbo_class"] = block.mbo["class"]
        arrays[f"b{j}/mbo_merged_instance"] = block.merged["instance"][merge_k]
        arrays[f"b{j}/mbo_merged_class"] = block.merged["class"][merge_k]
        arrays[f"b{j}/regions"] = block.regions
        arrays[f"b{j}/merged_regions"] = block.merged_regions[merge_k]
        arrays[f"b{j}/features"] = block.features.astype(np.float32)
        arrays[f"b{j}/overlaps"] = block.overlaps.astype(np.int64)
        arrays[f"b{j}/slot_image"] = block.slot_image
        arrays[f"b{j}/slot_index"] = block.slot_index
        arrays[f"b{j}/size"] = np.asarray(block.size, np.int64)
    return arrays


def _write_npz(path: Path, arrays: Dict[str, np.ndarray]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    save_bytes_atomic(path, buffer.getvalue())


def _gather(folder: Path, chunk_names: Sequence[str], chunk_sizes: Sequence[int], j: int) -> Dict[str, np.ndarray]:
    """One block's arrays over every chunk, the per-slot image indices made global."""
    parts: Dict[str, List[np.ndarray]] = {}
    offset = 0
    for name, size in zip(chunk_names, chunk_sizes):
        with np.load(folder / f"{name}.npz") as data:
            for key in data.files:
                if key.startswith(f"b{j}/"):
                    value = data[key]
                    if key.endswith("slot_image"):
                        value = value + offset
                    parts.setdefault(key.split("/", 1)[1], []).append(value)
        offset += size
    return {key: values[0] if key == "size" else np.concatenate(values) for key, values in parts.items()}


# --------------------------------------------------------------------------------------------------------- scoring
def _mean(values: np.ndarray) -> Optional[float]:
    values = np.asarray(values, dtype=np.float64)
    return float(np.nanmean(values)) if np.any(~np.isnan(values)) else None


def _clustered(arrays: Dict[str, np.ndarray], clusters: int, images: int, background: Optional[int], seed: int) -> Dict[str, Any]:
    """Semantic mIoU and object purity of one block's slots at ``clusters`` k-means clusters (and per-image tables
    for the intervals)."""
    result = semantic_miou(arrays["features"], arrays["overlaps"], clusters=clusters, seed=seed, background=background)
    confusion = result.per_image_confusion(arrays["overlaps"], arrays["slot_image"], images)
    tables = cluster_class_regions(result.labels, arrays["overlaps"], clusters, arrays["slot_image"], images)
    return {"result": result, "confusion": confusion, "tables": tables,
            "purity": object_purity(tables.sum(axis=0), background)}


def _miou_statistic(confusion: np.ndarray):
    """weights (..., N) -> data-set mIoU of the weighted per-image confusions (for :func:`image_bootstrap`)."""
    counts = class_counts(confusion)
    flat, shape = counts.reshape(len(counts), -1), counts.shape[1:]
    return lambda weights: miou_of_counts((weights @ flat).reshape(weights.shape[:-1] + shape))


def _purity_statistic(tables: np.ndarray, background: Optional[int]):
    """weights (..., N) -> object purity of the weighted per-image cluster x class tables."""
    flat, shape = tables.reshape(len(tables), -1).astype(np.float64), tables.shape[1:]
    return lambda weights: purity_draws(object_table((weights @ flat).reshape(weights.shape[:-1] + shape),
                                                     background))


def _interval(count: int, statistic, boot: Dict[str, int]) -> List[float]:
    return list(image_bootstrap(count, statistic, **boot).pair())


def _block_entry(arrays: Dict[str, np.ndarray], clustered: Dict[int, Dict[str, Any]], clusters: int, images: int,
                 background: Optional[int], instances: bool, boot: Dict[str, int], num_slots: int,
                 size: Sequence[int], merge_k: int, class_names: Sequence[str]) -> Dict[str, Any]:
    entry: Dict[str, Any] = {"slots": num_slots, "size": list(size), "regions": float(arrays["regions"].mean())}
    levels = ("instance", "class") if instances else ("class",)
    if not instances:
        entry["mbo_instance"] = None
    for level in levels:
        entry[f"mbo_{level}"] = _mean(arrays[f"mbo_{level}"])
        entry[f"mbo_{level}_ci95"] = list(mean_interval(arrays[f"mbo_{level}"], **boot))
    level = levels[0]
    entry["merge_k"] = merge_k
    entry["mbo_merged"] = _mean(arrays[f"mbo_merged_{level}"])
    entry["mbo_merged_ci95"] = list(mean_interval(arrays[f"mbo_merged_{level}"], **boot))
    entry["mbo_merged_level"] = level
    entry["merged_regions"] = float(arrays["merged_regions"].mean())
    for k, suffix in ((clusters, ""), (2 * clusters, "_2x")):
        found = clustered[k]
        entry[f"semantic_miou{suffix}"] = found["result"].miou
        entry[f"semantic_miou{suffix}_ci95"] = _interval(images, _miou_statistic(found["confusion"]), boot)
        entry[f"semantic_iou{suffix}"] = {name: (None if np.isnan(v) else float(v))
                                          for name, v in zip(class_names, found["result"].iou)}
        entry[f"object_purity{suffix}"] = found["purity"]
        entry[f"object_purity{suffix}_ci95"] = _interval(images, _purity_statistic(found["tables"], background), boot)
        entry[f"clusters{suffix}"] = k
    entry["slots_clustered"] = int(len(arrays["features"]))
    if "slot_index" in arrays:
        entry.update(slot_identity_scores(arrays, num_slots, images, background, boot))
    return entry


def slot_identity_scores(arrays: Dict[str, np.ndarray], num_slots: int, images: int, background: Optional[int],
                         boot: Dict[str, int]) -> Dict[str, Any]:
    """``slot_identity_purity`` and its ``_ci95``: the object purity with each slot's index as its concept (meaningful
    when slots are learned, not pooled), from the block's ``slot_index``, ``overlaps`` and ``slot_image``. The atlas's
    ``--concepts slot`` scores the same regions with the same functions (object purity of the concept x class table,
    :func:`glmix_viz.scoring.stats.image_bootstrap` over images): ``tests/test_atlas_identity.py`` checks they agree.
    """
    tables = cluster_class_regions(arrays["slot_index"], arrays["overlaps"], num_slots, arrays["slot_image"], images)
    return {"slot_identity_purity": object_purity(tables.sum(axis=0), background),
            "slot_identity_purity_ci95": _interval(images, _purity_statistic(tables, background), boot)}


def _paired(mine: Dict[str, Any], theirs: Dict[str, Any], clusters: int, images: int, background: Optional[int],
            instances: bool, boot: Dict[str, int]) -> Dict[str, Any]:
    """Model - control of every score of one block, paired over the same images."""
    a, b = mine["arrays"], theirs["arrays"]
    out: Dict[str, Any] = {}
    for level in (("instance", "class") if instances else ("class",)):
        out[f"mbo_{level}"] = paired_difference(a[f"mbo_{level}"], b[f"mbo_{level}"], **boot)
    level = "instance" if instances else "class"
    out["mbo_merged"] = paired_difference(a[f"mbo_merged_{level}"], b[f"mbo_merged_{level}"], **boot)
    if mine["clustered"] is None or theirs["clustered"] is None:
        return out
    for k, suffix in ((clusters, ""), (2 * clusters, "_2x")):
        x, y = mine["clustered"][k], theirs["clustered"][k]
        out[f"semantic_miou{suffix}"] = paired_miou_difference(x["confusion"], y["confusion"], **boot)
        first, second = _purity_statistic(x["tables"], background), _purity_statistic(y["tables"], background)
        out[f"object_purity{suffix}"] = {"mean": x["purity"] - y["purity"],
                                         "ci95": _interval(images, lambda w: first(w) - second(w), boot),
                                         "images": images}
    return out


def _figure(path: Path, name: str, entry: Dict[str, Any], control: Optional[Dict[str, Any]]) -> None:
    """Bars of one block's scores (model, and control where there is one) with their 95 % intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from glmix_viz.figures import save_figure

    keys = [k for k in ("mbo_instance", "mbo_class", "mbo_merged", "semantic_miou", "semantic_miou_2x",
                        "object_purity", "object_purity_2x") if entry.get(k) is not None]
    labels = {"mbo_instance": "mBO inst.", "mbo_class": "mBO class", "mbo_merged": f"mBO K={entry['merge_k']}",
              "semantic_miou": f"sem. mIoU K={entry['clusters']}", "semantic_miou_2x": f"K={entry['clusters_2x']}",
              "object_purity": f"obj. purity K={entry['clusters']}", "object_purity_2x": f"K={entry['clusters_2x']}"}
    rows = [("model", entry, "#1f77b4")] + ([("untrained control", control, "#aaaaaa")] if control else [])
    figure, axis = plt.subplots(figsize=(8.5, 3.2))
    width = 0.8 / len(rows)
    for r, (label, values, colour) in enumerate(rows):
        xs = np.arange(len(keys)) + (r - (len(rows) - 1) / 2) * width
        means = np.array([values[k] for k in keys], dtype=np.float64)
        cis = np.array([values[f"{k}_ci95"] for k in keys], dtype=np.float64)
        axis.bar(xs, means, width, color=colour, label=label,
                 yerr=np.abs(np.stack([means - cis[:, 0], cis[:, 1] - means])), capsize=2)
    axis.set_xticks(np.arange(len(keys)), [labels[k] for k in keys], fontsize=8)
    axis.set_ylim(0, 1)
    axis.set_title(f"{name}: {entry['slots']} slots, {entry['regions']:.1f} used per image", fontsize=9)
    axis.legend(fontsize=8, loc="upper right")
    save_figure(figure, path)
    plt.close(figure)


# ------------------------------------------------------------------------------------------------------------- job
def _plan_record(data: PathLike, split: str, ids: Sequence[str], checkpoint: str, settings: GroupingScoreSettings,
                 input_size: int) -> Dict[str, Any]:
    return {"data": str(Path(data).resolve()), "split": split, "images": len(ids),
            "ids_sha1": hashlib.sha1("\n".join(ids).encode()).hexdigest(), "checkpoint": checkpoint,
            "input_size": input_size, "chunk_size": settings.chunk_size, "merge_k": settings.merge_k,
            "control": settings.control, "control_seed": settings.control_seed}


def run_grouping_scores(data: PathLike, split: str, model: nn.Module, out_dir: PathLike,
                        settings: GroupingScoreSettings, *, checkpoint: str = "", overwrite: bool = False,
                        progress: bool = True, limit: Optional[int] = None) -> Dict[str, Any]:
    """Score every GLMix block of ``model`` (and of the control) on a labelled split; write ``grouping_scores.json``
    and one figure per block into ``out_dir``; return the results.

    Raises:
        DataError: an empty split, a split without class masks.
        GlmixVizError: a model without GLMix blocks, K larger than a block's slots (``merge_k``) or than the slots
            found in the split (``clusters``), ``out_dir`` holding chunks of another run.
    """
    out_dir = Path(out_dir)
    voc = open_split(data, split)
    ids = list(voc.ids[:limit])
    instances = _check_split(voc)
    names = glmix_block_names(model)
    if not names:
        raise GlmixVizError(f"{checkpoint or 'the model'}: has no GLMix block with slots (nothing to score)")
    num_classes = voc.num_classes
    background = voc.background  # the data set's, wherever it stands (None: it has none)
    clusters = settings.clusters or num_classes
    merge_k = settings.merge_k or num_classes
    from glmix_viz.models.tap import tap_infos

    infos = tap_infos(model)
    if settings.merge_k is not None:
        small = [n for n in names if infos[n].num_slots < merge_k]
        if small:
            raise GlmixVizError(f"--merge-k {merge_k} is larger than the {infos[small[0]].num_slots} slots of "
                                f"block {small[0]}")
    input_size = settings.input_size or model.pretrained_cfg["input_size"][-1]
    plan_path = out_dir / PLAN_FILE
    record = _plan_record(data, split, ids, checkpoint, settings, input_size)
    if plan_path.is_file() and not overwrite:
        old = json.loads(plan_path.read_text())
        if old != record:
            changed = sorted(k for k in record if old.get(k) != record[k])
            raise GlmixVizError(f"{out_dir}: holds grouping scores of another run ({', '.join(changed)} differ); "
                                "use --overwrite or another --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    save_bytes_atomic(plan_path, (json.dumps(record, indent=1) + "\n").encode())

    chunk_ids = {f"chunk-{i // settings.chunk_size:05d}": ids[i:i + settings.chunk_size]
                 for i in range(0, len(ids), settings.chunk_size)}
    tags = ["model"] + (["control"] if settings.control else [])
    folders = {tag: out_dir / CHUNKS / tag for tag in tags}
    if overwrite:
        for folder in folders.values():
            for path in folder.glob("chunk-*.npz"):
                path.unlink()
    plan = plan_job(list(chunk_ids), out_dir / CHUNKS,
                    is_done=lambda c: all((folders[t] / f"{c}.npz").is_file() for t in tags),
                    outputs=[(folder, ".npz") for folder in folders.values()])
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    reuse = _finished(out_dir, record, settings, clusters) if not plan.todo and not overwrite else None
    if reuse is not None:  # every chunk scored and summarised with these settings: nothing to redo
        return reuse
    control = untrained_copy(model, settings.control_seed) if settings.control else None
    if control is not None and glmix_block_names(control) != names:
        raise GlmixVizError(f"{checkpoint or 'the model'}: its untrained copy has other GLMix blocks "
                            f"({', '.join(glmix_block_names(control))}); the model's constructor arguments are unknown")
    skipped = sum(len(chunk_ids[c]) for c in chunk_ids if c not in plan.todo)
    summary = RunSummary(out_dir / "summary.json", total=len(ids), skipped=skipped,
                         todo=sum(len(chunk_ids[c]) for c in plan.todo),
                         info={"job": "grouping-scores", "plan": record}, timers=("load_s", "score_s"),
                         desc="grouping-scores", progress=progress)
    with summary.running():
        for chunk in plan.todo:
            samples = []
            with summary.timed("load_s"):
                for image_id in chunk_ids[chunk]:
                    try:
                        samples.append(_load_sample(voc, image_id, instances))
                    except GlmixVizError as error:
                        summary.fail(image_id, one_line(error))
            if not samples:
                continue
            with summary.timed("score_s"):
                kwargs = dict(input_size=input_size, num_classes=num_classes, merge_k=merge_k,
                              batch_size=settings.batch_size)
                for tag in tags:
                    arrays = _chunk_arrays(model if tag == "model" else control, samples, **kwargs)
                    arrays["ids"] = np.array([s.id for s in samples])
                    _write_npz(folders[tag] / f"{chunk}.npz", arrays)
            for _ in samples:
                summary.done()
    results = _summarise(out_dir, list(chunk_ids), names, infos, tags, settings, clusters, merge_k, num_classes,
                         background, instances, list(voc.class_names), record)
    results["plan"] = record
    results["summary"] = summary.data["counts"]
    results["failures"] = summary.data["failures"]
    save_bytes_atomic(out_dir / RESULTS_FILE, (json.dumps(results, indent=1) + "\n").encode())
    return results


def _finished(out_dir: Path, record: Dict[str, Any], settings: GroupingScoreSettings,
              clusters: int) -> Optional[Dict[str, Any]]:
    """The results file of an earlier run of this plan with these settings, or None."""
    path = out_dir / RESULTS_FILE
    if not path.is_file():
        return None
    try:
        results = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    same = (results.get("plan") == record and results.get("clusters") == clusters
            and results.get("resamples") == settings.resamples and results.get("seed") == settings.seed)
    return results if same else None


def _summarise(out_dir: Path, chunks: List[str], names: List[str], infos: Dict[str, Any], tags: List[str],
               settings: GroupingScoreSettings, clusters: int, merge_k: int, num_classes: int, background: Optional[int],
               instances: bool, class_names: List[str], record: Dict[str, Any]) -> Dict[str, Any]:
    """Read every chunk back, block by block: means, intervals, clusters, paired differences, figures."""
    present = [c for c in chunks if all((out_dir / CHUNKS / t / f"{c}.npz").is_file() for t in tags)]
    if not present:
        raise DataError(f"{record['data']}: no image of split {record['split']!r} could be scored")
    sizes = []
    for chunk in present:
        with np.load(out_dir / CHUNKS / "model" / f"{chunk}.npz") as data:
            sizes.append(len(data["ids"]))
    images = int(sum(sizes))
    boot = dict(resamples=settings.resamples, seed=settings.seed)
    results: Dict[str, Any] = {"format": FORMAT, **{k: record[k] for k in ("data", "split", "checkpoint")},
                               "images": images, "classes": class_names, "background": background,
                               "clusters": clusters, "merge_k": merge_k, "resamples": settings.resamples,
                               "seed": settings.seed, "blocks": {}}
    if "control" in tags:
        results["control"] = {"kind": settings.control, "seed": settings.control_seed, "blocks": {}}
        results["vs_control"] = {}
    for j, name in enumerate(names):
        scored: Dict[str, Dict[str, Any]] = {}
        for tag in tags:
            arrays = _gather(out_dir / CHUNKS / tag, present, sizes, j)
            found = len(arrays["features"])
            if found < 2 * clusters:
                raise GlmixVizError(f"block {name}: {found} slots own pixels in the split ({tag}), fewer than the "
                                    f"{2 * clusters} clusters asked for (--clusters {clusters} and twice that)")
            clustered = {k: _clustered(arrays, k, images, background, settings.seed)
                         for k in (clusters, 2 * clusters)}
            scored[tag] = {"arrays": arrays, "clustered": clustered}
            entry = _block_entry(arrays, clustered, clusters, images, background, instances, boot,
                                 infos[name].num_slots, arrays["size"].tolist(), merge_k, class_names)
            (results["blocks"] if tag == "model" else results["control"]["blocks"])[name] = entry
        if "control" in tags:
            results["vs_control"][name] = _paired(scored["model"], scored["control"], clusters, images, background,
                                                  instances, boot)
        figure = f"grouping_scores-{name}.png"
        _figure(out_dir / figure, name, results["blocks"][name],
                results["control"]["blocks"][name] if "control" in tags else None)
        results["blocks"][name]["figure"] = figure
    return results


def compare_runs(first: PathLike, second: PathLike, *, resamples: int = 1000, seed: int = 0,
                 clustered: bool = True) -> Dict[str, Any]:
    """Paired differences (first - second) of two ``grouping-scores`` folders made on the same images with the same
    clusters (e.g. two training recipes): per block, every score of :func:`run_grouping_scores`'s ``vs_control``
    (``clustered=False``: the mBO scores only, without redoing the k-means).

    Raises:
        GlmixVizError: the folders were not scored on the same images or with the same clusters.
    """
    first, second = Path(first), Path(second)
    results = [json.loads((folder / RESULTS_FILE).read_text()) for folder in (first, second)]
    plans = [json.loads((folder / PLAN_FILE).read_text()) for folder in (first, second)]
    if plans[0]["ids_sha1"] != plans[1]["ids_sha1"] or results[0]["clusters"] != results[1]["clusters"]:
        raise GlmixVizError(f"{first} and {second} were not scored on the same images with the same clusters")
    chunks = sorted(p.stem for p in (first / CHUNKS / "model").glob("chunk-*.npz"))
    sizes = []
    for chunk in chunks:
        with np.load(first / CHUNKS / "model" / f"{chunk}.npz") as data:
            sizes.append(len(data["ids"]))
    clusters, background = results[0]["clusters"], results[0]["background"]
    instances = results[0]["blocks"][next(iter(results[0]["blocks"]))]["mbo_instance"] is not None
    images = int(sum(sizes))
    boot = dict(resamples=resamples, seed=seed)
    out: Dict[str, Any] = {}
    for j, name in enumerate(results[0]["blocks"]):
        scored = []
        for folder in (first, second):
            arrays = _gather(folder / CHUNKS / "model", chunks, sizes, j)
            scored.append({"arrays": arrays, "clustered": {
                k: _clustered(arrays, k, images, background, seed)
                for k in (clusters, 2 * clusters)} if clustered else None})
        out[name] = _paired(scored[0], scored[1], clusters, images, background, instances, boot)
    return out
