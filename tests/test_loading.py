"""load_model: official-style .pth files, bare and wrapped state dicts, safetensors with config, and bad files."""

from __future__ import annotations

import json
import sys
import types

import pytest
import timm
import torch

import glmix_viz
from glmix_viz import CheckpointError, load_model, save_checkpoint
from glmix_viz.models import official_variants
from glmix_viz.models.loading import infer_variant, load_state_dict


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return timm.create_model("glnet_tiny", num_classes=6).eval()


def _same_outputs(a, b):
    x = torch.randn(2, 3, 64, 80, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("wrapper", ["model", "model_ema", "state_dict", "bare", "module_prefix"])
def test_official_pth_layouts_load_and_infer_the_variant(tmp_path, tiny, wrapper):
    state = tiny.state_dict()
    if wrapper == "bare":
        obj = state
    elif wrapper == "module_prefix":
        obj = {"model": {f"module.{k}": v for k, v in state.items()}}
    else:
        obj = {wrapper: state, "epoch": 299}
    if wrapper == "model_ema":  # the 16g release: EMA weights win over the regular ones
        obj["model"] = {k: torch.zeros_like(v) for k, v in state.items()}
    torch.save(obj, tmp_path / "ckpt.pth")
    model = load_model(tmp_path / "ckpt.pth", device="cpu")
    assert model.checkpoint_config["variant"] == "glnet_tiny" and model.num_classes == 6
    assert not model.training
    _same_outputs(model, tiny)


def _fake_omegaconf(ran: list) -> types.ModuleType:
    module = types.ModuleType("fake_omegaconf")

    class DictConfig:  # pickles like OmegaConf's: class reference + state, restored by __setstate__
        def __init__(self, content):
            self.content = content

        def __setstate__(self, state):
            ran.append("executed")
            self.__dict__.update(state)

    DictConfig.__module__, DictConfig.__qualname__ = "fake_omegaconf", "DictConfig"
    module.DictConfig = DictConfig
    return module


def test_training_file_with_a_pickled_config_object_loads_without_running_it(tmp_path, tiny, monkeypatch):
    """The official training files pickle an OmegaConf object beside the weights; it must not be imported or run."""
    ran: list = []
    module = _fake_omegaconf(ran)
    monkeypatch.setitem(sys.modules, "fake_omegaconf", module)  # importable: a careless loader would run it
    torch.save({"model": tiny.state_dict(), "args": module.DictConfig({"lr": 2e-3}), "epoch": 3}, tmp_path / "t.pth")
    model = load_model(tmp_path / "t.pth", device="cpu")
    assert ran == []
    _same_outputs(model, tiny)


def test_a_pickled_function_call_is_never_made(tmp_path, tiny, capfd):
    class Payload:
        def __reduce__(self):
            return (print, ("payload ran",))

    torch.save({"model": tiny.state_dict(), "payload": Payload()}, tmp_path / "evil.pth")
    model = load_model(tmp_path / "evil.pth", device="cpu")
    assert "payload ran" not in capfd.readouterr().out
    _same_outputs(model, tiny)


def test_safetensors_round_trip_keeps_config_and_class_names(tmp_path):
    torch.manual_seed(1)
    model = timm.create_model("glnet_tiny", num_classes=3, slot_scale_init=10.0).eval()
    config = save_checkpoint(model, tmp_path / "run" / "best.safetensors", variant="glnet_tiny",
                             model_args={"slot_scale_init": 10.0}, class_names=["a", "b", "c"],
                             extra={"input_size": [3, 96, 96]})
    assert json.loads((tmp_path / "run" / "best.json").read_text()) == config
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["best.json", "best.safetensors"]
    loaded = load_model(tmp_path / "run" / "best.safetensors", device="cpu")
    assert glmix_viz.class_names(loaded) == ["a", "b", "c"]
    assert loaded.pretrained_cfg["input_size"] == (3, 96, 96)
    assert loaded.stages[0].blocks[0].slot_scale.item() == 10.0
    _same_outputs(loaded, model)


def test_bare_safetensors_is_matched_like_a_pth(tmp_path, tiny):
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in tiny.state_dict().items()}, tmp_path / "bare.safetensors")
    _same_outputs(load_model(tmp_path / "bare.safetensors", device="cpu"), tiny)


@pytest.mark.parametrize("variant", official_variants())
def test_variant_is_inferred_from_keys_and_shapes(variant):
    with torch.device("meta"):
        state = timm.create_model(variant, num_classes=20).state_dict()
    assert infer_variant(state) == variant


def test_a_checkpoint_that_fits_no_variant_names_the_closest_and_the_keys(tmp_path, tiny):
    state = dict(tiny.state_dict())
    del state["stages.0.blocks.0.norm1.weight"]
    state["stages.0.blocks.0.extra"] = torch.zeros(1)
    state["stages.1.blocks.0.mlp.0.weight"] = torch.zeros(7, 64, 1, 1)
    torch.save(state, tmp_path / "odd.pth")
    with pytest.raises(CheckpointError) as error:
        load_model(tmp_path / "odd.pth", device="cpu")
    message = str(error.value)
    assert "\n" not in message and "odd.pth" in message and "closest variant glnet_tiny" in message
    assert "missing stages.0.blocks.0.norm1.weight" in message
    assert "unexpected stages.0.blocks.0.extra" in message
    assert "mis-shaped stages.1.blocks.0.mlp.0.weight [7, 64, 1, 1] vs [192, 64, 1, 1]" in message
    with pytest.raises(CheckpointError, match="does not fit glnet_stl"):
        load_model(tmp_path / "odd.pth", variant="glnet_stl", device="cpu")


@pytest.mark.parametrize(
    "content,message",
    [(None, "no such checkpoint"), (b"not a checkpoint at all", "not a readable PyTorch checkpoint"),
     (b"\x00\x01", "not a readable"), (b"PK\x03\x04truncated zip", "not a readable"),
     (bytes(range(256)) * 3, "not a readable")],
)
def test_unreadable_files_fail_with_one_line(tmp_path, content, message):
    path = tmp_path / "weights.pth"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message) as error:
        load_model(path, device="cpu")
    assert "\n" not in str(error.value) and "weights.pth" in str(error.value)


def test_corrupt_safetensors_and_non_dict_pickles_are_refused(tmp_path):
    (tmp_path / "w.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_model(tmp_path / "w.safetensors")
    torch.save([torch.zeros(2)], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="not a state dict"):
        load_model(tmp_path / "list.pth")
    assert load_state_dict is not None


def test_resolve_model_describes_what_it_chose(tmp_path, monkeypatch):
    import glmix_viz.open as opener
    from glmix_viz.models.info import describe_model
    from glmix_viz.open import resolve_model

    state = torch.random.get_rng_state()
    opened = resolve_model(model_name="glnet_tiny", class_names=["a", "b", "c"], device="cpu", seed=3)
    model, info = opened.model, opened.info
    assert opened.segmenter is None and opened.kind == "classifier"
    assert torch.equal(state, torch.random.get_rng_state())  # the global random state is left alone
    assert (info.variant, info.class_names, info.input_size, info.source, info.trained) == (
        "glnet_tiny", ("a", "b", "c"), (128, 128), "untrained", False)
    assert not info.multi_label and "UNTRAINED" in str(info) and "seed 3" in str(info)
    again = resolve_model(model_name="glnet_tiny", num_classes=3, device="cpu", seed=3).model
    _same_outputs(model, again)

    path = tmp_path / "m.safetensors"
    save_checkpoint(model, path, variant="glnet_tiny", class_names=["a", "b", "c"], extra={"input_size": [3, 96, 64]})
    info = resolve_model(path, device="cpu").info
    assert (info.source, info.path, info.input_size, info.multi_label) == ("checkpoint", path, (96, 64), True)
    assert str(info) == "glnet_tiny from m.safetensors on cpu"
    monkeypatch.setattr(opener, "demo_checkpoint", lambda: path)
    assert resolve_model(device="cpu").info.source == "demo"
    monkeypatch.setattr(opener, "demo_checkpoint", lambda: None)
    with pytest.raises(CheckpointError, match="no model"):
        resolve_model(device="cpu")
    assert resolve_model(device="cpu", fallback="glnet_tiny", num_classes=2).info.class_names == ("class 0", "class 1")
    assert describe_model(timm.create_model("glnet_tiny", num_classes=1000)).class_names[0] == "tench, Tinca tinca"
