"""Pictures that say what they show (issue 26): units on colour bars and tables, one colour range shared by the
figures of a shared scale, Top-k that says when the model has fewer than five classes."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app" / "main.py")


def _app(**query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update(query)
    return at.run()


def _captions(at: AppTest):
    return [caption for element in at.image for caption in element.captions] + [c.value for c in at.caption]


def test_top_k_shows_every_class_of_a_four_class_model_and_says_so() -> None:
    at = _app(tab="predictions")
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["rank"]) == [1, 2, 3, 4] and len(set(table["class"])) == 4
    assert any(text.startswith("Top-4 predictions of the classifier (all 4: the model has 4 classes)")
               for text in _captions(at))
    assert not any("Top-5" in text for text in _captions(at))


def test_the_slot_tab_names_its_units() -> None:
    at = _app(tab="slot", block="stages.1.blocks.0")
    assert not at.exception
    texts = _captions(at)
    assert any("dispatch weight at every pixel (0-1" in text for text in texts)
    assert any("CAM units: the classifier head's class weights" in text and "logit contribution" in text
               for text in texts)
    assert re.search(r"Top \d classes \(the model has 4\)", " ".join(texts))


def test_a_shared_scale_is_one_range_across_every_block_figure() -> None:
    from glmix_viz.app.tabs.across_blocks import shared_range
    from glmix_viz.models.loading import load_model
    from glmix_viz.open import demo_checkpoint
    from glmix_viz.data.shapes import render_shapes_image
    from glmix_viz.slots.explore import explore_image

    image = render_shapes_image(np.random.default_rng([2024, 7]), image_size=64).image
    exploration = explore_image(load_model(demo_checkpoint(), device="cpu"), image, input_size=64)
    blocks = exploration.block_names[:3]
    values = np.concatenate([exploration.dispatch(block).ravel() for block in blocks])
    assert shared_range(exploration, blocks) == (float(values.min()), float(values.max()))
    assert shared_range(exploration, blocks[:1]) != shared_range(exploration, blocks)  # the blocks differ

    at = _app(tab="blocks")
    assert not at.exception
    figures = [c for element in at.image for c in element.captions if "dispatch maps (dispatch weight, 0-1" in c]
    ranges = {re.search(r"shared by the (\d+) blocks shown: ([-\d.e]+) to ([-\d.e]+)", c).groups() for c in figures}
    assert len(figures) >= 2 and len(ranges) == 1, figures  # every figure on the same range, said so


def test_the_soft_maps_and_the_slot_heat_map_share_one_scale_and_one_colour_map() -> None:
    import json

    block = "stages.1.blocks.0"
    at = _app(tab="groupings", block=block)
    assert not at.exception
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    heatmap = chart["data"][0]
    low, high = heatmap["zmin"], heatmap["zmax"]
    assert "dispatch weight" in heatmap["colorbar"]["title"]["text"]
    slot = _app(tab="slot", block=block)
    caption = next(c for c in _captions(slot) if "dispatch weight at every pixel" in c)
    assert f"purple {low:.3f} to yellow {high:.3f}" in caption and "viridis" in caption
