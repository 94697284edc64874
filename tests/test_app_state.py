"""The explorer's state (issue 18): each fault reproduced with AppTest, then kept fixed.

Widgets are found by their labels (not their keys), so these tests read the page as a user does. The thresholds,
block names and class names are literals: the registry's and the benchmark's values as documented, not read back
from the code under test.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import List

import numpy as np
import pytest
import timm
from streamlit.testing.v1 import AppTest

from glmix_viz import save_checkpoint
from glmix_viz.models.glnet import GLNet

APP = str(Path(__file__).resolve().parents[1] / "app" / "main.py")
FIRST_BLOCK = "stages.0.blocks.0"  # the first GLMix block of every GLNet, and the demo model's best on its benchmark
DEFAULT_IMAGE_LABELS = {"cross", "square", "triangle"}  # the objects of the gallery image the app opens on


def _app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=90)


def _no_exception(at: AppTest) -> None:
    assert not at.exception, [element.value for element in at.exception]


def _open(at: AppTest, tab: str) -> AppTest:
    at.session_state["view"] = tab
    return at.run()


def _classes(at: AppTest):
    return next(element for element in at.multiselect if element.label.startswith("Classes in the image"))


def _threshold(at: AppTest):
    return next(element for element in at.slider if element.label == "Background threshold")


def _method(at: AppTest):
    return next(element for element in at.selectbox if element.label == "Method")


def _block(at: AppTest):
    return next(element for element in at.select_slider if element.label == "GLMix block")


def _download_caption(at: AppTest) -> str:
    return next(caption.value for caption in at.caption if caption.value.startswith("Pseudo-mask:"))


def _caption_classes(caption: str) -> set:
    """``"Pseudo-mask: cam, classes a, b; pixel values ..."`` -> ``{"a", "b"}``."""
    return set(re.search(r"classes (.*?); pixel values", caption).group(1).split(", "))


@pytest.fixture(autouse=True)
def _own_upload_store(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Uploads are kept in this test's own store (not the server's default folder)."""
    monkeypatch.setenv("GLMIX_UPLOADS", str(tmp_path / "uploads"))


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def forward_calls(monkeypatch: pytest.MonkeyPatch) -> List[int]:
    calls: List[int] = []
    original = GLNet.forward_features

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(GLNet, "forward_features", counting)
    return calls


@pytest.fixture
def ten_classes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder offered with ``GLMIX_CHECKPOINTS`` holding an untrained glnet_tiny of 10 classes."""
    model = timm.create_model("glnet_tiny", num_classes=10)
    save_checkpoint(model, tmp_path / "ten.safetensors", variant="glnet_tiny",
                    class_names=[f"thing{index}" for index in range(10)])
    monkeypatch.setenv("GLMIX_CHECKPOINTS", str(tmp_path))
    return tmp_path


def test_downloads_do_not_reuse_the_classes_chosen_for_another_model(ten_classes: Path) -> None:
    """Class 8 of a 10-class model, then the 4-class demo model's Downloads: was IndexError 8 out of bounds."""
    at = _app().run()
    at.selectbox(key="model_source").set_value("Checkpoint folder").run()
    _open(at, "Predictions & pseudo-mask")
    _classes(at).set_value([8]).run()
    _no_exception(at)
    _open(at, "Groupings")
    at.selectbox(key="model_source").set_value("Demo model").run()
    _open(at, "Downloads")
    _no_exception(at)
    assert _caption_classes(_download_caption(at)) == DEFAULT_IMAGE_LABELS


def test_downloads_of_a_same_size_model_use_its_own_classes() -> None:
    """Two 4-class models: the classes chosen for the demo model must not silently mask the other one's image."""
    at = _app().run()
    _open(at, "Predictions & pseudo-mask")
    _classes(at).set_value([0]).run()  # circle only, for the demo model
    _open(at, "Groupings")
    at.session_state["random_variant"] = "glnet_tiny"
    at.selectbox(key="model_source").set_value("Random weights").run()
    _open(at, "Downloads")
    _no_exception(at)
    assert _caption_classes(_download_caption(at)) == DEFAULT_IMAGE_LABELS  # the gallery image's own labels


@pytest.mark.parametrize("method, threshold", [("cam", 0.65), ("eigencam", 0.35), ("slot_pool", 0.75)])
def test_each_method_opens_with_its_own_background_threshold(method: str, threshold: float) -> None:
    at = _open(_app().run(), "Predictions & pseudo-mask")
    _method(at).set_value(method).run()
    _no_exception(at)
    assert _threshold(at).value == pytest.approx(threshold)


def test_a_threshold_moved_for_one_method_stays_with_that_method() -> None:
    at = _open(_app().run(), "Predictions & pseudo-mask")
    _method(at).set_value("cam").run()
    _threshold(at).set_value(0.4).run()
    _method(at).set_value("eigencam").run()
    assert _threshold(at).value == pytest.approx(0.35)
    _method(at).set_value("cam").run()
    assert _threshold(at).value == pytest.approx(0.4)


def test_moving_the_background_threshold_does_not_rerun_the_network(forward_calls: List[int]) -> None:
    at = _open(_app().run(), "Predictions & pseudo-mask")
    _no_exception(at)
    before = len(forward_calls)
    _threshold(at).set_value(0.3).run()
    _no_exception(at)
    assert len(forward_calls) == before
    _threshold(at).set_value(0.9).run()
    assert len(forward_calls) == before


def test_the_predictions_tab_preselects_the_labels_of_a_gallery_image() -> None:
    at = _open(_app().run(), "Predictions & pseudo-mask")
    classes = _classes(at)
    assert {option.split(" (")[0] for option in classes.values} == DEFAULT_IMAGE_LABELS


def test_the_predictions_tab_preselects_every_class_above_one_half_for_an_upload() -> None:
    import io

    from PIL import Image

    ys, xs = np.mgrid[0:96, 0:96]
    image = np.full((96, 96, 3), 30, np.uint8)
    image[(ys - 30) ** 2 + (xs - 30) ** 2 < 15 ** 2] = (230, 60, 60)
    image[60:85, 55:85] = (60, 200, 90)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    at = _app().run()
    at.radio(key="image_source").set_value("Upload").run()
    at.file_uploader(key="image_upload").set_value(("two.png", buffer.getvalue(), "image/png")).run()
    _open(at, "Predictions & pseudo-mask")
    _no_exception(at)
    classes = _classes(at)
    shares = {index: float(re.search(r"\(([\d.]+)%\)$", option).group(1)) / 100
              for index, option in enumerate(classes.options)}  # options read "triangle (12.3%)", in class order
    expected = sorted(index for index, share in shares.items() if share > 0.5) or [max(shares, key=shares.get)]
    assert sorted(classes.value) == expected and classes.value


def test_the_demo_model_opens_on_its_best_block_and_other_models_on_the_first(monkeypatch: pytest.MonkeyPatch) -> None:
    at = _app().run()
    _no_exception(at)
    assert _block(at).value == FIRST_BLOCK  # benchmark_best_block() of the shipped results
    at.session_state["random_variant"] = "glnet_tiny"
    at.selectbox(key="model_source").set_value("Random weights").run()
    assert _block(at).value == FIRST_BLOCK


def test_the_block_the_benchmark_names_is_the_one_opened(monkeypatch: pytest.MonkeyPatch) -> None:
    import glmix_viz.app.data as data

    best = {"block": "stages.1.blocks.1", "ari": 0.7, "untrained": 0.4, "grid": 0.3, "best_control": "grid x",
            "best_control_ari": 0.4, "images": 10, "sets": ["a"]}
    monkeypatch.setattr(data, "demo_benchmark", lambda loaded: best)
    at = _app().run()
    _no_exception(at)
    assert _block(at).value == "stages.1.blocks.1"
