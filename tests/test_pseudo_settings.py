"""ScoreSettings: validation with one-line errors, defaults resolved from the method, dict round trip, hashing."""

from __future__ import annotations

import dataclasses
import json

import pytest

import glmix_viz.pseudo as pseudo
from glmix_viz.pseudo.settings import DEFAULT_POWER_ALPHA, ScoreSettings


def test_exported_from_the_package():
    assert pseudo.ScoreSettings is ScoreSettings


def test_defaults_are_filled_in_and_normalised():
    settings = ScoreSettings(method="slot_walk", scales=[1, 0.5], blocks=[0, "stages.1.blocks.0"], input_size=[96, 128])
    assert settings.scales == (1.0, 0.5) and settings.blocks == (0, "stages.1.blocks.0")
    assert settings.input_size == (96, 128)
    assert settings.options == {"sharpen": 1.0, "steps": 3}  # the method's option defaults
    assert settings.bg_param == 0.75  # the method's own threshold
    assert ScoreSettings(method="cam").bg_param == 0.65 and ScoreSettings(method="eigencam").bg_param == 0.35
    assert ScoreSettings(method="slot_walk", bg_rule="power").bg_param == DEFAULT_POWER_ALPHA == 4.0
    assert ScoreSettings(method="cam", bg_param=0.3).bg_param == 0.3  # a given threshold wins


def test_the_default_is_the_default_method():
    default = ScoreSettings()
    assert default.method == "slot_pool" and default.bg_param == 0.75 and default.options == {"sharpen": 1.0}
    assert default.flip and default.scales == (1.0,) and default.bg_rule == "threshold" and default.blocks is None


@pytest.mark.parametrize("fields, message", [
    ({"method": "magic"}, "unknown method 'magic'"),
    ({"scales": (1.0, 0.0)}, "scales must be positive"),
    ({"scales": "big"}, "scales must be positive"),
    ({"bg_rule": "otsu"}, "bg_rule must be one of"),
    ({"bg_param": 1.5}, "threshold background score must be in [0, 1]"),
    ({"bg_rule": "power", "bg_param": 0.0}, "exponent must be positive"),
    ({"input_size": 0}, "input_size must be"),
    ({"input_size": (1, 2, 3)}, "input_size must be"),
    ({"options": {"no_such_option": 1}}, "no option"),
])
def test_bad_settings_are_refused_with_one_line(fields, message):
    with pytest.raises(ValueError) as caught:
        ScoreSettings(**fields)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_dict_round_trip_through_json_and_hash():
    settings = ScoreSettings(method="scorecam", scales=(1.0, 0.75), flip=False, bg_rule="power", bg_param=3.0,
                             blocks=("stages.0.blocks.0",), input_size=(64, 80), device="cpu")
    data = json.loads(json.dumps(settings.to_dict()))
    again = ScoreSettings.from_dict(data)
    assert again == settings and hash(again) == hash(settings)
    assert data["scales"] == [1.0, 0.75] and data["input_size"] == [64, 80] and data["bg_param"] == 3.0
    assert dataclasses.replace(settings, flip=True) != settings
    with pytest.raises(ValueError, match="unknown score setting"):
        ScoreSettings.from_dict({**data, "colour": "red"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.flip = True  # type: ignore[misc]
