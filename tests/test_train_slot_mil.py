"""The slot MIL loss, both forms, against values worked out by hand."""

from __future__ import annotations

import math

import pytest
import timm
import torch

import glmix_viz.models  # noqa: F401
from glmix_viz.probe import GroupingProbe
from glmix_viz.train.losses import CosineClassifier, SlotMILHeads, slot_mil_loss

TINY_ARGS = {"downsample_strides": [2, 2, 1], "num_slots": 4, "mixing_modes": ["glmix", "glmix", "glmix.mha_nchw",
                                                                               "glmix"]}
BLOCK = "stages.0.blocks.0"


def _probe_run(heads: SlotMILHeads, model, images, labels):
    with torch.no_grad(), GroupingProbe(model, [BLOCK]) as probe:
        model(images)
        return heads(probe), slot_mil_loss(heads, probe, labels)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = timm.create_model("glnet_tiny", num_classes=3, **TINY_ARGS).eval()
    return model, torch.rand(2, 3, 32, 32)


def _constant_heads(model, bias, background):
    """Heads whose every slot gets the logits ``bias`` (zero weights), whatever the slot holds."""
    heads = SlotMILHeads(model, [BLOCK], num_classes=3, background=background)
    linear = heads.heads[0][1]
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.copy_(torch.tensor(bias))
    return heads


def test_background_form_softmax_over_classes_and_background_by_hand(tiny):
    model, images = tiny
    heads = _constant_heads(model, [0.0, math.log(2.0), 0.0, math.log(3.0)], background=True)
    labels = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    scores, loss = _probe_run(heads, model, images, labels)
    # every slot's softmax over (3 classes, background) is (1, 2, 1, 3) / 7; the max over slots is the same
    expected = torch.tensor([1 / 7, 2 / 7, 1 / 7, 3 / 7])
    assert scores[0].shape == (2, 4, 4)  # (images, classes + background, the 4 slots)
    assert torch.allclose(scores[0].amax(dim=2), expected.expand(2, 4), atol=1e-6)
    assert torch.allclose(scores[0], expected.view(1, 4, 1).expand(2, 4, 4), atol=1e-6)
    # BCE against the labels with a background column of ones, mean over 2 images x 4 columns
    p = expected.tolist()
    by_hand = -(math.log(p[0]) + math.log(1 - p[1]) + math.log(1 - p[2]) + math.log(p[3])  # image 1: class 0
                + math.log(1 - p[0]) + math.log(p[1]) + math.log(p[2]) + math.log(p[3])) / 8  # image 2: 1, 2
    assert float(loss) == pytest.approx(by_hand, abs=1e-5)


def test_confidence_term_by_hand(tiny):
    """Every slot: -log(mass on the image's classes and the background) + entropy within them."""
    model, images = tiny
    heads = _constant_heads(model, [0.0, math.log(2.0), 0.0, math.log(3.0)], background=True)
    labels = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    _, plain = _probe_run(heads, model, images, labels)
    with torch.no_grad(), GroupingProbe(model, [BLOCK]) as probe:
        model(images)
        with_term = slot_mil_loss(heads, probe, labels, confidence=0.5)

    def term(columns):  # columns: the allowed ones of (1, 2, 1, 3) / 7
        mass = [(1 / 7, 2 / 7, 1 / 7, 3 / 7)[c] for c in columns]
        inside = sum(mass)
        return -math.log(inside) - sum(m / inside * math.log(m / inside) for m in mass)

    # image 1 allows class 0 and the background; image 2 classes 1, 2 and the background; every slot is alike
    extra = 0.5 * (term([0, 3]) + term([1, 2, 3])) / 2
    assert float(with_term) == pytest.approx(float(plain) + extra, abs=1e-5)


def test_plain_form_max_logit_bce_by_hand(tiny):
    model, images = tiny
    heads = _constant_heads(model, [0.0, 1.0, -1.0], background=False)
    labels = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    scores, loss = _probe_run(heads, model, images, labels)
    assert torch.allclose(scores[0], torch.tensor([0.0, 1.0, -1.0]).expand(2, 3))

    def bce(z, y):
        return -(y * math.log(1 / (1 + math.exp(-z))) + (1 - y) * math.log(1 - 1 / (1 + math.exp(-z))))

    by_hand = sum(bce(z, y) for row in labels.tolist() for z, y in zip([0.0, 1.0, -1.0], row)) / 6
    assert float(loss) == pytest.approx(by_hand, abs=1e-5)


def test_cosine_classifier_scores_direction_only_by_hand():
    head = CosineClassifier(2, 3, temperature=0.5)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]]))
    features = torch.tensor([[[3.0, 4.0]], [[0.3, 0.4]]])  # one direction, two lengths
    logits = head(features)
    by_hand = torch.tensor([0.6, 0.8, (0.6 + 0.8) / math.sqrt(2)]) / 0.5
    assert torch.allclose(logits[0, 0], by_hand, atol=1e-6)
    assert torch.allclose(logits[1, 0], by_hand, atol=1e-6)  # the length of a slot does not change its score


def test_cosine_heads_in_the_background_form(tiny):
    model, images = tiny
    heads = SlotMILHeads(model, [BLOCK], num_classes=3, background=True, cosine=0.1)
    assert isinstance(heads.heads[0], CosineClassifier) and heads.heads[0].weight.shape[0] == 4
    labels = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    scores, loss = _probe_run(heads, model, images, labels)
    assert scores[0].shape == (2, 4, 4) and bool(((scores[0] > 0) & (scores[0] <= 1)).all())
    assert torch.allclose(scores[0].sum(dim=1), torch.ones(2, 4), atol=1e-5)  # a softmax per slot
    assert math.isfinite(float(loss))
    with pytest.raises(ValueError, match="temperature"):
        SlotMILHeads(model, [BLOCK], num_classes=3, cosine=-1.0)


class _FixedSlots(torch.nn.Module):
    """Stands in for SlotMILHeads in the background form: per-slot probabilities chosen by hand."""

    background = True

    def __init__(self, probs):
        super().__init__()
        self.probs = probs

    def forward(self, probe):
        return [self.probs]


def test_background_form_pools_the_most_confident_slot_by_hand():
    # one image, classes (a, b) + background, two slots that disagree
    probs = torch.tensor([[[0.6, 0.1], [0.1, 0.3], [0.3, 0.6]]])  # (1, 3 columns, 2 slots)
    labels = torch.tensor([[1.0, 0.0]])
    loss = slot_mil_loss(_FixedSlots(probs), None, labels)
    # image scores: max over the slots (0.6, 0.3, 0.6); targets (1, 0, 1 for the background)
    by_hand = -(math.log(0.6) + math.log(1 - 0.3) + math.log(0.6)) / 3
    assert float(loss) == pytest.approx(by_hand, abs=1e-6)


def test_confidence_without_the_background_form_is_refused():
    from glmix_viz.train.config import TrainConfig

    with pytest.raises(ValueError, match="slot_mil_background"):
        TrainConfig.from_flat(data="d", out="o", slot_mil_weight=0.5, slot_mil_confidence=1.0)
    with pytest.raises(ValueError, match="temperature"):
        TrainConfig.from_flat(data="d", out="o", slot_mil_cosine=-0.1)
