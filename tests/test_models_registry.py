"""The variant registry: one spec per timm name, read by timm, loading and training, and the grouping tap contract."""

from __future__ import annotations

import pytest
import timm
import torch

from glmix_viz import GroupingProbe
from glmix_viz.models import VARIANTS, GLNet, GLNetTokenLabel, get_variant, official_variants, tap_infos
from glmix_viz.models.registry import VariantSpec, register_variant
from glmix_viz.models.tap import GroupingTap


def test_every_spec_is_a_registered_timm_model_built_from_its_arguments():
    assert set(VARIANTS) <= set(timm.list_models("glnet_*"))
    for name, spec in VARIANTS.items():
        with torch.device("meta"):
            model = timm.create_model(name)
        assert type(model) is (GLNetTokenLabel if spec.token_label else GLNet)
        assert model.embed_dim == list(spec.widths)
        assert [len(stage.blocks) for stage in model.stages] == list(spec.args["depth"])
        assert model.pretrained_cfg["input_size"] == spec.input_size
        assert model.pretrained_cfg["first_conv"] in dict(model.named_modules())


def test_official_variants_and_recipe_values_come_from_the_specs():
    assert official_variants() == ("glnet_4g", "glnet_9g", "glnet_16g", "glnet_stl", "glnet_stl_paramslot",
                                   "glnet_4g_tklb", "glnet_9g_tklb")
    assert not get_variant("glnet_tiny").official and get_variant("glnet_9g").drop_path == 0.3
    assert get_variant("glnet_16g").args["layerscale"] == 1e-4 and get_variant("glnet_4g").args["layerscale"] == -1.0
    assert get_variant("glnet_stl_paramslot").args["slot_init"] == "param"


def test_specs_are_read_only_and_names_unique():
    spec = get_variant("glnet_stl")
    with pytest.raises(TypeError):
        spec.args["num_slots"] = 4  # type: ignore[index]
    with pytest.raises(ValueError, match="already registered"):
        register_variant(spec)
    with pytest.raises(KeyError, match="known: glnet_4g"):
        get_variant("glnet_nope")


def test_scaled_spec_builds_a_small_model_of_the_same_family():
    small = get_variant("glnet_stl").scaled("stl_small", embed_dim=(16, 32, 64, 128), depth=(1, 1, 1, 1), head_dim=16)
    assert isinstance(small, VariantSpec) and not small.official
    model = GLNet(**small.model_args(num_classes=3)).eval()
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 3)
    assert get_variant("glnet_stl").widths == (96, 192, 384, 768)  # the original is unchanged


def test_tap_infos_describe_every_block_without_a_forward_pass():
    model = timm.create_model("glnet_stl_paramslot", embed_dim=(32, 64, 128, 256), depth=(1, 1, 1, 1))
    infos = tap_infos(model)
    assert list(infos) == ["stages.0.blocks.0", "stages.1.blocks.0", "stages.2.blocks.0"]
    assert [info.width for info in infos.values()] == [32, 64, 128]
    assert {(info.num_slots, info.slot_grid, info.slot_init) for info in infos.values()} == {(64, 8, "param")}
    assert [info.num_heads for info in infos.values()] == [1, 2, 4]


def test_records_carry_the_block_description(monkeypatch):
    torch.manual_seed(0)
    model = timm.create_model("glnet_tiny", num_classes=2).eval()
    with torch.no_grad(), GroupingProbe(model, blocks=[0, -1]) as probe:
        model(torch.randn(1, 3, 64, 96))
    first, last = probe[0], probe[-1]
    assert (first.width, first.num_slots, first.slot_grid, first.size) == (32, 16, 4, (16, 24))
    assert (last.width, last.num_heads, last.size) == (128, 4, (4, 6))
    assert first.to("cpu").info == first.info


def test_the_tap_is_not_called_without_a_probe(monkeypatch):
    calls = []
    original = GroupingTap.forward
    monkeypatch.setattr(GroupingTap, "forward", lambda self, *args: calls.append(1) or original(self, *args))
    torch.manual_seed(0)
    model = timm.create_model("glnet_tiny").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        model(x)
        assert calls == []
        with GroupingProbe(model):
            model(x)
    assert len(calls) == len(tap_infos(model))
