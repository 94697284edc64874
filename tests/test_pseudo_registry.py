"""The method registry: a method registered from here works through the public scoring; what the registry derives."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch

import glmix_viz  # noqa: F401  (registers glnet_tiny)
import glmix_viz.pseudo as pseudo
from glmix_viz.pseudo.registry import baseline_methods, block_set, default_method, search_grid
from glmix_viz.pseudo.scores import apply_background, class_activation_maps


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model("glnet_tiny", num_classes=3).eval()


@pytest.fixture()
def throwaway():
    """A method that paints the left half of the image with class evidence 1 and the right half with 0."""
    calls = []

    @pseudo.register_method("left_half_test", description="left half", bg_threshold=0.25, options={"value": 1.0},
                            search_space={"value": (0.5, 1.0)})
    def left_half(context: pseudo.MapContext) -> list:
        calls.append(context)
        rows, _, height, width = context.inputs.shape
        maps = torch.zeros(rows, len(context.classes), height, width)
        maps[..., : width // 2] = context.options["value"]
        return [maps]

    try:
        yield calls
    finally:
        pseudo.METHODS.pop("left_half_test")


def test_a_method_registered_here_runs_through_compute_scores(model, throwaway):
    image = np.full((64, 96, 3), 90, dtype=np.uint8)
    maps = pseudo.compute_scores(model, image, [0, 1, 1], method="left_half_test", flip=False)
    assert maps.class_indices.tolist() == [0, 2, 3]
    assert np.allclose(maps.scores[0], 0.25)  # the method's own threshold
    assert np.allclose(maps.scores[1:, :, :40], 1.0) and np.allclose(maps.scores[1:, :, 56:], 0.0)
    assert maps.labels()[:, :40].min() == 2 and not maps.labels()[:, 56:].any()  # ties go to the first class
    context = throwaway[-1]
    assert context.classes == [1, 2] and context.row_classes == [[1, 2]]
    assert context.features.shape[0] == 1 and context.records is None and context.options == {"value": 1.0}
    assert search_grid("left_half_test", []) == [{"blocks": None, "options": {"value": 0.5}},
                                                 {"blocks": None, "options": {"value": 1.0}}]
    settings = pseudo.ScoreSettings(method="left_half_test", options={"value": 0.5})
    assert settings.bg_param == 0.25 and settings.options == {"value": 0.5}


def test_per_image_targets_in_a_batch(model, throwaway):
    images = [np.full((64, 64, 3), 90, dtype=np.uint8), np.full((64, 64, 3), 30, dtype=np.uint8)]
    results = pseudo.compute_scores_batch(model, images, [[1, 0, 0], [0, 0, 1]], method="left_half_test")
    assert [r.class_indices.tolist() for r in results] == [[0, 1], [0, 3]]
    context = throwaway[-1]  # both images (and their flips) in one batch, each with its own classes
    assert context.classes == [0, 2] and context.row_classes == [[0], [0], [2], [2]]


def test_registration_is_checked():
    with pytest.raises(TypeError):
        pseudo.register_method("no_threshold_test", description="x")  # a method must carry its threshold
    with pytest.raises(ValueError, match="already registered"):
        pseudo.register_method(default_method(), description="x", bg_threshold=0.5)(lambda context: [])
    with pytest.raises(ValueError, match="unknown option"):
        pseudo.register_method("bad_space_test", description="x", bg_threshold=0.5, search_space={"k": (1,)})
    with pytest.raises(ValueError, match="block set"):
        pseudo.register_method("bad_blocks_test", description="x", bg_threshold=0.5, search_space={"blocks": ("x",)})
    with pytest.raises(ValueError, match="needs its threshold"):
        apply_background(np.zeros((1, 2, 2), np.float32), "threshold", None)  # no silent project-wide fallback
    assert not {"no_threshold_test", "bad_space_test", "bad_blocks_test"} & set(pseudo.METHODS)


def test_default_method_and_baselines_come_from_the_registry():
    best = default_method()
    method = pseudo.METHODS[best]
    assert not method.baseline and method.measured is not None
    assert all(m.baseline or m.measured is None or m.measured["miou_crf"] <= method.measured["miou_crf"]
               for m in pseudo.METHODS.values())
    baselines = baseline_methods()
    assert baselines and all(pseudo.METHODS[name].baseline for name in baselines)
    assert pseudo.ScoreSettings().method == baselines[0]  # the reference baseline
    assert all(0.0 <= m.bg_threshold <= 1.0 for m in pseudo.METHODS.values())


def test_block_sets_and_search_grid_product_in_key_order():
    names = ["stages.0.blocks.0", "stages.0.blocks.1", "stages.1.blocks.0", "stages.2.blocks.0"]
    assert block_set("all", names) is None
    assert block_set("first", names) == ["stages.0.blocks.0"]
    assert block_set("early", names) == names[:3]
    assert block_set("early", ["stages.2.blocks.0"]) == ["stages.2.blocks.0"]  # no early block: the first
    for name, method in pseudo.METHODS.items():
        grid = search_grid(name, names)
        sizes = [len(values) for values in method.search_space.values()]
        assert len(grid) == int(np.prod(sizes)) if sizes else len(grid) == 1
        assert all(set(candidate["options"]) <= set(method.options) for candidate in grid)


def test_block_maps_helper_matches_the_map_function(model):
    features = torch.randn(2, model.num_features, 3, 4)
    cam_name = baseline_methods()[0]
    with torch.no_grad():
        maps = pseudo.METHODS[cam_name].block_maps(model, features, [0, 2], None, {})
        assert torch.allclose(maps[0], class_activation_maps(model, features, [0, 2]))
