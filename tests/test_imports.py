"""The house rules of the import graph, read from the source with `ast` so they stay true.

Layers import one way: sources → teacher → quality → dataset → training → pipelines → assets (a module imports its
own package or one to its left); only `pipelines.definitions` imports assets/; no import circles, counting the
imports inside functions and under TYPE_CHECKING too.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAYERS = ("sources", "teacher", "quality", "dataset", "training", "pipelines", "assets")
DEFINITIONS = "pipelines.definitions"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_imports(path: Path) -> set[str]:
    """Every project module a file imports, anywhere in it (`from x import y` may name a submodule y)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in LAYERS}


def import_graph() -> dict[str, set[str]]:
    files = [p for layer in LAYERS for p in (REPO / layer).rglob("*.py")]
    modules = {module_name(p): p for p in files}
    graph = {}
    for name, path in modules.items():
        graph[name] = {m for m in project_imports(path) if m in modules and m != name}
    return graph


def test_layers_import_one_way():
    wrong = []
    for module, imported in import_graph().items():
        rank = LAYERS.index(module.split(".")[0])
        for other in imported:
            other_rank = LAYERS.index(other.split(".")[0])
            if other_rank > rank and not (module == DEFINITIONS and other.split(".")[0] == "assets"):
                wrong.append(f"{module} imports {other}")
    assert wrong == []


def test_only_the_definitions_import_assets():
    importers = {
        module
        for module, imported in import_graph().items()
        if not module.startswith("assets") and any(m.split(".")[0] == "assets" for m in imported)
    }
    assert importers == {DEFINITIONS}


def test_no_import_circles():
    graph = import_graph()
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for other in sorted(graph[module]):
            if state.get(other) == 1:
                cycles.append(path[path.index(other) :] + [other])
            elif other not in state:
                visit(other, [*path, other])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_the_checker_sees_a_circle_and_an_upward_import(tmp_path):
    """The rules above are only worth something if the graph builder finds imports in every position."""
    sample = tmp_path / "sample.py"
    sample.write_text("import typing\nif typing.TYPE_CHECKING:\n    from assets.teacher import x\n\ndef f():\n"
                      "    from dataset import splits\n", encoding="utf-8")  # fmt: skip
    assert project_imports(sample) == {"assets.teacher", "assets.teacher.x", "dataset", "dataset.splits"}
