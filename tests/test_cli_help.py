"""``glmix-viz --help`` and every ``glmix-viz COMMAND --help`` answer without importing torch, timm or Streamlit.

Building the parser imports every command module (``glmix_viz.cli.build_parser``), so a command module imports the
library inside ``run()``, not at its top; the few library values an option's help shows come from
:mod:`glmix_viz.commands.library_values`, a copy checked here against the library. ``import glmix_viz`` itself is
lazy (its names load on first use).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import glmix_viz
from glmix_viz.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "timm", "streamlit", "segmentation_models_pytorch", "plotly", "matplotlib")

# In a fresh interpreter: every --help (top level and each command), then the heavy modules loaded, and for each one
# the chain of glmix_viz files that first imported it (so a failure names the import to move into run()).
PROBE = """
import contextlib, io, json, sys, traceback
heavy = set(sys.argv[1].split(","))
first = {}
class Watch:
    def find_spec(self, name, path=None, target=None):
        if name in heavy and name not in first:
            first[name] = [f"{frame.filename}:{frame.lineno}" for frame in traceback.extract_stack()
                           if "glmix_viz" in frame.filename]
        return None
sys.meta_path.insert(0, Watch())
from glmix_viz.cli import COMMANDS, main
codes, texts = {}, {}
for argv in [["--help"]] + [[name, "--help"] for name in COMMANDS]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            main(argv)
        except SystemExit as stop:
            codes[" ".join(argv)] = stop.code
    texts[" ".join(argv)] = out.getvalue()
print(json.dumps({"codes": codes, "texts": texts, "first": first,
                  "loaded": sorted(name for name in heavy if name in sys.modules)}))
"""


@pytest.fixture(scope="module")
def helps() -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, "-c", PROBE, ",".join(HEAVY)], capture_output=True, text=True, env=env,
                            cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_every_help_answers(helps: dict) -> None:
    assert set(helps["codes"]) == {"--help", *(f"{name} --help" for name in COMMANDS)}
    assert all(code == 0 for code in helps["codes"].values()), helps["codes"]
    assert all(name in helps["texts"]["--help"] for name in COMMANDS)
    assert "--method" in helps["texts"]["pseudo-label --help"] and "slot_pool" in helps["texts"]["pseudo-label --help"]


def test_no_help_imports_torch_timm_or_streamlit(helps: dict) -> None:
    chains = {name: " <- ".join(reversed(helps["first"].get(name, []))) for name in helps["loaded"]}
    assert helps["loaded"] == [], f"--help imported {chains}; move those imports into run()"


def test_the_probe_sees_an_import_of_torch(tmp_path) -> None:
    """The check itself works: a parser whose command imports torch at its top is caught."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    code = PROBE.replace("from glmix_viz.cli import COMMANDS, main", "import glmix_viz.models\n"
                         "from glmix_viz.cli import COMMANDS, main")
    result = subprocess.run([sys.executable, "-c", code, ",".join(HEAVY)], capture_output=True, text=True, env=env,
                            cwd=ROOT, timeout=300)
    assert "torch" in json.loads(result.stdout.strip().splitlines()[-1])["loaded"]


def test_the_values_help_shows_are_the_librarys() -> None:
    from glmix_viz.commands.library_values import VALUES
    from glmix_viz.commands.update_values import compute

    assert VALUES == compute(), "the library changed: run `python -m glmix_viz.commands.update_values`"


def test_the_package_loads_its_names_on_first_use() -> None:
    from glmix_viz.models.loading import load_model
    from glmix_viz.probe import GroupingProbe

    assert glmix_viz.load_model is load_model and glmix_viz.GroupingProbe is GroupingProbe
    assert set(glmix_viz.__all__) <= set(dir(glmix_viz))
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        glmix_viz.nothing_here  # noqa: B018
