"""The pytorch-grad-cam baselines through the registry: per-image targets, target layers, hooks and memory released."""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pytest
import pytorch_grad_cam
import timm
import torch
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

import glmix_viz.models  # noqa: F401  (registers glnet_tiny)
from glmix_viz.images import to_tensor
from glmix_viz.pseudo import METHODS, ScoreSettings, compute_scores, compute_scores_batch
from glmix_viz.pseudo.gradcam import CAM_CLASSES, _to_maps, resolve_layer

GRADCAM, SCORECAM = "gradcam", "scorecam"
# registry name -> (pytorch_grad_cam class, default background threshold): literals, not read from the registry
LIBRARY_METHODS = {
    "gradcam": ("GradCAM", 0.55), "gradcam_pp": ("GradCAMPlusPlus", 0.50), "xgradcam": ("XGradCAM", 0.55),
    "hirescam": ("HiResCAM", 0.55), "layercam": ("LayerCAM", 0.55), "eigencam": ("EigenCAM", 0.35),
    "scorecam": ("ScoreCAM", 0.50),
}


@pytest.fixture(scope="module")
def tiny() -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model("glnet_tiny", num_classes=3, embed_dim=(8, 8, 8, 16), head_dim=8, depth=(1, 1, 1, 1),
                             num_slots=4).eval()


def _image(seed: int, size: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = np.full((size, size, 3), 30, np.uint8)
    image[size // 4: size // 2, size // 5: size // 2] = (220, 40, 40)
    image[size // 2:, size // 2:] = (40, 200, 60)
    return np.clip(image + rng.integers(0, 25, image.shape), 0, 255).astype(np.uint8)


def _hooks(model: torch.nn.Module) -> int:
    return sum(len(module._forward_hooks) + len(module._forward_pre_hooks) + len(module._backward_hooks)
               + len(module._backward_pre_hooks) for module in model.modules())


def test_the_library_methods_are_registered_baselines_with_a_layer_option():
    registered = {name: (class_name, threshold) for name, (class_name, _, threshold) in CAM_CLASSES.items()}
    assert registered == LIBRARY_METHODS
    for name, (_, threshold) in LIBRARY_METHODS.items():
        method = METHODS[name]
        assert method.baseline and method.gradients and method.options["layer"] == "stages.-1"
        assert method.bg_threshold == threshold and ScoreSettings(method=name).bg_param == threshold
    assert METHODS[SCORECAM].slow and not METHODS[GRADCAM].slow


@pytest.fixture(scope="module")
def tiny_seed_3() -> torch.nn.Module:
    """The tiny GLNet with another random start: on it every gradient method gives each class a non-zero map (on the
    seed-0 one, several positive-gradient methods give all-zero maps for classes 1 and 2, which would prove nothing)."""
    torch.manual_seed(3)
    return timm.create_model("glnet_tiny", num_classes=3, embed_dim=(8, 8, 8, 16), head_dim=8, depth=(1, 1, 1, 1),
                             num_slots=4).eval()


@pytest.mark.parametrize("name", ["gradcam_pp", "xgradcam", "hirescam", "layercam", "eigencam"])
def test_each_cam_method_gives_the_library_map_for_each_class(tiny_seed_3, name):
    """One image, two classes, no flip (the input at the image's own size): every class map is what the library's own
    CAM object gives for that class target, max-normalised."""
    tiny = tiny_seed_3
    image = _image(4)
    result = compute_scores(tiny, image, [1, 0, 1], ScoreSettings(method=name, flip=False))
    assert result.class_indices.tolist() == [0, 1, 3]
    cam_class = getattr(pytorch_grad_cam, LIBRARY_METHODS[name][0])
    for channel, label_id in enumerate(result.class_indices[1:], start=1):
        with cam_class(model=tiny, target_layers=[tiny.stages[-1]]) as cam:
            expected = cam(input_tensor=to_tensor(image), targets=[ClassifierOutputTarget(int(label_id) - 1)])[0]
        assert expected.max() > 0  # a map with evidence, so the comparison means something
        np.testing.assert_allclose(result.scores[channel], expected / expected.max(), atol=1e-4)
    assert np.allclose(result.scores[0], LIBRARY_METHODS[name][1])


def test_gradcam_maps_are_the_library_maps_of_each_image_and_its_own_classes(tiny):
    """Two images with different classes in one batch: each class map is what pytorch-grad-cam itself gives for that
    image and that class target (input at the image's own size, no flip, so no resizing in between)."""
    images = [_image(0), _image(1)]
    labels = [[1, 0, 1], [0, 1, 0]]
    results = compute_scores_batch(tiny, images, labels, ScoreSettings(method=GRADCAM, flip=False))
    assert [r.class_indices.tolist() for r in results] == [[0, 1, 3], [0, 2]]
    nontrivial = 0
    for image, result in zip(images, results):
        for channel, label_id in enumerate(result.class_indices[1:], start=1):
            with pytorch_grad_cam.GradCAM(model=tiny, target_layers=[tiny.stages[-1]]) as cam:
                expected = cam(input_tensor=to_tensor(image), targets=[ClassifierOutputTarget(int(label_id) - 1)])[0]
            peak = expected.max()
            nontrivial += peak > 0
            np.testing.assert_allclose(result.scores[channel], expected / peak if peak > 0 else expected, atol=1e-4)
    assert nontrivial >= 2
    first = results[0].scores
    assert not np.allclose(first[1], first[2], atol=1e-3)  # per-row targets: two classes, two different maps


def test_target_layers_blocks_and_token_stages(tiny):
    image = _image(2)
    last = compute_scores(tiny, image, [1, 1, 0], ScoreSettings(method=GRADCAM, flip=False))
    block = compute_scores(tiny, image, [1, 1, 0],
                           ScoreSettings(method=GRADCAM, flip=False, options={"layer": "stages.1.blocks.0"}))
    assert block.scores.shape == last.scores.shape == (3, 64, 64)
    assert not np.allclose(block.scores, last.scores, atol=1e-3)
    assert resolve_layer(tiny, "stages.-1") is tiny.stages[3]
    with pytest.raises(ValueError, match="no sub-module 'nine'"):
        resolve_layer(tiny, "stages.nine")
    tokens = torch.randn(2, 12, 16)  # (N, L, C) of a full-attention stage, 3 x 4 grid for a 96 x 128 input
    maps = _to_maps(torch.zeros(2, 3, 96, 128))(tokens)
    assert maps.shape == (2, 16, 3, 4) and torch.equal(maps[:, :, 1, 2], tokens[:, 6])


def test_many_images_leave_no_hooks_gradients_or_memory_behind(tiny):
    images = [_image(seed, 32) for seed in range(16)]
    hooks_before = _hooks(tiny)
    flags = [parameter.requires_grad for parameter in tiny.parameters()]
    settings = ScoreSettings(method=GRADCAM)
    compute_scores(tiny, images[0], [1, 0, 1], settings)  # warm-up: lazy imports, allocator caches
    gc.collect()
    tensors_before = sum(1 for item in gc.get_objects() if torch.is_tensor(item))
    tracemalloc.start()
    first_peak = None
    for index, image in enumerate(images):
        compute_scores(tiny, image, [1, index % 2, 1], settings)
        if index == 3:
            gc.collect()
            first_peak = tracemalloc.get_traced_memory()[0]
    gc.collect()
    growth = tracemalloc.get_traced_memory()[0] - first_peak
    tracemalloc.stop()
    assert _hooks(tiny) == hooks_before
    assert [parameter.requires_grad for parameter in tiny.parameters()] == flags
    assert all(parameter.grad is None for parameter in tiny.parameters())
    assert sum(1 for item in gc.get_objects() if torch.is_tensor(item)) <= tensors_before
    assert growth < 256 * 1024, f"traced memory grew by {growth} bytes over 12 images"


def test_scorecam_is_cheap_on_a_tiny_model_and_releases_its_hooks(tiny):
    image = _image(3, 32)
    hooks_before = _hooks(tiny)
    settings = ScoreSettings(method=SCORECAM, flip=False, options={"batch_size": 8})
    maps = compute_scores(tiny, image, [0, 1, 0], settings)
    assert maps.scores.shape == (2, 32, 32) and _hooks(tiny) == hooks_before
    with pytorch_grad_cam.ScoreCAM(model=tiny, target_layers=[tiny.stages[-1]]) as cam:
        cam.batch_size = 8
        expected = cam(input_tensor=to_tensor(image), targets=[ClassifierOutputTarget(1)])[0]
    peak = expected.max()
    np.testing.assert_allclose(maps.scores[1], expected / peak if peak > 0 else expected, atol=1e-4)


def test_the_combination_is_slot_pool_at_weight_0_and_gradcam_at_weight_1(tiny):
    """``slot_gradcam`` mixes the two families' maps linearly (input at the image's own size, no flip: no resizing)."""
    images, labels = [_image(2)], [[1, 1, 0]]
    method = METHODS["slot_gradcam"]
    assert not method.baseline and method.uses_probe and method.gradients

    def scores(name, **options):  # the class channels (channel 0 is each method's own background threshold)
        settings = ScoreSettings(method=name, flip=False, options=options)
        return compute_scores_batch(tiny, images, labels, settings)[0].scores[1:]

    np.testing.assert_allclose(scores("slot_gradcam", cam_weight=0.0), scores("slot_pool"), atol=1e-4)
    np.testing.assert_allclose(scores("slot_gradcam", cam_weight=1.0), scores(GRADCAM), atol=1e-4)
    half = scores("slot_gradcam", cam_weight=0.5)
    assert not np.allclose(half, scores("slot_pool"), atol=1e-3) and not np.allclose(half, scores(GRADCAM), atol=1e-3)
