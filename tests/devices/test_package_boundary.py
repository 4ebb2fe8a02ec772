"""``devices`` knows nothing of the log or the appliance: no module of it imports ``broker``
or ``edge`` (the supervision primitive lives here so that devices can use it too)."""

from __future__ import annotations

import ast
from pathlib import Path

import devices

ROOT = Path(devices.__file__).parent


def _imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_no_devices_module_imports_broker_or_edge() -> None:
    offenders = {str(p.relative_to(ROOT)): sorted(_imported(p) & {"broker", "edge"})
                 for p in sorted(ROOT.rglob("*.py")) if _imported(p) & {"broker", "edge"}}
    assert offenders == {}
