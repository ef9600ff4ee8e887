"""The pure core: intents decided against a snapshot, the ledger, the phases. No I/O.

``riskgate compile`` may build the decision's modules (:data:`COMPILABLE`) with mypyc,
next to their sources; Python then loads the compiled module in place of the source.
Before any of them can load, this checks that every compiled module here was built from
exactly the sources beside it (``compiled.json``: a digest of every module of ``gate``
and ``schemas``, which the compiler type-checked it against). Otherwise every module of
``gate`` loads from its source (:data:`STALE` says why; the gate logs it at start, and
``riskgate compile --status`` exits 1): risk logic older than its source never runs.
Without compiled modules (the default) nothing is read.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

#: The modules ``riskgate compile`` builds: a decision's path (about a third fewer
#: instructions per decision compiled; the README's Performance section).
COMPILABLE = (
    "money",
    "size",
    "limits",
    "enrich",
    "decide",
    "checks",
    "exposure",
    "correlation",
    "duplicates",
    "layered",
    "portfolio",
    "standing",
)
#: What ``riskgate compile`` writes beside the compiled modules.
MANIFEST = "compiled.json"

_HERE = Path(__file__).resolve().parent


def compiled_files(folder: Path = _HERE) -> list[Path]:
    """Files in ``folder`` this interpreter would import as extension modules."""
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    return sorted(p for p in folder.iterdir() if p.name.endswith(suffixes))


def sources_digest(folder: Path = _HERE) -> str:
    """sha256 over every module of ``gate`` and ``schemas`` (names and bytes)."""
    h = hashlib.sha256()
    for package in (folder, folder.parent / "schemas"):
        for path in sorted(package.glob("*.py")):
            h.update(f"{package.name}/{path.name}\0".encode())
            h.update(path.read_bytes())
            h.update(b"\0")
    return h.hexdigest()


def check_compiled(folder: Path = _HERE) -> tuple[bool, str | None]:
    """Whether the compiled modules in ``folder`` may run: (True, None) when they were
    built from these sources, (False, None) when there are none, (False, why) when any
    is stale, unknown or unaccounted for."""
    built = compiled_files(folder)
    if not built:
        return False, None
    try:
        recorded = json.loads((folder / MANIFEST).read_text())
        files, digest = set(recorded["files"]), recorded["sources"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return False, f"{built[0].name} is compiled but {MANIFEST} does not describe it ({exc})"
    unknown = [p.name for p in built if p.name not in files]
    if unknown:
        return False, f"{', '.join(unknown)} not built by riskgate compile"
    if digest != sources_digest(folder):
        return False, "the sources changed since `riskgate compile` built the modules"
    return True, None


class _FromSource(importlib.abc.MetaPathFinder):
    """``gate``'s modules from their ``.py`` files, whatever lies compiled beside them."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        package, _, name = fullname.partition(".")
        source = _HERE / f"{name}.py"
        if package != "gate" or not name or "." in name or not source.is_file():
            return None
        return importlib.util.spec_from_file_location(fullname, source)


#: The decision's modules run compiled (built from exactly these sources).
COMPILED, STALE = check_compiled()
#: ``STALE``: why compiled modules lie here unused. Then every module of ``gate`` loads
#: from its source: what runs is always what the sources say.
if STALE is not None:
    sys.meta_path.insert(0, _FromSource())
