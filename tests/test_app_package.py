"""The explorer ships with the package: build the wheel, install it into a fresh environment, start ``glmix-viz app``.

The fresh environment is a new ``venv`` whose own site-packages receives the wheel (``pip install --no-deps``); the
big dependencies (torch, streamlit, ...) are borrowed from the interpreter running the tests through one ``.pth``
line, so nothing is downloaded or reinstalled. A path listed in a ``.pth`` file is only appended to ``sys.path`` (its
own ``.pth`` files are not run), so the editable install of the development environment stays out, and the test
checks that ``glmix_viz`` is imported from the fresh environment. Everything runs outside the checkout, with
``PYTHONPATH`` unset.
"""

from __future__ import annotations

import os
import shutil
import site
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path
from typing import Dict, Iterator

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(command: list, env: Dict[str, str], cwd: Path, timeout: float = 300) -> str:
    result = subprocess.run([str(part) for part in command], env=env, cwd=cwd, capture_output=True, text=True,
                            timeout=timeout)
    shown = " ".join(map(str, command))
    assert result.returncode == 0, f"{shown} failed:\n{result.stdout[-1500:]}{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dict[str, object]]:
    """A fresh venv with the project's wheel installed; yields its paths and a clean environment."""
    work = tmp_path_factory.mktemp("package")
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "glmix_viz", source / "glmix_viz", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONNOUSERSITE"] = "1"
    wheels = work / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", wheels, source],
         env, work)
    (wheel,) = wheels.glob("glmix_viz-*.whl")
    venv = work / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], env, work)
    python = venv / "bin" / "python"
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    fresh_site = Path(_run([python, "-c", purelib], env, work).strip())
    borrowed = [path for path in site.getsitepackages() if Path(path).is_dir()] or [sysconfig.get_paths()["purelib"]]
    (fresh_site / "_borrowed_dependencies.pth").write_text("\n".join(borrowed) + "\n")
    _run([python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", wheel], env, work)
    yield {"venv": venv, "python": python, "site": fresh_site, "wheel": wheel, "env": env, "cwd": work}


def test_the_wheel_holds_the_app_and_the_demo_model(installed: Dict[str, object]) -> None:
    import zipfile

    names = set(zipfile.ZipFile(installed["wheel"]).namelist())
    for member in ("glmix_viz/app/main.py", "glmix_viz/app/data.py", "glmix_viz/app/views.py",
                   "glmix_viz/app/streamlit_config.toml", "glmix_viz/commands/app.py",
                   "glmix_viz/assets/demo/glnet_tiny_shapes.safetensors"):
        assert member in names, f"{member} is not in the wheel"


def test_the_installed_package_is_the_one_imported(installed: Dict[str, object]) -> None:
    where = _run([installed["python"], "-c", "import glmix_viz.app as a; print(a.MAIN_SCRIPT)"], installed["env"],
                 installed["cwd"]).strip()
    assert Path(where).is_relative_to(installed["site"]), where
    assert (installed["venv"] / "bin" / "glmix-viz").is_file()


def test_the_installed_app_renders_the_demo_model(installed: Dict[str, object]) -> None:
    """The page itself, run from the installed copy (AppTest, no server): title, the demo model, a grouping."""
    script = (
        "from streamlit.testing.v1 import AppTest\n"
        "from glmix_viz.app import MAIN_SCRIPT\n"
        "at = AppTest.from_file(str(MAIN_SCRIPT), default_timeout=120).run()\n"
        "assert not at.exception, [e.value for e in at.exception]\n"
        "import json\n"
        "groupings = sum(c.startswith('Hard grouping of') for i in at.image for c in i.captions)\n"
        "print(json.dumps({'title': at.title[0].value, 'caption': at.caption[0].value, 'groupings': groupings}))\n"
    )
    import json

    page = json.loads(_run([installed["python"], "-c", script], installed["env"], installed["cwd"]).splitlines()[-1])
    assert page["title"] == "GLMix explorer"
    assert "demo model glnet_tiny_shapes.safetensors" in page["caption"]
    assert page["groupings"] >= 1


def test_glmix_viz_app_serves_from_the_installed_package(installed: Dict[str, object]) -> None:
    port = _free_port()
    checkpoints = Path(installed["cwd"]) / "checkpoints"
    checkpoints.mkdir(exist_ok=True)
    command = [str(installed["venv"] / "bin" / "glmix-viz"), "app", "--checkpoints", str(checkpoints), "--",
               "--server.headless", "true", "--server.port", str(port), "--server.fileWatcherType", "none"]
    process = subprocess.Popen(command, env=installed["env"], cwd=installed["cwd"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        deadline, body = time.monotonic() + 120, None
        while body is None and time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as response:
                    body = response.read().decode()
            except OSError:
                time.sleep(0.5)
        assert process.poll() is None, f"glmix-viz app exited with {process.returncode}: {process.stdout.read()}"
        assert body == "ok", "the app did not answer on /_stcore/health within 120 s"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
            assert b"<html" in response.read().lower()
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_glmix_viz_app_refuses_a_missing_checkpoint_folder(installed: Dict[str, object], tmp_path: Path) -> None:
    result = subprocess.run([str(installed["venv"] / "bin" / "glmix-viz"), "app", "--checkpoints", tmp_path / "nope"],
                            env=installed["env"], cwd=installed["cwd"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    expected = f"glmix-viz app: error: --checkpoints {tmp_path / 'nope'}: no such folder"
    assert result.stderr.strip().splitlines()[-1] == expected
