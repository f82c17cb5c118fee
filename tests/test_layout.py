"""The layout shows the pipeline: imports between ``analysis``'s subpackages (data -> inference ->
selection -> decisions -> reporting -> workflow) and between its modules form no cycle."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "analysis"


def imports_of(path: Path) -> set[str]:
    """The ``analysis.*`` modules that the file at ``path`` imports, as dotted names."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "analysis":  # its modules
            found.update(f"analysis.{a.name}" for a in node.names if a.name != "__version__")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("analysis."):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("analysis"))
    return found


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(module: str) -> str:
    """'analysis.inference.fit' -> 'inference'; top-level modules ('analysis.paths') are their
    own package."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def graph(level) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        source = level(module_name(path))
        targets = {level(target) for target in imports_of(path)} - {source}
        edges.setdefault(source, set()).update(targets)
    return edges


@pytest.mark.parametrize("level", [package_of, str], ids=["packages", "modules"])
def test_imports_form_no_cycle(level):
    try:
        order = list(TopologicalSorter(graph(level)).static_order())
    except CycleError as error:
        pytest.fail(f"import cycle: {' -> '.join(error.args[1])}")
    assert len(order) > 5


def test_decisions_do_not_draw_with_the_report():
    """The decisions layer (score, track) writes its own figure; the report reads decisions, not
    the other way round."""
    assert "reporting" not in graph(package_of)["decisions"]
