"""End to end: ``streamlit run app/main.py`` headless, opened in Debian's Chromium, screenshot, no exception box.

Streamlit draws the page with JavaScript over a websocket, so a one-shot ``chromium --screenshot`` catches only the
loading skeleton (``--virtual-time-budget`` does not wait for websocket traffic). The test therefore drives the same
headless Chromium through its DevTools protocol: it loads the page, polls the DOM until the app has rendered (title
present, a grouping image shown, no script running) and then takes the screenshot and the DOM.

Set ``GLMIX_E2E_SCREENSHOTS=<folder>`` to keep the screenshots (one per tab); otherwise they go to pytest's tmp_path.
Skipped with a reason where ``chromium`` is not on PATH (``.ci/run`` installs it: ``apt-get install -y chromium``).
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest

ROOT = Path(__file__).resolve().parents[1]
TITLE = "GLMix explorer"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not on PATH (apt-get install -y chromium)")

# What the page looks like, read from the DOM: Streamlit's test ids for exceptions, images and its running widget.
PAGE_STATE_JS = """JSON.stringify({
  title: Array.from(document.querySelectorAll('h1')).some(h => h.innerText.includes(%r)),
  images: document.querySelectorAll('[data-testid="stImage"] img, [data-testid="stFullScreenFrame"] img').length,
  plots: document.querySelectorAll('.js-plotly-plot').length,
  exceptions: document.querySelectorAll('[data-testid="stException"]').length,
  running: document.querySelectorAll('[data-testid="stStatusWidgetRunningIcon"], [data-testid="stSkeleton"]').length
})""" % TITLE


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_http(url: str, timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


class DevTools:
    """A minimal Chrome DevTools protocol client over one page's websocket."""

    def __init__(self, socket: Any) -> None:
        self._socket = socket
        self._ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> Dict[str, Any]:
        message_id = next(self._ids)
        self._socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self._socket.recv(timeout=60))
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=False)["data"]
        path.write_bytes(base64.b64decode(data))


def wait_rendered(tools: DevTools, timeout: float = 90.0, min_images: int = 1) -> Dict[str, Any]:
    """Poll the page until the app is rendered and idle (two equal readings in a row); return the last reading."""
    deadline = time.monotonic() + timeout
    previous = None
    while time.monotonic() < deadline:
        state = json.loads(tools.evaluate(PAGE_STATE_JS) or "{}")
        done = state.get("exceptions") or (state.get("title") and state.get("images", 0) >= min_images
                                           and not state.get("running"))
        if done and state == previous:
            return state
        previous = state if done else None
        time.sleep(0.7)
    raise AssertionError(f"the page did not finish rendering in {timeout:.0f} s; last state {previous}")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    port = _free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / "main.py"), "--server.headless", "true",
         "--server.port", str(port), "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(url + "/_stcore/health", timeout=60)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevTools]:
    port = _free_port()
    profile = tmp_path_factory.mktemp("chromium-profile")
    process = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
         f"--remote-debugging-port={port}", "--window-size=1400,1000", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        from websockets.sync.client import connect

        pages = json.loads(_wait_http(f"http://127.0.0.1:{port}/json/list", timeout=30))
        page = next(entry for entry in pages if entry.get("type") == "page")
        with connect(page["webSocketDebuggerUrl"], max_size=64 * 1024 * 1024, open_timeout=20) as socket:
            tools = DevTools(socket)
            tools.call("Page.enable")
            # A headless page counts as hidden: animations (the sidebar sliding in) would stop half-way without focus.
            tools.call("Page.bringToFront")
            tools.call("Emulation.setFocusEmulationEnabled", enabled=True)
            tools.call("Emulation.setDeviceMetricsOverride", width=1400, height=1000, deviceScaleFactor=1, mobile=False)
            yield tools
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _shots_dir(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("GLMIX_E2E_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_page_renders_without_exception_and_every_tab_opens(server: str, browser: DevTools, tmp_path: Path) -> None:
    shots = _shots_dir(tmp_path)
    browser.call("Page.navigate", url=server)
    state = wait_rendered(browser)
    time.sleep(1.0)  # let the sidebar finish sliding in
    browser.screenshot(shots / "page.png")
    dom = browser.evaluate("document.documentElement.outerHTML")
    assert state["exceptions"] == 0 and 'data-testid="stException"' not in dom, "the page shows an exception box"
    assert TITLE in dom
    assert state["images"] >= 2, state  # the grouping overlay and its legend
    assert (shots / "page.png").stat().st_size > 20_000  # a rendered page, not the blank loading skeleton

    tab_names = browser.evaluate(
        "Array.from(document.querySelectorAll('[data-testid=\"stTab\"]')).map(t => t.innerText)"
    )
    assert tab_names[:2] == ["Groupings", "Across blocks"], tab_names
    for index, name in enumerate(tab_names[1:], start=1):
        browser.evaluate(f"document.querySelectorAll('[data-testid=\"stTab\"]')[{index}].click()")
        time.sleep(0.5)
        state = wait_rendered(browser, min_images=0)
        slug = name.lower().replace(" & ", "_").replace(" ", "_").replace("-", "_")
        browser.screenshot(shots / f"tab_{index}_{slug}.png")
        assert state["exceptions"] == 0, f"tab {name!r} shows an exception box"
