"""Links in a real browser (issue 26): a wrong parameter is one visible warning, "Copy link" gives the page's full
address (which reopens the view), and the run browser and atlas are pages of the sidebar's navigation.

``streamlit run app/main.py`` headless, driven by Playwright in the system Chromium (skipped where either is missing).
"""

from __future__ import annotations

import re
import time
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
def server(tmp_path_factory) -> Iterator[str]:
    with serve_app(env={"GLMIX_UPLOADS": str(tmp_path_factory.mktemp("uploads"))}) as (url, _):
        yield url


def _idle(page: Any, timeout: float = 120.0) -> None:
    deadline, quiet = time.monotonic() + timeout, 0
    while quiet < 3 and time.monotonic() < deadline:
        running = page.locator('[data-testid="stStatusWidgetRunningIcon"], [data-testid="stSkeleton"]').count()
        quiet = quiet + 1 if running == 0 else 0
        page.wait_for_timeout(400)


def test_a_wrong_block_is_one_warning_and_copy_link_reopens_the_view(server: str, page: Any, browser: Any) -> None:
    page.goto(server + "/?block=stages.9.blocks.9&tab=slot")
    warning = page.locator('[data-testid="stAlert"]', has_text="link: block=stages.9.blocks.9 is not a GLMix block")
    warning.first.wait_for(timeout=120_000)
    _idle(page)
    assert warning.count() == 1 and page.locator('[data-testid="stException"]').count() == 0
    assert page.locator('[data-testid="stAlert"]', has_text="link:").count() == 1

    page.get_by_role("button", name=re.compile("Copy link")).click()
    code = page.locator('[data-testid="stCode"]').first
    code.wait_for(timeout=30_000)
    address = code.inner_text().strip()
    assert address.startswith(server + "/") and "tab=slot" in address and "block=stages.0.blocks.0" in address, \
        address

    again = browser.new_context(viewport={"width": 1400, "height": 1200}).new_page()
    again.goto(address)
    again.get_by_text(re.compile(r"^Slot \d+'s dispatch weight at every pixel")).wait_for(timeout=120_000)
    _idle(again)
    assert again.locator('[data-testid="stAlert"]', has_text="link:").count() == 0  # no warning
    again.context.close()


def test_the_run_browser_and_the_atlas_are_pages_of_the_navigation(server: str, page: Any) -> None:
    page.goto(server)
    page.get_by_role("link", name="Runs").click(timeout=120_000)
    page.get_by_text("No runs folder", exact=False).wait_for(timeout=60_000)
    assert page.url.split("?")[0].endswith("/runs")
    page.get_by_role("link", name="Atlas").click()
    page.get_by_role("heading", name="Slot atlas").wait_for(timeout=120_000)
    # the page writes its link (page=atlas) after it has drawn: wait for the address instead of reading it at once
    page.wait_for_url(lambda url: "page=atlas" in url, timeout=60_000)
    assert page.url.split("?")[0].endswith("/atlas")
    assert page.locator('[data-testid="stException"]').count() == 0
