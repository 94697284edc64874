"""Tests of glmix_viz.files: atomic writers leave either the old file or the complete new one."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from glmix_viz.files import save_bytes_atomic, save_npz_atomic, save_png_atomic

def test_save_bytes_atomic_replaces_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "out" / "result.bin"
    save_bytes_atomic(path, b"old")
    save_bytes_atomic(path, b"new contents")
    assert path.read_bytes() == b"new contents"
    assert os.listdir(path.parent) == ["result.bin"]


def test_save_bytes_atomic_cleans_up_on_failure(tmp_path: Path) -> None:
    path = tmp_path / "result.bin"
    save_bytes_atomic(path, b"kept")
    with pytest.raises(TypeError):
        save_bytes_atomic(path, "text is not bytes")  # type: ignore[arg-type]
    assert path.read_bytes() == b"kept"
    assert os.listdir(tmp_path) == ["result.bin"]


def test_save_png_atomic_arrays_and_palette_images(tmp_path: Path) -> None:
    picture = np.random.default_rng(0).integers(0, 256, size=(40, 48, 3), dtype=np.uint8)
    save_png_atomic(tmp_path / "picture.png", picture)
    with Image.open(tmp_path / "picture.png") as reread_picture:
        np.testing.assert_array_equal(np.asarray(reread_picture.convert("RGB")), picture)
    labels = Image.fromarray(np.array([[0, 1], [1, 0]], dtype=np.uint8), mode="P")
    labels.putpalette([0, 0, 0, 128, 0, 0] + [0] * 762)
    save_png_atomic(tmp_path / "labels.png", labels)
    reread = Image.open(tmp_path / "labels.png")
    assert reread.mode == "P"
    np.testing.assert_array_equal(np.asarray(reread), [[0, 1], [1, 0]])
    assert sorted(os.listdir(tmp_path)) == ["labels.png", "picture.png"]


def test_save_npz_atomic(tmp_path: Path) -> None:
    path = tmp_path / "maps.npz"
    save_npz_atomic(path, scores=np.arange(6.0).reshape(2, 3), labels=np.array([1, 2], dtype=np.uint8))
    with np.load(path) as stored:
        np.testing.assert_array_equal(stored["scores"], np.arange(6.0).reshape(2, 3))
        assert stored["labels"].dtype == np.uint8
    assert os.listdir(tmp_path) == ["maps.npz"]
