"""``riskgate compile``: the decision's modules built with mypyc, or removed again.

Optional: riskgate runs the same in pure Python, and the README's set-up commands never
compile. Compiled, a decision costs about a third fewer instructions. The build runs in
a scratch copy of ``gate`` and ``schemas`` and needs mypy (``pip install -e
'.[compiled]'``) and a C compiler; it changes nothing until it has succeeded. Then the
modules go beside their sources with ``compiled.json``, which ``gate/__init__.py`` checks
on every start: after an edited source the compiled modules are left unused (pure
Python runs, and the gate says so when it starts) until they are built again or removed
(``--clean``), so compiled risk logic never lags its source.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import gate
from gate import COMPILABLE, MANIFEST, compiled_files, sources_digest

if TYPE_CHECKING:
    from consumers.cli.options import Sub

#: Run in the scratch copy: mypyc's setuptools build, the modules in place there. The
#: shared part goes inside the package (``gate/_core__mypyc...``), not at the top level.
_BUILD = """
import sys
from setuptools import setup
from mypyc.build import mypycify
modules = [f"gate/{name}.py" for name in sys.argv[1:]]
setup(
    name="riskgate-compiled",
    ext_modules=mypycify(modules, group_name="gate._core", opt_level="3"),
    script_args=["build_ext", "--inplace"],
)
"""


def package_folder() -> Path:
    return Path(gate.__file__).resolve().parent


def build(folder: Path) -> list[str]:
    """Compile :data:`gate.COMPILABLE` in a scratch copy; install the result into
    ``folder`` with its manifest. Returns the files installed; raises RuntimeError with
    the compiler's last lines when the build fails (``folder`` untouched)."""
    if importlib.util.find_spec("mypyc") is None:
        raise RuntimeError(
            "mypyc is not installed: pip install -e '.[compiled]' (it comes with mypy)"
        )
    digest = sources_digest(folder)
    with tempfile.TemporaryDirectory(prefix="riskgate-compile-") as tmp:
        work = Path(tmp)
        for package in (folder, folder.parent / "schemas"):
            (work / package.name).mkdir()
            for path in package.glob("*.py"):
                shutil.copy2(path, work / package.name / path.name)
        done = subprocess.run(
            [sys.executable, "-c", _BUILD, *COMPILABLE],
            cwd=work,
            capture_output=True,
            text=True,
            check=False,
        )
        built = compiled_files(work / "gate")
        if done.returncode != 0 or len(built) != len(COMPILABLE) + 1:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
            raise RuntimeError(f"the build failed (exit {done.returncode}):\n{tail}")
        if sources_digest(folder) != digest:
            raise RuntimeError("the sources changed while compiling: run it again")
        clean(folder)
        for path in built:  # each file whole or not at all
            part = folder / f".{path.name}.part"
            shutil.copy2(path, part)
            os.replace(part, folder / path.name)
        names = [p.name for p in built]
        manifest = {"sources": digest, "files": names, "python": sys.version.split()[0]}
        part = folder / f".{MANIFEST}.part"
        part.write_text(json.dumps(manifest, indent=2) + "\n")
        os.replace(part, folder / MANIFEST)
        return names


def clean(folder: Path) -> list[str]:
    """Remove every compiled module and the manifest from ``folder``; their names."""
    gone = [p for p in compiled_files(folder) if p.exists()]
    for path in gone:
        path.unlink()
    (folder / MANIFEST).unlink(missing_ok=True)
    return [p.name for p in gone]


def cmd_compile(args: argparse.Namespace) -> int:
    folder = package_folder()
    if args.clean:
        gone = clean(folder)
        print(f"removed {len(gone)} compiled files from {folder}" if gone else "nothing compiled")
        return 0
    if args.status:
        return _status(folder)
    try:
        names = build(folder)
    except (RuntimeError, OSError) as exc:
        print(f"riskgate compile: {exc}", file=sys.stderr)
        print("riskgate keeps running in pure Python", file=sys.stderr)
        return 1
    print(f"compiled {len(COMPILABLE)} modules of the decision into {folder} ({len(names)} files)")
    print("start the gate processes again to use them; `riskgate compile --clean` undoes it")
    return 0


def _status(folder: Path) -> int:
    """Compiled or not, checked the way an import checks it (exit 1 when stale)."""
    compiled, stale = gate.check_compiled(folder)
    if stale is not None:
        print(f"pure Python: the compiled modules in {folder} are not used: {stale}")
        print("run `riskgate compile` to build them again, or `riskgate compile --clean`")
        return 1
    print(f"compiled: {', '.join(COMPILABLE)}" if compiled else "pure Python (not compiled)")
    return 0


def register(sub: Sub) -> None:
    p = sub.add_parser(
        "compile",
        help="build the decision's modules with mypyc (optional: a third fewer instructions)",
    )
    how = p.add_mutually_exclusive_group()
    how.add_argument("--clean", action="store_true", help="remove the compiled modules")
    how.add_argument("--status", action="store_true", help="compiled, pure or stale")
    p.set_defaults(handler=cmd_compile)
