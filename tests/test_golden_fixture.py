"""The golden fixture skips, saying why, where ``../shared/golden`` is absent, and fails instead when ``CI=true``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import importlib.util

import pytest

ROOT = Path(__file__).resolve().parents[1]

# tests/conftest.py by its path: a plain `import conftest` may find tests/e2e/conftest.py first in a whole-suite run
_spec = importlib.util.spec_from_file_location("_tests_conftest", Path(__file__).with_name("conftest.py"))
_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_conftest)
in_ci, require_golden = _conftest.in_ci, _conftest.require_golden


def test_ci_is_read_from_the_environment():
    assert in_ci({"CI": "true"}) and in_ci({"CI": "1"}) and in_ci({"CI": " True "})
    assert not in_ci({}) and not in_ci({"CI": ""}) and not in_ci({"CI": "false"}) and not in_ci({"CI": "0"})


def test_a_missing_reference_skips_with_the_reason_outside_ci(tmp_path):
    with pytest.raises(pytest.skip.Exception, match=f"golden reference not found at {tmp_path}"):
        require_golden(tmp_path, ci=False)


def test_a_missing_reference_fails_in_ci(tmp_path):
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        require_golden(tmp_path, ci=True)


def test_a_present_reference_is_used_in_and_out_of_ci(tmp_path):
    (tmp_path / "golden_meta.json").write_text("{}")
    assert require_golden(tmp_path, ci=True) == tmp_path == require_golden(tmp_path, ci=False)


@pytest.mark.parametrize("ci, outcome", [("true", "1 error"), ("", "1 skipped")])
def test_the_golden_tests_fail_in_ci_and_skip_elsewhere(tmp_path, ci, outcome):
    env = dict(os.environ, CI=ci, GLMIX_GOLDEN=str(tmp_path / "absent"),
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
                             "tests/test_models_golden.py::test_tiny_a_stage_features_match_golden"],
                            capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert outcome in result.stdout, result.stdout[-2000:]
    assert (result.returncode != 0) == (ci == "true")
    assert "golden reference not found" in result.stdout
