"""The import graph of ``src/bastion`` obeys the layers of ``docs/architecture.md``.

Every import counts: module level, inside functions, under ``TYPE_CHECKING``, and
``import_module`` of a constant name (a lazy import is still a dependency). Two rules:

1. a package imports only packages of a lower layer, or of its own layer where the table
   allows it (``learn`` may use ``assess``…);
2. no module imports itself back through others (no circle of files), ``__init__`` included.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

SRC: Final = Path(__file__).resolve().parents[1] / "src" / "bastion"

LAYER: Final = {  # higher may import lower
    "__init__": 6,
    "cli": 5, "server": 5, "gateway": 5, "client": 5, "demo": 5,
    "learn": 4, "threats": 4, "lifecycle": 4,
    "assess": 3, "catalog": 3, "data": 3, "report": 3,
    "scan": 2, "deps": 2, "models": 2,
    "store": 1, "_http": 1,
    "findings": 0, "errors": 0, "config": 0, "_fs": 0, "_time": 0, "atlas": 0,
}
SIDEWAYS: Final = {  # imports between packages of one layer, each allowed on purpose
    ("learn", "assess"), ("learn", "data"), ("learn", "catalog"), ("lifecycle", "catalog"),
    ("threats", "catalog"), ("threats", "assess"), ("threats", "data"), ("threats", "lifecycle"),
    ("threats", "learn"), ("catalog", "report"), ("data", "report"), ("assess", "report"),
    ("catalog", "data"), ("assess", "data"), ("models", "scan"), ("gateway", "server"),
    ("cli", "server"), ("cli", "client"), ("cli", "gateway"), ("server", "client"),
    ("cli", "demo"), ("demo", "cli"),
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        name = ".".join(parts).removesuffix(".__init__")
        found[name] = path
    return found


MODULES: Final = _modules()


def _imports(name: str, path: Path) -> Iterator[tuple[str, int]]:
    """(module imported, line) for every import in ``path``, relative ones resolved."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:  # ``from pkg import submodule`` imports the submodule
                full = f"{base}.{alias.name}"
                yield (full if full in MODULES else base), node.lineno
        elif (isinstance(node, ast.Call) and node.args
              and getattr(node.func, "id", getattr(node.func, "attr", "")) == "import_module"
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            yield node.args[0].value, node.lineno


def _graph() -> dict[str, dict[str, int]]:
    graph: dict[str, dict[str, int]] = {}
    for name, path in MODULES.items():
        edges = graph.setdefault(name, {})
        for imported, line in _imports(name, path):
            target = imported
            while target and target not in MODULES:  # bastion.x.Name → bastion.x
                target = target.rpartition(".")[0]
            # ``from bastion import __version__`` is the root package's one runtime export; its
            # public names are lazy (PEP 562), so an edge into it is no dependency on them.
            if target.startswith("bastion.") and target != name:
                edges.setdefault(target, line)
    return graph


GRAPH: Final = _graph()


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_package_has_a_layer() -> None:
    unknown = sorted({_package(m) for m in MODULES} - set(LAYER))
    assert unknown == [], f"add these packages to LAYER and to docs/architecture.md: {unknown}"


def test_imports_go_down_the_layers() -> None:
    wrong = []
    for module, edges in GRAPH.items():
        for target, line in edges.items():
            a, b = _package(module), _package(target)
            if a == b:
                continue  # within one package
            if LAYER[b] > LAYER[a] or (LAYER[b] == LAYER[a] and (a, b) not in SIDEWAYS
                                       and LAYER[a] > 0):
                wrong.append(f"{MODULES[module].relative_to(SRC.parent)}:{line} {module} -> "
                             f"{target} ({a} is layer {LAYER[a]}, {b} layer {LAYER[b]})")
    assert wrong == []


def _circles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return found


def test_no_circle_of_modules() -> None:
    assert _circles() == []


@pytest.mark.parametrize(("source", "target"), [("bastion.catalog._read", "bastion.cli.app"),
                                               ("bastion.store.db", "bastion.catalog.service")])
def test_the_check_sees_an_upward_import(source: str, target: str) -> None:
    """The rule is not vacuous: an import planted in a lower layer is reported."""
    GRAPH[source][target] = 1
    try:
        with pytest.raises(AssertionError, match=f"{source} -> {target}"):
            test_imports_go_down_the_layers()
    finally:
        del GRAPH[source][target]


def test_the_check_sees_a_circle() -> None:
    """``findings`` imports ``errors``; planting the way back makes a circle of two."""
    assert "bastion.errors" in GRAPH["bastion.findings"]
    GRAPH["bastion.errors"]["bastion.findings"] = 1
    try:
        assert ["bastion.errors", "bastion.findings"] in _circles()
    finally:
        del GRAPH["bastion.errors"]["bastion.findings"]
