"""The explorer served headless for the browser tests: which Chromium drives them, and one way to start the app.

Imported by the end-to-end test modules of this folder (pytest puts the folder on the path); ``conftest.py`` points
pytest-playwright at :data:`CHROMIUM` with :data:`CHROMIUM_ARGS`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import IO, Iterator, Mapping, Optional, Sequence, Tuple, Union

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = next((path for path in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser"))
                 if path and os.path.exists(path)), None)
"""Debian's Chromium (Playwright never downloads a browser here); ``None`` where it is not installed."""
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float) -> bytes:
    """The body of ``url`` once it answers; the last connection error after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


@contextlib.contextmanager
def serve_app(app_args: Sequence[str] = (), *, env: Optional[Mapping[str, str]] = None,
              stderr: Union[int, IO, None] = subprocess.DEVNULL,
              timeout: float = 90.0) -> Iterator[Tuple[str, subprocess.Popen]]:
    """``streamlit run app/main.py -- APP_ARGS`` on a free port of this checkout; yields (its URL, the process) once
    it is healthy and stops it afterwards.

    Args:
        app_args: the explorer's own options (``--runs DIR``, ``--atlas DIR``).
        env: extra environment variables for the server.
        stderr: where the server's standard error goes (a file to read its log).
        timeout: seconds to wait for the server's health check.
    """
    port = free_port()
    paths = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    server_env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=paths, **dict(env or {}))
    command = [sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / "main.py"), "--server.headless", "true",
               "--server.port", str(port), "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
    if app_args:
        command += ["--", *app_args]
    process = subprocess.Popen(command, cwd=ROOT, env=server_env, stdout=subprocess.DEVNULL, stderr=stderr)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/_stcore/health", timeout=timeout)
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
