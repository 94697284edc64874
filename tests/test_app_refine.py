"""The explorer's pseudo-mask view offers each refinement (dense CRF, PAR, none), each with its own parameters."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app" / "main.py")


def _parameter_panels(at: AppTest) -> list:
    return [expander.label for expander in at.expander if expander.label.endswith("parameters")]


def test_the_pseudo_mask_view_switches_between_crf_par_and_none() -> None:
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.session_state["view"] = "Predictions & pseudo-mask"
    at.run()
    assert not at.exception
    refine = at.radio(key="pseudo_refine")
    assert list(refine.options) == ["dense CRF", "PAR (pixel-adaptive refinement)", "none (arg-max)"]
    assert _parameter_panels(at) == ["Dense CRF parameters"]
    refine.set_value("par").run()
    assert not at.exception, [element.value for element in at.exception]
    assert _parameter_panels(at) == ["PAR parameters"]
    assert any(slider.label == "Kernel width w1" and slider.value == 0.3 for slider in at.slider)
    at.radio(key="pseudo_refine").set_value("none").run()
    assert not at.exception and _parameter_panels(at) == []
