"""edge.streams imports no module that imports it back: building a topology (``_dsl``),
compiling it (``_compile``) and running it (``_runner``) are layers, each importing only
the ones below. Every import counts, also one inside a function or under TYPE_CHECKING
(such an import holds a cycle apart at run time; it does not remove it)."""

from __future__ import annotations

import ast
from pathlib import Path

import edge.streams

PACKAGE = "edge.streams"
ROOT = Path(edge.streams.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join((PACKAGE, *parts))


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The modules of the package that `path` imports, anywhere in it."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*up, base] if base else up)
            # `from pkg import sub` imports the submodule too, when it is one.
            targets = [base, *(f"{base}.{a.name}" for a in node.names)]
        else:
            continue
        found.update(t for t in targets if t in modules and t != name)
    return found


def test_no_module_of_edge_streams_imports_itself_back() -> None:
    paths = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph = {name: _imports(path, set(paths)) for name, path in paths.items()}
    assert "edge.streams._dsl" not in graph["edge.streams._dsl"]
    assert graph["edge.streams._runner"] >= {"edge.streams._compile", "edge.streams._dsl"}

    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for dep in sorted(graph[name]):
            if state.get(dep) == 1:
                cycles.append([*path[path.index(dep):], dep])
            elif dep not in state:
                visit(dep, [*path, dep])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_compiling_and_running_are_apart() -> None:
    paths = {_module_name(p): p for p in ROOT.rglob("*.py")}
    imports = {name: _imports(path, set(paths)) for name, path in paths.items()}
    assert "edge.streams._runner" not in imports["edge.streams._compile"]
    assert not imports["edge.streams._dsl"] & {"edge.streams._compile", "edge.streams._runner"}
