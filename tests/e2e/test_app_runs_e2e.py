"""The run browser in a real browser: from a run's table of images to the grouping tabs, and back by a copied link.

``streamlit run app/main.py -- --runs DIR`` headless on the real pseudo-label runs of the ``run_tree`` fixture, driven by
Playwright in the system Chromium (as ``test_app_e2e.py``; skipped with a reason where either is missing).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest
from appserver import CHROMIUM, serve_app

pytest.importorskip("playwright", reason="Playwright is not installed (pip install pytest-playwright)")


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (scripts/setup.sh --with-browser)"),
]


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: Dict[str, Any]) -> Dict[str, Any]:
    return {**browser_context_args, "viewport": {"width": 1400, "height": 1200}}


@pytest.fixture(scope="module")
def runs_server(run_tree: Dict[str, Path]) -> Iterator[str]:
    """The app served with ``--runs`` on the fixture's run folders; yields its address."""
    with serve_app(["--runs", str(run_tree["runs"])]) as (url, _):
        yield url


def _choose(page: Any, label: str, option: str) -> None:
    """Pick ``option`` in the Streamlit selectbox labelled ``label``."""
    page.get_by_label(label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()


def _idle(page: Any, timeout: float = 120.0) -> None:
    """Wait until Streamlit has finished the run (no running indicator twice in a row)."""
    deadline, quiet = time.monotonic() + timeout, 0
    while quiet < 2 and time.monotonic() < deadline:
        running = page.locator('[data-testid="stStatusWidgetRunningIcon"], [data-testid="stSkeleton"]').count()
        quiet = quiet + 1 if running == 0 else 0
        page.wait_for_timeout(500)


def _no_exception(page: Any) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0


def test_from_the_table_to_the_grouping_tabs_and_back_by_a_copied_link(runs_server: str, page: Any,
                                                                      browser: Any) -> None:
    page.goto(runs_server + "/?page=runs&run=slot_pool")
    page.get_by_text("error map", exact=True).wait_for(timeout=180_000)
    _no_exception(page)
    _choose(page, "Image", "val_000003")
    page.get_by_text("image · val_000003", exact=True).wait_for(timeout=120_000)
    _idle(page)
    page.get_by_role("button", name=re.compile("Open in the grouping tabs")).click()
    caption = page.get_by_text(re.compile(r"^Hard grouping of #\d+ ")).first
    caption.wait_for(timeout=180_000)
    _no_exception(page)
    assert "val_000003 (run slot_pool)" in page.get_by_text(re.compile(r"^Model ")).first.inner_text()
    link = page.url
    assert "run=slot_pool" in link and "image_id=val_000003" in link and "tab=groupings" in link, link

    again = browser.new_context(viewport={"width": 1400, "height": 1200}).new_page()
    again.goto(link)
    again.get_by_text(re.compile(r"^Hard grouping of #\d+ ")).first.wait_for(timeout=180_000)
    _no_exception(again)
    assert "val_000003" in again.get_by_text(re.compile(r"^Model ")).first.inner_text()
    assert again.get_by_text(re.compile(r"^Hard grouping of #\d+ ")).first.inner_text() == caption.inner_text()

    _idle(again)
    again.get_by_role("button", name=re.compile("Back to the run")).click()  # and back to the run browser
    again.get_by_text("image · val_000003", exact=True).wait_for(timeout=180_000)
    _no_exception(again)
    assert "page=runs" in again.url and "image_id=val_000003" in again.url
