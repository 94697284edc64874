"""The explorer app, driven through ``streamlit.testing.v1.AppTest`` (the checkout's ``app/main.py``, no browser).

AppTest runs the script in this process, so the tests can count the network's forward passes by wrapping
``GLNet.forward_features``. Uploads go through AppTest's own ``file_uploader`` support (Streamlit 1.67 has it), and
tabs are switched by their session-state key ``"view"`` (the app's tabs are lazy: only the open one runs).
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import List

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from glmix_viz.models.glnet import GLNet

APP = str(Path(__file__).resolve().parents[1] / "app" / "main.py")


def _app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=60)


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _test_image(height: int = 96, width: int = 120) -> np.ndarray:
    """A bright disc on a dark gradient."""
    ys, xs = np.mgrid[0:height, 0:width]
    image = np.stack([xs * 2 % 256, ys * 2 % 256, np.full_like(xs, 60)], axis=-1).astype(np.uint8)
    image[(ys - height / 2) ** 2 + (xs - width / 2) ** 2 < (min(height, width) / 4) ** 2] = (250, 240, 40)
    return image


def _captions(at: AppTest) -> List[str]:
    return [caption for element in at.image for caption in element.captions]


def _grouping_captions(at: AppTest) -> List[str]:
    return [caption for caption in _captions(at) if caption.startswith("Hard grouping of")]


def _block_slider(at: AppTest):
    return next(slider for slider in at.select_slider if slider.label == "GLMix block")


def _errors(at: AppTest) -> List[str]:
    return [element.value for element in at.error]


def _no_exception(at: AppTest) -> None:
    assert not at.exception, [element.value for element in at.exception]


def _upload(at: AppTest, *files) -> AppTest:
    at.radio(key="image_source").set_value("Upload").run()
    at.file_uploader(key="image_upload").set_value(list(files)).run()
    return at


@pytest.fixture(autouse=True)
def _own_upload_store(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Uploads are kept in this test's own store (not the server's default folder)."""
    monkeypatch.setenv("GLMIX_UPLOADS", str(tmp_path / "uploads"))


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """The app sets torch's thread count for its process (here: pytest's); put it back after every test."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def forward_calls(monkeypatch: pytest.MonkeyPatch) -> List[int]:
    """Counts GLNet.forward_features calls (every network run of the app goes through it)."""
    calls: List[int] = []
    original = GLNet.forward_features

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(GLNet, "forward_features", counting)
    return calls


def test_default_page_shows_the_grouping_of_the_demo_model() -> None:
    at = _app().run()
    _no_exception(at)
    assert at.title[0].value == "GLMix explorer"
    assert re.search(r"· \d+ classes: \w+", at.caption[0].value) and "GLMix blocks" in at.caption[0].value
    block = _block_slider(at).value
    assert _grouping_captions(at) and block in _grouping_captions(at)[0]
    assert any("Slots that win pixels" in caption for caption in _captions(at))


def test_the_packaged_script_draws_the_same_page() -> None:
    """``glmix-viz app`` runs glmix_viz/app/main.py itself (app/main.py is only a shim for checkouts)."""
    from glmix_viz.app import MAIN_SCRIPT

    at = AppTest.from_file(str(MAIN_SCRIPT), default_timeout=60).run()
    _no_exception(at)
    assert at.title[0].value == "GLMix explorer" and _grouping_captions(at)


def test_upload_shows_groupings_and_block_and_class_can_change() -> None:
    at = _upload(_app().run(), ("disc.png", _png(_test_image()), "image/png"))
    _no_exception(at)
    assert not _errors(at)
    assert "disc.png · 120x96 px" in at.caption[0].value
    slider = _block_slider(at)
    first = slider.options[0].split()[1]  # options are shown as "#1 stages.0.blocks.0 (24x32, 16 slots)"
    assert _grouping_captions(at) and slider.value in _grouping_captions(at)[0]
    slider.set_value(first).run()
    assert f"#1 {first} " in _grouping_captions(at)[0]

    at.session_state["view"] = "Predictions & pseudo-mask"
    at.run()
    _no_exception(at)
    classes = next(element for element in at.multiselect if element.label.startswith("Classes in the image"))
    third_class = classes.options[2].split(" (")[0]  # options read "triangle (12.3%)"
    classes.set_value([0, 2]).run()
    next(box for box in at.selectbox if box.label == "Class to map").set_value(2).run()
    _no_exception(at)
    assert at.subheader[0].value == f"Score maps of '{third_class}' by each method"
    captions = _captions(at)
    assert any(caption.startswith("cam:") for caption in captions)
    assert any(caption.startswith("After dense CRF") for caption in captions)  # the default refinement


def test_corrupt_small_and_unsupported_uploads_show_errors_and_good_images_still_work() -> None:
    at = _upload(
        _app().run(),
        ("broken.jpg", b"\xff\xd8\xff\xe0 definitely not a JPEG", "image/jpeg"),
        ("tiny.png", _png(_test_image(16, 20)), "image/png"),
        ("disc.png", _png(_test_image()), "image/png"),
    )
    _no_exception(at)
    errors = _errors(at)
    assert len(errors) == 2, errors
    assert errors[0].startswith("broken.jpg") and "\n" not in errors[0]
    assert errors[1].startswith("tiny.png") and "32x32" in errors[1]
    assert _grouping_captions(at), "the readable upload is still shown"

    at.file_uploader(key="image_upload").set_value(("notes.txt", b"hello", "text/plain")).run()
    _no_exception(at)
    assert any("notes.txt" in error and "unsupported" in error for error in _errors(at)), _errors(at)


def test_several_uploads_and_a_large_image_is_downscaled_with_a_notice() -> None:
    at = _upload(_app().run(), ("disc.png", _png(_test_image()), "image/png"),
                 ("large.png", _png(_test_image(900, 1200)), "image/png"))
    _no_exception(at)
    assert "disc.png · 120x96 px" in at.caption[0].value
    at.selectbox(key="uploaded_choice").set_value(1).run()
    _no_exception(at)
    assert "large.png · 1024x768 px" in at.caption[0].value
    assert any("1200x900" in info.value and "1024x768" in info.value for info in at.info)
    assert _grouping_captions(at)


def test_wrong_checkpoint_shows_an_error_and_the_page_keeps_its_model(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLMIX_CHECKPOINTS", str(tmp_path))
    at = _app().run()
    shown = at.caption[0].value
    at.selectbox(key="model_source").set_value("Checkpoint file").run()
    at.text_input(key="checkpoint_path").input(str(tmp_path / "missing.pth")).run()
    _no_exception(at)
    assert _errors(at) == [f"Could not load the model: {tmp_path / 'missing.pth'}: no such checkpoint file. "
                           "Still showing demo model glnet_tiny_shapes.safetensors."]
    assert at.caption[0].value == shown and _grouping_captions(at)  # the page and its model stay

    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a checkpoint")
    at.text_input(key="checkpoint_path").input(str(garbage)).run()
    _no_exception(at)
    assert len(_errors(at)) == 1 and "garbage.pth" in _errors(at)[0] and "not a readable" in _errors(at)[0]
    assert at.caption[0].value == shown and _grouping_captions(at)
    assert at.query_params["model"] == "demo"  # the link names what is shown

    outside = []  # outside the app's folders: the same words whether the file exists or not (no probing)
    for path in ("/etc/passwd", "/etc/no-such-file.pth", str(tmp_path / ".." / "x.pth")):
        at.text_input(key="checkpoint_path").input(path).run()
        _no_exception(at)
        outside.append(_errors(at)[0].replace(Path(path).name, "NAME"))
    assert len(set(outside)) == 1 and "only inside its folders (checkpoints, demo, uploads)" in outside[0]

    at.selectbox(key="model_source").set_value("Demo model").run()
    _no_exception(at)
    assert not _errors(at) and _grouping_captions(at)


def test_display_settings_never_rerun_the_network(forward_calls: List[int]) -> None:
    at = _app().run()
    before = len(forward_calls)
    at.slider(key="opacity").set_value(0.3).run()
    assert "(opacity 0.30)" in _grouping_captions(at)[0]  # the page was redrawn...
    at.checkbox(key="boundaries").uncheck().run()
    at.radio(key="soft_map_kind").set_value("clustering").run()
    at.session_state["view"] = "Across blocks"
    at.run()
    _no_exception(at)
    assert len(forward_calls) == before  # ...without running the network

    resolution = next(slider for slider in at.select_slider if slider.label.startswith("Input resolution"))
    resolution.set_value(96).run()
    assert len(forward_calls) == before + 1  # a setting the network depends on runs it exactly once
    at.slider(key="opacity").set_value(0.8).run()
    assert len(forward_calls) == before + 1


def test_checkpoints_from_a_folder_and_from_an_upload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    import timm

    from glmix_viz import save_checkpoint

    model = timm.create_model("glnet_tiny", num_classes=3)
    save_checkpoint(model, tmp_path / "three.safetensors", variant="glnet_tiny", class_names=["ant", "bee", "cat"])
    monkeypatch.setenv("GLMIX_CHECKPOINTS", str(tmp_path))
    at = _app().run()
    at.selectbox(key="model_source").set_value("Checkpoint folder").run()
    _no_exception(at)
    assert not _errors(at)
    assert "three.safetensors" in at.caption[0].value and "3 classes: ant; bee; cat" in at.caption[0].value
    assert _grouping_captions(at)

    leftovers_before = set(Path(tempfile.gettempdir()).glob("glmix-upload-*"))
    at.selectbox(key="model_source").set_value("Upload checkpoint").run()
    data = (tmp_path / "three.safetensors").read_bytes()
    at.file_uploader(key="checkpoint_upload").set_value(("mine.safetensors", data, "application/octet-stream")).run()
    _no_exception(at)
    assert "mine.safetensors (uploaded)" in at.caption[0].value and "3 classes" in at.caption[0].value
    assert set(Path(tempfile.gettempdir()).glob("glmix-upload-*")) == leftovers_before  # the temporary copy is gone

    at.file_uploader(key="checkpoint_upload").set_value(("bad.safetensors", b"\x00" * 64, "application/octet-stream"))
    at.run()
    _no_exception(at)
    assert len(_errors(at)) == 1 and _errors(at)[0].startswith("Could not load the model: bad.safetensors: ")


def test_soft_map_figures_of_large_blocks_are_pooled() -> None:
    from glmix_viz.pictures import pooled_for_figure

    maps = np.arange(2 * 4 * 5, dtype=np.float32).reshape(2, 4, 5)
    same, factor = pooled_for_figure(maps, max_cells=40)
    assert factor == 1 and same is maps
    pooled, factor = pooled_for_figure(maps, max_cells=10)  # sqrt(40 / 10) = 2: 2x2 cells, the odd column dropped
    assert factor == 2 and pooled.shape == (2, 2, 2)
    expected = [[(0 + 1 + 5 + 6) / 4, (2 + 3 + 7 + 8) / 4], [(10 + 11 + 15 + 16) / 4, (12 + 13 + 17 + 18) / 4]]
    np.testing.assert_allclose(pooled[0], expected)


def _soft_map_colorbar_title(at: AppTest) -> str:
    import json

    charts = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    heatmaps = [trace for chart in charts for trace in chart["data"] if trace.get("type") == "heatmap"]
    return heatmaps[0]["colorbar"]["title"]["text"]


def test_colour_scale_toggle_is_shared_by_default_and_says_which_it_is(forward_calls: List[int]) -> None:
    at = _app().run()
    assert at.radio(key="color_scale").value == "shared"
    assert "shared" in _soft_map_colorbar_title(at)
    assert any("shared colour scale for all maps" in caption for caption in at.caption.values)
    before = len(forward_calls)
    at.radio(key="color_scale").set_value("own").run()
    _no_exception(at)
    assert "own" in _soft_map_colorbar_title(at)
    assert any("each map on its own colour scale" in caption for caption in at.caption.values)

    at.session_state["view"] = "Across blocks"
    at.run()
    assert any("each map on its own colour scale" in caption for caption in _captions(at))
    at.session_state["view"] = "Slot & pixel"
    at.run()
    assert any("this slot's own" in caption for caption in _captions(at))
    at.radio(key="color_scale").set_value("shared").run()
    assert any("shared by all slots of the block" in caption for caption in _captions(at))
    assert len(forward_calls) == before  # a display setting: pictures are redrawn, the network is not rerun

    at.session_state["view"] = "Predictions & pseudo-mask"
    at.run()
    _no_exception(at)
    assert any(caption == "Score maps: shared colour scale for all maps." for caption in _captions(at))
    ranges = {caption.rsplit("(jet: ", 1)[1] for caption in _captions(at) if "(jet: blue" in caption
              and not caption.startswith("Slot")}
    assert len(ranges) == 1, ranges  # every method's map on the one shared range
    at.radio(key="color_scale").set_value("own").run()
    assert any(caption.startswith("Score maps: each map on its own colour scale") for caption in _captions(at))


def test_a_segmenter_checkpoint_shows_its_prediction_beside_the_demo_pseudo_mask(tmp_path: Path,
                                                                                  monkeypatch: pytest.MonkeyPatch
                                                                                  ) -> None:
    """A `segment-train` checkpoint: the groupings of its encoder, and its mask next to the demo model's pseudo-mask."""
    import torch

    from glmix_viz.segment.model import build_segmenter, save_segmenter

    torch.manual_seed(0)
    segmenter = build_segmenter("glnet_tiny", 5, decoder="upernet", decoder_args={"decoder_channels": 32}).eval()
    path = tmp_path / "segmenter.safetensors"
    save_segmenter(segmenter, path, {
        "backbone": {"variant": "glnet_tiny", "model_args": {}}, "decoder": "upernet",
        "decoder_args": {"decoder_channels": 32}, "num_classes": 5,
        "class_names": ["background", "circle", "square", "triangle", "cross"], "input_size": 64})
    monkeypatch.setenv("GLMIX_CHECKPOINTS", str(tmp_path))  # typed paths open inside the app's folders only
    at = _app().run()
    at.selectbox(key="model_source").set_value("Checkpoint file").run()
    at.text_input(key="checkpoint_path").input(str(path)).run()
    _no_exception(at)
    assert _grouping_captions(at)  # the encoder's groupings
    at.session_state["view"] = "Predictions & pseudo-mask"
    at.run()
    _no_exception(at)
    captions = _captions(at)
    assert any("segmenter's prediction" in caption for caption in captions)
    assert any("Pseudo-mask of the bundled demo model" in caption for caption in captions)
