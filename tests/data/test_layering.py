"""data/ is a floor: nothing outside it imports a concrete reader or names a reader class, and it imports nothing
above it; class ids are matched by name (glmix_viz.data.classes)."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from glmix_viz.data.classes import match_classes, match_label_ids
from glmix_viz.errors import DataError

ROOT = Path(__file__).resolve().parents[2]
READERS = {"glmix_viz.data.voc", "glmix_viz.data.coco", "glmix_viz.data.folder", "glmix_viz.data.segfolder",
           "glmix_viz.data.tagged", "glmix_viz.data._layout"}
READER_CLASSES = {"VOCDataset", "COCODataset", "ImageFolder", "SegmentationFolder", "LabelledFolder"}
DATA_MAY_IMPORT = {"glmix_viz.errors", "glmix_viz.labels", "glmix_viz.images", "glmix_viz.files",
                   "glmix_viz.safe_pickle"}


def _imports(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.module, {alias.name for alias in node.names}
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, set()


def _sources(*folders: str):
    for folder in folders:
        yield from sorted((ROOT / folder).rglob("*.py"))


def test_nothing_outside_data_imports_a_concrete_reader():
    offenders = []
    for path in _sources("glmix_viz", "bench", "experiments", "scripts"):
        if (ROOT / "glmix_viz" / "data") in path.parents:
            continue
        for module, names in _imports(path):
            if module in READERS or names & READER_CLASSES:
                offenders.append(f"{path.relative_to(ROOT)}: {module} {sorted(names)}")
    assert offenders == []


def test_data_imports_nothing_above_it():
    for path in _sources("glmix_viz/data"):
        for module, _ in _imports(path):
            if module.startswith("glmix_viz") and not module.startswith("glmix_viz.data"):
                assert module in DATA_MAY_IMPORT, f"{path.name} imports {module}"


class _Split:
    root = Path("/data")
    ignore = 255

    def __init__(self, names, background):
        self.class_names, self.background = tuple(names), background


def test_classes_are_matched_by_name_wherever_their_ids_stand():
    split = _Split(["triangle", "cross", "background", "Circle"], background=2)
    match = match_classes(["circle", "square", "triangle"], split)
    assert match.data_ids.tolist() == [3, -1, 0]
    assert match.label_ids.tolist() == [2, 3, 255, 0]          # channel 0: the split's background id
    assert match.unknown == ["cross"] and match.unused == ["square"]
    # split labels are over its object classes (triangle, cross, Circle): to the model's order
    assert match.model_labels(np.array([1.0, 1.0, 0.0])).tolist() == [0.0, 0.0, 1.0]
    assert "cross" in match.warning() and "\n" not in match.warning()


def test_no_background_writes_ignore_and_unnamed_heads_need_the_same_count():
    split = _Split(["a", "b"], background=None)
    assert match_classes(["b", "a"], split).label_ids.tolist() == [255, 1, 0]
    assert match_classes(None, split, num_model_classes=2).data_ids.tolist() == [0, 1]
    with pytest.raises(DataError, match="3-class head without class names but the data set has 2"):
        match_classes(None, split, num_model_classes=3)
    with pytest.raises(DataError, match="share no name"):
        match_classes(["x", "y"], split)


def test_segmenter_outputs_are_matched_by_name():
    split = _Split(["cat", "background", "dog"], background=1)
    ids, unknown = match_label_ids(["background", "dog", "cat", "cow"], split)
    assert ids.tolist() == [1, 2, 0, 255] and unknown == []
    ids, unknown = match_label_ids(["background", "cat"], split)
    assert ids.tolist() == [1, 0] and unknown == ["dog"]
