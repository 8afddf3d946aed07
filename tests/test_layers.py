"""The package's layers read bottom to top, and no import runs back up or round in a circle.

Walks every module's imports with ``ast`` (module-level and inside functions alike: a lazy import
still couples the two modules). Each room (a subpackage, or a top-level module) sits on a floor;
a module may import its own room and rooms on lower floors only. The workflow, benchmarks and
tools sit above all of it and are not checked here.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "nuclei_pa"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

# Bottom to top. Rooms on one floor do not import each other.
FLOORS: tuple[tuple[str, ...], ...] = (
    ("__init__", "errors", "crops", "gpu_slots"),  # leaves: no project imports
    ("io",),  # files: images, annotation formats, downloads, progress lines
    ("data", "eval", "classical"),  # datasets; metrics; the classical baseline
    ("model",),
    ("engine",),  # training, prediction, evaluation of checkpoints
    ("annotate", "report", "slide"),
    ("plan", "commands"),  # the workflow's experiment plan; the CLI's subcommands
    ("cli",),
)
FLOOR = {room: level for level, rooms in enumerate(FLOORS) for room in rooms}


@dataclass(frozen=True)
class Import:
    source: str  # importing module, dotted
    target: str  # imported module, dotted
    where: str  # path:line

    def __str__(self) -> str:
        return f"{self.where}: {self.source} imports {self.target}"


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(root: Path = ROOT) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted(root.rglob("*.py"))}


def imports(known: dict[str, Path], package: str = PACKAGE) -> list[Import]:
    """Every import of a ``package`` module, resolved to the module it loads (``from a import b``
    is module ``a.b`` when that is a module, else ``a``)."""
    found = []
    for name, path in known.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = here.split(".")[: len(here.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names
                ]
            for target in targets:
                if target == package or target.startswith(package + "."):
                    found.append(Import(name, target, f"{path}:{node.lineno}"))
    return found


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def upward(edges: Iterable[Import]) -> list[str]:
    """Imports of a room on the same or a higher floor (or of a room no floor names)."""
    bad = []
    for e in edges:
        src, dst = room(e.source), room(e.target)
        if src == dst:
            continue
        if src not in FLOOR or dst not in FLOOR:
            unplaced = src if src not in FLOOR else dst
            bad.append(f"{e} ({unplaced!r} is on no floor: add it to FLOORS)")
        elif FLOOR[dst] >= FLOOR[src]:
            how = "same floor" if FLOOR[dst] == FLOOR[src] else "a higher floor"
            bad.append(f"{e} ({dst!r} is on {how} than {src!r})")
    return bad


def cycles(edges: Iterable[Import]) -> list[list[str]]:
    """Import circles between modules (strongly connected components of two or more)."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        if e.source != e.target:
            graph.setdefault(e.source, set()).add(e.target)
            graph.setdefault(e.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan; the graph is small enough for recursion
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_runs_up_a_floor():
    bad = upward(imports(modules()))
    assert not bad, "imports that run back up:\n" + "\n".join(bad)


def test_no_import_cycle():
    edges = imports(modules())
    found = cycles(edges)
    lines = [
        str(e)
        for circle in found
        for e in edges
        if e.source in circle and e.target in circle and e.source != e.target
    ]
    assert not found, "import circles:\n" + "\n".join(lines)


def test_every_room_is_on_a_floor():
    rooms = {room(m) for m in modules()}
    assert rooms <= set(FLOOR), f"place these in FLOORS: {sorted(rooms - set(FLOOR))}"


def test_the_package_does_not_import_the_workflow_or_tests():
    outside = ("workflow", "tests", "benchmarks", "tools")
    bad = []
    for path in modules().values():
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
            bad += [f"{path}:{node.lineno}: {n}" for n in names if n.split(".")[0] in outside]
    assert not bad, "\n".join(bad)


def test_the_check_finds_an_upward_import_and_a_circle(tmp_path):
    """The walker itself: a lazy import from data up to engine, and a two-module circle."""
    pkg = tmp_path / PACKAGE
    for rel, text in {
        "__init__.py": "",
        "data/__init__.py": "",
        "data/a.py": "def f():\n    from nuclei_pa.engine import b\n",
        "engine/__init__.py": "",
        "engine/b.py": "from . import c\n",
        "engine/c.py": "import nuclei_pa.engine.b\n",
    }.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(text)
    edges = imports(modules(pkg))
    bad = upward(edges)
    assert len(bad) == 1 and "nuclei_pa.data.a imports nuclei_pa.engine.b" in bad[0]
    assert bad[0].startswith(f"{pkg / 'data' / 'a.py'}:2")
    assert cycles(edges) == [["nuclei_pa.engine.b", "nuclei_pa.engine.c"]]
