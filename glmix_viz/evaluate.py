"""Evaluation of any folder of label PNGs against a split's ground truth: split scores, per-image scores, comparison.

The folder can be ``pseudo-label`` output, ``segment`` output, ground truth under another name, or the shared folder
several shards wrote into; every id of the split is looked up as ``<id>.png`` (palette or grey values are class
indices, 255 = unsure).

* :func:`evaluate_predictions` - the split's confusion-matrix scores (:mod:`glmix_viz.scoring.segmentation`),
  plus ``per_image``: one row per image (:func:`~glmix_viz.scoring.segmentation.image_scores`) whose confusion
  matrices add up to the split's.
* :func:`write_per_image_csv` - the rows as ``PRED/per_image.csv``.
* :func:`compare_scores` - two evaluations of the same split: split mIoU of both, per-class difference, the paired
  per-image difference and the split-mIoU difference with seeded bootstrap intervals over the images
  (:mod:`glmix_viz.scoring.stats`, the function the explorer's run comparison calls too), and the images that gain
  and lose most.
* :func:`worst_images`, :func:`load_pair` - what the worst-images figure and the explorer's run browser show; the
  error maps are :func:`glmix_viz.scoring.errors.error_map`.

Conventions of the per-image rows (fractions in ``[0, 1]``, ``None`` where undefined):

* ``pixel_accuracy``: correct pixels / scored pixels (ground-truth 255 left out; a predicted 255 counts as background
  or is left out, by ``pred_ignore``, as in the split's scores).
* ``miou``: mean IoU over the classes present in the image's ground truth or prediction (after that rule); a class
  present in neither has no IoU (``None``) and is left out.
* ``predicted_absent``: classes the prediction holds but the ground truth does not; ``missed``: classes the ground
  truth holds but the prediction has nowhere (image-level errors, names).
* ``unsure_share``: share of the image's pixels predicted 255.
* ``confusion``: the image's confusion matrix as sparse ``[ground truth, prediction, pixels]`` triplets.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np
from tqdm import tqdm

from glmix_viz.data.base import Split
from glmix_viz.errors import DataError, GlmixVizError, one_line
from glmix_viz.files import save_bytes_atomic
from glmix_viz.labels import IGNORE_INDEX, load_label_png
from glmix_viz.scoring.segmentation import SegmentationMetric, image_scores, row_confusions
from glmix_viz.scoring.stats import (DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES, class_counts, image_bootstrap,
                                     mean_interval, miou_difference_statistic)

__all__ = [
    "compare_scores",
    "evaluate_predictions",
    "format_comparison",
    "load_pair",
    "paired_changes",
    "run_summaries",
    "worst_images",
    "write_per_image_csv",
]

# ----------------------------------------------------------------------------------------------------------------------
# One image
# ----------------------------------------------------------------------------------------------------------------------


def load_pair(dataset: Split, pred_dir: Union[str, os.PathLike], image_id: str) -> Tuple[np.ndarray, np.ndarray]:
    """``(ground truth, prediction)`` of one id, both ``(H, W)`` uint8.

    Raises:
        DataError: no prediction, no or unreadable ground truth, an unreadable prediction, or sizes that differ.
    """
    pred_path = Path(pred_dir) / f"{image_id}.png"
    if not pred_path.is_file():
        raise DataError(f"{pred_path}: no prediction")
    gt = dataset.mask(image_id)
    if gt is None:
        raise DataError(f"{dataset.root}: no ground-truth mask for image {image_id!r}")
    pred = load_label_png(pred_path)
    if pred.shape != gt.shape:
        raise DataError(
            f"{pred_path}: prediction is {pred.shape[1]}x{pred.shape[0]} but the ground truth is "
            f"{gt.shape[1]}x{gt.shape[0]}"
        )
    return gt, pred


# ----------------------------------------------------------------------------------------------------------------------
# A folder
# ----------------------------------------------------------------------------------------------------------------------


def evaluate_predictions(
    dataset: Split,
    pred_dir: Union[str, os.PathLike],
    *,
    pred_ignore: str = "background",
    missing: str = "fail",
    progress: bool = False,
) -> Dict[str, Any]:
    """Confusion-matrix mIoU of a folder of label PNGs (``<id>.png``) against a split's ground-truth masks.

    Every id of the split is looked up in ``pred_dir`` (a folder that several shards wrote into reads as one).

    Args:
        dataset: a :class:`~glmix_viz.data.base.Split` with masks (its ``background`` and ``ignore`` values are used).
        pred_dir: folder of predicted label PNGs (palette or grey values are class indices; 255 = uncertain).
        pred_ignore: ``"background"`` (default, IRN's stricter convention): predicted 255 counts as background;
            ``"ignore"``: such pixels are left out.
        missing: ``"fail"``: an id without a prediction counts as a failure; ``"skip"``: it is only reported.
        progress: show a tqdm bar.

    Returns:
        The scores of :meth:`~glmix_viz.scoring.segmentation.SegmentationMetric.compute`, plus ``missing_predictions``
        (ids), ``failures`` (``id``, ``reason``: unreadable prediction, missing ground truth, size mismatch...),
        ``num_failed``, ``pred_dir``, ``split``, ``data_root``, ``num_ids``, ``runs`` (:func:`run_summaries`) and
        ``per_image`` (:func:`~glmix_viz.scoring.segmentation.image_scores` of every evaluated image, in the
        split's order).
    """
    if missing not in ("fail", "skip"):
        raise ValueError(f"missing must be 'fail' or 'skip', got {missing!r}")
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise DataError(f"{pred_dir}: prediction folder does not exist")
    names = list(dataset.class_names)
    background, ignore = dataset.background, dataset.ignore  # the data set's, wherever its background stands
    metric = SegmentationMetric(dataset.num_classes, names, background=background, ignore=ignore,
                                pred_ignore=pred_ignore)
    missing_ids: List[str] = []
    failures: List[Dict[str, str]] = []
    per_image: List[Dict[str, Any]] = []
    for image_id in tqdm(dataset.ids, unit="img", desc="evaluate", disable=not progress, file=sys.stderr):
        pred_path = pred_dir / f"{image_id}.png"
        if not pred_path.is_file():
            missing_ids.append(image_id)
            if missing == "fail":
                failures.append({"id": image_id, "reason": f"{pred_path}: no prediction"})
            continue
        try:
            gt, pred = load_pair(dataset, pred_dir, image_id)
            conf = metric.update(pred, gt)
        except (GlmixVizError, ValueError) as error:
            failures.append({"id": image_id, "reason": one_line(error)})
            continue
        per_image.append(image_scores(image_id, conf, names, unsure_share=float(np.mean(pred == ignore))))
    scores = metric.compute()
    scores.update(
        missing_predictions=missing_ids, failures=failures, num_failed=len(failures), pred_dir=str(pred_dir),
        split=getattr(dataset, "split", None), data_root=str(getattr(dataset, "root", "")), num_ids=len(dataset.ids),
        runs=run_summaries(pred_dir), per_image=per_image,
    )
    return scores


def _summary_shard(data: Mapping[str, Any]) -> Optional[str]:
    """A run summary's shard ``"K/N"``: ``dataset.shard`` (pseudo-label) or ``settings.shard`` (segment)."""
    for section in ("dataset", "settings"):
        shard = (data.get(section) or {}).get("shard")
        if shard:
            return str(shard)
    return None


def run_summaries(pred_dir: Union[str, os.PathLike]) -> Dict[str, Any]:
    """The runs that wrote into a folder, from their ``summary*.json`` (several shards share one folder).

    Returns:
        ``summaries`` (file, status, shard, done, failed per summary; unreadable ones with ``error``) and
        ``missing_shards`` (``"K/N"`` of shards whose summary is absent although another shard of ``N`` is there).
    """
    entries, counts = [], {}
    for path in sorted(Path(pred_dir).glob("summary*.json")):
        try:
            data = json.loads(path.read_text())
            shard = _summary_shard(data)
            entries.append({"file": path.name, "status": data.get("status"), "shard": shard,
                            "done": data["counts"]["done"], "failed": data["counts"]["failed"]})
            if shard:
                index, count = (int(part) for part in shard.split("/"))
                counts.setdefault(count, set()).add(index)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            entries.append({"file": path.name, "error": one_line(error)})
    missing = [f"{index}/{count}" for count, seen in sorted(counts.items()) for index in range(1, count + 1)
               if index not in seen]
    return {"summaries": entries, "missing_shards": missing}


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ";".join(str(item) for item in value)
    return repr(value) if isinstance(value, float) else str(value)


def write_per_image_csv(path: Union[str, os.PathLike], scores: Mapping[str, Any]) -> Path:
    """``per_image.csv``: ``id, miou, pixel_accuracy, unsure_share, num_pixels, predicted_absent, missed`` and
    ``iou_<class>`` per class, one line per evaluated image in the split's order (empty cells: undefined; class lists
    joined by ``;``). Written atomically."""
    columns = ["id", "miou", "pixel_accuracy", "unsure_share", "num_pixels", "predicted_absent", "missed"]
    names = list(scores["class_names"])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns + [f"iou_{name}" for name in names])
    for row in scores["per_image"]:
        writer.writerow([_csv_value(row[column]) for column in columns]
                        + [_csv_value(row["iou"].get(name)) for name in names])
    return save_bytes_atomic(path, buffer.getvalue().encode("utf-8"))


def worst_images(scores: Mapping[str, Any], count: Optional[int] = None) -> List[Dict[str, Any]]:
    """The per-image rows sorted worst first: by ``miou`` (undefined last), then pixel accuracy, then id."""
    def key(row: Mapping[str, Any]) -> Tuple[float, float, str]:
        miou, accuracy = row.get("miou"), row.get("pixel_accuracy")
        return (math.inf if miou is None else miou, math.inf if accuracy is None else accuracy, row["id"])

    rows = sorted(scores.get("per_image") or [], key=key)
    return rows if count is None else rows[:count]


# ----------------------------------------------------------------------------------------------------------------------
# Two evaluations of one split
# ----------------------------------------------------------------------------------------------------------------------


def _paired(a: Mapping[str, Any], b: Mapping[str, Any]) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    """The rows of the images evaluated in both (in A's order) whose per-image mIoU is defined in both."""
    in_b = {row["id"]: row for row in b.get("per_image") or []}
    pairs = [(row, in_b[row["id"]]) for row in a.get("per_image") or [] if row["id"] in in_b]
    pairs = [(x, y) for x, y in pairs if x["miou"] is not None and y["miou"] is not None]
    return [x for x, _ in pairs], [y for _, y in pairs]


def paired_changes(a: Mapping[str, Any], b: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """Per image scored in both: ``id``, ``a``, ``b`` (per-image mIoU) and ``difference`` (B - A), the largest
    changes first whichever their sign (ties in A's order)."""
    rows_a, rows_b = _paired(a, b)
    changes = [{"id": x["id"], "a": x["miou"], "b": y["miou"], "difference": y["miou"] - x["miou"]}
               for x, y in zip(rows_a, rows_b)]
    return sorted(changes, key=lambda change: -abs(change["difference"]))


def _interval(low: float, high: float) -> Dict[str, Any]:
    return {"low": low, "high": high, "contains_zero": bool(low <= 0.0 <= high)}


def compare_scores(a: Mapping[str, Any], b: Mapping[str, Any], *, resamples: int = DEFAULT_RESAMPLES,
                   confidence: float = DEFAULT_CONFIDENCE, seed: int = 0, top: int = 5) -> Dict[str, Any]:
    """Whether B is better than A on the same split: two :func:`evaluate_predictions` results (or their JSON).

    Both intervals are paired bootstraps over the images (:mod:`glmix_viz.scoring.stats`, the same ``seed``): the
    mean per-image mIoU difference, and the split-mIoU difference recomputed from the summed confusion matrices of
    each resample. Every difference, per class too, is B - A.

    Returns:
        ``a`` / ``b`` (folder, split mIoU, images), ``per_class`` (name -> ``{"a", "b", "difference"}`` IoU, B - A),
        ``paired``: over the images evaluated in both, the mean per-image mIoU difference (B - A) and the split-mIoU
        difference of those images, each with its ``interval`` (``low``, ``high``, ``contains_zero``), and ``gains``
        / ``losses``: the ``top`` images where B gains and loses most (``id``, ``a``, ``b``, ``difference``).

    Raises:
        DataError: the two evaluations have other classes, another split or data set, or no image in common.
    """
    roots = {a.get("data_root"), b.get("data_root")} - {None}  # evaluations written before it was recorded: unknown
    if list(a["class_names"]) != list(b["class_names"]) or a.get("split") != b.get("split") or len(roots) > 1:
        raise DataError(f"{b.get('pred_dir')}: evaluated on another data set, split or classes than "
                        f"{a.get('pred_dir')}")
    rows_a, rows_b = _paired(a, b)
    if not rows_a:
        raise DataError(f"{a.get('pred_dir')} and {b.get('pred_dir')}: no image scored in both")
    names, num_classes = list(a["class_names"]), len(a["class_names"])
    differences = np.array([y["miou"] - x["miou"] for x, y in zip(rows_a, rows_b)])
    counts_a = class_counts(row_confusions(rows_a, num_classes))
    counts_b = class_counts(row_confusions(rows_b, num_classes))
    bootstrap = dict(confidence=confidence, resamples=resamples, seed=seed)
    image_interval = mean_interval(differences, **bootstrap)
    statistic = miou_difference_statistic(counts_b, counts_a)  # B - A
    split_interval = image_bootstrap(len(differences), statistic, **bootstrap).pair()
    split_difference = float(statistic(np.ones(len(differences))))
    changes = sorted(paired_changes(a, b), key=lambda change: -change["difference"])
    return {
        "a": {"pred_dir": a.get("pred_dir"), "miou": a["miou"], "num_images": a.get("num_images")},
        "b": {"pred_dir": b.get("pred_dir"), "miou": b["miou"], "num_images": b.get("num_images")},
        "split": a.get("split"),
        "per_class": {name: {"a": a["iou"][name], "b": b["iou"][name],
                             "difference": None if a["iou"][name] is None or b["iou"][name] is None
                             else b["iou"][name] - a["iou"][name]} for name in names},
        "paired": {
            "num_images": len(differences), "resamples": resamples, "seed": seed, "confidence": confidence,
            "mean_image_miou_difference": float(differences.mean()),
            "mean_image_miou_interval": _interval(*image_interval),
            "split_miou_difference": split_difference,
            "split_miou_interval": _interval(*split_interval),
        },
        "gains": [change for change in changes[:top] if change["difference"] > 0],
        "losses": [change for change in reversed(changes[-top:]) if change["difference"] < 0],
    }


def format_comparison(comparison: Mapping[str, Any]) -> str:
    """A plain-text report of :func:`compare_scores`, values in percent, saying when an interval contains 0."""
    def percent(value: Optional[float], signed: bool = False) -> str:
        return "   n/a" if value is None else (f"{100.0 * value:+6.2f}" if signed else f"{100.0 * value:6.2f}")

    a, b, paired = comparison["a"], comparison["b"], comparison["paired"]
    width = max([len(name) for name in comparison["per_class"]] + [5])
    lines = [f"A: {a['pred_dir']}  mIoU {percent(a['miou'])} % ({a['num_images']} images)",
             f"B: {b['pred_dir']}  mIoU {percent(b['miou'])} % ({b['num_images']} images)",
             f"{'class':<{width}}  A IoU %  B IoU %  B - A"]
    for name, row in comparison["per_class"].items():
        lines.append(f"{name:<{width}}  {percent(row['a'])}   {percent(row['b'])}   {percent(row['difference'], True)}")
    level = f"{100 * paired['confidence']:.0f} %"
    for label, key in (("mean per-image mIoU", "mean_image_miou"), ("split mIoU", "split_miou")):
        interval = paired[f"{key}_interval"]
        verdict = ("contains 0: no clear difference" if interval["contains_zero"]
                   else ("B better" if interval["low"] > 0 else "B worse"))
        lines.append(f"{label} B - A over {paired['num_images']} paired images: "
                     f"{percent(paired[f'{key}_difference'], True)} points, {level} bootstrap interval "
                     f"[{percent(interval['low'], True)}, {percent(interval['high'], True)}] ({verdict})")
    for title, changes in (("B gains most", comparison["gains"]), ("B loses most", comparison["losses"])):
        shown = ", ".join(f"{change['id']} ({percent(change['difference'], True).strip()})" for change in changes)
        lines.append(f"{title}: {shown or 'none'}")
    return "\n".join(lines)
