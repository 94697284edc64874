"""The README's screenshot of the explorer's run browser, made with Playwright on two real pseudo-label runs.

    python scripts/run_browser_screenshot.py [--work DIR] [--out docs/run_browser.png]

Makes a small shapes set (24 evaluation images of 128 pixels, seed 2024), pseudo-labels it with the bundled demo model
by two methods (``slot_pool`` and ``cam``, dense CRF on), evaluates both, starts ``streamlit run app/main.py -- --runs
WORK/runs`` headless and photographs the run browser in the system Chromium (``/usr/bin/chromium``; nothing is
downloaded). About two minutes on two CPU cores.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from glmix_viz.cli import main as glmix_viz  # noqa: E402
from glmix_viz.data.shapes import ShapesConfig, make_shapes  # noqa: E402
from glmix_viz.figures import save_figure  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
METHODS = ("slot_pool", "cam")


def make_runs(work: Path) -> Path:
    """The data set and the two evaluated runs (reused when they are there)."""
    data, runs = work / "shapes", work / "runs"
    if not (data / "ImageSets").is_dir():
        make_shapes(data, ShapesConfig(image_size=128), num_train=1, num_val=24, seed=2024, progress=False)
    for method in METHODS:
        out = runs / method
        if not (out / "eval.json").is_file():
            for command in (["pseudo-label", "--voc-root", str(data), "--split", "val", "--method", method, "--out",
                             str(out), "--workers", "1", "--no-progress"],
                            ["evaluate", "--voc-root", str(data), "--split", "val", "--pred", str(out),
                             "--no-progress"]):
                if glmix_viz(command) != 0:
                    raise SystemExit(f"glmix-viz {command[0]} failed")
    return runs


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(runs: Path) -> tuple[subprocess.Popen, str]:
    """``streamlit run app/main.py -- --runs RUNS`` headless; returns the process and its address once healthy."""
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / "main.py"), "--server.headless", "true",
         "--server.port", str(port), "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
         "--", "--runs", str(runs)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2):
                return process, url
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.5)


def photograph(url: str, out: Path) -> None:
    """Open the run browser on the first run, wait for its pictures, save the page."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1400, "height": 1500})
        page.goto(url + "/?page=runs&run=cam")  # a link that opens the run browser on one run
        page.get_by_text("error map", exact=True).wait_for(timeout=180_000)
        page.wait_for_timeout(3000)
        shot = Path(tempfile.mkdtemp()) / "page.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    from PIL import Image
    import numpy as np

    with Image.open(shot) as picture:
        save_figure(np.asarray(picture.convert("RGB")), out, max_bytes=400_000)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "glmix-run-browser")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "run_browser.png")
    args = parser.parse_args()
    runs = make_runs(args.work)
    process, url = serve(runs)
    try:
        photograph(url, args.out)
    finally:
        process.terminate()
        process.wait(timeout=20)
    print(f"screenshot written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
