"""Server memory when visitors open large-model links one after another (issue 26): with the app's default model
cache, four large random-weight models opened in turn (each link in a new AppTest session, in a fresh process)
leave the process's resident memory at most the baseline plus the largest model (and 64 MiB of slack for activations
and result caches); without the bound it grows by all four. ``bench/app_memory.py`` is the measurement; its full run
writes ``bench/results/app_memory.json`` and the table of ``docs/explorer.md``."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("app_memory", ROOT / "bench" / "app_memory.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_four_large_model_links_leave_the_baseline_plus_the_largest_model() -> None:
    bench = _bench()
    result = bench.run_config("bounded", list(bench.LARGE))
    largest = result["largest_model_mib"]
    assert largest > 100  # large enough that holding two would break the bound
    assert [step["models_held"] for step in result["steps"]][-1] <= 2  # the demo (7 MiB) and the last one at most
    assert result["final_rss_mib"] <= result["baseline_rss_mib"] + largest + bench.SLACK_MIB, result
    assert result["within_baseline_plus_largest"]


def test_the_recorded_measurement_backs_the_claim_in_the_docs() -> None:
    recorded = json.loads((ROOT / "bench" / "results" / "app_memory.json").read_text())
    bounded, unbounded = recorded["configurations"]["bounded"], recorded["configurations"]["unbounded"]
    assert bounded["within_baseline_plus_largest"] and not unbounded["within_baseline_plus_largest"]
    docs = (ROOT / "docs" / "explorer.md").read_text()
    bench = _bench()
    assert bench.docs_table(recorded) in docs, "docs/explorer.md differs from bench/results/app_memory.json: " \
                                               "run python bench/app_memory.py --docs docs/explorer.md"
