"""glmix-viz checkpoint files: safetensors with the config in the metadata and beside them, read back as written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from glmix_viz.checkpoints import CONFIG_KEY, read_config, read_safetensors, write_checkpoint
from glmix_viz.errors import CheckpointError


def _state() -> dict:
    weight = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    return {"layer.weight": weight.t(), "layer.bias": torch.tensor([1.0, -2.0, 0.5]), "steps": torch.tensor(7)}


def test_round_trip_keeps_tensors_and_config(tmp_path: Path) -> None:
    path = tmp_path / "run" / "last.safetensors"  # the folder is created
    config = {"format": "glmix-viz/1", "variant": "glnet_tiny", "where": tmp_path, "classes": ["a", "b"]}
    assert write_checkpoint(path, _state(), config) is config
    tensors, stored = read_safetensors(path)
    assert set(tensors) == {"layer.weight", "layer.bias", "steps"}
    for key, value in _state().items():
        assert torch.equal(tensors[key], value)
    assert stored == {"format": "glmix-viz/1", "variant": "glnet_tiny", "where": str(tmp_path), "classes": ["a", "b"]}
    assert json.loads(path.with_suffix(".json").read_text()) == stored  # the sidecar says the same
    with safe_open(str(path), framework="pt") as handle:  # the key the file format has always used
        assert json.loads(handle.metadata()["glmix_viz_config"]) == stored
    assert CONFIG_KEY == "glmix_viz_config"
    assert read_config(path) == stored
    assert sorted(item.name for item in path.parent.iterdir()) == ["last.json", "last.safetensors"]  # no temporaries


def test_config_comes_from_the_sidecar_only_when_it_is_a_glmix_viz_config(tmp_path: Path) -> None:
    torch.save({"w": torch.zeros(2)}, tmp_path / "weights.pth")
    assert read_config(tmp_path / "weights.pth") is None
    (tmp_path / "weights.json").write_text(json.dumps({"format": "someone-else/3", "lr": 0.1}))
    assert read_config(tmp_path / "weights.pth") is None
    (tmp_path / "weights.json").write_text(json.dumps({"format": "glmix-viz/1", "variant": "glnet_stl"}))
    assert read_config(tmp_path / "weights.pth") == {"format": "glmix-viz/1", "variant": "glnet_stl"}
    (tmp_path / "weights.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="weights.json") as error:
        read_config(tmp_path / "weights.pth")
    assert "\n" not in str(error.value)


def test_unreadable_files_fail_with_one_line_naming_them(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="missing.safetensors: no such checkpoint file"):
        read_safetensors(tmp_path / "missing.safetensors")
    (tmp_path / "broken.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{not a header")
    with pytest.raises(CheckpointError, match="broken.safetensors: not a readable safetensors file") as error:
        read_safetensors(tmp_path / "broken.safetensors")
    assert "\n" not in str(error.value)
    assert read_config(tmp_path / "broken.safetensors") is None  # no config: the weights' reader names the problem
