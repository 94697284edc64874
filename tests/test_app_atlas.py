"""The explorer's Atlas view (AppTest): the concepts of a small atlas as a gallery, a concept's typical regions, the
concept of every slot of the image on screen, the 2-D map, and "Open" choosing the region's image, block and slot."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

BLOCK = "stages.1.blocks.0"


@pytest.fixture(scope="module")
def small_atlas(tmp_path_factory) -> Path:
    from glmix_viz.atlas import AtlasSettings, run_atlas
    from glmix_viz.data.shapes import ShapesConfig, make_shapes
    from glmix_viz.data.voc import VOCDataset
    from glmix_viz.models.loading import load_model
    from glmix_viz.open import demo_checkpoint

    root = tmp_path_factory.mktemp("atlas")
    make_shapes(root / "shapes", ShapesConfig(image_size=64), num_train=0, num_val=6, seed=12)
    model = load_model(demo_checkpoint(), device="cpu")
    run_atlas(VOCDataset(root / "shapes", "val"), model, root / "atlas",
              AtlasSettings(blocks=(BLOCK,), input_size=64, batch_size=3, chunk_size=3), 2, progress=False,
              examples=2, resamples=20)
    return root / "atlas"


def _view_script(folder: str, block: str) -> None:
    """The Atlas tab on a page of the demo model and one shapes image (what the explorer gives a view)."""
    import numpy as np
    import streamlit as st

    from glmix_viz.app.tabs import atlas as view
    from glmix_viz.atlas.read import open_atlas
    from glmix_viz.errors import GlmixVizError
    from glmix_viz.images import load_image
    from glmix_viz.models.loading import load_model
    from glmix_viz.open import demo_checkpoint
    from glmix_viz.slots.explore import explore_image

    st.session_state.setdefault("atlas_folder", folder)
    try:
        image = load_image(open_atlas(folder).image_path(0))
    except GlmixVizError:
        image = np.zeros((64, 64, 3), np.uint8)
    model = load_model(demo_checkpoint(), device="cpu")
    page = view.Page(model=type("M", (), {"key": "demo", "ref": "demo"})(), image=None, resolution=64,
                     exploration=explore_image(model, image, input_size=64), block=block)
    view.draw(page)


def test_atlas_view_shows_concepts_regions_slots_and_map(small_atlas: Path, monkeypatch) -> None:
    monkeypatch.setenv("GLMIX_ATLAS", str(small_atlas))
    at = AppTest.from_function(_view_script, args=(str(small_atlas), BLOCK), default_timeout=120).run()
    assert not at.exception, [e.value for e in at.exception]
    assert [s.value for s in at.subheader][:1] == ["Concepts"]
    concept = at.selectbox(key=f"atlas_concept::{BLOCK}")
    assert [option.split(":")[0] for option in concept.options] == ["concept 0", "concept 1"]
    table = at.dataframe[0].value
    assert list(table.columns) == ["slot", "share of pixels", "concept", "distance to its centre (unit-feature L2)"]
    assert table["concept"].str.startswith("concept ").all()
    assert at.radio(key="atlas_color_by").options == ["concept", "class"]
    assert len(at.button) == 2  # "Open" under each of the concept's two typical regions


def test_atlas_view_without_an_atlas_says_how_to_make_one(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GLMIX_RUNS", str(tmp_path))  # a folder of the app, without an atlas
    at = AppTest.from_function(_view_script, args=(str(tmp_path), BLOCK), default_timeout=120).run()
    assert not at.exception
    assert any("no atlas.json" in e.value for e in at.error)
    assert any("glmix-viz atlas" in i.value for i in at.info)


def test_atlas_folders_outside_the_app_folders_are_refused_alike(small_atlas: Path, tmp_path: Path,
                                                                  monkeypatch) -> None:
    """A visitor learns nothing of the server's folders: outside the app's folders an existing folder, a missing one
    and a path with '..' get the same words; inside, a relative path is taken from the app's folder."""
    monkeypatch.setenv("GLMIX_RUNS", str(small_atlas.parent))
    answers = []
    for typed in ("/etc", "/no/such/folder", "../../../etc", f"{small_atlas}/../../.."):
        at = AppTest.from_function(_view_script, args=(typed, BLOCK), default_timeout=120).run()
        assert not at.exception
        answers.append([e.value.replace(typed[:80], "TYPED") for e in at.error])
    assert all(answer == answers[0] for answer in answers) and len(answers[0]) == 1
    assert "only inside its folders" in answers[0][0] and "/etc" not in at.text_input(key="atlas_folder").placeholder
    inside = AppTest.from_function(_view_script, args=(small_atlas.name, BLOCK), default_timeout=120).run()
    assert not inside.exception and not inside.error and "Concepts" in [s.value for s in inside.subheader]


def test_explorer_opens_a_typical_region_at_its_block_with_its_slot(small_atlas: Path, monkeypatch) -> None:
    app = str(Path(__file__).resolve().parents[1] / "app" / "main.py")
    monkeypatch.setenv("GLMIX_ATLAS", str(small_atlas))
    at = AppTest.from_file(app, default_timeout=180)
    at.query_params["page"] = "atlas"  # the atlas is a page of its own
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Concepts" in [s.value for s in at.subheader]
    at.button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    link = at.query_params
    assert link["tab"] == "slot" and link["block"] == BLOCK and link["image"].startswith("upload:")
    assert at.radio(key="image_source").value == "Upload"
    assert at.session_state["view"] == "Slot & pixel"
    slot = [s for s in at.selectbox if s.key and s.key.startswith("slot::") and s.key.endswith(BLOCK)]
    assert slot and slot[0].value == int(link["slot"])
    assert [s.value for s in at.select_slider if s.key and s.key.startswith("block::")] == [BLOCK]
