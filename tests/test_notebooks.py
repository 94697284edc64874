"""Execute every figure notebook at its smallest setting (nbclient, a kernel of this Python) and check its figures.

The notebooks run from the repository root with ``SMALL = True``, ``OUT_DIR`` a temporary folder and one CPU thread;
any failing cell fails the test. The committed notebooks must carry no outputs.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import nbformat
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
MAX_FIGURE_BYTES = 500_000


def _runner():
    spec = importlib.util.spec_from_file_location("run_notebooks", REPO / "notebooks" / "run_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


run_notebooks = _runner()

EXPECTED_FIGURES = {
    "01_semantic_groupings.ipynb": ["01_paper_style_0.png", "01_paper_style_1.png", "01_groupings_by_block.png",
                                    "01_slot_usage_by_depth.png"],
    "02_pseudo_masks.ipynb": ["02_methods_side_by_side.png", "02_miou.png", "02_failures.png"],
    "03_resolution_scaling.ipynb": ["03_resolution_scaling.png", "03_resolution_scaling.json", "03_slots_tradeoff.png"],
    "04_training_dynamics.ipynb": ["04_groupings_over_epochs.png", "04_training_curves.png"],
    "05_compare_groupings.ipynb": ["05_finetuning_moves_slots.png", "05_segmenter_vs_classifier.png",
                                   "05_agreement_by_block.png", "05_agreement_by_block.json"],
}


def test_every_notebook_is_tested():
    assert sorted(path.name for path in run_notebooks.find_notebooks()) == sorted(EXPECTED_FIGURES)


@pytest.mark.parametrize("name", sorted(EXPECTED_FIGURES))
def test_committed_notebook_has_no_outputs_and_a_parameters_cell(name):
    notebook = nbformat.read(str(REPO / "notebooks" / name), as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code), f"{name} carries outputs"
    assert "parameters" in code[0].metadata.get("tags", []), f"{name}: the first code cell must be tagged parameters"
    assert "SMALL = False" in code[0].source and "OUT_DIR" in code[0].source


def test_set_parameters_overrides_and_refuses_unknown_names():
    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("SMALL = False\nOUT_DIR = 'x'")
    cell.metadata["tags"] = ["parameters"]
    notebook.cells = [cell]
    run_notebooks.set_parameters(notebook, {"SMALL": True})
    namespace: dict = {}
    exec(notebook.cells[0].source, namespace)  # noqa: S102 - the cell is built above
    assert namespace["SMALL"] is True and namespace["OUT_DIR"] == "x"
    with pytest.raises(ValueError, match="NOT_A_PARAMETER"):
        run_notebooks.set_parameters(notebook, {"NOT_A_PARAMETER": 1})


@pytest.mark.parametrize("name", sorted(EXPECTED_FIGURES))
def test_notebook_runs_at_its_smallest_setting_and_writes_its_figures(name, tmp_path):
    path = REPO / "notebooks" / name
    parameters = {"SMALL": True, "OUT_DIR": str(tmp_path / "figures"), "THREADS": 1}
    cells = nbformat.read(str(path), as_version=4).cells
    if any("WORK_DIR" in cell.source for cell in cells if "parameters" in cell.metadata.get("tags", [])):
        parameters["WORK_DIR"] = str(tmp_path / "work")
    run_notebooks.execute_notebook(path, parameters, timeout=180)
    for figure in EXPECTED_FIGURES[name]:
        written = tmp_path / "figures" / figure
        assert written.is_file(), f"{name} did not write {figure}"
        assert written.stat().st_size <= MAX_FIGURE_BYTES, f"{figure} is {written.stat().st_size} bytes"
        if figure.endswith(".png"):
            with Image.open(written) as picture:
                assert picture.format == "PNG" and min(picture.size) >= 64
        else:
            assert json.loads(written.read_text())["rows"]
