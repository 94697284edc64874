"""The house has no import circle: the static graph of glmix_viz's imports of its own modules is acyclic.

The graph is read from the source (AST), not from a running interpreter, so that an import placed inside a function
or at the bottom of a file counts as much as one at the top: both run, sooner or later, and a circle held together
by where an import sits breaks as soon as someone moves it. An edge goes from a module to the most specific module
of the package it names (``from glmix_viz.models import loading`` -> ``glmix_viz.models.loading``;
``from glmix_viz.models.loading import load_model`` -> ``glmix_viz.models.loading``); imports under
``if TYPE_CHECKING:`` never run and do not count. Python also runs a package's ``__init__`` before any module in it;
those implicit edges are left out, as import linters do.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Set

import pytest

PACKAGE = "glmix_viz"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE


def module_files(root: Path = ROOT) -> Dict[str, Path]:
    """Dotted module name -> source file, for every module of the package (``__init__`` as the package itself)."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> Iterator[ast.stmt]:
    """Every import statement, at any depth, except those under ``if TYPE_CHECKING:``."""
    stack: List[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        children = list(ast.iter_child_nodes(node))
        if isinstance(node, ast.If) and _type_checking_only(node):
            children = list(node.orelse)
        stack.extend(children)


def _most_specific(name: str, modules: Set[str]) -> Optional[str]:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imported_modules(module: str, path: Path, modules: Set[str]) -> Set[str]:
    """The package's own modules that ``module`` imports, anywhere in its source."""
    is_package = path.name == "__init__.py"
    found: Set[str] = set()
    for node in _imports(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{alias.name}" for alias in node.names]
        for name in names:
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                target = _most_specific(name, modules)
                if target is not None and target != module:
                    found.add(target)
    return found


def import_graph(root: Path = ROOT) -> Dict[str, Set[str]]:
    """Module -> the package's modules it imports."""
    files = module_files(root)
    return {module: imported_modules(module, path, set(files)) for module, path in files.items()}


def find_cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """The strongly connected components with more than one module (Tarjan), each as a sorted list."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    on_stack: Set[str] = set()
    stack: List[str] = []
    components: List[List[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def floors(graph: Dict[str, Set[str]]) -> Dict[str, int]:
    """Floor of each module of an acyclic graph: 0 for a leaf, else one above the highest module it imports."""
    level: Dict[str, int] = {}

    def height(node: str) -> int:
        if node not in level:
            level[node] = 1 + max((height(target) for target in graph[node]), default=-1)
        return level[node]

    for node in graph:
        height(node)
    return level


def test_the_graph_is_read_from_every_kind_of_import(tmp_path: Path) -> None:
    """The reader itself: top-level, in-function, relative and package imports count; TYPE_CHECKING ones do not."""
    package = tmp_path / PACKAGE
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from glmix_viz.a import f\n")
    (package / "a.py").write_text("def f():\n    from glmix_viz.sub import b\n")
    (package / "sub" / "__init__.py").write_text("from . import b\n")
    (package / "sub" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nfrom ..c import thing\nif TYPE_CHECKING:\n    from glmix_viz import a\n")
    (package / "c.py").write_text("import os\nthing = os.sep\n")
    graph = import_graph(package)
    assert graph == {"glmix_viz": {"glmix_viz.a"}, "glmix_viz.a": {"glmix_viz.sub.b"},
                     "glmix_viz.sub": {"glmix_viz.sub.b"}, "glmix_viz.sub.b": {"glmix_viz.c"}, "glmix_viz.c": set()}
    assert find_cycles(graph) == []
    assert floors(graph) == {"glmix_viz.c": 0, "glmix_viz.sub.b": 1, "glmix_viz.sub": 2, "glmix_viz.a": 2,
                             "glmix_viz": 3}
    (package / "c.py").write_text("def late():\n    import glmix_viz.a\n")  # an import inside a function closes it
    assert find_cycles(import_graph(package)) == [["glmix_viz.a", "glmix_viz.c", "glmix_viz.sub.b"]]


def test_glmix_viz_has_no_import_cycle() -> None:
    graph = import_graph()
    assert len(graph) > 50 and graph["glmix_viz.open"] >= {"glmix_viz.models.loading", "glmix_viz.segment.model"}
    cycles = find_cycles(graph)
    assert cycles == [], "import cycles: " + "; ".join(" <-> ".join(cycle) for cycle in cycles)


def test_the_loaders_sit_below_the_opener() -> None:
    """checkpoints.py is a leaf of the package (errors and files only); the loaders never reach up to open.py."""
    graph = import_graph()
    assert graph["glmix_viz.checkpoints"] <= {"glmix_viz.errors", "glmix_viz.files"}
    assert "glmix_viz.segment.model" not in graph["glmix_viz.models.loading"]
    for module in ("glmix_viz.models.loading", "glmix_viz.segment.model", "glmix_viz.models.info"):
        assert "glmix_viz.open" not in graph[module]


SCORING_LIBRARIES = {"numpy", "scipy", "sklearn", "torch"}


def _third_party(path: Path) -> Set[str]:
    """Top-level names of the modules a file imports that are neither the package's nor the standard library's."""
    import sys

    found: Set[str] = set()
    for node in _imports(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            continue
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
        for name in names:
            top = name.split(".")[0]
            if top and top != PACKAGE and top not in sys.stdlib_module_names and top != "__future__":
                found.add(top)
    return found


def test_scoring_is_a_floor_that_imports_nothing_above_it() -> None:
    """glmix_viz.scoring reaches only its own modules and glmix_viz.errors, and only numpy/scipy/sklearn/torch."""
    graph = import_graph()
    files = module_files()
    scoring = {module for module in graph if module == "glmix_viz.scoring" or module.startswith("glmix_viz.scoring.")}
    assert {"glmix_viz.scoring.segmentation", "glmix_viz.scoring.grouping", "glmix_viz.scoring.classification",
            "glmix_viz.scoring.errors", "glmix_viz.scoring.stats"} <= scoring
    for module in sorted(scoring):
        above = graph[module] - scoring - {"glmix_viz.errors"}
        assert not above, f"{module} imports {sorted(above)}, above the scoring floor"
        libraries = _third_party(files[module])
        assert libraries <= SCORING_LIBRARIES, f"{module} imports {sorted(libraries - SCORING_LIBRARIES)}"


def test_the_reader_of_third_party_imports_sees_a_forbidden_one(tmp_path: Path) -> None:
    path = tmp_path / "m.py"
    path.write_text("import os\nimport numpy as np\nfrom scipy import stats\ndef f():\n    import streamlit\n")
    assert _third_party(path) == {"numpy", "scipy", "streamlit"}


def test_scoring_is_the_only_home_of_a_bootstrap_and_an_error_coding() -> None:
    """One bootstrap (scipy.stats.bootstrap, called in scoring/stats.py only) and one error coding (ERROR_KINDS,
    defined in scoring/errors.py only): no module outside scoring/ draws resamples or defines error codes."""
    files = module_files()
    for module, path in files.items():
        text = path.read_text(encoding="utf-8")
        if module != "glmix_viz.scoring.stats":
            assert "bootstrap(" not in text.replace("image_bootstrap(", "").replace("def bootstrap", ""), module
            assert "poisson(" not in text, module
        if module != "glmix_viz.scoring.errors":
            assert "ERROR_KINDS: " not in text and "ERROR_KINDS =" not in text and "def error_map" not in text, module
