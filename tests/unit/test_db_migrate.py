"""consumers.db.migrate without a server: discovering files, checking the recorded history."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from consumers.db.migrate import (
    AMENDMENTS,
    Amendment,
    MigrationError,
    default_directory,
    discover,
    verify,
)


def write(d: Path, name: str, text: str = "SELECT 1;") -> str:
    (d / name).write_text(text)
    return hashlib.sha256(text.encode()).hexdigest()


def test_discover_when_packaged_then_ordered_numbered_sql_files() -> None:
    """The shipped migrations are found, in order, each with its sha256."""
    found = discover()
    names = [m.name for m in found]
    assert names == sorted(names) and names[0].startswith("001_")
    assert all(len(m.checksum) == 64 for m in found)
    assert any(p.name == names[0] for p in default_directory().iterdir())


def test_discover_when_other_files_present_then_ignored(tmp_path: Path) -> None:
    """Only NNN_name.sql counts; READMEs and editor files do not."""
    write(tmp_path, "002_b.sql")
    write(tmp_path, "001_a.sql")
    write(tmp_path, "notes.txt")
    write(tmp_path, "003_C.sql")  # not lowercase: not a migration
    assert [m.name for m in discover(tmp_path)] == ["001_a.sql", "002_b.sql"]


def test_discover_when_two_files_share_a_number_then_refused(tmp_path: Path) -> None:
    """Two migrations numbered alike would apply in an arbitrary order: refused."""
    write(tmp_path, "001_a.sql")
    write(tmp_path, "001_b.sql")
    with pytest.raises(MigrationError, match="share the number 001"):
        discover(tmp_path)


def test_discover_when_directory_empty_then_refused(tmp_path: Path) -> None:
    """No migrations at all is a packaging mistake, said plainly."""
    with pytest.raises(MigrationError, match="no migrations"):
        discover(tmp_path)


def test_verify_when_history_matches_then_only_new_files_pending(tmp_path: Path) -> None:
    """Applied migrations with matching checksums are skipped; the rest are pending."""
    a = write(tmp_path, "001_a.sql")
    write(tmp_path, "002_b.sql", "SELECT 2;")
    pending = verify({"001_a.sql": a}, discover(tmp_path))
    assert [m.name for m in pending] == ["002_b.sql"]


def test_verify_when_applied_file_changed_then_refused_naming_it(tmp_path: Path) -> None:
    """A migration edited after it was applied stops everything, naming file and checksums."""
    write(tmp_path, "001_a.sql", "SELECT 'edited';")
    with pytest.raises(MigrationError, match=r"001_a\.sql was changed after it was applied"):
        verify({"001_a.sql": "0" * 64}, discover(tmp_path))


def test_verify_when_database_has_unknown_migration_then_refused(tmp_path: Path) -> None:
    """A database migrated by a newer riskgate is not touched by an older one."""
    a = write(tmp_path, "001_a.sql")
    with pytest.raises(MigrationError, match=r"002_z\.sql is recorded as applied but there is no"):
        verify({"001_a.sql": a, "002_z.sql": "f" * 64}, discover(tmp_path))


def test_verify_when_new_file_sorts_before_applied_one_then_refused(tmp_path: Path) -> None:
    """A migration added below the newest applied one would run out of order: refused."""
    write(tmp_path, "001_a.sql")
    b = write(tmp_path, "002_b.sql", "SELECT 2;")
    with pytest.raises(MigrationError, match=r"001_a\.sql would run after the newer 002_b\.sql"):
        verify({"002_b.sql": b}, discover(tmp_path))


def test_verify_when_recorded_text_is_an_amended_files_earlier_one_then_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database that applied a migration before it was amended is accepted as is."""
    earlier = hashlib.sha256(b"SELECT 1;").hexdigest()
    now = write(tmp_path, "001_a.sql", "SELECT 1; -- amended")
    write(tmp_path, "002_b.sql", "SELECT 2;")
    monkeypatch.setitem(AMENDMENTS, "001_a.sql", Amendment(now, frozenset({earlier}), "test"))
    pending = verify({"001_a.sql": earlier}, discover(tmp_path))
    assert [m.name for m in pending] == ["002_b.sql"]


def test_verify_when_amended_file_edited_again_then_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An amendment covers one exact text: any further edit is refused as before."""
    earlier = hashlib.sha256(b"SELECT 1;").hexdigest()
    amended = hashlib.sha256(b"SELECT 1; -- amended").hexdigest()
    write(tmp_path, "001_a.sql", "SELECT 1; -- amended, and edited again")
    monkeypatch.setitem(AMENDMENTS, "001_a.sql", Amendment(amended, frozenset({earlier}), "test"))
    with pytest.raises(MigrationError, match=r"001_a\.sql was changed after it was applied"):
        verify({"001_a.sql": earlier}, discover(tmp_path))
    with pytest.raises(MigrationError, match=r"001_a\.sql was changed after it was applied"):
        verify({"001_a.sql": "0" * 64}, discover(tmp_path))  # not an earlier text either


def test_amendments_when_shipped_then_each_matches_its_file() -> None:
    """Every amendment names the shipped file's checksum (an edit without updating the
    amendment would refuse every database that applied the file)."""
    shipped = {m.name: m.checksum for m in discover()}
    assert AMENDMENTS
    for name, amendment in AMENDMENTS.items():
        assert shipped[name] == amendment.checksum, name
        assert shipped[name] not in amendment.earlier
