"""open_checkpoint: the config names the kind and one opener dispatches; classifiers, segmenters, training runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import timm
import torch

from glmix_viz.checkpoints import write_checkpoint
from glmix_viz.errors import CheckpointError
from glmix_viz.models.loading import save_checkpoint
from glmix_viz.open import Opened, demo_checkpoint, open_checkpoint
from glmix_viz.segment.model import backbone_of, build_segmenter, save_segmenter


@pytest.fixture(scope="module")
def classifier() -> torch.nn.Module:
    torch.manual_seed(1)
    return timm.create_model("glnet_tiny", num_classes=3).eval()


def _same_outputs(a: torch.nn.Module, b: torch.nn.Module) -> None:
    images = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(a(images), b(images), rtol=0, atol=0)


def test_a_classifier_opens_as_a_model_without_segmenter(tmp_path: Path, classifier: torch.nn.Module) -> None:
    path = tmp_path / "c.safetensors"
    save_checkpoint(classifier, path, variant="glnet_tiny", class_names=["x", "y", "z"])
    opened = open_checkpoint(path, device="cpu")
    assert isinstance(opened, Opened) and opened.kind == "classifier" and opened.segmenter is None
    assert opened.info.class_names == ("x", "y", "z") and opened.info.path == path
    _same_outputs(opened.model, classifier)
    torch.save({"model": classifier.state_dict()}, tmp_path / "official.pth")  # no config: the weights decide
    assert open_checkpoint(tmp_path / "official.pth", device="cpu").info.variant == "glnet_tiny"


def test_a_segmenter_opens_with_its_segmenter_explicit(tmp_path: Path) -> None:
    torch.manual_seed(0)
    segmenter = build_segmenter("glnet_tiny", 3, decoder_args={"decoder_channels": 32}).eval()
    path = tmp_path / "s.safetensors"
    save_segmenter(segmenter, path, {"backbone": {"variant": "glnet_tiny", "model_args": {}}, "decoder": "upernet",
                                     "decoder_args": {"decoder_channels": 32}, "num_classes": 3,
                                     "class_names": ["background", "a", "b"]})
    opened = open_checkpoint(path, device="cpu")
    assert opened.kind == "segmenter" and opened.model is backbone_of(opened.segmenter)
    assert opened.model.num_classes == 0 and opened.info.variant == "glnet_tiny" and opened.info.path == path
    assert "segmenter" not in vars(opened.model)
    _same_outputs(opened.segmenter, segmenter)


def test_a_training_run_folder_opens_its_best_else_its_last(tmp_path: Path, classifier: torch.nn.Module) -> None:
    save_checkpoint(classifier, tmp_path / "last.safetensors", variant="glnet_tiny", extra={"epoch": 2})
    assert open_checkpoint(tmp_path, device="cpu").info.path == tmp_path / "last.safetensors"
    save_checkpoint(classifier, tmp_path / "best.safetensors", variant="glnet_tiny", extra={"epoch": 1})
    assert open_checkpoint(tmp_path, device="cpu").info.path == tmp_path / "best.safetensors"
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="empty: a folder without best.safetensors or last.safetensors"):
        open_checkpoint(tmp_path / "empty")


@pytest.mark.parametrize("content", [b"neither a classifier nor a segmenter", b"\x00" * 64])
def test_a_file_of_neither_kind_is_refused_in_one_line_naming_it(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "odd.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as error:
        open_checkpoint(path, device="cpu")
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)


def test_an_unknown_glmix_viz_format_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "future.safetensors"
    write_checkpoint(path, {"w": torch.zeros(2)}, {"format": "glmix-viz-detector/1"})
    with pytest.raises(CheckpointError) as error:
        open_checkpoint(path, device="cpu")
    message = str(error.value)
    assert message.startswith(f"{path}: unknown checkpoint format 'glmix-viz-detector/1'") and "\n" not in message
    assert "glmix-viz/1" in message and "glmix-viz-segmenter/1" in message
    assert json.loads(path.with_suffix(".json").read_text())["format"] == "glmix-viz-detector/1"


def test_demo_checkpoint_picks_the_first_safetensors(tmp_path: Path) -> None:
    assert demo_checkpoint(tmp_path) is None
    (tmp_path / "b.safetensors").write_bytes(b"")
    (tmp_path / "a.safetensors").write_bytes(b"")
    (tmp_path / "c.json").write_text("{}")
    assert demo_checkpoint(tmp_path) == tmp_path / "a.safetensors"
