"""``glmix-viz atlas`` when nothing can be read (it removes what it started) and without ``--block`` (the block the
explorer opens on)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from glmix_viz.cli import main
from glmix_viz.grouping import benchmark_best_block, opening_block


def _atlas(images: Path, out: Path, *extra: str) -> int:
    return main(["atlas", "--images", str(images), "--out", str(out), "--clusters", "2", "--input-size", "64",
                 "--examples", "1", "--resamples", "10", "--device", "cpu", "--no-progress", *extra])


@pytest.fixture()
def broken_images(tmp_path) -> Path:
    folder = tmp_path / "broken"
    folder.mkdir()
    for name in ("a.png", "b.jpg"):
        (folder / name).write_bytes(b"not an image at all")
    return folder


def test_nothing_readable_leaves_no_atlas_folder(broken_images, tmp_path, capsys):
    out = tmp_path / "atlas"
    assert _atlas(broken_images, out, "--block", "1") == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith(f"glmix-viz atlas: error: {out}: no image could be read (2 of 2 failed; first: a.png")
    assert not out.exists()


def test_nothing_readable_in_an_existing_folder_removes_only_what_it_wrote(broken_images, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert _atlas(broken_images, out, "--block", "1") == 2
    assert sorted(path.name for path in out.rglob("*")) == ["notes.txt"]


def test_opening_block_is_the_benchmark_block_when_the_model_has_it_else_the_first():
    blocks = ["stages.0.blocks.0", "stages.1.blocks.0", "stages.2.blocks.0"]
    assert opening_block(blocks, {"block": "stages.1.blocks.0"}) == "stages.1.blocks.0"
    assert opening_block(blocks, {"block": "stages.9.blocks.9"}) == "stages.0.blocks.0"
    assert opening_block(blocks, None) == "stages.0.blocks.0"
    with pytest.raises(ValueError):
        opening_block([], None)


def test_atlas_without_block_uses_the_demo_models_best_benchmark_block(tmp_path, capsys, monkeypatch):
    import glmix_viz.grouping
    from glmix_viz.data.shapes import ShapesConfig, make_shapes

    # the shipped benchmark's best block is the first one; a benchmark that names another shows which rule ran
    assert benchmark_best_block()["block"] == "stages.0.blocks.0"
    expected = "stages.1.blocks.1"
    monkeypatch.setattr(glmix_viz.grouping, "benchmark_best_block", lambda: {"block": expected})
    data = tmp_path / "shapes"
    make_shapes(data, ShapesConfig(image_size=64), num_train=0, num_val=4, seed=5, progress=False)
    images = tmp_path / "images"
    images.mkdir()
    for path in sorted((data / "JPEGImages").iterdir()):
        shutil.copy(path, images / path.name)
    assert _atlas(images, tmp_path / "atlas") == 0
    assert f"no --block: {expected}" in capsys.readouterr().err
    atlas = json.loads((tmp_path / "atlas" / "atlas.json").read_text())
    assert [block["name"] for block in atlas["blocks"]] == [expected]
