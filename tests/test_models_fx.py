"""GLNet traced as timm's own models are: torch.fx (symbolic_trace, timm's and torchvision's feature extractors)
and torch.export, on small configs of every variant family (built from the registry's specs)."""

from __future__ import annotations

import pytest
import timm
import torch
import torch.fx

from glmix_viz import GroupingProbe
from glmix_viz.models import VARIANTS, GLNet, GLNetTokenLabel

SMALL = dict(embed_dim=(16, 32, 64, 128), depth=(1, 1, 2, 1), head_dim=16, num_slots=4, num_classes=5)


def _small(name: str) -> GLNet:
    """The variant's own hyper-parameters (mixing modes, slot init, norms, layer scale...) at a small width."""
    spec = VARIANTS[name]
    torch.manual_seed(0)
    cls = GLNetTokenLabel if spec.token_label else GLNet
    args = spec.model_args(**SMALL) if name != "glnet_tiny" else spec.model_args(num_classes=5)
    return cls(**args).eval()


def _inputs() -> torch.Tensor:
    return torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(3))


# At the small width every official variant of a family is the same network: one per family and option.
FAMILIES = [name for name in VARIANTS if name not in ("glnet_9g", "glnet_9g_tklb")]


@pytest.mark.parametrize("name", FAMILIES)
def test_symbolic_trace_gives_the_same_outputs_and_gradients(name):
    model = _small(name)
    traced = torch.fx.symbolic_trace(model)
    assert not any(node.op == "call_module" and "tap" in node.target for node in traced.graph.nodes)
    x = _inputs()
    eager_x, traced_x = x.clone().requires_grad_(), x.clone().requires_grad_()
    model(eager_x).square().sum().backward()
    traced(traced_x).square().sum().backward()
    torch.testing.assert_close(traced(x), model(x))
    torch.testing.assert_close(traced_x.grad, eager_x.grad)
    eager_grads = dict(model.named_parameters())
    for key, parameter in traced.named_parameters():
        torch.testing.assert_close(parameter.grad, eager_grads[key].grad, msg=key)
    with pytest.raises(ValueError, match="too small"):  # the input check still runs in the traced module
        traced(torch.randn(1, 3, 16, 16))


@pytest.mark.parametrize("name", ["glnet_tiny", "glnet_stl"])
def test_timm_fx_feature_extraction_matches_the_intermediates(name):
    small = {} if name == "glnet_tiny" else {key: value for key, value in SMALL.items() if key != "num_classes"}
    torch.manual_seed(0)
    extractor = timm.create_model(name, features_only=True, feature_cls="fx", out_indices=(1, 2, 3), **small).eval()
    torch.manual_seed(0)
    model = timm.create_model(name, **small).eval()  # the same weights: built from the same seed
    x = _inputs()
    with torch.no_grad():
        features = extractor(x)
        expected = model.forward_intermediates(x, indices=(1, 2, 3), intermediates_only=True)
    assert [f.shape[1] for f in features] == extractor.feature_info.channels()
    for got, want in zip(features, expected):
        torch.testing.assert_close(got, want)


def test_torchvision_feature_extractor_and_backward():
    from torchvision.models.feature_extraction import create_feature_extractor

    model = _small("glnet_4g")
    extractor = create_feature_extractor(model, return_nodes={"stages.0": "c2", "stages.2": "c4", "norm": "final"})
    x = _inputs()
    out = extractor(x)
    assert out["c2"].shape == (2, 16, 16, 24) and out["c4"].shape == (2, 64, 4, 6) and out["final"].shape[1] == 128
    torch.testing.assert_close(out["final"], model.forward_features(x))
    sum(value.mean() for value in out.values()).backward()
    grads = [p.grad for name, p in extractor.named_parameters() if not name.startswith("head.")]
    assert grads and all(grad is not None and grad.abs().sum() > 0 for grad in grads)


def test_torch_export_of_the_tiny_model_matches_eager():
    model = _small("glnet_tiny")
    x = _inputs()
    exported = torch.export.export(model, (x,))
    torch.testing.assert_close(exported.module()(x), model(x))


def test_the_probe_still_records_on_the_eager_model_after_tracing():
    model = _small("glnet_stl")
    torch.fx.symbolic_trace(model)
    with torch.no_grad(), GroupingProbe(model) as probe:
        model(_inputs())
    assert len(probe) == 4 and probe[0].logits.shape == (2, 4, 16, 24)
