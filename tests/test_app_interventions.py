"""The Slot & pixel tab's removal panel (AppTest, no browser): bars of each class's change in probability points for
the chosen slot, before/after probabilities for chosen slots, the per-class map's legend in points, and one error
line (not a crash) when every slot is removed."""

from __future__ import annotations

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app" / "main.py")


def _slot_tab() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.session_state["view"] = "Slot & pixel"
    return at.run()


def test_removal_panel_in_probability_points() -> None:
    at = _slot_tab()
    assert not at.exception, [e.value for e in at.exception]
    charts = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    bars = [c for c in charts if "when slot" in c["layout"].get("title", {}).get("text", "")]
    assert bars and bars[0]["layout"]["yaxis"]["title"]["text"] == "change (probability points)"
    values = bars[0]["data"][0]["y"]
    assert len(values) == 4 and all(-100 <= v <= 100 for v in values)  # the demo model's four classes
    captions = [c for element in at.image for c in element.captions]
    assert any(c.startswith("Which slots carry") and "points" in c for c in captions)

    toggle = next(t for t in at.toggle if t.label.startswith("Class probabilities before"))
    toggle.set_value(True).run()
    table = next(frame.value for frame in at.dataframe if "change (points)" in frame.value.columns)
    assert len(table) == 4
    # the change column is after - before (independent of how the panel computed it)
    assert ((table["after (%)"] - table["before (%)"]) - table["change (points)"]).abs().max() < 1e-6

    chooser = next(m for m in at.multiselect if m.label == "Slots to remove")
    chooser.set_value(list(range(9))).run()  # every slot of the block
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any("cannot remove every slot" in e and "\n" not in e for e in errors), errors
