"""The slot atlas: regions of a block by hand, purity by hand, and the job end to end on a few small shapes images
(2 concepts): the same atlas after a killed run is resumed, a bad image skipped and reported, a folder without labels.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from glmix_viz.atlas import AtlasSettings, build_atlas, collect_regions, run_atlas
from glmix_viz.atlas.collect import block_rows
from glmix_viz.probe import GroupingRecord
from glmix_viz.scoring.grouping import contingency_scores, purity

BLOCKS = ("stages.1.blocks.0",)


def test_purity_of_a_hand_made_table():
    table = np.array([[3, 1, 0], [0, 2, 0], [1, 0, 5]])  # concept x class
    # concept 0: 3 of 4 are class 0; concept 1: 2 of 2 class 1; concept 2: 5 of 6 class 2 -> 10 of 12
    assert purity(table) == pytest.approx(10 / 12)
    scores = contingency_scores(table)
    assert scores["majority_baseline"] == pytest.approx(5 / 12)  # class totals 4, 3, 5
    from sklearn.metrics import normalized_mutual_info_score

    concepts = np.repeat(np.arange(3).repeat(3), table.ravel())
    classes = np.repeat(np.tile(np.arange(3), 3), table.ravel())
    assert scores["nmi"] == pytest.approx(normalized_mutual_info_score(classes, concepts))
    assert np.isnan(purity(np.zeros((2, 2))))


def test_block_rows_by_hand():
    # a 2 x 4 block grid, 3 slots: slot 0 holds the left half, slot 1 the right half, slot 2 nothing
    logits = torch.full((1, 3, 2, 4), -5.0)
    logits[0, 0, :, :2] = 5.0
    logits[0, 1, :, 2:] = 5.0
    logits[0, 1, 0, 3] = 1.0  # a less sure pixel of slot 1 (still its arg-max)
    slots = torch.tensor([[[3.0, 4.0], [0.0, 2.0], [1.0, 0.0]]])
    record = GroupingRecord("b", logits, slots, slots)
    # a 4 x 8 mask: left half class 1; right half class 2 except its top row (class 0 on 3 of 4, one ignored pixel)
    mask = np.ones((4, 8), np.uint8)
    mask[:, 4:] = 2
    mask[0, 4:7] = 0
    mask[0, 7] = 255
    rows = block_rows(record, [mask], [7])
    assert rows.slot.tolist() == [0, 1] and rows.image.tolist() == [7, 7]
    assert rows.area.tolist() == [0.5, 0.5]
    assert rows.label.tolist() == [1, 2] and rows.label_share.tolist() == pytest.approx([1.0, 12 / 15])
    np.testing.assert_allclose(rows.features.astype(np.float32), [[0.6, 0.8], [0.0, 1.0]], atol=1e-3)
    sure = torch.softmax(logits[0, :, 0, 3], 0).max().item()
    assert rows.confidence[1] == pytest.approx((3 * torch.softmax(logits[0, :, 0, 0], 0).max().item() + sure) / 4)
    assert rows.hard.shape == (1, 2, 4)
    assert block_rows(record, [None], [0]).label.tolist() == [-1, -1]


@pytest.fixture(scope="module")
def demo():
    from glmix_viz.models.loading import load_model
    from glmix_viz.open import demo_checkpoint

    return load_model(demo_checkpoint(), device="cpu")


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    from glmix_viz.data.shapes import ShapesConfig, make_shapes

    root = tmp_path_factory.mktemp("shapes")
    make_shapes(root, ShapesConfig(image_size=64), num_train=0, num_val=6, seed=11)
    return root


def _settings(**kw):
    return AtlasSettings(blocks=BLOCKS, input_size=64, batch_size=2, chunk_size=2, **kw)


def _build(out):
    return build_atlas(out, 2, examples=2, resamples=50, progress=False)


def _essentials(atlas):
    return [(b["name"], [c["size"] for c in b["concepts"]], b["purity"], [[e["id"] for e in c["examples"]]
             for c in b["concepts"]]) for b in atlas["blocks"]]


def test_atlas_end_to_end_and_resume_after_a_kill(demo, shapes, tmp_path, monkeypatch):
    from glmix_viz.atlas import collect as collect_module
    from glmix_viz.data.voc import VOCDataset

    data = VOCDataset(shapes, "val")
    whole = run_atlas(data, demo, tmp_path / "whole", _settings(), 2, progress=False, examples=2, resamples=50)
    atlas = whole["atlas"]
    block = atlas["blocks"][0]
    assert atlas["images"] == 6 and not atlas["failures"]
    assert len(block["concepts"]) == 2 and sum(c["size"] for c in block["concepts"]) == block["regions"]
    assert block["majority_baseline"] <= block["purity"] <= 1 and block["purity_ci95"][0] <= block["purity_ci95"][1]
    assert all((tmp_path / "whole" / e["crop"]).is_file() for c in block["concepts"] for e in c["examples"])
    assert (tmp_path / "whole" / block["figure"]).is_file()

    # kill the run while it writes its second chunk: a partial temporary is left, the chunk is not there
    real_write, calls = collect_module.write_chunk, []

    def dying_write(path, *args):
        calls.append(path)
        if len(calls) == 2:
            (path.parent / f".{path.name}.0123456789ab.tmp").write_bytes(b"PK\x03\x04 half a chunk")
            raise KeyboardInterrupt
        real_write(path, *args)

    monkeypatch.setattr(collect_module, "write_chunk", dying_write)
    with pytest.raises(KeyboardInterrupt):
        collect_regions(data, demo, tmp_path / "killed", _settings(), progress=False)
    summary = json.loads((tmp_path / "killed" / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["counts"]["done"] == 4
    monkeypatch.setattr(collect_module, "write_chunk", real_write)
    resumed = collect_regions(data, demo, tmp_path / "killed", _settings(), progress=False)
    assert resumed["counts"]["skipped"] == 2 and resumed["counts"]["done"] == 4 and resumed["complete"]
    assert not list((tmp_path / "killed" / "features").glob(".*.tmp"))
    assert _essentials(_build(tmp_path / "killed")) == _essentials(atlas)
    np.testing.assert_array_equal(np.load(tmp_path / "killed" / "block-0.npz")["centroids"],
                                  np.load(tmp_path / "whole" / "block-0.npz")["centroids"])


def test_other_settings_in_the_same_folder_are_refused(demo, shapes, tmp_path):
    from glmix_viz.data.voc import VOCDataset
    from glmix_viz.errors import DataError

    data = VOCDataset(shapes, "val")
    collect_regions(data, demo, tmp_path, _settings(), progress=False)
    with pytest.raises(DataError, match="chunk_size"):
        collect_regions(data, demo, tmp_path, AtlasSettings(blocks=BLOCKS, input_size=64, chunk_size=3),
                        progress=False)


def test_cli_on_a_folder_skips_and_reports_a_bad_image(shapes, tmp_path):
    import shutil

    folder = tmp_path / "images"
    folder.mkdir()
    for path in sorted((shapes / "JPEGImages").iterdir())[:4]:
        shutil.copy(path, folder / path.name)
    (folder / "broken.png").write_bytes(b"not a png at all")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    out = tmp_path / "atlas"
    result = subprocess.run(
        [sys.executable, "-m", "glmix_viz", "atlas", "--images", str(folder), "--block", "1", "--clusters", "2",
         "--out", str(out), "--input-size", "64", "--chunk-size", "3", "--examples", "2", "--resamples", "20",
         "--device", "cpu", "--no-progress"], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 1, result.stderr
    assert "failed: broken.png:" in result.stderr and "broken.png" in result.stderr
    atlas = json.loads((out / "atlas.json").read_text())
    assert [f["id"] for f in atlas["failures"]] == ["broken.png"] and atlas["images"] == 4
    block = atlas["blocks"][0]
    assert block["name"] == "stages.1.blocks.0" and "purity" not in block and len(block["concepts"]) == 2


def _hand_atlas(folder: Path) -> Path:
    """An atlas folder written by hand: one block, two concepts with centroids (1, 0) and (0, 1)."""
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "block-0.npz", centroids=np.array([[1.0, 0.0], [0.0, 1.0]], np.float32),
             pca_mean=np.zeros(2, np.float32), pca_components=np.eye(2, dtype=np.float32),
             map_xy=np.zeros((0, 2), np.float32))
    concepts = [{"index": k, "size": 3, "share": 0.5, "examples": []} for k in range(2)]
    (folder / "atlas.json").write_text(json.dumps({
        "format": "glmix-viz-atlas/1", "plan": {"feature": "slots_in"}, "class_names": None,
        "blocks": [{"name": "b", "data": "block-0.npz", "concepts": concepts, "regions": 6, "images": 2}]}))
    (folder / "images.json").write_text(json.dumps({"ids": ["x", "y"], "paths": ["/x.png", "/y.png"]}))
    return folder


def test_open_atlas_and_nearest_concepts_by_hand(tmp_path):
    from glmix_viz.atlas.read import open_atlas
    from glmix_viz.errors import DataError

    atlas = open_atlas(_hand_atlas(tmp_path / "atlas"))
    concept, distance = atlas.nearest_concepts("b", np.array([[2.0, 0.0], [0.0, -3.0], [3.0, 4.0]]))
    # scaled to unit length first: (1, 0) is concept 0 itself; (0.6, 0.8) is concept 1 at |(0.6, -0.2)| = sqrt(0.4)
    assert concept[0] == 0 and distance[0] == pytest.approx(0.0)
    assert distance[1] == pytest.approx(np.sqrt(2.0))  # (0, -1) is sqrt(2) from (1, 0), 2 from (0, 1)
    assert concept[1] == 0
    assert concept[2] == 1 and distance[2] == pytest.approx(np.sqrt(0.4), abs=1e-6)
    np.testing.assert_allclose(atlas.project("b", np.array([[3.0, 4.0]])), [[0.6, 0.8]], atol=1e-6)
    with pytest.raises(ValueError, match=r"\(S, 2\)"):
        atlas.nearest_concepts("b", np.zeros((1, 3)))
    with pytest.raises(DataError, match="does not exist"):
        open_atlas(tmp_path / "nowhere")
    (tmp_path / "half").mkdir()
    with pytest.raises(DataError, match="no atlas.json"):
        open_atlas(tmp_path / "half")
    (tmp_path / "atlas" / "atlas.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(DataError, match="not a glmix-viz atlas"):
        open_atlas(tmp_path / "atlas")


def test_app_command_passes_the_atlas_and_refuses_a_folder_without_one(tmp_path, capsys):
    from glmix_viz.cli import build_parser, main
    from glmix_viz.commands.app import streamlit_argv

    folder = _hand_atlas(tmp_path / "atlas")
    argv = streamlit_argv(build_parser().parse_args(["app", "--atlas", str(folder)]))
    assert argv[argv.index("--") + 1:] == ["--atlas", str(folder.resolve())]
    assert main(["app", "--atlas", str(tmp_path)]) == 2
    assert "no atlas.json" in capsys.readouterr().err


def test_region_crop_by_hand():
    from glmix_viz.atlas.pictures import atlas_figure, region_crop

    image = np.zeros((40, 40, 3), np.uint8) + np.array([10, 20, 30], np.uint8)
    hard = np.zeros((4, 4), np.int64)
    hard[1:3, 1:3] = 1  # slot 1 holds image pixels 10..29 in both directions
    tight = region_crop(image, hard, 1, size=20, margin=0.0)
    assert tight.shape == (20, 20, 3) and (tight == [10, 20, 30]).all()  # the region itself: nothing faded
    wide = region_crop(image, hard, 1, size=20, margin=0.5)  # a 40-pixel box: the whole image, outside faded
    assert wide[0, 0].tolist() == [169, 173, 176]  # 0.35 * value + 0.65 * 255 (165.75), rounded
    assert wide[10, 10].tolist() == [10, 20, 30]
    assert wide[5, 10].tolist() == [220, 20, 60] and wide[4, 10].tolist() != [220, 20, 60]  # the border
    assert (region_crop(image, hard, 5) == 255).all()  # a slot without pixels: a blank square
    figure = atlas_figure([[tight, tight], []], ["concept 0", "concept 1"], size=20, min_columns=3)
    assert figure.dtype == np.uint8 and figure.shape[1] >= 3 * 20
