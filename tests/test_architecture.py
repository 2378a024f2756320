"""Layers point one way: models <- twin core <- components and features <- the CLI.

Every import of every module counts, at module level or inside a function (a lazy
import is still a dependency). The check is a small AST walk, so it fails on a new
upward import or cycle the day it is written.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("models", "twin", "adapters")

#: The twin core: clock, schema base, registries, wrapper, plan, results, KPIs (and the
#: objective they score by), run (and the direct executor that may step its world).
CORE = {
    "twin",
    "twin.bounds",
    "twin.checks",
    "twin.component",
    "twin.errors",
    "twin.executor",
    "twin.identity",
    "twin.inputs",
    "twin.kpi",
    "twin.limits",
    "twin.objective",
    "twin.plan",
    "twin.realtime",
    "twin.recorder",
    "twin.registry",
    "twin.results",
    "twin.run",
    "twin.rundir",
    "twin.runstate",
    "twin.scenario",
    "twin.sinks",
    "twin.tidyindex",
    "twin.units",
    "twin.weather_checks",
    "twin.world",
    "twin.wrapper",
}
CLI = {"twin.cli", "twin.__main__"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[module_name(path)] = path
    return found


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Our modules that ``name`` imports (the longest known prefix of each import)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets.add(base)
            targets |= {f"{base}.{alias.name}" for alias in node.names}
    resolved = set()
    for target in targets:
        parts = target.split(".")
        for i in range(len(parts), 0, -1):
            candidate = ".".join(parts[:i])
            if candidate in known:
                resolved.add(candidate)
                break
    resolved.discard(name)
    return resolved


def layer(name: str) -> int:
    if name.split(".")[0] == "models":
        return 0
    if name in CORE:
        return 1
    if name in CLI:
        return 3
    return 2


def group(name: str) -> str:
    """The package a module belongs to for the cycle check."""
    if name in CORE:
        return "twin (core)"
    parts = name.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else parts[0]


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(name, path, set(found)) for name, path in found.items()}


def test_the_walk_sees_lazy_and_relative_imports(tmp_path):
    pkg = tmp_path / "twin"
    pkg.mkdir()
    (pkg / "a.py").write_text("def f():\n    from adapters.mqtt import link\n    from . import b\n")
    known = {"twin.a", "twin.b", "adapters.mqtt", "adapters.mqtt.link"}
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        expected = {"adapters.mqtt", "adapters.mqtt.link", "twin.b"}
        assert imports_of("twin.a", pkg / "a.py", known) == expected
    finally:
        ROOT = saved


def test_every_core_module_exists(graph):
    assert CORE <= set(graph), sorted(CORE - set(graph))


def test_imports_point_down_only(graph):
    upward = [
        f"{src} (layer {layer(src)}) imports {dst} (layer {layer(dst)})"
        for src, targets in sorted(graph.items())
        for dst in sorted(targets)
        if layer(dst) > layer(src)
    ]
    assert not upward, "\n".join(upward)


def test_models_import_only_models(graph):
    bad = [
        f"{src} imports {dst}"
        for src, targets in graph.items()
        if src.split(".")[0] == "models"
        for dst in targets
        if dst.split(".")[0] != "models"
    ]
    assert not bad, "\n".join(bad)


def test_no_import_cycle_between_packages(graph):
    edges: dict[str, set[str]] = {}
    for src, targets in graph.items():
        for dst in targets:
            if group(src) != group(dst):
                edges.setdefault(group(src), set()).add(group(dst))
    cycle = find_cycle(edges)
    assert cycle is None, " -> ".join(cycle or [])


def test_no_import_cycle_between_modules(graph):
    """Inside a package too (lazy imports included): one module must import first."""
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])


#: Dotted names of the layers above the core, as they would appear in a string (an
#: ``import_module`` target, a simulator's ``{"python": "module:Class"}``).
UPPER_NAMES = re.compile(r"^(adapters|twin\.(assets|faults|control|rl|campaign|cli))\b")


def test_the_core_names_no_upper_module_in_a_string():
    """A string import is an import: the core finds components through entry points."""
    found = []
    for name in sorted(CORE):
        path = modules()[name]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if UPPER_NAMES.match(node.value):
                    found.append(f"{name}:{node.lineno}: {node.value!r}")
    assert not found, "\n".join(found)


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the directed graph, as a path that returns to its start, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}}) is None
