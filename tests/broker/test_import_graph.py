"""``broker``'s modules import one another without a cycle, and without hiding one.

A cycle held apart by an import inside a function works until someone moves that
import to the top; then whichever module is imported first decides whether the
program starts.  So: no ``broker`` import inside a function, the module-level
imports form a DAG (imports under ``if TYPE_CHECKING:`` are for annotations and
never run), and each module imports on its own in a fresh interpreter.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import broker

PACKAGE = Path(broker.__file__).parent
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py"))


def _targets(node: ast.ImportFrom | ast.Import) -> set[str]:
    """The broker modules an import statement loads ("__init__" for the package itself)."""
    if isinstance(node, ast.Import):
        return {a.name.split(".")[1] for a in node.names if a.name.startswith("broker.")} | \
            {"__init__" for a in node.names if a.name == "broker"}
    if node.level == 1 and node.module:
        return {node.module.split(".")[0]}
    if node.level == 1:  # from . import _ledger, __version__
        return {a.name if a.name in MODULES else "__init__" for a in node.names}
    if node.module and (node.module == "broker" or node.module.startswith("broker.")):
        parts = node.module.split(".")
        return {parts[1]} if len(parts) > 1 else {"__init__"}
    return set()


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _imports(module: str) -> tuple[set[str], list[str]]:
    """(broker modules imported, at import time or inside functions; imports found inside
    functions, as 'file:line: text')."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    top: set[str] = set()  # a deferred import is still an edge: it hides a cycle, not removes it
    nested: list[str] = []

    def walk(nodes: list[ast.stmt], in_function: bool) -> None:
        for node in nodes:
            if isinstance(node, ast.Import | ast.ImportFrom):
                found = _targets(node)
                if found and in_function:
                    nested.append(f"{module}.py:{node.lineno}: {ast.unparse(node)}")
                top.update(found)
            elif isinstance(node, ast.If) and _is_type_checking(node):
                walk(node.orelse, in_function)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                walk(node.body, True)  # type: ignore[arg-type]
            else:
                for field in ("body", "orelse", "finalbody", "handlers"):
                    walk(getattr(node, field, []) or [], in_function)
    walk(tree.body, False)
    top.discard(module)
    return top, nested


def test_no_broker_import_inside_a_function() -> None:
    nested = [line for m in MODULES for line in _imports(m)[1]]
    assert not nested, "imports inside functions (move them to the top; if that makes a cycle, " \
        "move what both sides need into a module of its own):\n" + "\n".join(nested)


def test_module_imports_have_no_cycle() -> None:
    graph = {m: _imports(m)[0] for m in MODULES}
    unknown = {t for targets in graph.values() for t in targets} - set(graph)
    assert not unknown, f"imports of modules that do not exist: {unknown}"
    done: set[str] = set()

    def visit(m: str, path: list[str]) -> None:
        if m in path:
            cycle = path[path.index(m):] + [m]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if m in done:
            return
        for t in sorted(graph[m]):
            visit(t, path + [m])
        done.add(m)

    for m in MODULES:
        visit(m, [])


def test_the_graph_sees_real_imports() -> None:
    # Guard against a walker that finds nothing and so finds no cycle.
    assert "_storage" in _imports("_log")[0]
    assert "_headers" in _imports("_records")[0]
    assert "_log" not in _imports("_quota")[0]  # under TYPE_CHECKING only


def test_each_module_imports_first() -> None:
    # One interpreter, with every broker module forgotten before each import: what a fresh
    # interpreter would do per module, without paying its start-up 25 times.
    names = ["broker" if m == "__init__" else f"broker.{m}" for m in MODULES if m != "__main__"]
    script = (
        "import importlib, sys, traceback\n"
        f"for name in {names!r}:\n"
        "    for m in [m for m in sys.modules if m == 'broker' or m.startswith('broker.')]:\n"
        "        del sys.modules[m]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception:\n"
        "        print(f'import {name} failed on its own:'); traceback.print_exc(file=sys.stdout)\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=PACKAGE.parent)
    assert run.returncode == 0 and not run.stdout, run.stdout + run.stderr
