"""Bad input: one line naming the file and the problem; per-image problems are raised for that image only."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from glmix_viz.data.registry import open_split
from glmix_viz.errors import DataError
from glmix_viz.labels import load_label_png


def _one_line(excinfo, *parts):
    message = str(excinfo.value)
    assert "\n" not in message, message
    for part in parts:
        assert part in message, message


def test_mask_value_that_is_neither_a_class_nor_ignore(segfolder):
    mask = np.full((6, 8), 1, np.uint8)
    mask[0, 0] = 7
    Image.fromarray(mask, mode="L").save(segfolder / "masks" / "c.png")
    split = open_split(segfolder)
    with pytest.raises(DataError) as caught:
        split.mask("c")
    _one_line(caught, str(segfolder / "masks" / "c.png"), "[7]", "ignore value 255")
    assert split.mask("a") is not None          # the other images are untouched


def test_mask_size_differs_from_image(segfolder):
    Image.fromarray(np.ones((5, 8), np.uint8), mode="L").save(segfolder / "masks" / "c.png")
    with pytest.raises(DataError) as caught:
        open_split(segfolder).mask("c")
    _one_line(caught, "masks/c.png", "8x5 differs from the image size 8x6")


def test_split_list_naming_a_missing_image(make_segfolder, tmp_path):
    root = make_segfolder(tmp_path / "s", splits={"val": ["a", "ghost", "b"]})
    split = open_split(root, "val")
    assert split.ids == ["a", "ghost", "b"]
    with pytest.raises(DataError) as caught:
        split.image("ghost")
    _one_line(caught, str(root / "splits" / "val.txt"), "'ghost'")
    assert split.image("b").shape == (6, 8, 3)


@pytest.mark.parametrize("lines, problem", [
    ("cat\n\ndog\n", "line 2 has no class name"),
    ("cat\nbackground\ncat\n", "line 3 repeats the class name 'cat' of line 1"),
    ("\n\n", "the class list is empty"),
])
def test_classes_txt_missing_or_duplicated_name(segfolder, lines, problem):
    (segfolder / "classes.txt").write_text(lines)
    with pytest.raises(DataError) as caught:
        open_split(segfolder)
    _one_line(caught, str(segfolder / "classes.txt"), problem)


def test_classes_txt_missing(segfolder):
    (segfolder / "classes.txt").unlink()
    with pytest.raises(DataError) as caught:  # still a segmentation folder (images/, masks/), not a plain one
        open_split(segfolder)
    _one_line(caught, str(segfolder / "classes.txt"), "class list not found")


def test_labels_csv_naming_an_unknown_class(make_tagged, tmp_path):
    root = make_tagged(tmp_path / "t", rows=["a.png,dog", "b.png,cat zebra", "c.png,background"])
    split = open_split(root)
    with pytest.raises(DataError) as caught:
        split.labels("b")
    _one_line(caught, str(root / "labels.csv"), "line 3", "unknown class 'zebra'")
    assert split.labels("a").tolist() == [0.0, 1.0]
    assert split.labels("c").tolist() == [0.0, 0.0]  # naming the background is allowed


def test_labels_csv_without_a_row_for_an_image(make_tagged, tmp_path):
    split = open_split(make_tagged(tmp_path / "t", rows=["a.png,dog"]))
    with pytest.raises(DataError, match=r"labels.csv: no row for image 'b'"):
        split.labels("b")


def test_empty_images_folder(segfolder):
    for path in (segfolder / "images").iterdir():
        path.unlink()
    with pytest.raises(DataError) as caught:
        open_split(segfolder)
    _one_line(caught, str(segfolder / "images"), "no image file")


def test_pseudo_label_batch_skips_and_reports_bad_items(tmp_path, make_tagged):
    """A batch job over a labelled folder with one bad row: that image is reported, the others are done."""
    from glmix_viz.open import resolve_model
    from glmix_viz.pseudo.pipeline import run_pseudo_label
    from glmix_viz.pseudo.settings import ScoreSettings

    root = make_tagged(tmp_path / "t", classes=("circle", "background", "cross"),
                       rows=["a.png,cross", "b.png,zebra", "c.png,circle"])
    for stem in "abc":  # 32 px: the smallest image the scorer takes
        Image.new("RGB", (32, 32), (7 * ord(stem) % 255, 40, 90)).save(root / "images" / f"{stem}.png")
    model = resolve_model(device="cpu").model   # the demo model: circle, square, triangle, cross
    summary = run_pseudo_label(open_split(root), tmp_path / "out", model, ScoreSettings(method="cam"), crf=None,
                               workers=0, progress=False)
    assert summary["counts"]["done"] == 2 and summary["counts"]["failed"] == 1
    assert summary["failures"][0]["id"] == "b" and "unknown class 'zebra'" in summary["failures"][0]["reason"]
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["a.png", "c.png"]
    assert set(np.unique(load_label_png(tmp_path / "out" / "a.png")).tolist()) <= {1, 2}  # background id 1, cross 2


def test_a_data_set_class_the_model_does_not_know_is_reported_once(tmp_path, make_tagged, capsys):
    from glmix_viz.open import resolve_model
    from glmix_viz.pseudo.pipeline import run_pseudo_label
    from glmix_viz.pseudo.settings import ScoreSettings

    root = make_tagged(tmp_path / "t", classes=("background", "circle", "hexagon"),
                       rows=["a.png,hexagon", "b.png,circle hexagon", "c.png,hexagon"])
    for stem in "abc":
        Image.new("RGB", (32, 32), (7 * ord(stem) % 255, 40, 90)).save(root / "images" / f"{stem}.png")
    summary = run_pseudo_label(open_split(root), tmp_path / "out", resolve_model(device="cpu").model,
                               ScoreSettings(method="cam"), crf=None, workers=0, progress=False)
    assert summary["counts"]["done"] == 3
    err = capsys.readouterr().err
    assert err.count("hexagon") == 1 and "does not know" in err
    assert summary["warnings"] == [line.removeprefix("warning: ") for line in err.splitlines() if "hexagon" in line]
    assert set(np.unique(load_label_png(tmp_path / "out" / "a.png")).tolist()) == {0}  # nothing it knows: background
