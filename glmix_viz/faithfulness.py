"""Faithfulness of class maps: deletion and insertion curves (RISE protocol, Petsiuk et al. 2018).

A class map is faithful when the pixels it ranks highest are the ones the classifier's decision needs. For one
image, one class c present in it and one method's map of c (any pseudo-mask method of
:data:`glmix_viz.pseudo.METHODS`, or the ``random`` control):

* the pixels are ranked by the map, highest first (ties broken by a fixed random permutation of the image, so flat
  maps are not ranked in raster order);
* **deletion**: starting from the image, the top ``k / steps`` fraction of pixels (k = 0..steps) is replaced by the
  fill (``fill="rise"``: the dataset mean colour, i.e. a zero network input, as RISE does for deletion); the model's
  probability of c is read at every step; the area under that curve over the fraction removed (trapezoid on
  [0, 1]) is the **deletion AUC**: lower is more faithful;
* **insertion**: starting from a blurred copy of the image (Gaussian, sigma = ``blur_sigma`` x the longer side, as
  RISE), the top pixels are revealed in the same steps; the area under the probability curve is the **insertion
  AUC**: higher is more faithful.

All ``steps + 1`` images of a curve run through the network as one batch. An image's value is the mean over its
present classes. Methods are compared per image against the first method (paired differences with a bootstrap
interval over images). Quantus has region-perturbation metrics, but it would add a heavy dependency with its own
conventions for a protocol that is forty lines here, and it needs the maps precomputed in its own format; Captum has
no deletion/insertion curve. The work is in :func:`image_faithfulness`; :func:`run_faithfulness` is the resumable
batch job (one JSON per image, atomic; a killed run resumes), :func:`summarize` the totals.
"""

from __future__ import annotations

import json
import sys
import zlib
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from glmix_viz.data.base import Split
from glmix_viz.data.classes import match_classes
from glmix_viz.errors import DataError, GlmixVizError, one_line
from glmix_viz.files import save_bytes_atomic
from glmix_viz.images import resolve_size, to_tensor
from glmix_viz.models.info import class_names, class_probabilities, input_mean_std, is_multilabel, model_input_size

__all__ = ["RANDOM", "FILLS", "auc", "class_curves", "image_faithfulness", "method_maps", "run_faithfulness",
           "summarize", "check_methods"]

RANDOM = "random"
FILLS = ("rise", "blur", "mean")


def check_methods(methods: Sequence[str]) -> List[str]:
    """The method names, checked against the registry (plus ``random``).

    Raises:
        GlmixVizError: an unknown name, a repeated name, or none.
    """
    from glmix_viz.pseudo import METHODS

    names = [name.strip() for name in methods if name.strip()]
    if not names:
        raise GlmixVizError("give at least one method (e.g. --methods slot_pool,gradcam,random)")
    for name in names:
        if name != RANDOM and name not in METHODS:
            raise GlmixVizError(f"unknown method {name!r}; known: {', '.join(list(METHODS) + [RANDOM])}")
    if len(set(names)) != len(names):
        raise GlmixVizError(f"a method is named twice in {','.join(names)}")
    return names


def auc(curve: Sequence[float]) -> float:
    """Area under a curve sampled at equal steps of [0, 1] (trapezoid)."""
    values = np.asarray(curve, dtype=np.float64)
    if values.size < 2:
        raise ValueError("a curve needs at least two points")
    return float(np.sum((values[1:] + values[:-1]) / 2) / (values.size - 1))


def _seed(image_id: str, salt: int) -> int:
    return zlib.crc32(f"{image_id}:{salt}".encode()) & 0x7FFFFFFF


def _blur(inputs: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (1, 3, H, W) network inputs (reflect padding)."""
    radius = max(1, int(3 * sigma))
    grid = torch.arange(-radius, radius + 1, dtype=inputs.dtype, device=inputs.device)
    kernel = torch.exp(-grid**2 / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    channels = inputs.shape[1]
    out = F.pad(inputs, (radius, radius, 0, 0), mode="reflect" if radius < inputs.shape[-1] else "replicate")
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1), groups=channels)
    out = F.pad(out, (0, 0, radius, radius), mode="reflect" if radius < inputs.shape[-2] else "replicate")
    return F.conv2d(out, kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), groups=channels)


def class_curves(model: nn.Module, inputs: torch.Tensor, class_index: int, score_map: np.ndarray, *,
                 steps: int = 16, fill: str = "rise", blur_sigma: float = 0.1, tie_seed: int = 0) -> Dict[str, Any]:
    """Deletion and insertion curves of one class for one map.

    Args:
        model: the classifier (eval mode).
        inputs: ``(1, 3, H, W)`` normalised network input.
        class_index: the class c whose probability is read.
        score_map: ``(H, W)`` the method's map of c at the input's size (higher = more important).
        steps: steps from 0 to all pixels.
        fill: ``"rise"`` (deletion fills with the mean colour, insertion starts from the blurred image), ``"blur"``
            (both use the blurred image) or ``"mean"`` (both use the mean colour).
        blur_sigma: sigma of the blur as a fraction of the longer side.
        tie_seed: seed of the permutation that breaks ties.

    Returns:
        ``{"deletion": [steps + 1 probabilities], "insertion": [...], "deletion_auc", "insertion_auc"}``.
    """
    if fill not in FILLS:
        raise GlmixVizError(f"fill must be one of {', '.join(FILLS)}, got {fill!r}")
    height, width = inputs.shape[-2:]
    score_map = np.asarray(score_map, dtype=np.float64)
    if score_map.shape != (height, width):
        raise GlmixVizError(f"map of shape {score_map.shape} does not match the input's {height}x{width}")
    ties = np.random.default_rng(tie_seed).random(height * width)
    order = torch.from_numpy(np.lexsort((ties, -score_map.reshape(-1))).copy()).to(inputs.device)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel(), device=inputs.device)
    counts = torch.round(torch.linspace(0, height * width, steps + 1, device=inputs.device)).long()
    chosen = (rank[None, :] < counts[:, None]).view(steps + 1, 1, height, width)  # (steps + 1, 1, H, W)
    blurred = _blur(inputs, blur_sigma * max(height, width))
    mean = torch.zeros_like(inputs)
    deletion_fill = blurred if fill == "blur" else mean
    insertion_start = mean if fill == "mean" else blurred
    deleted = torch.where(chosen, deletion_fill, inputs)
    inserted = torch.where(chosen, inputs, insertion_start)
    multi = is_multilabel(model)
    with torch.inference_mode():
        probs = class_probabilities(model(torch.cat([deleted, inserted])).double(), multi)[:, class_index].cpu()
    deletion, insertion = probs[: steps + 1].tolist(), probs[steps + 1:].tolist()
    return {"deletion": deletion, "insertion": insertion, "deletion_auc": auc(deletion),
            "insertion_auc": auc(insertion)}


def method_maps(model: nn.Module, image: np.ndarray, present: Sequence[int], method: str, *, image_id: str = "",
                seed: int = 0) -> np.ndarray:
    """``(K, H, W)`` class maps of a method for the present classes of an image at the image's size.

    The registry's scoring (:func:`glmix_viz.pseudo.compute_scores`, one view: no flip, scale 1); ``random``:
    uniform noise seeded by the image id.
    """
    height, width = image.shape[:2]
    if method == RANDOM:
        rng = np.random.default_rng(_seed(image_id, seed + 1))
        return rng.random((len(present), height, width))
    from glmix_viz.pseudo import ScoreSettings, compute_scores

    labels = np.zeros(int(model.num_classes), dtype=np.float32)
    labels[list(present)] = 1
    maps = compute_scores(model, image, labels, ScoreSettings(method=method, flip=False))
    return maps.scores[1:].astype(np.float64)


def image_faithfulness(model: nn.Module, image: np.ndarray, present: Sequence[int], methods: Sequence[str], *,
                       image_id: str = "", steps: int = 16, fill: str = "rise", seed: int = 0,
                       input_size: Optional[int] = None) -> Dict[str, Any]:
    """Deletion / insertion AUCs of every method for the present classes of one image.

    The image is first resized to the network input (``input_size``, default the model's), and maps and curves are
    made at that size.

    Returns:
        ``{"classes": [...], "methods": {name: {"deletion_auc": mean over classes, "insertion_auc": ...,
        "per_class": {class: {"deletion_auc", "insertion_auc"}}, "deletion": mean curve, "insertion": mean curve}}}``.
    """
    if not present:
        raise GlmixVizError(f"{image_id or 'image'}: no class present, nothing to delete")
    size = resolve_size(image.shape[0], image.shape[1], input_size or model_input_size(model))
    if tuple(size) != tuple(image.shape[:2]):
        from PIL import Image

        image = np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.Resampling.BICUBIC))
    mean, std = input_mean_std(model)
    inputs = to_tensor(image, mean=mean, std=std).to(next(model.parameters()).device)
    out: Dict[str, Any] = {"classes": [int(c) for c in present], "methods": {}}
    tie_seed = _seed(image_id, seed)
    for method in methods:
        maps = method_maps(model, image, present, method, image_id=image_id, seed=seed)
        curves = [class_curves(model, inputs, int(c), maps[k], steps=steps, fill=fill, tie_seed=tie_seed)
                  for k, c in enumerate(present)]
        out["methods"][method] = {
            "deletion_auc": float(np.mean([c["deletion_auc"] for c in curves])),
            "insertion_auc": float(np.mean([c["insertion_auc"] for c in curves])),
            "per_class": {str(c): {"deletion_auc": cur["deletion_auc"], "insertion_auc": cur["insertion_auc"]}
                          for c, cur in zip(present, curves)},
            "deletion": np.mean([c["deletion"] for c in curves], axis=0).tolist(),
            "insertion": np.mean([c["insertion"] for c in curves], axis=0).tolist(),
        }
    return out


def summarize(records: Mapping[str, Mapping[str, Any]], methods: Sequence[str], *, resamples: int = 2000,
              seed: int = 0) -> Dict[str, Any]:
    """Totals over images: mean AUCs with bootstrap intervals, mean curves, paired differences vs the first method.

    Args:
        records: image id -> the result of :func:`image_faithfulness`.
        methods: the methods, the first is the reference of the paired differences (``other - first``).
    """
    from glmix_viz.scoring.stats import mean_interval, paired_difference

    ids = sorted(records)
    total: Dict[str, Any] = {"images": len(ids), "methods": {}, "paired_vs_first": {}}
    values = {m: {k: np.array([records[i]["methods"][m][k] for i in ids]) for k in ("deletion_auc", "insertion_auc")}
              for m in methods}
    for method in methods:
        entry: Dict[str, Any] = {}
        for key in ("deletion_auc", "insertion_auc"):
            vals = values[method][key]
            entry[key] = float(vals.mean()) if vals.size else float("nan")
            entry[f"{key}_ci95"] = list(mean_interval(vals, resamples=resamples, seed=seed))
        for curve in ("deletion", "insertion"):
            entry[curve] = np.mean([records[i]["methods"][method][curve] for i in ids], axis=0).tolist() if ids else []
        total["methods"][method] = entry
    first = methods[0]
    for method in methods[1:]:
        total["paired_vs_first"][method] = {
            key: paired_difference(values[method][key], values[first][key], resamples=resamples, seed=seed)
            for key in ("deletion_auc", "insertion_auc")
        }
    total["paired_note"] = (f"mean over images of (method - {first}); deletion: negative = more faithful than "
                            f"{first}; insertion: positive = more faithful")
    return total


def curves_figure(summary: Mapping[str, Any], path: Path, title: str = "") -> Path:
    """Mean deletion and insertion curves of every method, AUCs in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from glmix_viz.figures import save_figure

    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for method, entry in summary["methods"].items():
        for axis, curve in zip(axes, ("deletion", "insertion")):
            points = entry[curve]
            if not points:
                continue
            fractions = np.linspace(0, 1, len(points))
            axis.plot(fractions, points, label=f"{method} (AUC {entry[curve + '_auc']:.3f})",
                      linestyle="--" if method == RANDOM else "-")
    for axis, curve, better in zip(axes, ("deletion", "insertion"), ("lower", "higher")):
        axis.set_xlabel(f"fraction of pixels {'removed' if curve == 'deletion' else 'revealed'}")
        axis.set_ylabel("class probability")
        axis.set_title(f"{curve} ({better} AUC = more faithful)")
        axis.set_ylim(0, 1)
        axis.legend(fontsize=8)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    saved = save_figure(figure, path)
    plt.close(figure)
    return saved


def run_faithfulness(dataset: Split, model: nn.Module, out_dir: Path, methods: Sequence[str], *, steps: int = 16,
                     fill: str = "rise", seed: int = 0, limit: Optional[int] = None, input_size: Optional[int] = None,
                     resamples: int = 2000, overwrite: bool = False, progress: bool = True,
                     command: str = "") -> Dict[str, Any]:
    """The batch job: per-image JSON files under ``out_dir/images`` (resumable), then ``faithfulness.json`` and
    ``faithfulness_curves.png``.

    Args:
        dataset: a :class:`~glmix_viz.data.base.Split` with image-level labels; its classes are matched to the
            model's by name (:func:`~glmix_viz.data.classes.match_classes`), a class the model lacks reported once.
        limit: the first ``limit`` ids only.
    """
    from glmix_viz.runtime.jobs import RunSummary, plan_job

    methods = check_methods(methods)
    try:
        match = match_classes(class_names(model), dataset, num_model_classes=int(getattr(model, "num_classes", 0)))
    except DataError as error:
        raise GlmixVizError(one_line(error, with_type=False)) from None
    if match.warning():
        print(f"warning: {match.warning()}", file=sys.stderr)
    if steps < 2:
        raise GlmixVizError(f"--steps must be at least 2, got {steps}")
    out_dir = Path(out_dir)
    folder = out_dir / "images"
    ids = list(dataset.ids)[: limit] if limit else list(dataset.ids)
    settings = {"methods": list(methods), "steps": steps, "fill": fill, "seed": seed, "input_size": input_size}

    def done(image_id: str) -> bool:
        path = folder / f"{image_id}.json"
        if not path.is_file():
            return False
        try:
            return json.loads(path.read_text()).get("settings") == settings
        except (OSError, ValueError):
            return False

    plan = plan_job(ids, out_dir, is_done=done, outputs=[(folder, ".json")], overwrite=overwrite)
    folder.mkdir(parents=True, exist_ok=True)
    summary = RunSummary(plan.summary_path, total=len(plan.my_ids), skipped=plan.skipped, todo=len(plan.todo),
                         info={"settings": settings}, desc="faithfulness", progress=progress)
    model.eval()
    with summary.running():
        for image_id in plan.todo:
            try:
                labels = match.model_labels(dataset.labels(image_id))
                present = [int(c) for c in np.flatnonzero(labels > 0.5)]
                image = dataset.image(image_id)
                result = image_faithfulness(model, image, present, methods, image_id=image_id, steps=steps,
                                            fill=fill, seed=seed, input_size=input_size)
            except (GlmixVizError, ValueError, OSError) as error:
                summary.fail(image_id, one_line(error))
                continue
            record = {"id": image_id, "settings": settings, **result}
            save_bytes_atomic(folder / f"{image_id}.json", (json.dumps(record) + "\n").encode())
            summary.done()
    records = {}
    for image_id in ids:
        path = folder / f"{image_id}.json"
        if path.is_file():
            record = json.loads(path.read_text())
            if record.get("settings") == settings:
                records[image_id] = record
    total = summarize(records, methods, resamples=resamples, seed=seed) if records else None
    report = {"command": command, "settings": settings, "images": len(records),
              "failures": summary.failures, "total": total,
              "per_image": {i: {m: {k: r["methods"][m][k] for k in ("deletion_auc", "insertion_auc")}
                                for m in methods} for i, r in records.items()}}
    save_bytes_atomic(out_dir / "faithfulness.json", (json.dumps(report, indent=1) + "\n").encode())
    if total:
        curves_figure(total, out_dir / "faithfulness_curves.png", title=f"{len(records)} images")
    return report
