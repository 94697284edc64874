"""Score maps: shapes, background rules, present classes only, flip handling, and the slot methods by hand."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch

import glmix_viz.models  # noqa: F401  (registers glnet_tiny)
from glmix_viz.models.cam import class_activation_maps
from glmix_viz.probe import GroupingRecord
from glmix_viz.pseudo.evidence import (
    apply_background,
    minmax_normalize,
    slot_pooled_evidence,
    slot_voted_evidence,
    superpixel_average,
)
from glmix_viz.pseudo.registry import METHODS, MapContext
from glmix_viz.pseudo.scores import ScoreMaps, compute_scores, compute_scores_batch
from glmix_viz.pseudo.settings import ScoreSettings

# Each method's own background threshold, tuned on the demo model (bench/wsss_shapes.py): written here, not read from
# the registry under test, so a changed threshold fails.
THRESHOLDS = {
    "cam": 0.65, "slic_cam": 0.80, "slot_pool": 0.75, "slot_vote": 0.70, "slot_walk": 0.75,
    "gradcam": 0.55, "gradcam_pp": 0.50, "xgradcam": 0.55, "hirescam": 0.55, "layercam": 0.55, "eigencam": 0.35,
    "scorecam": 0.50, "slot_gradcam": 0.75, "slot_ablate": 0.70,
}


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model("glnet_tiny", num_classes=4).eval()


def _image(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = np.full((height, width, 3), 40, dtype=np.uint8)
    image[height // 4: 3 * height // 4, width // 5: width // 2] = (220, 60, 30)  # an off-centre block
    return np.clip(image + rng.integers(0, 30, image.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def tiny_model() -> torch.nn.Module:
    """A GLNet with 8 channels per stage: slow methods (ScoreCAM: a forward pass per channel) stay cheap on it."""
    torch.manual_seed(0)
    return timm.create_model("glnet_tiny", num_classes=4, embed_dim=(8, 8, 8, 8), head_dim=8, depth=(1, 1, 1, 1),
                             num_slots=4).eval()


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_gives_full_size_maps_for_present_classes(model, tiny_model, method):
    image = _image(70, 90)
    slow = METHODS[method].slow
    settings = ScoreSettings(method=method, scales=(1.0, 0.5), options={"batch_size": 16} if slow else None)
    maps = compute_scores(tiny_model if slow else model, image, [0, 1, 0, 1], settings)
    assert maps.scores.shape == (3, 70, 90) and maps.scores.dtype == np.float32
    assert maps.class_indices.tolist() == [0, 2, 4]
    assert maps.scores.min() >= 0.0 and maps.scores.max() <= 1.0 + 1e-6
    peaks = maps.scores[1:].reshape(2, -1).max(axis=1)
    np.testing.assert_allclose(peaks, 1.0, atol=1e-5)  # every class map max-normalised: an all-zero map fails
    assert np.allclose(maps.scores[0], THRESHOLDS[method])  # the method's own threshold (settings left it None)
    labels = maps.labels()
    assert labels.shape == (70, 90) and labels.dtype == np.uint8
    assert set(np.unique(labels).tolist()) <= {0, 2, 4}


def test_absent_classes_are_never_labelled_even_when_the_head_prefers_them(model):
    biased = timm.create_model("glnet_tiny", num_classes=4).eval()
    biased.load_state_dict(model.state_dict())
    with torch.no_grad():
        biased.head.weight[0] = biased.head.weight.abs().sum(0) * 10  # class 0 would win everywhere
    image = _image(64, 64, seed=1)
    maps = compute_scores(biased, image, np.array([0, 0, 1, 0], dtype=np.float32), ScoreSettings(method="cam"))
    assert maps.class_indices.tolist() == [0, 3]
    assert set(np.unique(maps.labels()).tolist()) <= {0, 3}
    empty = compute_scores(biased, image, [0, 0, 0, 0])  # no class present: background only
    assert empty.scores.shape == (1, 64, 64) and not empty.labels().any()


def test_background_rules_by_hand():
    class_maps = np.array([[[0.2, 0.9], [0.0, 0.5]], [[0.6, 0.1], [0.0, 0.7]]], dtype=np.float32)
    threshold = apply_background(class_maps, "threshold", 0.3)
    assert threshold.shape == (3, 2, 2)
    assert np.allclose(threshold[0], 0.3) and np.array_equal(threshold[1:], class_maps)
    power = apply_background(class_maps, "power", 2.0)
    # max over classes: [[0.6, 0.9], [0.0, 0.7]] -> (1 - max) ** 2
    assert np.allclose(power[0], [[0.16, 0.01], [1.0, 0.09]])
    assert apply_background(class_maps, "power")[0, 1, 0] == 1.0  # default alpha, max 0 -> background 1
    with pytest.raises(ValueError):
        apply_background(class_maps, "otsu")
    with pytest.raises(ValueError):
        apply_background(class_maps, "power", 0.0)


def test_power_rule_through_compute_scores(model):
    maps = compute_scores(model, _image(64, 80), [1, 1, 0, 0],
                          ScoreSettings(method="cam", bg_rule="power", bg_param=3.0, flip=False))
    expected = (1.0 - maps.scores[1:].max(axis=0)) ** 3.0
    assert np.allclose(maps.scores[0], expected, atol=1e-6)


@pytest.mark.parametrize("method", ["cam", "slot_pool"])
def test_flip_averaged_maps_of_a_mirror_symmetric_image_are_symmetric(model, method):
    half = _image(96, 48, seed=2)
    symmetric = np.ascontiguousarray(np.concatenate([half, half[:, ::-1]], axis=1))
    flipped = compute_scores(model, symmetric, [1, 1, 1, 1], ScoreSettings(method=method, flip=True))
    assert flipped.scores[1:].max() == pytest.approx(1.0)  # some evidence, so the check below means something
    assert np.allclose(flipped.scores, flipped.scores[:, :, ::-1], atol=1e-5)
    single = compute_scores(model, symmetric, [1, 1, 1, 1], ScoreSettings(method=method, flip=False))
    assert not np.allclose(single.scores, single.scores[:, :, ::-1], atol=1e-3)  # the network alone is not symmetric


def test_flip_inference_is_flip_equivariant(model):
    image = _image(64, 96, seed=3)
    settings = ScoreSettings(method="slot_vote", scales=(1.0, 0.75))
    direct = compute_scores(model, image, [0, 1, 1, 0], settings)
    mirrored = compute_scores(model, np.ascontiguousarray(image[:, ::-1]), [0, 1, 1, 0], settings)
    assert np.allclose(mirrored.scores, direct.scores[:, :, ::-1], atol=1e-5)


@pytest.mark.parametrize("method, tolerance", [("cam", 1e-5), ("slot_pool", 2e-2)])
def test_batched_images_match_one_at_a_time(model, method, tolerance):
    """Batching must not mix up images or classes. (Rounding differs with the batch; a random network's slot maps are
    nearly flat and their normalisation magnifies it, hence the looser tolerance: a mix-up would differ by ~1.)"""
    images = [_image(64, 64, seed=4), _image(64, 64, seed=5), _image(72, 56, seed=6)]
    labels = [[1, 0, 0, 0], [0, 1, 0, 1], [0, 0, 1, 0]]
    settings = ScoreSettings(method=method, scales=(1.0, 0.5))
    batched = compute_scores_batch(model, images, labels, settings, batch_size=3)
    for image, vector, result in zip(images, labels, batched):
        alone = compute_scores(model, image, vector, settings)
        assert np.array_equal(result.class_indices, alone.class_indices)
        assert np.allclose(result.scores, alone.scores, atol=tolerance)


def test_bad_arguments_are_refused(model):
    image = _image(64, 64)
    with pytest.raises(ValueError, match="4 classes"):
        compute_scores(model, image, [1, 0, 0])
    with pytest.raises(ValueError, match="unknown method"):
        compute_scores(model, image, [1, 0, 0, 0], ScoreSettings(method="magic"))
    with pytest.raises(ValueError, match="no option"):
        compute_scores(model, image, [1, 0, 0, 0], ScoreSettings(method="cam", options={"steps": 2}))
    with pytest.raises(ValueError, match="scales"):
        compute_scores(model, image, [1, 0, 0, 0], ScoreSettings(scales=(0.0,)))
    with pytest.raises(ValueError, match="must be a ScoreSettings"):
        compute_scores(model, image, [1, 0, 0, 0], {"method": "cam"})  # one spelling: no loose fields
    with pytest.raises(TypeError):
        compute_scores(model, image, [1, 0, 0, 0], method="cam")  # type: ignore[call-arg]


# ---------------------------------------------------------------------------------------------- slot methods by hand


def _softmax(values: np.ndarray, axis: int) -> np.ndarray:
    shifted = np.exp(values - values.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)


def test_slot_pooling_matches_explicit_sums():
    rng = np.random.default_rng(7)
    logits = rng.normal(size=(1, 3, 6)) * 2  # S = 3 slots, L = 6 pixels
    evidence = rng.random((1, 2, 6))  # K = 2 classes
    cluster = _softmax(logits[0], axis=1)  # each slot: a distribution over pixels
    dispatch = _softmax(logits[0], axis=0)  # each pixel: a distribution over slots
    expected = np.zeros((2, 6))
    for k in range(2):
        slot_values = [sum(cluster[s, q] * evidence[0, k, q] for q in range(6)) for s in range(3)]
        for p in range(6):
            expected[k, p] = sum(dispatch[s, p] * slot_values[s] for s in range(3))
    pooled = slot_pooled_evidence(torch.tensor(evidence), torch.tensor(logits))
    assert np.allclose(pooled[0].numpy(), expected)
    twice = slot_pooled_evidence(torch.tensor(evidence), torch.tensor(logits), steps=2)
    again = slot_pooled_evidence(pooled, torch.tensor(logits))
    assert np.allclose(twice.numpy(), again.numpy())
    constant = slot_pooled_evidence(torch.full((1, 1, 6), 0.4, dtype=torch.float64), torch.tensor(logits), steps=3)
    assert np.allclose(constant.numpy(), 0.4)  # D^T C is row-stochastic


def test_slot_vote_by_hand():
    logits = torch.tensor([[[5.0, 4.0, 0.0, 0.0], [0.0, 0.0, 1.0, 2.0]]])  # pixels 0, 1 -> slot 0; 2, 3 -> slot 1
    evidence = torch.tensor([[[1.0, 3.0, 5.0, 7.0]]])
    assert slot_voted_evidence(evidence, logits).tolist() == [[[2.0, 2.0, 6.0, 6.0]]]


def test_slot_pool_method_on_a_constructed_record():
    """The registered slot_pool: CAM of a known head, pooled and dispatched with a hand-made block record."""
    torch.manual_seed(1)
    model = timm.create_model("glnet_tiny", num_classes=3).eval()
    features = torch.randn(1, 256, 2, 3)
    logits = torch.randn(1, 4, 2, 3) * 3
    record = GroupingRecord("stages.0.blocks.0", logits, torch.zeros(1, 4, 8), torch.zeros(1, 4, 8))
    context = MapContext(model, None, features, [0, 2], [[0, 2]], {record.name: record}, {"sharpen": 1.0})
    with torch.no_grad():
        maps = METHODS["slot_pool"].maps(context)
    assert len(maps) == 1 and maps[0].shape == (1, 2, 2, 3)

    weight = model.head.weight.detach().numpy()
    feats = features[0].numpy().reshape(256, 6)
    cam = np.maximum(weight[[0, 2]] @ feats, 0)  # (2, 6): CAM at the block's own grid (no resizing)
    cluster = _softmax(logits[0].numpy().reshape(4, 6), axis=1)
    dispatch = _softmax(logits[0].numpy().reshape(4, 6), axis=0)
    pooled = (cam @ cluster.T) @ dispatch
    low, high = pooled.min(axis=1, keepdims=True), pooled.max(axis=1, keepdims=True)
    expected = (pooled - low) / (high - low)
    assert np.allclose(maps[0][0].reshape(2, 6).numpy(), expected, atol=1e-5)
    with torch.no_grad():
        cam_maps = class_activation_maps(model, features, [0, 2])
    assert np.allclose(cam_maps[0].reshape(2, 6).numpy(), cam, atol=1e-5)


def test_minmax_and_superpixel_average_by_hand():
    maps = torch.tensor([[[1.0, 3.0], [5.0, 3.0]]])
    assert minmax_normalize(maps).tolist() == [[[0.0, 0.5], [1.0, 0.5]]]
    assert minmax_normalize(torch.ones(1, 2, 2)).abs().sum() == 0  # a flat map carries no evidence
    nearly_flat = torch.tensor([[[100.0, 100.5], [100.0, 100.0]]])  # range 0.5% of the peak: stretched only to 0.5
    assert torch.allclose(minmax_normalize(nearly_flat, min_contrast=0.01), torch.tensor([[[0.0, 0.4975], [0, 0]]]),
                          atol=1e-4)
    segments = np.array([[0, 0, 1], [2, 2, 1]])
    values = np.array([[[1.0, 3.0, 4.0], [0.0, 1.0, 8.0]]])
    assert np.allclose(superpixel_average(values, segments), [[[2.0, 2.0, 6.0], [0.5, 0.5, 6.0]]])


def test_labels_keep_ids_above_255():
    """A 1000-class head has label ids up to 1000: they must not wrap around in uint8."""
    scores = np.zeros((3, 2, 2), np.float32)
    scores[0, 0, 0], scores[1, 0, 1], scores[2, 1, :] = 1, 1, 1
    small = ScoreMaps(scores, np.array([0, 3, 20]), "cam").labels()
    large = ScoreMaps(scores, np.array([0, 3, 981]), "cam").labels()
    assert small.dtype == np.uint8 and small.tolist() == [[0, 3], [20, 20]]
    assert large.tolist() == [[0, 3], [981, 981]]
