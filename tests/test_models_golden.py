"""The clean-room GLNet against the numerical reference of the official model (../shared/golden)."""

from __future__ import annotations

import json

import pytest
import timm
import torch
from safetensors.torch import load_file

from glmix_viz import GroupingProbe
from glmix_viz.models import GLNet, official_variants

TINY_CONFIGS = ("tiny_a", "tiny_b")


def _golden_model(golden_dir, golden_meta, name: str) -> GLNet:
    model = GLNet(**golden_meta["configs"][name]["kwargs"])
    model.load_state_dict(load_file(str(golden_dir / f"{name}_state_dict.safetensors")), strict=True)
    return model.eval()


@pytest.mark.parametrize("name", TINY_CONFIGS)
def test_tiny_config_matches_golden_outputs(golden_dir, golden_meta, golden_inputs, name):
    model = _golden_model(golden_dir, golden_meta, name)
    expected = load_file(str(golden_dir / f"{name}_outputs.safetensors"))
    meta = golden_meta["configs"][name]
    assert sum(p.numel() for p in model.parameters()) == meta["num_params"]
    assert len(model.state_dict()) == meta["num_state_dict_keys"]

    with torch.no_grad(), GroupingProbe(model) as probe:
        logits = model(golden_inputs["x"])
    torch.testing.assert_close(logits, expected["logits"], atol=1e-5, rtol=1e-4)
    assert probe.block_names == meta["glmix_blocks"]
    for block in meta["glmix_blocks"]:
        rec = probe[block]
        batch, slots = rec.logits.shape[:2]
        torch.testing.assert_close(rec.logits.reshape(batch, slots, -1), expected[f"assign_logits.{block}"],
                                   atol=1e-4, rtol=0)
        torch.testing.assert_close(rec.dispatch.reshape(batch, slots, -1), expected[f"dispatch.{block}"],
                                   atol=1e-6, rtol=0)

    with torch.no_grad():
        logits_nonsquare = model(golden_inputs["x_nonsquare"])
    torch.testing.assert_close(logits_nonsquare, expected["logits_nonsquare"], atol=1e-5, rtol=1e-4)


def test_tiny_a_stage_features_match_golden(golden_dir, golden_meta, golden_inputs):
    model = _golden_model(golden_dir, golden_meta, "tiny_a")
    expected = load_file(str(golden_dir / "tiny_a_outputs.safetensors"))
    features = {}
    hooks = [
        module.register_forward_hook(lambda m, a, out, key=key: features.__setitem__(key, out))
        for prefix in ("downsample_layers", "stages")
        for index, module in enumerate(getattr(model, prefix))
        for key in [f"feat.{prefix}.{index}.out"]
    ]
    with torch.no_grad():
        final = model.forward_features(golden_inputs["x"])
    for hook in hooks:
        hook.remove()
    features["feat.norm.out"] = final
    golden_features = {key: value for key, value in expected.items() if key.startswith("feat.")}
    assert set(golden_features) == set(features)
    for key, value in golden_features.items():
        torch.testing.assert_close(features[key], value, atol=1e-5, rtol=1e-4, msg=key)


@pytest.mark.parametrize("variant", official_variants())
def test_variant_state_dict_is_the_official_one(golden_dir, variant):
    reference = json.loads((golden_dir / f"keys_{variant}.json").read_text())
    with torch.device("meta"):
        model = timm.create_model(variant)
    shapes = [(key, list(value.shape)) for key, value in model.state_dict().items()]
    assert shapes == list(reference["keys"].items())  # same keys, same shapes, same order
    assert sum(p.numel() for p in model.parameters()) == reference["num_params"]
    dtypes = {str(value.dtype) for value in model.state_dict().values()}
    assert dtypes == set(reference["dtypes"])
