"""Concept importance: how much a class's probability depends on a concept of the atlas (slot interventions).

For a block of an atlas, every image of the atlas runs through the model; its slots are given their concepts
(:meth:`~glmix_viz.atlas.read.Atlas.slot_concepts`: the nearest centroid, or in a slot-identity atlas the slot's own
index, so that concept k's removal is the removal of slot k), and for every concept present in the image
its slots are removed together (:mod:`glmix_viz.slots.interventions`: no attention to them, no dispatch from them,
the others' dispatch renormalised) and the rest of the network runs; all concepts of one image run as one batch.
The importance of concept k for class c is the mean, over the images whose labels contain c, of the change of c's
probability when k's slots are removed (0 for an image without the concept: removing nothing changes nothing), with a
bootstrap interval over images (:func:`glmix_viz.scoring.stats.mean_interval`). Negative: the class needs the concept
(the ranking of ACE / CRAFT, made exact). An image all of whose slots fall in one concept cannot lose it (at least
one slot must stay): it is counted in ``skipped_all_slots`` and left out of that concept's mean.

Written into ``atlas.json``: ``blocks[j].concepts[k].importance = {class name: {"mean", "ci95", "images",
"with_concept"}}`` and ``blocks[j].importance`` (how it was made).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from tqdm import tqdm

from glmix_viz.atlas.read import Atlas, open_atlas
from glmix_viz.errors import DataError, GlmixVizError, one_line
from glmix_viz.files import save_bytes_atomic
from glmix_viz.images import load_image, to_tensor
from glmix_viz.models.info import class_probabilities, input_mean_std, is_multilabel
from glmix_viz.probe import GroupingProbe
from glmix_viz.scoring.stats import mean_interval
from glmix_viz.slots.interventions import block_input, edited_block_outputs, resolve_block, run_from_block

__all__ = ["concept_importance"]


def _image_changes(model: torch.nn.Module, atlas: Atlas, block: str, image: np.ndarray, input_size: Optional[int]
                   ) -> Dict[int, np.ndarray]:
    """concept -> (C,) change of every class probability when the image's slots of that concept are removed."""
    name, module = resolve_block(model, block)
    mean, std = input_mean_std(model)
    inputs = to_tensor(image, size=input_size, mean=mean, std=std).to(next(model.parameters()).device)
    with torch.inference_mode(), GroupingProbe(model, [name]) as probe:
        x = block_input(model, inputs, name)
        module(x)  # the probe records this block's grouping
        concept, _ = atlas.slot_concepts(name, probe[name])
    present = sorted(set(int(k) for k in concept))
    removable = [k for k in present if not np.all(concept == k)]
    out: Dict[int, np.ndarray] = {k: None for k in present if k not in removable}  # type: ignore[misc]
    if not removable:
        return out
    keep = torch.ones(len(removable) + 1, module.num_slots, dtype=torch.bool)
    for row, k in enumerate(removable, start=1):
        keep[row, torch.from_numpy(concept == k)] = False
    with torch.inference_mode():
        logits = run_from_block(model, name, edited_block_outputs(module, x, keep.to(x.device))).double()
    probs = class_probabilities(logits, is_multilabel(model)).cpu().numpy()
    out.update({k: probs[row] - probs[0] for row, k in enumerate(removable, start=1)})
    return out


def concept_importance(atlas_dir: Union[str, os.PathLike], model: torch.nn.Module, labels: Any, *,
                       blocks: Optional[Sequence[str]] = None, limit: Optional[int] = None, resamples: int = 1000,
                       seed: int = 0, progress: bool = True, write: bool = True) -> Dict[str, Any]:
    """Importance of every concept for every class (module docstring), added to the atlas's ``atlas.json``.

    Args:
        atlas_dir: a finished atlas folder.
        model: the model the atlas was made with.
        labels: image id -> ``(C,)`` multi-hot labels over the model's classes: a callable or a split reader (its
            ``image_labels``).
        blocks: the atlas blocks to score (default all).
        limit: the first ``limit`` images of the atlas only.
        write: update ``atlas.json`` (atomically).

    Returns:
        ``{block: [per concept: {class name: {"mean", "ci95", "images", "with_concept"}}], "failures": [...]}``.
    """
    atlas = open_atlas(atlas_dir)
    names = list(atlas.class_names or [f"class {i}" for i in range(int(model.num_classes))])
    if len(names) - 1 == int(model.num_classes):  # the atlas's names include the background
        names = names[1:]
    if len(names) != int(model.num_classes):
        raise DataError(f"{atlas.folder}: the atlas names {len(names)} classes, the model has {model.num_classes}")
    label_of = labels if callable(labels) else labels.image_labels
    chosen = list(blocks or atlas.block_names)
    for block in chosen:
        atlas.block(block)  # KeyError for a block without concepts
    input_size = atlas.data["plan"].get("input_size")
    ids, paths = atlas.images["ids"][:limit], atlas.images["paths"][:limit]
    changes = {b: {k: [[] for _ in names] for k in range(len(atlas.block(b)["concepts"]))} for b in chosen}
    has = {b: {k: [[] for _ in names] for k in changes[b]} for b in chosen}
    skipped = {b: {k: 0 for k in changes[b]} for b in chosen}
    failures: List[Dict[str, str]] = []
    model.eval()
    for image_id, path in tqdm(list(zip(ids, paths)), desc="concept importance", unit="img", disable=not progress,
                               file=sys.stderr):
        try:
            present = np.flatnonzero(np.asarray(label_of(image_id), dtype=np.float64) > 0.5)
            if present.size == 0:
                continue
            image = load_image(path)
            for block in chosen:
                per_concept = _image_changes(model, atlas, block, image, input_size)
                for k in changes[block]:
                    if k in per_concept and per_concept[k] is None:
                        skipped[block][k] += 1
                        continue
                    for c in present:
                        changes[block][k][c].append(float(per_concept[k][c]) if k in per_concept else 0.0)
                        has[block][k][c].append(k in per_concept)
        except (GlmixVizError, ValueError, OSError) as error:
            failures.append({"id": image_id, "reason": one_line(error)})
    result: Dict[str, Any] = {"failures": failures}
    for block in chosen:
        entry = atlas.block(block)
        table = []
        for k, concept in enumerate(entry["concepts"]):
            classes = {}
            for c, name in enumerate(names):
                values = np.asarray(changes[block][k][c])
                if values.size == 0:
                    continue
                low, high = mean_interval(values, resamples=resamples, seed=seed)
                classes[name] = {"mean": float(values.mean()), "ci95": [low, high], "images": int(values.size),
                                 "with_concept": int(np.sum(has[block][k][c]))}
            concept["importance"] = classes
            concept["importance_skipped_all_slots"] = skipped[block][k]
            table.append(classes)
        entry["importance"] = {"images": len(ids), "unit": "probability (x 100 = points)", "resamples": resamples,
                               "definition": "mean over images with the class of the change of its probability when "
                                             "the concept's slots are removed (0 where the image lacks the concept)"}
        result[block] = table
    if write:
        save_bytes_atomic(Path(atlas.folder) / "atlas.json", (json.dumps(atlas.data, indent=2) + "\n").encode())
    return result
