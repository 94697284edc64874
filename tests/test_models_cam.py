"""Class activation maps taken model-side through the classifier, the token-labelling head included."""

from __future__ import annotations

import pytest
import timm
import torch
import torch.nn as nn

from glmix_viz.models import class_activation_maps


def _randomise(module: nn.Module, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator))


def test_cam_is_the_relu_of_the_head_weights_dotted_with_each_position():
    torch.manual_seed(0)
    model = timm.create_model("glnet_tiny", num_classes=5).eval()
    features = torch.randn(2, 256, 3, 4)
    maps = model.class_activation_maps(features, [4, 1])
    expected = torch.relu(torch.stack([
        (model.head.weight[k][None, :, None, None] * features).sum(1) for k in (4, 1)], dim=1))
    torch.testing.assert_close(maps, expected, atol=1e-5, rtol=1e-5)
    assert class_activation_maps(model, features).shape == (2, 5, 3, 4)


def test_token_label_cam_adds_half_the_token_head_like_its_logits():
    model = timm.create_model("glnet_4g_tklb", embed_dim=(32, 64, 128, 256), depth=(1, 1, 2, 1), num_classes=3)
    _randomise(model.head, 1)
    _randomise(model.tklb_aux_head, 2)
    features = torch.randn(1, 256, 2, 2)
    weight = model.head.weight + 0.5 * model.tklb_aux_head.weight
    expected = torch.relu(torch.einsum("kc,nchw->nkhw", weight, features))
    torch.testing.assert_close(class_activation_maps(model, features), expected, atol=1e-5, rtol=1e-5)


def test_any_timm_style_classifier_works_and_a_headless_model_is_refused():
    class Tiny(nn.Module):
        num_classes = 2

        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 2)

        def get_classifier(self) -> nn.Module:
            return self.fc

    model = Tiny()
    features = torch.randn(1, 3, 2, 2)
    torch.testing.assert_close(class_activation_maps(model, features, [1])[0, 0],
                               torch.relu(torch.einsum("c,chw->hw", model.fc.weight[1], features[0])))
    headless = timm.create_model("glnet_tiny", num_classes=0)
    with pytest.raises(ValueError, match="no linear classifier"):
        class_activation_maps(headless, torch.randn(1, 256, 2, 2), [0])
