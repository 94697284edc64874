"""Modules that compute import no plotting or app library: each is imported alone, in a fresh process.

A grouping score or a pseudo-label run on a headless cluster node should not pay for (or depend on) plotly,
matplotlib or streamlit; resizing maps, for instance, lives in :mod:`glmix_viz.slots.resize`, not with the pictures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ("plotly", "matplotlib", "streamlit")
COMPUTING_MODULES = [
    "glmix_viz",
    "glmix_viz.cli",  # every command module, as `glmix-viz pseudo-label ...` on a headless node loads them
    "glmix_viz.pseudo",
    "glmix_viz.probe",
    "glmix_viz.grouping",
    "glmix_viz.slots",
    "glmix_viz.slots.explore",
    "glmix_viz.slots.usage",
    "glmix_viz.slots.resize",
    "glmix_viz.pseudo.scores",
    "glmix_viz.crf",
    "glmix_viz.pseudo.pipeline",
    "glmix_viz.evaluate",
    "glmix_viz.runs",
    "glmix_viz.scoring.segmentation",
    "glmix_viz.runtime.distributed",
    "glmix_viz.runtime.jobs",
    "glmix_viz.runtime.optim",
    "glmix_viz.runtime.resume",
    "glmix_viz.train",
    "glmix_viz.data",
    "glmix_viz.data.voc",
    "glmix_viz.data.shapes",
    "glmix_viz.files",
    "glmix_viz.images",
    "glmix_viz.models",
    "glmix_viz.models.loading",
    "glmix_viz.models.info",
    "glmix_viz.checkpoints",
    "glmix_viz.labels",
    "glmix_viz.safe_pickle",
    "glmix_viz.open",
    "glmix_viz.slots.medoids",
    "glmix_viz.slots.compare",
    "glmix_viz.heldout",
]

# One interpreter loads only the heavy third-party libraries that computing is allowed to use (torch, timm, numpy),
# then forks one child per module: every child starts with no glmix_viz module loaded and imports just its own.
# Forking saves re-importing torch twenty times (minutes on a busy 2-core machine) and changes nothing that is checked.
PROBE = """
import json, os, sys
import numpy, torch, timm  # noqa: F401
forbidden = set(sys.argv[1].split(","))
def loaded():
    return sorted(name for name in sys.modules if name.split(".")[0] in forbidden)
results = {"<preloaded>": loaded()}
for module in sys.argv[2:]:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        try:
            __import__(module)
            answer = {"imported": loaded()}
        except BaseException as error:
            answer = {"error": f"{type(error).__name__}: {error}"}
        os.write(write_end, json.dumps(answer).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as stream:
        results[module] = json.loads(stream.read() or '{"error": "the child died"}')
    os.waitpid(pid, 0)
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def imports() -> dict:
    """Module -> ``{"imported": [forbidden modules it loaded]}`` or ``{"error": ...}``, one fresh child each."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    modules = [*COMPUTING_MODULES, "glmix_viz.figures"]
    result = subprocess.run([sys.executable, "-c", PROBE, ",".join(FORBIDDEN), *modules], capture_output=True,
                            text=True, env=env, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _imported(imports: dict, module: str) -> list:
    answer = imports[module]
    assert "error" not in answer, f"import {module} failed: {answer['error']}"
    return answer["imported"]


def test_the_heavy_libraries_import_no_plotting_library(imports: dict) -> None:
    assert imports["<preloaded>"] == []


def test_the_probe_sees_a_plotting_import(imports: dict) -> None:
    """The check itself works: the module that draws figures brings plotly in."""
    assert "plotly" in _imported(imports, "glmix_viz.figures")


@pytest.mark.parametrize("module", COMPUTING_MODULES)
def test_computing_module_imports_no_plotting_or_app_library(imports: dict, module: str) -> None:
    imported = _imported(imports, module)
    assert imported == [], f"{module} imports {', '.join(imported)} at import time"
