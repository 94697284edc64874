"""glmix_viz.evaluate: per-image scores that add up to the split's, error maps, the paired comparison of two runs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from glmix_viz.data.shapes import ShapesConfig, make_shapes
from glmix_viz.data.voc import VOCDataset
from glmix_viz.errors import DataError
from glmix_viz.evaluate import (
    compare_scores,
    evaluate_predictions,
    run_summaries,
    worst_images,
    write_per_image_csv,
)
from glmix_viz.scoring.errors import ERROR_KINDS, error_map
from glmix_viz.scoring.segmentation import confusion_matrix, rows_confusion, scores_from_confusion
from glmix_viz.scoring.segmentation import image_scores as image_row

NAMES = ["background", "a", "b", "c"]


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shapes")
    make_shapes(root, ShapesConfig(image_size=48), num_train=1, num_val=8, seed=11, progress=False)
    return root


def test_per_image_iou_by_hand():
    gt = np.array([[0, 0, 1, 1], [0, 2, 2, 255]])
    pred = np.array([[0, 1, 1, 1], [0, 2, 0, 255]])
    row = image_row("x", confusion_matrix(pred, gt, 4), NAMES, unsure_share=1 / 8)
    # background: TP 2, FP 1 ((1,2)), FN 1 ((0,1)); a: TP 2, FP 1; b: TP 1, FN 1; c: absent from both
    assert row["iou"] == {"background": 0.5, "a": pytest.approx(2 / 3), "b": 0.5, "c": None}
    assert row["miou"] == pytest.approx((0.5 + 2 / 3 + 0.5) / 3)
    assert row["pixel_accuracy"] == pytest.approx(5 / 7) and row["num_pixels"] == 7
    assert row["predicted_absent"] == [] and row["missed"] == [] and row["unsure_share"] == 0.125
    other = image_row("y", confusion_matrix(np.array([[3, 1], [0, 0]]), np.array([[0, 1], [0, 2]]), 4), NAMES,
                      unsure_share=0.0)
    assert other["predicted_absent"] == ["c"] and other["missed"] == ["b"]
    assert sorted(map(tuple, other["confusion"])) == [(0, 0, 1), (0, 3, 1), (1, 1, 1), (2, 0, 1)]


def test_error_map_tells_the_kinds_apart():
    gt = np.array([[0, 0, 1, 1, 2, 255, 1]])
    pred = np.array([[0, 2, 0, 1, 1, 0, 255]])
    codes = error_map(pred, gt)
    kinds = [ERROR_KINDS[code] for code in codes[0]]
    assert kinds == ["correct", "false foreground", "missed foreground", "correct", "wrong class", "ignored",
                     "unsure"]


def test_per_image_confusions_add_up_to_the_split(shapes_root, tmp_path, write_label_run):
    dataset = VOCDataset(shapes_root, "val")
    scores = evaluate_predictions(dataset, write_label_run(dataset, tmp_path / "a"))
    assert [row["id"] for row in scores["per_image"]] == dataset.ids
    total = rows_confusion(scores["per_image"], dataset.num_classes)
    again = scores_from_confusion(total, dataset.class_names)
    for key in ("miou", "pixel_accuracy", "mean_accuracy", "iou", "per_class", "num_pixels"):
        assert again[key] == scores[key]
    assert sum(row["num_pixels"] for row in scores["per_image"]) == scores["num_pixels"]
    unsure = [row["unsure_share"] for row in scores["per_image"]]
    assert unsure == [7 / (48 * 48)] * len(dataset.ids)  # columns 0, 7, ..., 42 of the last row


def test_per_image_csv_holds_the_rows(shapes_root, tmp_path, write_label_run):
    dataset = VOCDataset(shapes_root, "val")
    scores = evaluate_predictions(dataset, write_label_run(dataset, tmp_path / "a"))
    path = write_per_image_csv(tmp_path / "per_image.csv", scores)
    with path.open(newline="") as stream:
        lines = list(csv.DictReader(stream))
    assert [line["id"] for line in lines] == dataset.ids
    for line, row in zip(lines, scores["per_image"]):
        assert float(line["miou"]) == row["miou"] and float(line["pixel_accuracy"]) == row["pixel_accuracy"]
        for name in dataset.class_names:
            assert line[f"iou_{name}"] == ("" if row["iou"][name] is None else repr(row["iou"][name]))
        assert line["predicted_absent"].split(";") == (row["predicted_absent"] or [""])


def test_a_run_compared_with_itself_differs_by_exactly_zero(shapes_root, tmp_path, write_label_run):
    dataset = VOCDataset(shapes_root, "val")
    scores = evaluate_predictions(dataset, write_label_run(dataset, tmp_path / "a"))
    comparison = compare_scores(scores, json.loads(json.dumps(scores)), resamples=200)
    paired = comparison["paired"]
    assert paired["mean_image_miou_difference"] == 0.0 and paired["split_miou_difference"] == 0.0
    for key in ("mean_image_miou_interval", "split_miou_interval"):
        assert paired[key] == {"low": 0.0, "high": 0.0, "contains_zero": True}
    assert all(row["difference"] in (0.0, None) for row in comparison["per_class"].values())
    assert comparison["gains"] == [] and comparison["losses"] == []


def test_a_worsened_image_ranks_first(shapes_root, tmp_path, write_label_run):
    dataset = VOCDataset(shapes_root, "val")
    victim = dataset.ids[3]
    a = evaluate_predictions(dataset, write_label_run(dataset, tmp_path / "a"))
    b = evaluate_predictions(dataset, write_label_run(dataset, tmp_path / "b", worsen=victim))
    assert worst_images(b, 1)[0]["id"] == victim and worst_images(a, 1)[0]["id"] != victim
    comparison = compare_scores(a, b, resamples=500, top=3)
    assert [change["id"] for change in comparison["losses"]] == [victim] and comparison["gains"] == []
    assert comparison["paired"]["split_miou_difference"] == pytest.approx(b["miou"] - a["miou"])
    assert comparison["paired"]["split_miou_interval"]["high"] <= 0.0 < -comparison["paired"]["split_miou_difference"]


def _constructed(differences: np.ndarray) -> tuple[dict, dict]:
    """Two evaluations of N images whose per-image mIoUs differ by ``differences`` (B - A); every image's confusion
    the same (only the per-image mean is under test here)."""
    def scores(mious, name):
        rows = [{"id": f"{index:04d}", "miou": float(miou), "confusion": [[0, 0, 100], [1, 1, 100]]}
                for index, miou in enumerate(mious)]
        return {"class_names": ["background", "object"], "split": "val", "pred_dir": name, "miou": 1.0,
                "iou": {"background": 1.0, "object": 1.0}, "per_image": rows}

    return scores(np.full(differences.size, 0.5), "a"), scores(0.5 + differences, "b")


def test_the_paired_interval_holds_the_true_mean_difference_of_a_constructed_case():
    rng = np.random.default_rng(123)
    differences = np.clip(rng.normal(0.03, 0.1, size=400), -0.4, 0.4)  # true mean 0.03 (the clip is symmetric)
    a, b = _constructed(differences)
    paired = compare_scores(a, b, resamples=2000, seed=0)["paired"]
    assert paired["mean_image_miou_difference"] == pytest.approx(differences.mean())
    interval = paired["mean_image_miou_interval"]
    assert interval["low"] < 0.03 < interval["high"] and not interval["contains_zero"]
    half_width = 1.96 * differences.std(ddof=1) / np.sqrt(differences.size)  # the normal approximation
    assert (interval["high"] - interval["low"]) / 2 == pytest.approx(half_width, rel=0.1)
    assert paired["split_miou_difference"] == 0.0 and paired["split_miou_interval"]["contains_zero"]


def test_compare_refuses_another_data_set_and_the_same_seed_gives_the_same_result(shapes_root, tmp_path,
                                                                                   write_label_run):
    dataset = VOCDataset(shapes_root, "val")
    a = evaluate_predictions(dataset, write_label_run(dataset, tmp_path / "a"))
    b = evaluate_predictions(dataset, write_label_run(dataset, tmp_path / "b", worsen=dataset.ids[0]))
    with pytest.raises(DataError, match="another data set, split or classes"):
        compare_scores(a, dict(b, split="train"))
    with pytest.raises(DataError, match="another data set, split or classes"):
        compare_scores(a, dict(b, data_root="/elsewhere"))
    assert compare_scores(a, dict(b, data_root=None), resamples=10)["paired"]["num_images"] == 8
    with pytest.raises(DataError, match="no image scored in both"):
        compare_scores(a, dict(b, per_image=[]))
    first, second = compare_scores(a, b, resamples=300, seed=4), compare_scores(a, b, resamples=300, seed=4)
    assert first == second and first != compare_scores(a, b, resamples=300, seed=5)


def test_run_summaries_reads_both_summary_kinds_and_finds_missing_shards(tmp_path):
    (tmp_path / "summary.shard-1-of-3.json").write_text(json.dumps(
        {"status": "ok", "dataset": {"shard": "1/3"}, "counts": {"done": 2, "failed": 0}}))
    (tmp_path / "summary.shard-3-of-3.json").write_text(json.dumps(  # segment's summary keeps it in settings
        {"status": "running", "settings": {"shard": "3/3"}, "counts": {"done": 1, "failed": 1}}))
    (tmp_path / "summary.shard-2-of-9.json").write_text("{not json")
    runs = run_summaries(tmp_path)
    assert runs["missing_shards"] == ["2/3"]
    assert [entry.get("shard") for entry in runs["summaries"]] == ["1/3", None, "3/3"]
    assert "error" in runs["summaries"][1]
