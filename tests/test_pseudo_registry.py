"""The method registry: a method registered from here works through the public scoring; what the registry derives;
the same methods in the same order whichever module is imported first."""

from __future__ import annotations

import ast
import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import timm
import torch

import glmix_viz.models  # noqa: F401  (registers glnet_tiny)
import glmix_viz.pseudo as pseudo
from glmix_viz.pseudo.evidence import apply_background
from glmix_viz.pseudo.registry import baseline_methods, block_set, default_method, reference_baseline, search_grid
from glmix_viz.pseudo.settings import ScoreSettings

ROOT = Path(__file__).resolve().parents[1]
# The registration order (the package face loads methods.py, then gradcam.py) and the default method, as literals.
ORDER = ["cam", "slic_cam", "slot_pool", "slot_vote", "slot_walk", "gradcam", "gradcam_pp", "xgradcam", "hirescam",
         "layercam", "eigencam", "scorecam", "slot_gradcam",  # the combination registers after the CAM family
         "slot_ablate"]  # then the intervention method (pseudo/ablate.py)
DEFAULT = "slot_pool"  # the best measured non-baseline method (miou_crf 70.4 on the demo benchmark)
REFERENCE = "cam"  # the first baseline: what benchmarks compare against


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
    maps = pseudo.compute_scores(model, image, [0, 1, 1], ScoreSettings(method="left_half_test", flip=False))
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
    settings = ScoreSettings(method="left_half_test")
    results = pseudo.compute_scores_batch(model, images, [[1, 0, 0], [0, 0, 1]], settings)
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


def test_the_order_and_the_one_default_method():
    assert list(pseudo.METHODS) == ORDER
    assert default_method() == DEFAULT and ScoreSettings().method == DEFAULT  # one meaning of "default method"
    assert reference_baseline() == REFERENCE and baseline_methods() == [REFERENCE, "slic_cam", *ORDER[5:-2]]
    method = pseudo.METHODS[DEFAULT]
    assert not method.baseline and method.measured == {"miou": 63.3, "miou_crf": 70.4}
    assert all(m.baseline or m.measured is None or m.measured["miou_crf"] <= method.measured["miou_crf"]
               for m in pseudo.METHODS.values())


# One interpreter loads the third-party libraries only (no glmix_viz module), then forks one child per module: each
# child starts with no module of the package loaded, imports its module first, then reads the registry. (A fresh
# `python` per module would cost a torch import each: minutes on a busy 2-core machine, for the same check.)
ORDER_PROBE = """
import importlib, json, os, sys
import numpy, timm, torch  # noqa: F401
results = {}
for module in sys.argv[1:]:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        try:
            assert not [name for name in sys.modules if name.startswith("glmix_viz")]
            importlib.import_module(module)
            from glmix_viz.pseudo.registry import METHODS
            from glmix_viz.pseudo.settings import ScoreSettings
            answer = {"order": list(METHODS), "default": ScoreSettings().method}
        except BaseException as error:
            answer = {"error": f"{type(error).__name__}: {error}"}
        os.write(write_end, json.dumps(answer).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as stream:
        results[module] = json.loads(stream.read() or '{"error": "the child died"}')
    os.waitpid(pid, 0)
print(json.dumps(results))
"""


def test_the_registry_is_a_leaf():
    """registry.py imports nothing of the package (its methods import it, never the other way round)."""
    tree = ast.parse((ROOT / "glmix_viz" / "pseudo" / "registry.py").read_text())
    imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    imported += [node.module or "." for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert imported and not [name for name in imported if name.startswith(("glmix_viz", "."))], imported


def test_the_order_does_not_depend_on_what_is_imported_first():
    package = ROOT / "glmix_viz" / "pseudo"
    modules = ["glmix_viz", "glmix_viz.pseudo"] + [f"glmix_viz.pseudo.{info.name}"
                                                   for info in pkgutil.iter_modules([str(package)])]
    assert {"glmix_viz.pseudo.methods", "glmix_viz.pseudo.gradcam", "glmix_viz.pseudo.registry"} <= set(modules)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, "-c", ORDER_PROBE, *modules], capture_output=True, text=True, env=env,
                            cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    answers = json.loads(result.stdout.strip().splitlines()[-1])
    for module in modules:
        assert answers[module] == {"order": ORDER, "default": DEFAULT}, module


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
