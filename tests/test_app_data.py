"""glmix_viz.app.data: the explorer's result caches key results by the model and image objects themselves
(``hash_funcs``), hand out results no reader can change for the others, and keep the background out of the
network's cache. Called outside a Streamlit run (Streamlit's caches work there too, in memory)."""

from __future__ import annotations

import dataclasses
from typing import List

import numpy as np
import pytest

from glmix_viz.app import data
from glmix_viz.models.glnet import GLNet
from glmix_viz.pseudo import ScoreSettings


@pytest.fixture
def forward_calls(monkeypatch: pytest.MonkeyPatch) -> List[int]:
    calls: List[int] = []
    original = GLNet.forward_features

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(GLNet, "forward_features", counting)
    return calls


@pytest.fixture(scope="module")
def tiny() -> data.LoadedModel:
    return data.random_model("glnet_tiny", "cpu")


def _image(value: int, key: str) -> data.LoadedImage:
    image = np.full((64, 64, 3), value, np.uint8)
    image[16:48, 16:48] = 255 - value
    image.setflags(write=False)
    return data.LoadedImage(image, key, f"image {key}")


def test_the_exploration_cache_keys_by_the_model_and_image_keys(tiny, forward_calls: List[int]) -> None:
    data.exploration.clear()
    data.exploration(tiny, _image(40, "a"), 64)
    assert len(forward_calls) == 1
    relabelled = dataclasses.replace(tiny, label="the same weights under another label")
    data.exploration(relabelled, dataclasses.replace(_image(40, "a"), name="renamed"), 64)
    assert len(forward_calls) == 1  # other objects, same keys: the cached result
    data.exploration(tiny, _image(90, "b"), 64)
    data.exploration(tiny, _image(40, "a"), 96)
    assert len(forward_calls) == 3  # another image, another resolution: computed


def test_class_maps_are_copies_and_the_background_never_reaches_the_network(tiny, forward_calls: List[int]) -> None:
    data.class_maps.clear()
    image = _image(60, "c")
    cam = ScoreSettings(method="cam", flip=False, input_size=64)
    first = data.class_maps(tiny, image, cam, (0, 2))
    first.scores[...] = 7.0  # a reader that writes into its result...
    again = data.class_maps(tiny, image, cam, (0, 2))
    assert not np.any(again.scores == 7.0)  # ...changes nobody else's
    calls = len(forward_calls)
    low = data.score_maps(tiny, image, dataclasses.replace(cam, bg_param=0.2), (0, 2))
    high = data.score_maps(tiny, image, dataclasses.replace(cam, bg_rule="power", bg_param=2.0), (0, 2))
    assert len(forward_calls) == calls  # the background is applied to the cached class maps
    np.testing.assert_array_equal(low.scores[1:], again.scores[1:])
    np.testing.assert_array_equal(high.scores[1:], again.scores[1:])
    np.testing.assert_allclose(low.scores[0], 0.2)
    np.testing.assert_allclose(high.scores[0], (1 - again.scores[1:].max(axis=0)) ** 2.0, rtol=1e-6)
    assert low.settings.bg_param == 0.2 and high.settings.bg_rule == "power"


def test_default_classes_follow_known_labels_else_the_predictions(tiny) -> None:
    image = dataclasses.replace(_image(30, "d"), labels=("cross", "circle"))
    exploration = data.exploration(tiny, image, 64)
    assert data.default_classes(exploration, image) == (0, 3)  # circle, square, triangle, cross: indices 0 and 3
    unknown = dataclasses.replace(image, labels=("cross", "giraffe"))
    probabilities = exploration.probabilities
    expected = tuple(np.flatnonzero(probabilities > 0.5)) or (int(np.argmax(probabilities)),)
    assert data.default_classes(exploration, unknown) == expected
