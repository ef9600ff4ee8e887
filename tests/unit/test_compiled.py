"""``riskgate compile``: compiled decision modules run only when built from the sources
beside them; otherwise every module of ``gate`` loads from its source. And compiled,
the decisions are the same bytes (the golden test and the property tests, run against a
real mypyc build of a scratch copy)."""

from __future__ import annotations

import importlib.machinery
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import gate
from consumers.cli import compile_commands
from gate import MANIFEST, check_compiled, sources_digest

ROOT = Path(__file__).resolve().parents[2]


def _copy(tmp: Path, *packages: str) -> Path:
    for name in packages:
        shutil.copytree(ROOT / name, tmp / name, ignore=shutil.ignore_patterns("*.so", MANIFEST))
    return tmp / "gate"


def _fake_build(folder: Path, names: list[str]) -> None:
    for name in names:
        (folder / name).write_bytes(b"not a real extension module")
    manifest = {"sources": sources_digest(folder), "files": names}
    (folder / MANIFEST).write_text(json.dumps(manifest))


def _so(module: str) -> str:
    return module + importlib.machinery.EXTENSION_SUFFIXES[0]


def test_check_compiled_when_nothing_compiled_then_pure_and_not_stale(tmp_path: Path) -> None:
    folder = _copy(tmp_path, "gate", "schemas")
    assert check_compiled(folder) == (False, None)


def test_check_compiled_when_built_from_these_sources_then_compiled(tmp_path: Path) -> None:
    folder = _copy(tmp_path, "gate", "schemas")
    _fake_build(folder, [_so("decide"), _so("_core__mypyc")])
    assert check_compiled(folder) == (True, None)


@pytest.mark.parametrize("edited", ["gate/limits.py", "schemas/messages.py", "gate/new.py"])
def test_check_compiled_when_a_source_changed_since_then_stale(tmp_path: Path, edited: str) -> None:
    """Any module of gate or schemas (the compiler type-checked against both), edited
    or added after the build: the compiled modules are not used."""
    folder = _copy(tmp_path, "gate", "schemas")
    _fake_build(folder, [_so("decide")])
    with (tmp_path / edited).open("a") as f:
        f.write("\n# a later edit\n")
    compiled, stale = check_compiled(folder)
    assert not compiled
    assert stale is not None and "sources changed" in stale


def test_check_compiled_when_a_file_is_not_in_the_manifest_then_stale(tmp_path: Path) -> None:
    folder = _copy(tmp_path, "gate", "schemas")
    _fake_build(folder, [_so("decide")])
    (folder / _so("ledger")).write_bytes(b"dropped in by hand")
    compiled, stale = check_compiled(folder)
    assert not compiled
    assert stale is not None and _so("ledger") in stale


@pytest.mark.parametrize("manifest", [None, "{not json", '{"files": []}', '["a list"]'])
def test_check_compiled_when_the_manifest_is_missing_or_broken_then_stale(
    tmp_path: Path, manifest: str | None
) -> None:
    folder = _copy(tmp_path, "gate", "schemas")
    (folder / _so("decide")).write_bytes(b"x")
    if manifest is not None:
        (folder / MANIFEST).write_text(manifest)
    compiled, stale = check_compiled(folder)
    assert not compiled
    assert stale is not None and MANIFEST in stale


def _python(cwd: Path, code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # consumers from the checkout; gate from cwd
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def test_import_when_compiled_modules_are_stale_then_every_module_loads_from_source(
    tmp_path: Path,
) -> None:
    """A stale compiled module is never loaded (here it is not even a module: loading it
    would fail), and the pure sources decide instead."""
    folder = _copy(tmp_path, "gate", "schemas")
    _fake_build(folder, [_so("decide"), _so("money")])
    (folder / "money.py").write_text((folder / "money.py").read_text() + "\n# edited\n")
    done = _python(
        tmp_path,
        "import gate, gate.decide, gate.money, gate.ledger\n"
        "print(gate.COMPILED, gate.STALE is not None, gate.decide.__file__, gate.money.__file__)",
    )
    assert done.returncode == 0, done.stderr
    compiled, stale, decide, money = done.stdout.split()
    assert (compiled, stale) == ("False", "True")
    assert decide == str(folder / "decide.py")
    assert money == str(folder / "money.py")


def test_status_when_stale_then_it_says_so_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _copy(tmp_path, "gate", "schemas")
    _fake_build(folder, [_so("decide")])
    (folder / "size.py").write_text("# edited\n")
    monkeypatch.setattr(compile_commands, "package_folder", lambda: folder)
    parser_args = type("Args", (), {"clean": False, "status": True})()
    assert compile_commands.cmd_compile(parser_args) == 1  # type: ignore[arg-type]
    assert "not used" in capsys.readouterr().out
    parser_args.clean = True  # type: ignore[attr-defined]
    assert compile_commands.cmd_compile(parser_args) == 0  # type: ignore[arg-type]
    assert check_compiled(folder) == (False, None)
    assert not (folder / MANIFEST).exists()


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler: nothing to compile with")
def test_compiled_when_built_with_mypyc_then_the_same_decisions(tmp_path: Path) -> None:
    """A real build of a scratch copy, then the golden decisions and the property tests
    run against it: byte for byte the pure decisions, every limit held."""
    folder = _copy(tmp_path, "gate", "schemas", "tests", "config")
    names = compile_commands.build(folder)
    assert len(names) == len(gate.COMPILABLE) + 1
    assert check_compiled(folder) == (True, None)
    done = _python(tmp_path, "import gate.decide as d, gate; print(gate.COMPILED, d.__file__)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", str(folder / _so("decide"))]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    tests = [
        "tests/unit/test_decide_golden.py",
        "tests/unit/test_properties.py",
        "tests/unit/test_correlation_cost.py",
    ]
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-c", "pytest.ini", *tests],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert " passed" in run.stdout
