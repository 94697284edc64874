"""GLNet against timm's model contract (the checks of timm's own tests/test_models.py, on small inputs)."""

from __future__ import annotations

import pytest
import segmentation_models_pytorch as smp
import timm
import torch

from glmix_viz.models import official_variants

SMALL = ("glnet_tiny", "glnet_stl")  # one of each down-sampling style; the others share their code paths


def test_every_variant_is_registered():
    names = set(timm.list_models("glnet_*"))
    assert set(official_variants()) <= names and "glnet_tiny" in names


@pytest.fixture(scope="module", params=SMALL)
def model(request):
    torch.manual_seed(0)
    return timm.create_model(request.param).eval()


def test_forward_intermediates_match_feature_info(model):
    x = torch.randn(2, 3, 96, 64)
    with torch.no_grad():
        final, intermediates = model.forward_intermediates(x)
        features = model.forward_features(x)
    torch.testing.assert_close(final, features)
    assert len(intermediates) == len(model.feature_info)
    for feature, info in zip(intermediates, model.feature_info):
        assert feature.shape == (2, info["num_chs"], 96 // info["reduction"], 64 // info["reduction"])
    with torch.no_grad():
        nhwc = model.forward_intermediates(x, indices=[1, 3], output_fmt="NHWC", intermediates_only=True)
        normed = model.forward_intermediates(x, indices=1, norm=True, intermediates_only=True)
        early_final, early = model.forward_intermediates(x, indices=[0, 1], stop_early=True)
    torch.testing.assert_close(nhwc[0], intermediates[1].permute(0, 2, 3, 1))
    torch.testing.assert_close(normed[0], features)
    assert len(early) == 2 and early_final.shape == intermediates[1].shape


def test_forward_head_and_reset_classifier(model):
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        features = model.forward_features(x)
        assert model.forward_head(features, pre_logits=True).shape == (1, model.num_features)
        torch.testing.assert_close(model.forward_head(features), model(x))
    clone = timm.create_model(model.pretrained_cfg["architecture"], num_classes=5).eval()
    assert clone(x).shape == (1, 5)
    clone.reset_classifier(0)
    assert clone(x).shape == (1, clone.num_features)
    clone.reset_classifier(3, global_pool="")
    assert clone.forward_head(clone.forward_features(x), pre_logits=True).shape == (1, clone.num_features, 2, 2)


def test_default_cfg_names_real_modules(model):
    cfg = model.pretrained_cfg
    modules = dict(model.named_modules())
    assert cfg["first_conv"] in modules and cfg["classifier"] in modules
    assert modules[cfg["first_conv"]].in_channels == 3
    size = cfg["input_size"][1:]
    with torch.no_grad():
        assert model.forward_features(torch.randn(1, 3, *size)).shape[-2:] == cfg["pool_size"]


def test_features_only_and_pruning():
    torch.manual_seed(0)
    full = timm.create_model("glnet_tiny").eval()
    backbone = timm.create_model("glnet_tiny", features_only=True, out_indices=(1, 2)).eval()
    kept = backbone.model.state_dict()
    backbone.model.load_state_dict({k: v for k, v in full.state_dict().items() if k in kept}, strict=True)
    assert backbone.feature_info.channels() == [64, 128] and backbone.feature_info.reduction() == [8, 16]
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        features = backbone(x)
        expected = full.forward_intermediates(x, indices=(1, 2), intermediates_only=True)
    for got, want in zip(features, expected):
        torch.testing.assert_close(got, want)
    assert not any(key.startswith(("stages.3", "head", "norm.")) for key in kept)


def test_gradient_checkpointing_keeps_outputs_and_gradients():
    torch.manual_seed(0)
    model = timm.create_model("glnet_tiny", drop_path_rate=0.0).train()
    x = torch.randn(2, 3, 64, 64)
    model(x).sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.set_grad_checkpointing(True)
    model(x).sum().backward()
    for before, after in zip(grads, [p.grad for p in model.parameters()]):
        torch.testing.assert_close(before, after, atol=1e-5, rtol=1e-4)


def test_create_model_from_checkpoint_path(tmp_path):
    torch.manual_seed(0)
    model = timm.create_model("glnet_tiny", num_classes=6).eval()
    path = tmp_path / "official_style.pth"
    torch.save({"model": model.state_dict(), "epoch": 10}, path)
    loaded = timm.create_model("glnet_tiny", num_classes=6, checkpoint_path=str(path)).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    with pytest.raises(RuntimeError, match="downloads nothing"):
        timm.create_model("glnet_stl", pretrained=True)


def test_drop_path_follows_the_linear_rule():
    model = timm.create_model("glnet_tiny", drop_path_rate=0.3)
    rates = [block.drop_path.drop_prob if hasattr(block.drop_path, "drop_prob") else 0.0
             for stage in model.stages for block in stage.blocks]
    expected = torch.linspace(0, 0.3, len(rates)).tolist()
    assert rates == pytest.approx(expected)


@pytest.mark.parametrize("name", SMALL)
@pytest.mark.parametrize("output_stride", [16, 8])
def test_output_stride_keeps_the_weights_and_reports_the_reductions(name, output_stride):
    torch.manual_seed(0)
    full = timm.create_model(name).eval()
    dense = timm.create_model(name, output_stride=output_stride).eval()
    dense.load_state_dict(full.state_dict(), strict=True)  # same keys and shapes: official checkpoints still load
    expected = [4, 8, 16, 32] if output_stride == 32 else ([4, 8, 16, 16] if output_stride == 16 else [4, 8, 8, 8])
    assert [info["reduction"] for info in dense.feature_info] == expected
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        features = dense.forward_intermediates(x, intermediates_only=True)
        reference = full.forward_intermediates(x, intermediates_only=True)
    for feature, reduction in zip(features, expected):
        assert feature.shape[-2:] == (64 // reduction, 96 // reduction)
    untouched = 2 if output_stride == 16 else 1  # stages before the first transition that loses its stride
    for got, want in zip(features[:untouched + 1], reference[:untouched + 1]):
        torch.testing.assert_close(got, want)
    features_only = timm.create_model(name, features_only=True, output_stride=output_stride)
    assert features_only.feature_info.reduction() == expected


def test_smp_deeplabv3plus_builds_on_glnet_at_output_stride_16():
    model = smp.DeepLabV3Plus(encoder_name="tu-glnet_tiny", encoder_weights=None, classes=3,
                              encoder_output_stride=16).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 3, 64, 64)
