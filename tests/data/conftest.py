"""Small data sets on disk for the tests of glmix_viz.data: a segmentation folder and a labelled folder written by
hand (values chosen here, so the expectations are independent of the readers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def write_segfolder(root: Path, classes=("cat", "background", "dog"), splits=None) -> Path:
    """Three 8x6 images a, b, c; masks with the class ids below (background id 1 here), a 255 border on b."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "classes.txt").write_text("\n".join(classes) + "\n")
    rng = np.random.default_rng(0)
    masks = {
        "a": np.full((6, 8), 1, np.uint8),
        "b": np.full((6, 8), 1, np.uint8),
        "c": np.full((6, 8), 0, np.uint8),
    }
    masks["a"][2:4, 2:4] = 2          # a dog
    masks["b"][:, :3] = 0             # a cat ...
    masks["b"][0, :] = 255            # ... and an ignored row
    for stem, mask in masks.items():
        image = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
        Image.fromarray(image).save(root / "images" / f"{stem}.{'jpg' if stem == 'a' else 'png'}")
        Image.fromarray(mask, mode="L").save(root / "masks" / f"{stem}.png")  # grey PNG
    if splits:
        (root / "splits").mkdir()
        for name, ids in splits.items():
            (root / "splits" / f"{name}.txt").write_text("\n".join(ids) + "\n")
    return root


def write_tagged(root: Path, classes=("cat", "background", "dog"), rows=None) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "classes.txt").write_text("\n".join(classes) + "\n")
    rng = np.random.default_rng(1)
    for stem in ("a", "b", "c"):
        Image.fromarray(rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)).save(root / "images" / f"{stem}.png")
    rows = rows if rows is not None else ["a.png,dog", "b,cat dog", "c.png,"]
    (root / "labels.csv").write_text("image,labels\n" + "\n".join(rows) + "\n")
    return root


@pytest.fixture
def segfolder(tmp_path: Path) -> Path:
    return write_segfolder(tmp_path / "seg")


@pytest.fixture
def tagged(tmp_path: Path) -> Path:
    return write_tagged(tmp_path / "tagged")


@pytest.fixture
def make_segfolder():
    """``make_segfolder(root, classes=..., splits=...)``: :func:`write_segfolder`."""
    return write_segfolder


@pytest.fixture
def make_tagged():
    """``make_tagged(root, classes=..., rows=...)``: :func:`write_tagged`."""
    return write_tagged
