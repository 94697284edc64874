"""Execute the figure notebooks top to bottom with chosen parameters, from the repository root.

    python notebooks/run_notebooks.py                          # all notebooks, full setting -> notebooks/figures
    python notebooks/run_notebooks.py 03 --small --out /tmp/f  # one notebook at its smallest setting
    python notebooks/run_notebooks.py 01 --set CHECKPOINT='"glnet_4g.pth"' --save-executed /tmp/executed

Each notebook's first code cell is tagged ``parameters``; values given here are appended to that cell, so they
override its defaults. The kernel is the Python running this script (checked inside the kernel). Executed copies
are written only when asked (``--save-executed``): the committed notebooks carry no outputs.
"""

from __future__ import annotations

import argparse
import ast
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = REPO / "notebooks"

__all__ = ["NOTEBOOKS_DIR", "REPO", "execute_notebook", "find_notebooks", "set_parameters"]


def find_notebooks(selectors: Sequence[str] = ()) -> List[Path]:
    """The notebooks of ``notebooks/`` in order; with ``selectors``, those whose name starts with one of them."""
    found = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
    if selectors:
        found = [path for path in found if any(path.name.startswith(selector) for selector in selectors)]
    return found


def set_parameters(notebook: nbformat.NotebookNode, values: Mapping[str, Any]) -> nbformat.NotebookNode:
    """Override assignments of the cell tagged ``parameters`` (in place; also returns the notebook).

    Raises:
        ValueError: the notebook has no ``parameters`` cell, or a value names no parameter of it.
    """
    for cell in notebook.cells:
        if cell.cell_type == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            known = {target.id for node in ast.parse(cell.source).body if isinstance(node, ast.Assign)
                     for target in node.targets if isinstance(target, ast.Name)}
            unknown = sorted(set(values) - known)
            if unknown:
                raise ValueError(f"no parameter(s) {unknown} in the parameters cell; known: {sorted(known)}")
            lines = [f"{name} = {value!r}" for name, value in values.items()]
            cell.source = cell.source.rstrip("\n") + "\n# overridden by run_notebooks.py\n" + "\n".join(lines) + "\n"
            return notebook
    raise ValueError("the notebook has no code cell tagged 'parameters'")


def execute_notebook(
    path: Path,
    parameters: Optional[Mapping[str, Any]] = None,
    *,
    timeout: int = 600,
    save_executed: Optional[Path] = None,
) -> nbformat.NotebookNode:
    """Run one notebook in a fresh kernel of this Python, working directory the repository root.

    Args:
        path: the ``.ipynb``.
        parameters: overrides of its parameters cell.
        timeout: seconds allowed per cell.
        save_executed: a folder to write the executed notebook (with outputs) to.

    Returns:
        The executed notebook.

    Raises:
        nbclient.exceptions.CellExecutionError: a cell failed (the message holds the traceback).
    """
    notebook = nbformat.read(str(path), as_version=4)
    set_parameters(notebook, dict(parameters or {}))
    check = nbformat.v4.new_code_cell(
        f"import sys\nassert sys.prefix == {sys.prefix!r}, f'kernel runs {{sys.executable}}, not this environment'"
    )
    notebook.cells.insert(0, check)
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(REPO)}})
    client.execute()
    notebook.cells.pop(0)
    if save_executed is not None:
        save_executed.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, str(save_executed / path.name))
    return notebook


def _parse_value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="name prefixes, e.g. 01 03 (default: all)")
    parser.add_argument("--small", action="store_true", help="SMALL = True (seconds per notebook)")
    parser.add_argument("--out", help="OUT_DIR for the figures (default: the notebooks' own, notebooks/figures)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override a parameter (a Python literal), e.g. DEVICE='\"cuda\"'")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds allowed per cell")
    parser.add_argument("--save-executed", type=Path, help="folder for the executed notebooks (with outputs)")
    args = parser.parse_args(argv)
    values: Dict[str, Any] = {}
    if args.small:
        values["SMALL"] = True
    if args.out:
        values["OUT_DIR"] = args.out
    for item in args.set:
        name, _, value = item.partition("=")
        values[name.strip()] = _parse_value(value)
    paths = find_notebooks(args.notebooks)
    if not paths:
        print(f"no notebook matches {args.notebooks}", file=sys.stderr)
        return 2
    for path in paths:
        start = time.perf_counter()
        execute_notebook(path, values, timeout=args.timeout, save_executed=args.save_executed)
        print(f"{path.name}: done in {time.perf_counter() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
