"""Links that reopen a view (issue 19): the query string names the model, image, block, slot, pixel, tab and method;
opening it reopens the view; nothing in it is trusted as a path outside the app's folders or executed."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from glmix_viz.app import store
from glmix_viz.app.links import LinkError, ViewState, read_query, resolve_file

APP = str(Path(__file__).resolve().parents[1] / "app" / "main.py")
DEFAULT_IMAGE = "gallery:shapes 1 (cross, square, triangle)"


def _app(**query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update(query)
    return at


def _no_exception(at: AppTest) -> None:
    assert not at.exception, [element.value for element in at.exception]


def _png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    image = np.full((80, 96, 3), 40, np.uint8)
    image[20:60, 30:70] = rng.integers(100, 255, 3)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Uploads go to this test's own store; torch's threads are put back after the app set them."""
    import torch

    monkeypatch.setenv("GLMIX_UPLOADS", str(tmp_path / "uploads"))
    monkeypatch.delenv("GLMIX_CHECKPOINTS", raising=False)
    threads = torch.get_num_threads()
    yield tmp_path
    torch.set_num_threads(threads)


# ----------------------------------------------------------------------------------------------------------------------
# The query string and paths, without the app
# ----------------------------------------------------------------------------------------------------------------------


def test_a_state_goes_to_the_query_and_back() -> None:
    state = ViewState(model="random:glnet_tiny", image=DEFAULT_IMAGE, block="stages.1.blocks.0", slot=3,
                      pixel=(40, 52), tab="slot", method="eigencam", resolution=128)
    query = state.to_query()
    assert query["pixel"] == "40,52" and query["slot"] == "3" and "run" not in query
    assert read_query(query) == (state, [])
    assert ViewState().to_query() == {}


def test_odd_values_are_dropped_with_a_reason_and_unknown_parameters_ignored() -> None:
    state, problems = read_query({"block": "stages.0<script>", "slot": "3; rm -rf /", "pixel": "1,2,3",
                                  "method": "__import__('os').system('x')", "tab": "slot", "evil": "1",
                                  "model": "x" * 400, "image": ["gallery:a", "gallery:b"]})
    assert state == ViewState(tab="slot", image="gallery:b")
    assert len(problems) == 5 and all("\n" not in problem and problem.startswith("link: ") for problem in problems)


def test_a_subclass_adds_fields_without_code() -> None:
    @dataclass(frozen=True)
    class RunState(ViewState):
        run: Optional[str] = None
        image_id: Optional[str] = None
        concept: Optional[int] = None

    state, problems = read_query({"run": "runs:voc/pseudo", "image_id": "2007_000032", "concept": "7", "slot": "2"},
                                 RunState)
    assert (state.run, state.image_id, state.concept, state.slot, problems) == ("runs:voc/pseudo", "2007_000032", 7,
                                                                                 2, [])
    assert state.to_query() == {"slot": "2", "run": "runs:voc/pseudo", "image_id": "2007_000032", "concept": "7"}


def test_files_resolve_only_inside_the_app_folders(tmp_path: Path) -> None:
    root = tmp_path / "checkpoints"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.safetensors").write_bytes(b"x")
    (root / "b.pth").write_bytes(b"x")
    secret = tmp_path / "secret.txt"
    secret.write_text("not for links")
    os.symlink(secret, root / "escape.pth")
    roots = {"checkpoints": root}
    assert resolve_file("checkpoints:sub/a.safetensors", roots) == (root / "sub" / "a.safetensors").resolve()
    assert resolve_file("checkpoints:b.pth", roots) == (root / "b.pth").resolve()
    refused = ["checkpoints:../secret.txt", "checkpoints:sub/../../secret.txt", f"checkpoints:{secret}",
               "checkpoints:/etc/passwd", "checkpoints:escape.pth", "checkpoints:sub", "checkpoints:",
               "checkpoints:./b.pth", "checkpoints:sub\\..\\..\\secret.txt", "checkpoints:b.pth\x00.txt",
               "checkpoints:$(reboot)", "runs:anything", "/etc/passwd", "..", "checkpoints:missing.pth"]
    for ref in refused:
        with pytest.raises(LinkError) as error:
            resolve_file(ref, roots)
        assert "\n" not in str(error.value)


def test_the_upload_store_names_files_by_digest(tmp_path: Path) -> None:
    data = _png(1)
    stored = store.put(tmp_path, "../../My photo.png", data)
    assert stored.digest == store.digest_of(data) and stored.name == "My_photo.png"
    assert stored.path.parent == tmp_path / stored.digest and stored.path.read_bytes() == data
    assert store.put(tmp_path, "again.png", data) == stored  # the same bytes: the same entry
    assert store.get(tmp_path, "0" * 40) is None
    with pytest.raises(ValueError):
        store.get(tmp_path, "../" + "0" * 37)


# ----------------------------------------------------------------------------------------------------------------------
# The app
# ----------------------------------------------------------------------------------------------------------------------


def test_the_query_string_follows_the_view() -> None:
    at = _app().run()
    _no_exception(at)
    assert at.query_params["model"] == "demo" and at.query_params["image"] == DEFAULT_IMAGE
    assert at.query_params["block"] == "stages.0.blocks.0" and at.query_params["tab"] == "groupings"
    next(s for s in at.select_slider if s.label == "GLMix block").set_value("stages.1.blocks.0").run()
    at.session_state["view"] = "Slot & pixel"
    at.run()
    _no_exception(at)
    assert at.query_params["block"] == "stages.1.blocks.0" and at.query_params["tab"] == "slot"
    assert at.query_params["pixel"] == "128,128" and "slot" in at.query_params


def test_a_link_reopens_the_same_view() -> None:
    link = {"model": "random:glnet_tiny", "image": "gallery:shapes 2 (circle, triangle)", "block": "stages.1.blocks.1",
            "tab": "slot", "slot": "2", "pixel": "40,52", "resolution": "96"}
    at = _app(**link).run()
    _no_exception(at)
    assert not at.warning or all("link" not in w.value for w in at.warning)
    assert "glnet_tiny (random weights)" in at.caption[0].value and "shapes 2" in at.caption[0].value
    assert next(s for s in at.select_slider if s.label == "GLMix block").value == "stages.1.blocks.1"
    assert next(s for s in at.selectbox if s.label == "Slot").value == 2
    assert [n.value for n in at.number_input] == [40, 52]
    assert "network input 96x96" in at.caption[0].value
    assert {key: at.query_params[key] for key in link} == link  # and the page names the same view again


def test_an_upload_reopens_by_its_digest_and_a_missing_one_is_said_plainly(_isolated: Path) -> None:
    at = _app().run()
    at.radio(key="image_source").set_value("Upload").run()
    at.file_uploader(key="image_upload").set_value(("mine.png", _png(7), "image/png")).run()
    _no_exception(at)
    ref = at.query_params["image"]
    assert ref == f"upload:{store.digest_of(_png(7))}"

    again = _app(image=ref, tab="predictions", method="eigencam").run()
    _no_exception(again)
    assert "mine.png · 96x80 px" in again.caption[0].value
    assert next(box for box in again.selectbox if box.label == "Method").value == "eigencam"

    gone = _app(image="upload:" + "ab" * 20).run()
    _no_exception(gone)
    assert any("is not on this server any more" in w.value for w in gone.warning)
    assert "shapes 1" in gone.caption[0].value  # the rest of the page works, on the default image


@pytest.mark.parametrize("query", [
    {"model": "checkpoints:../../etc/passwd"}, {"model": "demo:../../../etc/passwd"}, {"model": "/etc/passwd"},
    {"image": "uploads:../../../../etc/hostname"}, {"image": "gallery:<img src=x onerror=alert(1)>"},
    {"model": "random:__import__('os')"}, {"tab": "'; DROP TABLE"}, {"block": "../../x", "slot": "-1"},
])
def test_hostile_links_open_the_default_view_with_one_line_warnings(query: dict) -> None:
    at = _app(**query).run()
    _no_exception(at)
    assert "demo model" in at.caption[0].value and "shapes 1" in at.caption[0].value
    assert not at.error
    problems = [w.value for w in at.warning if w.value.startswith("link")]
    assert problems and all("\n" not in problem for problem in problems) or set(query) <= {"block", "slot"}


def test_files_are_named_by_path_inside_the_app_folders(_isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import timm

    from glmix_viz import save_checkpoint

    runs = _isolated / "runs"
    (runs / "voc" / "images").mkdir(parents=True)
    (runs / "voc" / "images" / "seen.png").write_bytes(_png(3))
    save_checkpoint(timm.create_model("glnet_tiny", num_classes=3), runs / "voc" / "model.safetensors",
                    variant="glnet_tiny", class_names=["ant", "bee", "cat"])
    monkeypatch.setenv("GLMIX_RUNS", str(runs))
    at = _app(model="runs:voc/model.safetensors", image="runs:voc/images/seen.png").run()
    _no_exception(at)
    assert "model.safetensors" in at.caption[0].value and "3 classes: ant; bee; cat" in at.caption[0].value
    assert "seen.png · 96x80 px" in at.caption[0].value
    assert at.query_params["model"] == "runs:voc/model.safetensors"
    assert at.query_params["image"] == "runs:voc/images/seen.png"


def test_reopen_switches_the_session_to_another_view() -> None:
    script = """
import streamlit as st
from glmix_viz.app import links
from glmix_viz.app.main import main
if st.session_state.pop("go", False):
    links.reopen(links.ViewState(model="random:glnet_tiny", tab="blocks", block="stages.1.blocks.0"))
main()
"""
    at = AppTest.from_string(script, default_timeout=120).run()
    assert at.query_params["model"] == "demo"
    at.session_state["go"] = True
    at.run()
    _no_exception(at)
    assert "glnet_tiny (random weights)" in at.caption[0].value
    assert at.query_params["tab"] == "blocks" and at.query_params["block"] == "stages.1.blocks.0"


# ----------------------------------------------------------------------------------------------------------------------
# Issue 26: every parameter checked, one warning each, no exception text, pages, copy link
# ----------------------------------------------------------------------------------------------------------------------


def test_dot_dot_inside_a_folder_is_refused_even_when_it_would_land_inside(tmp_path: Path) -> None:
    """``sub/../b.pth`` names a file that exists inside the folder; a link still never walks with ``..``."""
    root = tmp_path / "checkpoints"
    (root / "sub").mkdir(parents=True)
    (root / "b.pth").write_bytes(b"x")
    roots = {"checkpoints": root}
    assert resolve_file("checkpoints:b.pth", roots) == (root / "b.pth").resolve()
    for ref in ("checkpoints:sub/../b.pth", "checkpoints:sub/./../b.pth", "checkpoints:./b.pth",
                "checkpoints:sub//../b.pth"):
        with pytest.raises(LinkError, match="plain relative path"):
            resolve_file(ref, roots)


@pytest.mark.parametrize("query, parameter, instead", [
    ({"block": "stages.9.blocks.9"}, "block", "opened stages.0.blocks.0 instead"),
    ({"block": "stages.1.blocks.0", "tab": "slot", "slot": "99"}, "slot", "instead"),
    ({"tab": "slot", "pixel": "999,3"}, "pixel", "opened its centre instead"),
    ({"tab": "predictions", "method": "nosuchmethod"}, "method", "instead"),
    ({"resolution": "100"}, "resolution", "opened the nearest one instead"),
    ({"model": "random:glnet_16g"}, "model", "opened the demo model instead"),
    ({"model": "checkpoints:x.pth"}, "model", "opened the demo model instead"),
    ({"image": "upload:../../x"}, "image", "opened the first gallery image instead"),
    ({"image": "gallery:nothing"}, "image", "opened the first gallery image instead"),
    ({"tab": "nosuchtab"}, "tab", "opened Groupings instead"),
    ({"page": "admin"}, "page", "opened the explorer instead"),
    ({"slot": "x1"}, "slot", "ignored"),
])
def test_each_invalid_parameter_gets_one_warning_naming_it_its_value_and_what_opened(query: dict, parameter: str,
                                                                                   instead: str) -> None:
    at = _app(**query).run()
    _no_exception(at)
    warnings = [w.value for w in at.warning if w.value.startswith("link")]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(f"link: {parameter}=`{query[parameter]}`") and instead in warnings[0], warnings[0]
    assert "Error" not in warnings[0] and "Traceback" not in warnings[0] and not at.error
    assert "\n" not in warnings[0]
    at.run()  # a rerun does not say it again, nor twice
    assert [w.value for w in at.warning if w.value.startswith("link")] == warnings


def test_a_valid_link_warns_nothing_and_the_copy_link_button_holds_its_address() -> None:
    link = {"model": "demo", "image": "gallery:shapes 2 (circle, triangle)", "block": "stages.1.blocks.0",
            "tab": "slot", "slot": "1", "pixel": "10,20"}
    at = _app(**link).run()
    _no_exception(at)
    assert not at.warning
    copied = [code.value for code in at.code]
    assert len(copied) == 1 and copied[0].startswith("?")
    from urllib.parse import parse_qsl

    assert dict(parse_qsl(copied[0][1:]))["block"] == "stages.1.blocks.0"
    assert {key: value for key, value in parse_qsl(copied[0][1:]) if key in link} == link


def test_share_url_puts_the_query_after_the_pages_address() -> None:
    from glmix_viz.app.links import share_url

    url = share_url({"model": "demo", "image": "gallery:shapes 1 (cross, square)", "pixel": "3,4"},
                    base="http://host:8501/atlas?old=1")
    assert url == "http://host:8501/atlas?model=demo&image=gallery:shapes%201%20%28cross,%20square%29&pixel=3,4"
    from urllib.parse import parse_qsl, urlsplit

    assert dict(parse_qsl(urlsplit(url).query))["image"] == "gallery:shapes 1 (cross, square)"
    assert share_url({"tab": "slot"}, base="http://host:8501") == "http://host:8501/?tab=slot"


@pytest.mark.parametrize("query, title", [({}, "GLMix explorer"), ({"page": "runs"}, "Runs"),
                                          ({"page": "atlas"}, "GLMix explorer"), ({"tab": "atlas"}, "GLMix explorer")])
def test_the_run_browser_and_the_atlas_are_pages(query: dict, title: str) -> None:
    at = _app(**query).run()
    _no_exception(at)
    assert at.title[0].value == title
    headers = [h.value for h in at.header]
    assert ("Slot atlas" in headers) == (query.get("page") == "atlas" or query.get("tab") == "atlas")
    if query.get("page") == "runs":
        assert any("--runs DIR" in info.value for info in at.info)  # no runs folder: how to give one
    assert at.query_params.get("page") == query.get("page", "atlas" if query else None)


def test_an_unexpected_failure_is_one_line_on_the_page_and_a_traceback_in_the_log(monkeypatch, capsys) -> None:
    from glmix_viz.app.tabs import groupings

    def broken(page) -> None:
        raise ValueError("secret internal detail /srv/x")

    monkeypatch.delenv("GLMIX_APP_DEBUG", raising=False)
    from glmix_viz.app import views

    monkeypatch.setattr(views, "VIEWS", (groupings.VIEW.__class__("Groupings", "groupings", broken),) + views.VIEWS[1:])
    monkeypatch.setattr("glmix_viz.app.main.VIEWS", views.VIEWS)
    at = _app().run()
    assert not at.exception
    assert [e.value for e in at.error] == ["This part of the page could not be drawn (an internal error, written to "
                                           "the server's log)."]
    assert "secret internal detail" not in str([element.value for element in at.main if hasattr(element, "value")])
    assert "secret internal detail" in capsys.readouterr().err


def test_a_failed_upload_keeps_the_image_and_the_page_says_why_in_one_line_and_stores_nothing(_isolated: Path
                                                                                             ) -> None:
    at = _app(image="gallery:shapes 2 (circle, triangle)", tab="blocks").run()
    shown = at.caption[0].value
    at.radio(key="image_source").set_value("Upload").run()
    _no_exception(at)
    assert at.caption[0].value == shown  # nothing uploaded yet: the page keeps its image
    at.file_uploader(key="image_upload").set_value(("broken.png", b"\x89PNG\r\n\x1a\n not really", "image/png")).run()
    _no_exception(at)
    assert len(at.error) == 1 and at.error[0].value.startswith("broken.png") and "\n" not in at.error[0].value
    assert at.caption[0].value == shown and at.query_params["image"] == "gallery:shapes 2 (circle, triangle)"
    assert at.query_params["tab"] == "blocks" and at.image  # the same page, still drawn
    uploads = _isolated / "uploads"
    assert not uploads.exists() or not [p for p in uploads.iterdir() if store.DIGEST.fullmatch(p.name)]

    at.file_uploader(key="image_upload").set_value(("good.png", _png(4), "image/png")).run()
    _no_exception(at)
    assert "good.png" in at.caption[0].value and not at.error
    assert [p.name for p in uploads.iterdir() if store.DIGEST.fullmatch(p.name)] == [store.digest_of(_png(4))]


def test_a_failed_checkpoint_upload_keeps_the_model_and_is_not_stored(_isolated: Path) -> None:
    at = _app().run()
    shown = at.caption[0].value
    at.selectbox(key="model_source").set_value("Upload checkpoint").run()
    at.file_uploader(key="checkpoint_upload").set_value(("model.safetensors", b"garbage" * 10,
                                                         "application/octet-stream")).run()
    _no_exception(at)
    assert len(at.error) == 1 and "model.safetensors" in at.error[0].value and "Still showing demo model" in \
        at.error[0].value
    assert at.caption[0].value == shown and at.query_params["model"] == "demo"
    uploads = _isolated / "uploads"
    assert not [p for p in uploads.iterdir() if store.DIGEST.fullmatch(p.name)]
