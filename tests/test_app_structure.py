"""The explorer's code stays readable: every view function fits on a screen, imports sit at the top of the modules,
and the views are plugged in at one place with distinct link names."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path
from typing import Iterator, List, Tuple

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "glmix_viz" / "app"
SCREEN = 40  # code lines of one function that fit on a screen (blank lines, comments and docstrings not counted)


def _code_lines(source: str, node: ast.AST) -> int:
    """Lines of ``node`` holding code: neither blank, nor only a comment, nor part of a docstring."""
    docstrings = set()
    for inner in ast.walk(node):
        if isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)) and inner.body:
            first = inner.body[0]
            if isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant) \
                    and isinstance(first.value.value, str):
                docstrings.update(range(first.lineno, first.end_lineno + 1))
    code = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
            continue
        code.update(range(token.start[0], token.end[0] + 1))
    return len({line for line in code if node.lineno <= line <= node.end_lineno} - docstrings)


def _functions() -> Iterator[Tuple[str, ast.AST, str]]:
    for path in sorted(APP.rglob("*.py")):
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield f"{path.relative_to(ROOT)}:{node.lineno} {node.name}", node, source


def test_the_line_counter_counts_code_only() -> None:
    source = 'def f(x):\n    """Doc\n    string."""\n    # a comment\n\n    y = (x +\n         1)\n    return y\n'
    (node,) = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef)]
    assert _code_lines(source, node) == 4  # def, the two lines of y = ..., return


def test_every_function_of_the_app_fits_on_a_screen() -> None:
    long: List[str] = [f"{name} ({_code_lines(source, node)} code lines)" for name, node, source in _functions()
                       if _code_lines(source, node) > SCREEN]
    assert not long, f"functions over {SCREEN} code lines: {long}"


def test_the_app_imports_at_the_top_of_its_modules() -> None:
    inside = [name for name, node, _ in _functions()
              if any(isinstance(inner, (ast.Import, ast.ImportFrom)) for inner in ast.walk(node))]
    assert not inside, f"imports inside functions: {inside}"


def test_views_are_listed_once_with_distinct_link_names() -> None:
    from glmix_viz.app.views import VIEWS, view_by_slug

    slugs = [view.slug for view in VIEWS]
    assert len(set(slugs)) == len(slugs) and all(re.fullmatch(r"[a-z0-9-]+", slug) for slug in slugs)
    assert [view.title for view in VIEWS][:5] == ["Groupings", "Across blocks", "Slot & pixel",
                                                  "Predictions & pseudo-mask", "Downloads"]
    assert view_by_slug("predictions").title == "Predictions & pseudo-mask" and view_by_slug("nope") is None
    modules = {view.draw.__module__ for view in VIEWS}
    assert all(module.startswith("glmix_viz.app.tabs.") for module in modules) and len(modules) == len(VIEWS)
