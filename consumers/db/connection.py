"""PostgreSQL plumbing: which database, connections, creating the database, JSON, errors.

:func:`database_url` is the one place that decides which database riskgate uses.
Connections are autocommit; every write goes inside an explicit ``conn.transaction()``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.json import Jsonb

from consumers.bus.urls import masked
from consumers.errors import UsageError
from schemas.messages import decimal_text

MAINTENANCE_DB = "postgres"

# Connection lost, server restarting or refusing, serialization failure or deadlock:
# try again later with the same input. (TransactionRollbackError is an OperationalError.)
PG_TRANSIENT: tuple[type[Exception], ...] = (psycopg.OperationalError, psycopg.InterfaceError)
# The input itself is refused (a value out of range, a CHECK or key violation).
PG_REFUSED: tuple[type[Exception], ...] = (psycopg.DataError, psycopg.IntegrityError)

Connection = psycopg.Connection[Any]

# Dead peers are noticed within ~25 s even when the network drops packets silently.
_CONNECT_OPTIONS = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}


def database_url(url: str | None = None) -> str:
    """The database to use: ``url``, else ``$DATABASE_URL``, else the embedded PostgreSQL
    of the data directory (:mod:`consumers.servers.embedded`)."""
    if url:
        return check_database_url(url)
    if os.environ.get("DATABASE_URL"):
        return check_database_url(os.environ["DATABASE_URL"], "DATABASE_URL")
    from consumers.servers import embedded  # noqa: PLC0415 - only when no URL is set

    return embedded.database_url()


PG_FORM = "postgresql://[USER[:PASSWORD]@]HOST[:PORT]/DBNAME or libpq key=value pairs"


def check_database_url(url: str, source: str = "database URL") -> str:
    """``url`` if libpq can read it as a PostgreSQL URL, else one line naming ``source``
    and the form expected (a UsageError: exit 2)."""
    scheme = url.split("://", 1)[0] if "://" in url else None
    problem = None
    if scheme is not None and scheme not in ("postgresql", "postgres"):
        problem = f"scheme {scheme}:// is not a PostgreSQL one"
    else:
        try:
            conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            problem = str(exc).strip().splitlines()[0]
    if problem is not None:
        raise UsageError(f"{source} {masked(url)}: {problem} (expected {PG_FORM})")
    return url


def describe_url(url: str) -> str:
    """``host:port/dbname`` without credentials, for messages and logs; a Unix socket
    (the embedded server's) as ``dbname on socket directory`` (no port: it has none)."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "(unparseable database URL)"
    host = str(info.get("host") or "localhost")
    name = info.get("dbname") or info.get("user") or "?"
    if host.startswith("/"):
        return f"{name} on socket {host}"
    return f"{host}:{info.get('port') or 5432}/{name}"


def connect(url: str | None = None, *, application_name: str = "riskgate") -> Connection:
    """An autocommit connection with connect and keepalive timeouts."""
    return psycopg.connect(
        database_url(url),
        autocommit=True,
        application_name=application_name,
        **_CONNECT_OPTIONS,  # type: ignore[arg-type]
    )


def ensure_database(url: str | None = None) -> bool:
    """Create the URL's database when it does not exist; True if it was created.

    Connects to the server's ``postgres`` database to create it (needs CREATEDB).
    """
    target = database_url(url)
    try:
        connect(target).close()
        return False
    except psycopg.OperationalError as exc:
        if "does not exist" not in str(exc):
            raise
    name = conninfo_to_dict(target).get("dbname")
    if not name:
        raise psycopg.OperationalError(f"{describe_url(target)}: the URL names no database")
    with connect(make_conninfo(target, dbname=MAINTENANCE_DB)) as admin:
        try:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(str(name))))
        except psycopg.errors.DuplicateDatabase:
            return False  # created meanwhile by another process
    return True


# --- values ----------------------------------------------------------------------------


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(value: object) -> str:
    """JSON for JSONB columns: decimals as exact strings, never floats."""
    return json.dumps(value, default=_json_default, separators=(",", ":"), sort_keys=True)


def jsonb(value: object) -> Jsonb:
    return Jsonb(value, dumps=dumps)


def text_or_none(value: Decimal | None) -> str | None:
    return None if value is None else decimal_text(value)


def ensure_partitions(conn: Connection, table: str, times: Iterable[datetime]) -> int:
    """Make sure the monthly partitions for ``times`` exist (own transaction; no-op if none)."""
    stamps = list(times)
    if not stamps:
        return 0
    row = conn.execute(
        "SELECT riskgate_ensure_partitions(%s::regclass, %s, %s)",
        (table, min(stamps), max(stamps)),
    ).fetchone()
    return int(row[0]) if row else 0


class PartitionCache:
    """Remembers which (table, UTC month) partitions were ensured by this process."""

    def __init__(self) -> None:
        self._seen: set[tuple[str, int, int]] = set()

    def ensure(self, conn: Connection, table: str, times: Iterable[datetime]) -> None:
        months: dict[tuple[str, int, int], datetime] = {}
        for t in times:
            key = (table, t.year, t.month)
            if key not in self._seen:
                months.setdefault(key, t)
        if months:
            ensure_partitions(conn, table, months.values())
            self._seen.update(months)


def row_dicts(cursor: psycopg.Cursor[Any]) -> list[dict[str, Any]]:
    """The cursor's remaining rows as dicts keyed by column name."""
    names = [d.name for d in cursor.description or ()]
    return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
