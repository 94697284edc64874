"""``glmix-viz evaluate``'s per-image table, ``--compare``, ``--worst`` and ``--figure`` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from glmix_viz.cli import main
from glmix_viz.data.shapes import ShapesConfig, make_shapes
from glmix_viz.data.voc import VOCDataset


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shapes")
    make_shapes(root, ShapesConfig(image_size=48), num_train=1, num_val=6, seed=12, progress=False)
    return root


def _evaluate(root: Path, pred: Path, *extra: str) -> int:
    return main(["evaluate", "--voc-root", str(root), "--split", "val", "--pred", str(pred), "--no-progress", *extra])


def test_evaluate_writes_the_per_image_table_beside_the_scores(shapes_root, tmp_path, write_label_run):
    dataset = VOCDataset(shapes_root, "val")
    pred = write_label_run(dataset, tmp_path / "a")
    assert _evaluate(shapes_root, pred) == 0
    scores = json.loads((pred / "eval.json").read_text())
    lines = (pred / "per_image.csv").read_text().splitlines()
    assert len(lines) == 1 + len(dataset.ids) and lines[0].startswith("id,miou,pixel_accuracy,unsure_share")
    assert [row["id"] for row in scores["per_image"]] == dataset.ids
    assert _evaluate(shapes_root, pred, "--out", str(tmp_path / "scores.json")) == 0
    assert (tmp_path / "scores_per_image.csv").read_text() == (pred / "per_image.csv").read_text()


def test_compare_of_a_run_with_itself_is_exactly_zero(shapes_root, tmp_path, capsys, write_label_run):
    dataset = VOCDataset(shapes_root, "val")
    pred = write_label_run(dataset, tmp_path / "a")
    assert _evaluate(shapes_root, pred, "--compare", str(pred), "--bootstrap", "100") == 0
    comparison = json.loads((pred / "compare.json").read_text())
    assert comparison["paired"]["mean_image_miou_difference"] == 0.0
    assert comparison["paired"]["split_miou_difference"] == 0.0
    assert comparison["paired"]["num_images"] == len(dataset.ids)
    printed = capsys.readouterr().out
    assert "split mIoU B - A over 6 paired images:  +0.00 points" in printed
    assert printed.count("contains 0: no clear difference") == 2


def test_a_worsened_image_comes_first_in_the_worst_list_figure_and_losses(shapes_root, tmp_path, capsys,
                                                                          write_label_run):
    dataset = VOCDataset(shapes_root, "val")
    victim = dataset.ids[2]
    a, b = write_label_run(dataset, tmp_path / "a"), write_label_run(dataset, tmp_path / "b", worsen=victim)
    figure = tmp_path / "worst.png"
    assert _evaluate(shapes_root, b, "--worst", "2", "--figure", str(figure)) == 0
    printed = capsys.readouterr().out
    table = printed[printed.index("2 worst images"):].splitlines()
    assert table[2].startswith(victim) and len(table) >= 4
    with Image.open(figure) as picture:
        width, height = picture.size
    assert height > 2 * 160 and width > 4 * 160  # two rows of four 160-pixel panels, titles and legends
    assert _evaluate(shapes_root, a, "--compare", str(b), "--bootstrap", "200", "--compare-out",
                     str(tmp_path / "c.json")) == 0
    comparison = json.loads((tmp_path / "c.json").read_text())
    assert comparison["losses"][0]["id"] == victim
    assert f"B loses most: {victim} (" in capsys.readouterr().out
    assert np.isclose(comparison["b"]["miou"] - comparison["a"]["miou"], comparison["paired"]["split_miou_difference"])


def test_bad_worst_count_is_one_line(shapes_root, tmp_path, capsys):
    assert _evaluate(shapes_root, tmp_path, "--worst", "0") == 2
    assert capsys.readouterr().err.strip() == "glmix-viz evaluate: error: --worst 0: give a number of images >= 1"


def test_an_empty_prediction_folder_exits_2_with_one_line_and_writes_nothing(shapes_root, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _evaluate(shapes_root, empty, "--worst", "3") == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"glmix-viz evaluate: error: {empty}: nothing to score")
    assert "6 without a prediction" in lines[0] and "n/a" not in captured.out
    assert list(empty.iterdir()) == []  # no eval.json, no per_image.csv


def test_an_empty_compare_folder_stops_before_the_first_folder_is_written(shapes_root, tmp_path, capsys,
                                                                          write_label_run):
    pred = write_label_run(VOCDataset(shapes_root, "val"), tmp_path / "a")
    empty = tmp_path / "b"
    empty.mkdir()
    assert _evaluate(shapes_root, pred, "--compare", str(empty)) == 2
    assert f"{empty}: nothing to score" in capsys.readouterr().err
    assert not (pred / "eval.json").exists() and list(empty.iterdir()) == []


def test_worst_says_how_many_it_found_when_fewer_than_asked(shapes_root, tmp_path, capsys, write_label_run):
    dataset = VOCDataset(shapes_root, "val")
    pred = write_label_run(dataset, tmp_path / "a")
    for image_id in dataset.ids[2:]:
        (pred / f"{image_id}.png").unlink()
    assert _evaluate(shapes_root, pred, "--missing", "skip", "--worst", "5") == 0
    printed = capsys.readouterr().out
    assert "2 worst images (asked for 5; only 2 images scored)" in printed
    assert _evaluate(shapes_root, pred, "--missing", "skip", "--worst", "1") == 0
    assert "\n1 worst image\n" in capsys.readouterr().out
