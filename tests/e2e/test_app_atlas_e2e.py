"""One browser step of the Atlas view: ``streamlit run app/main.py -- --atlas DIR`` headless, driven by Playwright in
the system Chromium (never downloaded): the Atlas tab shows the concepts of the atlas given on the command line, with
no exception box. ("Open" under a typical region is checked through the whole app with AppTest in
tests/test_app_atlas.py.) Skipped where Chromium or Playwright is missing."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest
from appserver import CHROMIUM, serve_app

pytest.importorskip("playwright", reason="Playwright is not installed (pip install pytest-playwright)")

BLOCK = "stages.1.blocks.0"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed; Playwright never downloads a browser here"),
]


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: Dict[str, Any]) -> Dict[str, Any]:
    return {**browser_context_args, "viewport": {"width": 1400, "height": 1000}}


@pytest.fixture(scope="module")
def atlas_server(tmp_path_factory) -> Iterator[str]:
    """A 6-image atlas of the demo model (2 concepts) and the app serving it; yields the URL."""
    from glmix_viz.atlas import AtlasSettings, run_atlas
    from glmix_viz.data.shapes import ShapesConfig, make_shapes
    from glmix_viz.data.voc import VOCDataset
    from glmix_viz.models.loading import load_model
    from glmix_viz.open import demo_checkpoint

    root = tmp_path_factory.mktemp("atlas_e2e")
    make_shapes(root / "shapes", ShapesConfig(image_size=64), num_train=0, num_val=6, seed=13)
    run_atlas(VOCDataset(root / "shapes", "val"), load_model(demo_checkpoint(), device="cpu"), root / "atlas",
              AtlasSettings(blocks=(BLOCK,), input_size=64, batch_size=3, chunk_size=3), 2, progress=False,
              examples=2, resamples=20)
    with serve_app(["--atlas", str(root / "atlas")]) as (url, _):
        yield url


def test_atlas_tab_shows_the_concepts(atlas_server: str, page: Any, tmp_path: Path) -> None:
    page.goto(atlas_server)
    page.get_by_role("link", name="Atlas").click(timeout=120_000)  # a page of the sidebar's navigation
    page.get_by_text("Concepts", exact=True).wait_for(timeout=120_000)
    assert page.get_by_text(re.compile(r"^concept 0: \d+ regions")).count() >= 1
    page.screenshot(path=str(tmp_path / "atlas_tab.png"), full_page=True)
    assert page.locator('[data-testid="stException"]').count() == 0
