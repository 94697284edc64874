"""analyze_image and `glmix-viz inspect`: every chosen block drawn, bad files reported by name, the rest still done."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from glmix_viz.cli import main
from glmix_viz.inference import analyze_image, is_multilabel
from glmix_viz.probe import glmix_block_names


@pytest.fixture(scope="module")
def imagenet_model():
    torch.manual_seed(0)
    return timm.create_model("glnet_tiny", num_classes=1000).eval()


def test_analyze_image_records_every_block_for_one_image(imagenet_model):
    image = np.random.default_rng(0).integers(0, 255, (70, 110, 3), dtype=np.uint8)
    analysis = analyze_image(imagenet_model, image, size=96)
    assert analysis.input_size == (64, 96)  # longer side 96, aspect kept, multiples of 32
    assert analysis.block_names == glmix_block_names(imagenet_model)
    assert not is_multilabel(imagenet_model)
    assert analysis.probs.shape == (1000,) and analysis.probs.sum() == pytest.approx(1.0, abs=1e-4)
    top = analysis.top_k(5)
    assert len(top) == 5 and top[0][1] >= top[-1][1] and isinstance(top[0][0], str) and top[0][0] != "class 0"
    first = analysis.records["stages.0.blocks.0"]
    assert first.logits.shape == (1, 16, 16, 24) and first.logits.device.type == "cpu"
    assert analysis.dispatch("stages.0.blocks.0").shape == (16, 16, 24)


def test_inspect_writes_one_figure_per_good_image_and_reports_bad_ones(tmp_path, capsys):
    rng = np.random.default_rng(1)
    good = tmp_path / "photo.webp"
    Image.fromarray(rng.integers(0, 255, (90, 120, 3), dtype=np.uint8)).save(good)
    gray16 = tmp_path / "depth.png"
    Image.fromarray(rng.integers(0, 65535, (64, 64), dtype=np.uint16)).save(gray16)
    corrupt = tmp_path / "broken.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    tiny = tmp_path / "tiny.png"
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tiny)
    out = tmp_path / "out"
    code = main(["inspect", str(good), str(corrupt), str(gray16), str(tiny), "--model", "glnet_tiny",
                 "--size", "64", "--blocks", "0", "stages.2.blocks.2", "--out", str(out), "--device", "cpu"])
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == ["depth_groupings.png", "photo_groupings.png"]
    figure = np.asarray(Image.open(out / "photo_groupings.png"))
    assert figure.ndim == 3 and figure.shape[1] > 3 * 200  # input + two grouping panels side by side
    err = capsys.readouterr().err
    assert "broken.jpg" in err and "tiny.png is 20x20 pixels" in err and "2 of 4 images failed" in err


def test_inspect_rejects_unknown_blocks_and_models(tmp_path, capsys):
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(image)
    assert main(["inspect", str(image), "--model", "glnet_tiny", "--blocks", "stages.3.blocks.0"]) == 2
    assert "--blocks: 'stages.3.blocks.0' is not a GLMix block" in capsys.readouterr().err
    assert main(["inspect", str(image), "--model", "glnet_nope", "--out", str(tmp_path)]) == 2
    assert "glnet_nope" in capsys.readouterr().err
