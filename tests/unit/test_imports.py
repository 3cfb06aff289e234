"""The project's import graph, read from the source, has no cycle (a cycle means two modules own one thing)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("workers", "tasks", "api", "stack", "service", "db", "cli", "bench")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """Project modules ``path`` imports anywhere (functions included), except under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text(), str(path))
    skipped = {id(n) for node in ast.walk(tree) if _type_checking_only(node) for n in ast.walk(node)}
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {name for name in found if name in known}


def import_graph() -> dict[str, set[str]]:
    files = [p for package in PACKAGES for p in (ROOT / package).rglob("*.py")]
    known = {module_name(p) for p in files}
    return {module_name(p): imported_modules(p, known) - {module_name(p)} for p in files}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path [a, b, ..., a], or None (iterative depth-first search)."""
    state: dict[str, int] = {}
    for start in sorted(graph):
        if state.get(start):
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        state[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
                path.pop()
            elif state.get(child) == 1:
                return path[path.index(child):] + [child]
            elif not state.get(child):
                state[child] = 1
                stack.append((child, iter(sorted(graph.get(child, ())))))
                path.append(child)
    return None


def test_the_project_has_no_import_cycle() -> None:
    graph = import_graph()
    assert len(graph) > 40, "the source tree was not found"
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_bench_never_imports_the_command_line() -> None:
    graph = import_graph()
    offenders = {m: sorted(d for d in deps if d.startswith("cli")) for m, deps in graph.items()
                 if m.startswith("bench") and any(d.startswith("cli") for d in deps)}
    assert not offenders


def test_every_module_imports() -> None:
    """A stale import (a renamed module, a moved function) fails here, not in the first run of a bench."""
    import importlib

    for name in sorted(import_graph()):
        if not name.startswith("db.migrations"):  # Alembic runs those itself, inside a migration context
            importlib.import_module(name)


def test_the_ingest_and_query_tasks_start_without_torch() -> None:
    """Importing torch is most of a worker's start-up (~2 s of ~3 s here); the default ONNX model, the queue
    and the stores never need it, so an embedded ``copycat ingest`` must not pay it (docs/performance.md, ingest).
    Run in a fresh interpreter: this test process has imported torch long ago."""
    import subprocess
    import sys

    probe = ("import sys, tasks.ingest, tasks.query, tasks.backfill, tasks.worker, cli.main, workers.signals.dns; "
             "import workers.dns; workers.dns.weights_status; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
