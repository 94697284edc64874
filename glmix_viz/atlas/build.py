"""Build an atlas from collected regions: concepts per block, their purity, typical regions, map and figure.

The concepts come from k-means over the regions' features (the default) or, for blocks with learned initial slots,
from the slot index itself (``concepts="slot"``); :mod:`glmix_viz.atlas.sources` says which and checks it. Everything
after the fit (sizes, purity and its intervals, typical regions, map, figure) is the same code for both.

Writes, in the atlas folder, for the ``J``-th block: ``block-J.npz`` (``centroids`` (K, C): the k-means centres, or
each slot's mean feature; ``map_xy`` (P, 2) the PCA
coordinates of a uniform sample of regions with their ``map_concept``, ``map_label``, ``map_image``, ``map_slot``;
``pca_mean`` / ``pca_components`` to place other slots on the map; ``purity_draws`` (R,) the bootstrap purities,
``object_purity_draws`` (R,) those of the object regions alone; ``region_image``, ``region_concept``,
``region_label`` of every labelled region, for paired comparisons of two atlases of the same images with
:func:`glmix_viz.scoring.grouping.purity_difference`),
``crops/J/cKK_R.png`` (the ``R``-th most typical region of concept ``KK``) and ``atlas-J.png`` (the figure); then
``atlas.json`` (schema in :func:`build_atlas`).
"""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import numpy as np

from glmix_viz.atlas.collect import FEATURES_FOLDER, chunk_header, chunk_paths, read_chunk
from glmix_viz.atlas.concepts import ConceptStats, describe_concepts
from glmix_viz.atlas.sources import DEFAULT_SOURCE, check_source, fit_source
from glmix_viz.errors import DataError, one_line
from glmix_viz.scoring.grouping import contingency_scores, image_tables, object_purity, object_table, purity_statistic
from glmix_viz.scoring.stats import DEFAULT_RESAMPLES, Interval, image_bootstrap
from sklearn.decomposition import PCA
from glmix_viz.atlas.pictures import atlas_figure, region_crop
from glmix_viz.files import save_bytes_atomic, save_png_atomic
from glmix_viz.images import load_image
from glmix_viz.figures import save_figure
from tqdm import tqdm

__all__ = ["ATLAS_FORMAT", "build_atlas"]

ATLAS_FORMAT = "glmix-viz-atlas/1"


def _interval(interval: Interval) -> List[Optional[float]]:
    return [None, None] if np.isnan(interval.low) else [interval.low, interval.high]


def background_class(plan: Dict[str, Any]) -> Optional[int]:
    """The background class of an atlas's data set: the plan's ``background`` where it records one, else the class
    named ``background`` wherever it stands, else none."""
    if "background" in plan:
        return plan["background"]
    names = list(plan.get("class_names") or [])
    return names.index("background") if "background" in names else None


def _purity_intervals(stats: ConceptStats, num_images: int, background: Optional[int], resamples: int,
                      seed: int) -> Dict[str, Interval]:
    """Bootstrap intervals over images (:func:`glmix_viz.scoring.stats.image_bootstrap`) of the purity and of the
    object purity (the background class left out)."""
    concepts, classes = stats.table.shape
    empty = Interval(float("nan"), float("nan"), "none", np.zeros(0))
    if not classes or stats.table.sum() == 0:
        return {"purity": empty, "object_purity": empty}
    tables = image_tables(stats.labelled["image"], stats.labelled["concept"], stats.labelled["label"],
                          images=num_images, concepts=concepts, classes=classes)
    boot = dict(resamples=resamples, seed=seed)
    found = {"purity": image_bootstrap(num_images, purity_statistic(tables, concepts, classes), **boot)}
    found["object_purity"] = empty
    if object_table(stats.table, background).sum() > 0:
        found["object_purity"] = image_bootstrap(
            num_images, purity_statistic(tables, concepts, classes, background=background, objects=True), **boot)
    return found


def _map(stats: ConceptStats, seed: int) -> Dict[str, np.ndarray]:
    """PCA (scikit-learn) of the map sample to 2-D, and the projection to place other slots."""
    features = stats.sample.get("features")
    if features is None or len(features) < 2:
        width = 0 if features is None else features.shape[1]
        return {"map_xy": np.zeros((0, 2), np.float32), "pca_mean": np.zeros(width, np.float32),
                "pca_components": np.zeros((2, width), np.float32)}
    pca = PCA(n_components=min(2, features.shape[1], len(features)), random_state=seed).fit(features)
    xy = pca.transform(features).astype(np.float32)
    components = pca.components_.astype(np.float32)
    if xy.shape[1] < 2:
        xy = np.pad(xy, ((0, 0), (0, 2 - xy.shape[1])))
        components = np.pad(components, ((0, 2 - components.shape[0]), (0, 0)))
    return {"map_xy": xy, "pca_mean": pca.mean_.astype(np.float32), "pca_components": components,
            **{f"map_{name}": stats.sample[name] for name in ("concept", "label", "image", "slot")}}


def _crops(out_dir: Path, j: int, stats: ConceptStats, paths: List[str], chunk_size: int) -> List[List[Dict]]:
    """Write the typical regions' crops of block ``j``; per concept, its examples (id index, slot, crop file)."""
    wanted = sorted({image for heap in stats.typical for _, image, _, _ in heap})
    hard: Dict[int, np.ndarray] = {}
    for chunk_no in sorted({image // chunk_size for image in wanted}):
        path = out_dir / FEATURES_FOLDER / f"chunk-{chunk_no:05d}.npz"
        maps, index = read_chunk(path, j, fields=("hard",))["hard"], chunk_header(path)["index"]
        hard.update({image: maps[index.index(image)] for image in wanted if image in index})
    examples: List[List[Dict]] = []
    for k, heap in enumerate(stats.typical):
        row = []
        for rank, (distance, image, slot, confidence) in enumerate(heap):
            entry = {"image": image, "slot": slot, "distance": round(distance, 5), "confidence": round(confidence, 4)}
            try:
                crop = region_crop(load_image(paths[image]), hard[image], slot)
                name = f"crops/{j}/c{k:02d}_{rank}.png"
                save_png_atomic(out_dir / name, crop)
                entry["crop"] = name
            except Exception as error:  # noqa: BLE001 - an image gone since collecting: the entry says why
                entry["error"] = one_line(error)
            row.append(entry)
        examples.append(row)
    return examples


def _block_entry(name: str, stats: ConceptStats, class_names: Optional[List[str]], examples, ids: List[str],
                 intervals: Dict[str, Interval], background: Optional[int]) -> Dict[str, Any]:
    concepts = []
    for k, size in enumerate(stats.sizes.tolist()):
        entry: Dict[str, Any] = {"index": k, "size": size, "share": size / max(1, int(stats.sizes.sum()))}
        row = stats.table[k] if stats.table.shape[1] else None
        if row is not None and row.sum() > 0:
            top = int(row.argmax())
            entry.update(purity=float(row[top] / row.sum()), class_index=top, labelled=int(row.sum()),
                         class_counts={class_names[c]: int(n) for c, n in enumerate(row) if n},
                         **{"class": class_names[top]})
        entry["examples"] = [{**e, "id": ids[e["image"]]} for e in examples[k]]
        concepts.append(entry)
    out: Dict[str, Any] = {"name": name, "regions": int(stats.sizes.sum()), "images": stats.images,
                           "concepts": concepts}
    if stats.table.shape[1] and stats.table.sum() > 0:
        out.update(contingency_scores(stats.table))
        out["purity_ci95"] = _interval(intervals["purity"])
        out["background"] = None if background is None else class_names[background]
        out["object_purity"] = object_purity(stats.table, background)
        out["object_purity_ci95"] = _interval(intervals["object_purity"])
        out["object_majority_baseline"] = contingency_scores(object_table(stats.table, background))["majority_baseline"]
        out["class_counts"] = {class_names[c]: int(n) for c, n in enumerate(stats.table.sum(axis=0)) if n}
    return out


def _figure(out_dir: Path, j: int, entry: Dict[str, Any], source: str) -> str:
    noun = "slot" if source == "slot" else "concept"
    crops, titles = [], []
    for concept in entry["concepts"]:
        crops.append([load_image(out_dir / e["crop"]) for e in concept["examples"] if "crop" in e])
        label = f", {concept['class']} {concept['purity']:.0%}" if "class" in concept else ""
        titles.append(f"{noun} {concept['index']}: {concept['size']} regions{label}")
    heading = f"{entry['name']}: {len(entry['concepts'])} concepts"
    if source == "slot":
        heading += " (slot identity: one per slot)"
    if "purity" in entry:
        low, high = entry["purity_ci95"]
        heading += f", purity {entry['purity']:.3f} ({low:.3f}-{high:.3f})"
    name = f"atlas-{j}.png"
    save_figure(atlas_figure(crops, titles, heading=heading), out_dir / name, max_bytes=900_000)
    return name


def _read_plan(out_dir: Path):
    plan_path = out_dir / FEATURES_FOLDER / "plan.json"
    if not plan_path.is_file():
        raise DataError(f"{out_dir}: no collected regions ({plan_path} is missing); run glmix-viz atlas first")
    plan = json.loads(plan_path.read_text())
    chunks = chunk_paths(out_dir, plan["num_images"], plan["chunk_size"])
    missing = [path.name for path in chunks if not path.is_file()]
    if missing:
        raise DataError(f"{out_dir}: {len(missing)} of {len(chunks)} chunk files are missing (first: {missing[0]}); "
                        "run glmix-viz atlas again to collect them")
    return plan, chunks


def build_atlas(out_dir: Union[str, os.PathLike], clusters: Optional[int], *, concepts: str = DEFAULT_SOURCE,
                allow_pooled: bool = False, seed: int = 0, examples: int = 8, resamples: int = DEFAULT_RESAMPLES,
                map_points: int = 3000, passes: int = 3, progress: bool = True) -> Dict[str, Any]:
    """Cluster the collected regions of every block into ``clusters`` concepts and write the atlas.

    With ``concepts="slot"`` each region's concept is its slot index instead (one concept per slot of the block;
    ``clusters`` must be None or the slot count; blocks with pooled slots are refused unless ``allow_pooled``:
    :func:`glmix_viz.atlas.sources.check_source`); a concept's typical regions are then those nearest the mean
    feature of the slot's regions.

    Returns:
        The content of ``atlas.json``: ``format``, ``concepts`` (the source: ``kmeans`` or ``slot``; an atlas
        without it is k-means), ``clusters`` (None for ``slot``), ``seed``, ``plan`` (``features/plan.json``),
        ``images`` (read), ``failures`` (``id``, ``reason``: images skipped while collecting), ``class_names``, and
        ``blocks``: a list, per block: ``name``, ``index`` (J of its files), ``regions``, ``images``, ``figure``,
        ``slots`` (``num_slots``, ``slot_init``, where the plan records them),
        ``data`` (``block-J.npz``), ``concepts`` (``index``, ``size``, ``share``, with labels ``purity``, ``class``,
        ``class_index``, ``class_counts``, ``labelled``; ``examples``: ``id``, ``image``, ``slot``, ``distance``,
        ``confidence``, ``crop``), and with labels ``purity``, ``purity_ci95``, ``majority_baseline``, ``nmi``,
        ``object_purity`` / ``object_purity_ci95`` / ``object_majority_baseline`` (the same over the regions whose
        class is not the background: :func:`background_class`, named in ``background``; without one, the same as
        the purity), the intervals bootstrapped over the images (:mod:`glmix_viz.scoring.stats`),
        ``class_counts``.
    """
    out_dir = Path(out_dir)
    if concepts == "kmeans" and (clusters is None or clusters < 1):
        raise DataError(f"--clusters must be at least 1, got {clusters}")
    plan, chunks = _read_plan(out_dir)
    slots = plan.get("slots")
    check_source(concepts, plan["blocks"], slots, clusters=clusters if concepts == "slot" else None,
                 allow_pooled=allow_pooled)
    images = json.loads((out_dir / "images.json").read_text())
    headers = [chunk_header(path) for path in chunks]
    class_names = plan.get("class_names")
    background = background_class(plan)
    blocks = []
    for j, name in enumerate(tqdm(plan["blocks"], desc="concepts", unit="block", disable=not progress,
                                  file=sys.stderr)):
        kmeans = fit_source(concepts, chunks, j, clusters=clusters, slots=slots[j] if slots else None, seed=seed,
                            passes=passes)
        stats = describe_concepts(chunks, j, kmeans, len(class_names or []), examples=examples,
                                  map_points=map_points, seed=seed)
        intervals = _purity_intervals(stats, len(images["ids"]), background, resamples, seed)
        buffer = io.BytesIO()
        np.savez(buffer, centroids=kmeans.cluster_centers_.astype(np.float32),
                 purity_draws=intervals["purity"].distribution,
                 object_purity_draws=intervals["object_purity"].distribution,
                 **{f"region_{name}": values for name, values in stats.labelled.items()},
                 **_map(stats, seed))
        save_bytes_atomic(out_dir / f"block-{j}.npz", buffer.getvalue())
        example_rows = _crops(out_dir, j, stats, images["paths"], plan["chunk_size"])
        entry = _block_entry(name, stats, class_names, example_rows, images["ids"], intervals, background)
        entry.update(index=j, data=f"block-{j}.npz")
        if slots:
            entry["slots"] = dict(slots[j])
        entry["figure"] = _figure(out_dir, j, entry, concepts)
        blocks.append(entry)
    atlas = {"format": ATLAS_FORMAT, "concepts": concepts, "clusters": clusters if concepts == "kmeans" else None,
             "seed": seed, "resamples": resamples, "plan": plan,
             "images": sum(len(h["ids"]) for h in headers), "failures": [f for h in headers for f in h["failures"]],
             "class_names": class_names, "blocks": blocks}
    save_bytes_atomic(out_dir / "atlas.json", (json.dumps(atlas, indent=2) + "\n").encode("utf-8"))
    return atlas
