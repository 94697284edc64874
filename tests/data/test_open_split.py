"""open_split: which reader each layout gets, and the one-line failure where none fits."""

from __future__ import annotations

import pytest

from glmix_viz.data.registry import DATASETS, detect_format, open_split
from glmix_viz.errors import DataError


def test_each_layout_is_recognised(tmp_path, segfolder, tagged):
    (tmp_path / "voc" / "JPEGImages").mkdir(parents=True)
    (tmp_path / "coco" / "annotations").mkdir(parents=True)
    (tmp_path / "coco" / "annotations" / "instances_val2014.json").write_text("{}")
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "x.jpg").write_bytes(b"")
    assert detect_format(segfolder).name == "segfolder"
    assert detect_format(tagged).name == "tagged"
    assert detect_format(tmp_path / "voc").name == "voc"
    assert detect_format(tmp_path / "coco").name == "coco"
    assert detect_format(tmp_path / "plain").name == "images"
    assert [f.name for f in DATASETS] == ["coco", "voc", "segfolder", "tagged", "images"]


def test_unknown_layout_fails_in_one_line_listing_what_it_looked_for(tmp_path):
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "notes.txt").write_text("hello")
    with pytest.raises(DataError) as caught:
        open_split(tmp_path / "odd", "train")
    message = str(caught.value)
    assert "\n" not in message and str(tmp_path / "odd") in message
    for expected in ("JPEGImages/", "images/ + masks/ + classes.txt", "images/ + labels.csv + classes.txt",
                     "instances_", "image files"):
        assert expected in message


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(DataError, match="data folder does not exist"):
        open_split(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="the data folder is empty"):
        open_split(tmp_path / "empty")
