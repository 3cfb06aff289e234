"""The project's import graph, read from the source: no cycle (a cycle means two modules own one thing), and the
layers the README describes: pure stages below storage adapters below signals and plans below the service,
tasks, API and command line; ``tasks/`` holds Celery modules whose tasks are thin."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("workers", "tasks", "api", "stack", "service", "db", "cli", "bench")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """Project modules ``path`` imports anywhere (functions and ``if TYPE_CHECKING:`` blocks included)."""
    tree = ast.parse(path.read_text(), str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
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


def _offenders(graph: dict[str, set[str]], importer: Callable[[str], bool],
               imported: Callable[[str], bool]) -> dict[str, list[str]]:
    return {m: sorted(d for d in deps if imported(d)) for m, deps in graph.items()
            if importer(m) and any(imported(d) for d in deps)}


def _in(*packages: str) -> Callable[[str], bool]:
    return lambda name: any(name == p or name.startswith(p + ".") for p in packages)


def test_workers_never_import_the_layers_above_them() -> None:
    """Stages, stores, signals and plans take their storage and settings as arguments."""
    assert not _offenders(import_graph(), _in("workers"), _in("tasks", "db", "api", "cli", "stack", "service"))


def test_only_the_storage_adapters_import_the_stores() -> None:
    """Pure stages, signals and plans see storage through protocols (``workers.signals.base``); only the
    adapters in ``workers/stores/`` themselves import them (``service/`` builds them)."""
    in_workers_outside_stores = lambda name: _in("workers")(name) and not _in("workers.stores")(name)  # noqa: E731
    assert not _offenders(import_graph(), in_workers_outside_stores, _in("workers.stores"))


def test_task_modules_never_import_each_other() -> None:
    """Work is queued by name (``service/queue.py``); only the worker entry point imports every task module (and
    the ingest bench, which measures what a worker imports)."""
    task_modules = {m for m, path in _module_paths().items() if m.startswith("tasks.") and "shared_task" in path}
    graph = import_graph()
    allowed = {"tasks.worker", "bench.ingest_throughput"}
    assert not {m: sorted(graph[m] & task_modules) for m in graph if m not in allowed and graph[m] & task_modules}


def test_tasks_holds_celery_modules_only() -> None:
    """The app, the tasks, their base classes, the signal handlers and the worker's entry point."""
    graph = import_graph()
    for module, source in _module_paths().items():
        if module.startswith("tasks.") and module != "tasks.worker":
            assert "from celery" in source or "import celery" in source, f"{module} is not a Celery module"
    assert graph["tasks.worker"] <= {m for m in graph if m.startswith("tasks.")} | {"service.resources", "service"}


def test_task_bodies_are_short() -> None:
    """A task loads its inputs, calls a plan, saves what it returns (20 lines at most, docstring aside)."""
    for module, source in _module_paths().items():
        if not module.startswith("tasks."):
            continue
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef) and any("shared_task" in ast.unparse(d) for d in node.decorator_list):
                body = node.body[1:] if ast.get_docstring(node) else node.body
                lines = body[-1].end_lineno - body[0].lineno + 1
                assert lines <= 20, f"{module}.{node.name} has a {lines}-line body"


def _module_paths() -> dict[str, str]:
    return {module_name(p): p.read_text() for package in PACKAGES for p in (ROOT / package).rglob("*.py")}


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
