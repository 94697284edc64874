"""The explorer's run browser (``glmix-viz app --runs DIR``), driven through AppTest on real pseudo-label runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List

import pytest
from streamlit.testing.v1 import AppTest

from glmix_viz.evaluate import worst_images

APP = str(Path(__file__).resolve().parents[1] / "app" / "main.py")


def _runs_app(monkeypatch: pytest.MonkeyPatch, root: Path, run: Path) -> AppTest:
    monkeypatch.setenv("GLMIX_RUNS", str(root))
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["page"] = "runs"  # the run browser is a page of its own (st.navigation); a link opens it
    at.run()
    at.selectbox(key="run").set_value(str(run)).run()
    _no_exception(at)
    return at


def _no_exception(at: AppTest) -> None:
    assert not at.exception, [element.value for element in at.exception]


def _texts(at: AppTest, kind: str) -> List[str]:
    return [element.value for element in getattr(at, kind)]


def _image_choice(at: AppTest, run: Path):
    return at.selectbox(key=f"run_image_id::{run}")


def _captions(at: AppTest) -> List[str]:
    return [caption for element in at.image for caption in element.captions]


def test_the_run_browser_lists_runs_and_shows_scores_and_the_worst_image_first(run_tree, monkeypatch):
    at = _runs_app(monkeypatch, run_tree["runs"], run_tree["slot_pool"])
    assert at.selectbox(key="run").options == ["cam", "gone", "nested/sharded", "slot_pool"]
    scores = json.loads((run_tree["slot_pool"] / "eval.json").read_text())
    assert at.metric[0].label == "mIoU" and at.metric[0].value == f"{100 * scores['miou']:.2f} %"
    assert _image_choice(at, run_tree["slot_pool"]).options == [row["id"] for row in worst_images(scores)]
    worst = worst_images(scores)[0]["id"]
    assert _captions(at) == [f"{title} · {worst}" for title in ("image", "ground truth", "prediction", "errors")] + [
        "classes of the ground truth and the prediction (their colours in both panels)", "error map"]
    assert not _texts(at, "warning") and not _texts(at, "error") and not _texts(at, "info")
    assert "slot_pool" in at.caption[0].value or "glnet_tiny" in at.caption[0].value
    button = next(button for button in at.button if button.label == "Open in the grouping tabs")
    assert not button.disabled


def test_a_class_filter_keeps_only_images_holding_that_class(run_tree, monkeypatch):
    at = _runs_app(monkeypatch, run_tree["runs"], run_tree["cam"])
    scores = json.loads((run_tree["cam"] / "eval.json").read_text())
    circle = scores["class_names"].index("circle")
    at.multiselect(key="run_classes").set_value([circle]).run()
    _no_exception(at)
    holding = [row["id"] for row in worst_images(scores) if any(g == circle for g, _, _ in row["confusion"])]
    assert 0 < len(holding) < 6 and _image_choice(at, run_tree["cam"]).options == holding


def test_a_run_whose_model_file_is_gone_says_so_in_one_line_and_still_shows_its_images(run_tree, monkeypatch):
    at = _runs_app(monkeypatch, run_tree["runs"], run_tree["gone"])
    warnings = _texts(at, "warning")
    assert len(warnings) == 1 and "gone.safetensors: the run's model file is not there any more" in warnings[0]
    assert len(_captions(at)) == 6 and not _texts(at, "error")
    button = next(button for button in at.button if button.label == "Open in the grouping tabs")
    assert button.disabled


def test_a_run_with_a_missing_shard_opens_with_what_is_there(run_tree, monkeypatch):
    at = _runs_app(monkeypatch, run_tree["runs"], run_tree["sharded"])
    written = len(list(run_tree["sharded"].glob("*.png")))
    assert any(f"{written} of 6 label maps written; no summary yet from shard(s) 2/2" in text
               for text in _texts(at, "info"))
    assert at.metric[3].value == f"{written} of 6"
    assert any("scored here on the" in caption.value for caption in at.caption)
    assert len(_image_choice(at, run_tree["sharded"]).options) == written and len(_captions(at)) == 6


def test_two_runs_side_by_side(run_tree, monkeypatch):
    at = _runs_app(monkeypatch, run_tree["runs"], run_tree["slot_pool"])
    at.session_state["run_view"] = "Compare with another run"
    at.run()
    assert at.selectbox(key="run_compare").options == ["cam", "gone", "nested/sharded"]  # not A itself
    at.selectbox(key="run_compare").set_value(str(run_tree["cam"])).run()
    _no_exception(at)
    paired = [text for text in _texts(at, "markdown") if "B - A over 6 paired images" in text]
    assert len(paired) == 2
    a = json.loads((run_tree["slot_pool"] / "eval.json").read_text())
    b = json.loads((run_tree["cam"] / "eval.json").read_text())
    split = 100 * (b["miou"] - a["miou"])
    assert f"{split:+.2f} points" in paired[1]
    biggest = max(a["per_image"], key=lambda row: abs(
        next(r["miou"] for r in b["per_image"] if r["id"] == row["id"]) - row["miou"]))["id"]
    assert at.selectbox(key="compare_image_id").value == biggest
    assert _captions(at) == [f"{run}: {title}" for run in "AB" for title in ("ground truth", "prediction", "errors")] + [
        "classes of the ground truth and both predictions (their colours in every panel)"]


def test_open_in_the_grouping_tabs_uses_the_runs_model_image_and_settings_and_its_link_reopens_it(run_tree,
                                                                                                  monkeypatch):
    at = _runs_app(monkeypatch, run_tree["runs"], run_tree["cam"])
    _image_choice(at, run_tree["cam"]).set_value("val_000003").run()
    assert at.query_params["page"] == "runs" and at.query_params["run"] == "cam"
    assert at.query_params["image_id"] == "val_000003"
    next(button for button in at.button if button.label == "Open in the grouping tabs").click().run()
    _no_exception(at)
    header = at.caption[0].value
    assert "demo.safetensors (the model of run cam)" in header and "val_000003 (run cam)" in header
    assert any(caption.startswith("Hard grouping of") for element in at.image for caption in element.captions)
    query = dict(at.query_params)
    assert query["run"] == "cam" and query["image_id"] == "val_000003" and query["tab"] == "groupings"
    assert query["method"] == "cam" and "page" not in query

    again = AppTest.from_file(APP, default_timeout=120)  # the copied link, in a new session
    again.query_params.update(query)
    again.run()
    _no_exception(again)
    assert again.caption[0].value == header
    again.session_state["view"] = "Predictions & pseudo-mask"
    again.run()
    _no_exception(again)
    assert again.selectbox(key="pseudo_method").value == "cam"
    assert again.checkbox(key="pseudo_flip").value is True  # the run's flip (pseudo-label's default)
    assert again.multiselect(key=next(key for key in again.session_state if key.startswith("pseudo_classes"))).value


def test_a_link_to_a_run_that_is_not_listed_is_one_line(run_tree, monkeypatch, tmp_path):
    monkeypatch.setenv("GLMIX_RUNS", str(run_tree["runs"]))
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update({"run": "../data", "image_id": "val_000001"})
    at.run()
    assert not at.exception and not at.error
    assert [element.value for element in at.warning] == [
        "link: run=`../data` is no run below the runs folder; opened the explorer on its own model and image instead"]
    assert str(run_tree["runs"]) not in at.warning[0].value  # the server's folders are not shown to visitors
    assert "demo model" in at.caption[0].value


def test_the_class_legend_lists_the_labels_of_both_panels_in_their_colours():
    import numpy as np

    from glmix_viz.app.runs import class_legend
    from glmix_viz.labels import voc_palette
    from glmix_viz.viz import colorize_labels

    names = ["background", "circle", "square", "triangle"]
    gt = np.array([[0, 1], [255, 1]], np.uint8)
    pred = np.array([[0, 3], [3, 1]], np.uint8)
    legend, words = class_legend(names, voc_palette(256), gt, pred)
    assert words == ["background", "circle", "triangle", "ignored / unsure"]  # square is in neither panel
    panel_colours = {tuple(c) for labels in (gt, pred) for c in colorize_labels(labels, voc_palette(256)).reshape(-1, 3)}
    legend_colours = {tuple(c) for c in legend.reshape(-1, 3)}
    assert panel_colours <= legend_colours  # every colour of the panels has its swatch
    assert tuple(voc_palette(256)[2]) not in legend_colours


def test_a_run_browser_link_with_an_unknown_run_or_image_says_which_and_what_opened(run_tree, monkeypatch):
    monkeypatch.setenv("GLMIX_RUNS", str(run_tree["runs"]))
    for query, expected in (
        ({"page": "runs", "run": "nosuch"}, "link: run=`nosuch` is no run below the runs folder; opened cam instead"),
        ({"page": "runs", "run": "cam", "image_id": "val_999"},
         "link: image_id=`val_999` is not among the images listed for this run; opened "),
    ):
        at = AppTest.from_file(APP, default_timeout=120)
        at.query_params.update(query)
        at.run()
        _no_exception(at)
        warnings = [w.value for w in at.warning if w.value.startswith("link")]
        assert len(warnings) == 1 and warnings[0].startswith(expected), warnings
        assert at.title[0].value == "Runs" and not at.error
