"""Ordered SQL migrations (``sql/NNN_name.sql``), applied once each, checksummed.

Each migration runs in its own transaction together with its ``schema_migrations``
row (name, sha256 checksum, applied_at), so a failed migration leaves nothing
behind. Before anything is applied every recorded migration is checked against the
files: a recorded checksum that differs from its file, or a recorded migration with
no file, stops the run (:class:`MigrationError`) - the database was built from other
SQL than this riskgate ships. A session advisory lock makes concurrent runs (several
processes starting at once) apply each migration once.

The one exception is :data:`AMENDMENTS`: a shipped migration that had to be edited
after release (never done lightly) lists the checksums of its earlier texts, and a
database that recorded one of those is accepted as is, its history row untouched -
provided the file is exactly the amended text. Each entry says why the earlier text
built the same schema wherever it could be applied.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import psycopg

from consumers.db.connection import Connection

NAME_PATTERN = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
LOCK_KEY = 0x7269736B67617465  # "riskgate": serialises migrators on one database

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    name        text PRIMARY KEY,
    checksum    text NOT NULL CHECK (checksum ~ '^[0-9a-f]{64}$'),
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True, slots=True)
class Amendment:
    """A migration edited after release: the text shipped now, the texts it replaced."""

    checksum: str  # the amended file's
    earlier: frozenset[str]  # checksums of the texts it replaced
    why: str


AMENDMENTS: dict[str, Amendment] = {
    "002_market_data.sql": Amendment(
        checksum="a41943c701b7a3a29e8aaf59696cfe2c7f0e291a8136615d13533d041fda3991",
        earlier=frozenset({"c31f0e31e415575f204de2410ea4a5dc89a42c442763012eca19fa47dbac2559"}),
        why="four DROP INDEX IF EXISTS lines (marked '-- amended'): on TimescaleDB the earlier "
        "text failed (create_hypertable makes <table>_time_idx itself), so no TimescaleDB "
        "database recorded it; on PostgreSQL the lines do nothing",
    ),
}


def amended(name: str, recorded_checksum: str, file_checksum: str) -> bool:
    """True when ``recorded_checksum`` is an earlier text of the shipped, amended file."""
    a = AMENDMENTS.get(name)
    return a is not None and a.checksum == file_checksum and recorded_checksum in a.earlier


class MigrationError(RuntimeError):
    """The database and the migration files disagree; the message says how."""


@dataclass(frozen=True, slots=True)
class Migration:
    name: str
    sql: str
    checksum: str


@dataclass(frozen=True, slots=True)
class Report:
    applied: tuple[str, ...]
    already: tuple[str, ...]


def default_directory() -> Traversable:
    """The packaged migrations (``riskgate_sql``), else ``sql/`` next to the sources."""
    try:
        packaged = resources.files("riskgate_sql")
        if any(NAME_PATTERN.match(p.name) for p in packaged.iterdir()):
            return packaged
    except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError):
        pass
    return Path(__file__).resolve().parent.parent / "sql"


def discover(directory: Traversable | Path | None = None) -> list[Migration]:
    """Every ``NNN_name.sql`` in order; two files with one number are an error."""
    where = directory if directory is not None else default_directory()
    found: dict[str, Migration] = {}
    numbers: dict[str, str] = {}
    for entry in where.iterdir():
        match = NAME_PATTERN.match(entry.name)
        if match is None:
            continue
        number = match.group(1)
        if number in numbers:
            raise MigrationError(
                f"{where}: {numbers[number]} and {entry.name} share the number {number}"
            )
        numbers[number] = entry.name
        data = entry.read_bytes()
        found[entry.name] = Migration(
            entry.name, data.decode("utf-8"), hashlib.sha256(data).hexdigest()
        )
    if not found:
        raise MigrationError(f"{where}: no migrations (NNN_name.sql) found")
    return [found[name] for name in sorted(found)]


def recorded(conn: Connection) -> dict[str, str]:
    """name -> checksum of every applied migration ({} on an empty database)."""
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return {}
    rows = conn.execute("SELECT name, checksum FROM schema_migrations").fetchall()
    return {str(name): str(checksum) for name, checksum in rows}


def verify(applied: dict[str, str], migrations: Sequence[Migration]) -> list[Migration]:
    """The migrations still to apply; raises when the recorded ones do not match the files."""
    files = {m.name: m for m in migrations}
    problems = []
    for name, checksum in sorted(applied.items()):
        m = files.get(name)
        if m is None:
            problems.append(
                f"{name} is recorded as applied but there is no such file "
                "(the database is newer than this riskgate?)"
            )
        elif m.checksum != checksum and not amended(name, checksum, m.checksum):
            problems.append(
                f"{name} was changed after it was applied: recorded checksum "
                f"{checksum[:12]}, file {m.checksum[:12]}; restore the file and put the "
                "change in a new migration"
            )
    if problems:
        raise MigrationError("refusing to migrate:\n  " + "\n  ".join(problems))
    pending = [m for m in migrations if m.name not in applied]
    newest = max(applied, default="")
    late = [m.name for m in pending if m.name < newest]
    if late:
        raise MigrationError(
            f"refusing to migrate: {', '.join(late)} would run after the newer {newest}; "
            "renumber it after the last applied migration"
        )
    return pending


def pending(conn: Connection, migrations: Sequence[Migration]) -> list[Migration]:
    return verify(recorded(conn), migrations)


@dataclass(frozen=True, slots=True)
class History:
    applied: tuple[str, ...]
    amended: tuple[str, ...]  # applied from an earlier text of an amended file (AMENDMENTS)
    pending: tuple[str, ...]


def history(conn: Connection, migrations: Sequence[Migration]) -> History:
    """What is applied and what is pending, changing nothing; raises as :func:`verify`."""
    applied = recorded(conn)
    todo = verify(applied, migrations)
    files = {m.name: m.checksum for m in migrations}
    return History(
        tuple(sorted(applied)),
        tuple(sorted(n for n, c in applied.items() if files[n] != c)),
        tuple(m.name for m in todo),
    )


def migrate(conn: Connection, migrations: Sequence[Migration]) -> Report:
    """Apply what is pending, each migration in its own transaction, under a lock."""
    conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
    try:
        conn.execute(CREATE_TABLE)
        todo = pending(conn, migrations)
        for m in todo:
            try:
                with conn.transaction():
                    conn.execute(m.sql.encode())  # no parameters: sent as is, '%' included
                    conn.execute(
                        "INSERT INTO schema_migrations (name, checksum) VALUES (%s, %s)",
                        (m.name, m.checksum),
                    )
            except psycopg.OperationalError:
                raise  # the connection, not the SQL: the caller may retry
            except psycopg.Error as exc:
                raise MigrationError(
                    f"{m.name} failed and was rolled back: {str(exc).strip()}"
                ) from exc
    finally:
        if not (conn.closed or conn.broken):  # a lost session has released it already
            conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    done = {m.name for m in todo}
    return Report(tuple(sorted(done)), tuple(m.name for m in migrations if m.name not in done))
