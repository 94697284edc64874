"""The explorer's Compare view (AppTest): the page's model beside a second one, block by block."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app" / "main.py")


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _compare(at: AppTest) -> AppTest:
    at.session_state["view"] = "Compare"
    return at.run()


def _no_exception(at: AppTest) -> None:
    assert not at.exception, [element.value for element in at.exception]


def _agreements(at: AppTest) -> list:
    table = next(frame.value for frame in at.dataframe if "agreement (ARI)" in frame.value.columns)
    return table["agreement (ARI)"].tolist()


def test_compare_opens_on_the_untrained_copy_and_the_demo_against_itself_agrees_everywhere():
    at = _compare(AppTest.from_file(APP, default_timeout=120).run())
    _no_exception(at)
    source = next(element for element in at.selectbox if element.label == "Compare with")
    assert source.value == "Untrained copy"
    untrained = _agreements(at)
    assert len(untrained) == 6 and all(value < 0.9 for value in untrained)  # the demo's six GLMix blocks
    assert any("random weights" in caption.value for caption in at.caption)
    classes = next(frame.value for frame in at.dataframe if "change" in frame.value.columns)
    assert sorted(classes["class"]) == ["circle", "cross", "square", "triangle"]

    source.set_value("Demo model")
    at.run()
    _no_exception(at)
    assert _agreements(at) == [1.0] * 6
    metric = next(element for element in at.metric if element.label.startswith("Agreement"))
    assert metric.value == "1.00"


def test_compare_says_when_the_checkpoint_cannot_be_loaded(tmp_path, monkeypatch):
    monkeypatch.setenv("GLMIX_CHECKPOINTS", str(tmp_path))  # typed paths open inside the app's folders only
    at = _compare(AppTest.from_file(APP, default_timeout=120).run())
    next(element for element in at.selectbox if element.label == "Compare with").set_value("Checkpoint file")
    at.run()
    assert any("Give the checkpoint" in element.value for element in at.info)
    at.text_input(key="compare_path").set_value(str(tmp_path / "missing.safetensors"))
    at.run()
    _no_exception(at)
    assert any("missing.safetensors" in element.value and "no such checkpoint" in element.value
               for element in at.error)


def test_compare_opens_typed_paths_only_inside_the_app_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("GLMIX_CHECKPOINTS", str(tmp_path / "checkpoints"))
    at = _compare(AppTest.from_file(APP, default_timeout=120).run())
    next(element for element in at.selectbox if element.label == "Compare with").set_value("Checkpoint file")
    at.run()
    at.text_input(key="compare_path").set_value("/etc/passwd")
    at.run()
    assert not at.exception
    errors = [element.value for element in at.error]
    assert len(errors) == 1 and "only inside its folders" in errors[0] and "root:" not in errors[0]
