"""explore_image on an ImageNet head, and `glmix-viz inspect`: every chosen block drawn, bad files reported by name, the rest still done."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from glmix_viz.cli import main
from glmix_viz.models.info import is_multilabel
from glmix_viz.slots.explore import explore_image, top_predictions
from glmix_viz.probe import glmix_block_names


@pytest.fixture(scope="module")
def imagenet_model():
    torch.manual_seed(0)
    return timm.create_model("glnet_tiny", num_classes=1000).eval()


def test_explore_image_uses_softmax_for_an_imagenet_head(imagenet_model):
    image = np.random.default_rng(0).integers(0, 255, (70, 110, 3), dtype=np.uint8)
    exploration = explore_image(imagenet_model, image, input_size=96)
    assert exploration.input_size == (64, 96)  # longer side 96, aspect kept, multiples of 32
    assert exploration.block_names == glmix_block_names(imagenet_model)
    assert not is_multilabel(imagenet_model) and not exploration.multi_label
    assert exploration.probabilities.shape == (1000,)
    assert exploration.probabilities.sum() == pytest.approx(1.0, abs=1e-4)
    top = top_predictions(exploration.probabilities, exploration.class_names)
    assert len(top) == 5 and top[0].probability >= top[-1].probability and top[0].name != "class 0"
    assert exploration.dispatch("stages.0.blocks.0").shape == (16, 16, 24)


def test_a_multilabel_checkpoint_gets_sigmoid_probabilities(tmp_path):
    from glmix_viz import load_model, save_checkpoint

    torch.manual_seed(0)
    save_checkpoint(timm.create_model("glnet_tiny", num_classes=4), tmp_path / "m.safetensors", variant="glnet_tiny",
                    class_names=["circle", "square", "triangle", "cross"])
    model = load_model(tmp_path / "m.safetensors", device="cpu")
    assert is_multilabel(model) and not is_multilabel(timm.create_model("glnet_tiny", num_classes=4))
    exploration = explore_image(model, np.zeros((64, 64, 3), np.uint8))
    logits = torch.from_numpy(exploration.logits)
    np.testing.assert_allclose(exploration.probabilities, torch.sigmoid(logits).numpy(), rtol=1e-5)
    assert exploration.class_names == ["circle", "square", "triangle", "cross"]


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
