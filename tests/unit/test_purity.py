"""gate/ is the pure core: no I/O library, no clock, no float (the CLI excepted)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

GATE = Path(__file__).resolve().parents[2] / "gate"
IO_MODULES = {"redis", "psycopg", "structlog", "fakeredis", "socket", "time", "consumers"}
CORE = sorted(p for p in GATE.glob("*.py") if p.name != "cli.py")


@pytest.mark.parametrize("path", CORE, ids=[p.name for p in CORE])
def test_gate_module_when_parsed_then_imports_no_io_and_reads_no_clock(path: Path) -> None:
    """No redis/psycopg/structlog/time imports, no datetime.now(), no float()."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names = {(node.module or "").split(".")[0]}
        else:
            names = set()
        assert not names & IO_MODULES, f"{path.name}:{node.lineno} imports {names & IO_MODULES}"
        if isinstance(node, ast.Call):
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
            assert name not in {"now", "utcnow", "today", "time", "float"}, (
                f"{path.name}:{node.lineno} calls {name}()"
            )
