"""What a database's time series are built on, read from its catalogs.

TimescaleDB (its version and edition; the hypertables, which are compressed, the
continuous aggregates, the compression, retention and refresh policies) or plain
PostgreSQL (the partitioned tables). ``riskgate migrate`` prints it. The edition
decides what exists: the apache edition has hypertables only; compression,
continuous aggregates and policies are the community edition's
(``timescaledb.license = 'timescale'``). See ``sql/006_timescaledb.sql``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, LiteralString

from consumers.db.connection import Connection
from consumers.db.daily_closes import AGGREGATE

POLICIES = {
    "policy_compression": "compression",
    "policy_retention": "retention",
    "policy_refresh_continuous_aggregate": "refresh",
}


@dataclass(frozen=True, slots=True)
class Policy:
    kind: str  # compression, retention, refresh
    relation: str
    setting: str  # e.g. "after 7 days", "drop after 1 year", "every 01:00:00, from the start"


@dataclass(frozen=True, slots=True)
class Layout:
    edition: str  # none (no timescaledb extension here), apache, timescale (community)
    version: str | None  # the timescaledb extension's
    hypertables: tuple[str, ...]
    compressed: tuple[str, ...]  # hypertables with compression enabled
    partitioned: tuple[str, ...]  # PostgreSQL declarative partitioning
    aggregates: tuple[str, ...]  # continuous aggregates
    policies: tuple[Policy, ...]
    daily_closes: str  # continuous aggregate, view, or missing (before 006)

    @property
    def community(self) -> bool:
        return self.edition == "timescale"


def _names(conn: Connection, query: LiteralString) -> tuple[str, ...]:
    return tuple(str(r[0]) for r in conn.execute(query).fetchall())


def _span(every: Any) -> str:
    """A schedule interval (a timedelta) in words: 1 hour, 2 days."""
    if not isinstance(every, timedelta):
        return str(every)
    seconds = int(every.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return str(every)


def _setting(kind: str, config: dict[str, Any], every: Any) -> str:
    if kind == "compression":
        return f"after {config.get('compress_after')}"
    if kind == "retention":
        return f"drop after {config.get('drop_after')}"
    start = config.get("start_offset")
    return (
        f"every {_span(every)}, from {'the start' if start is None else f'{start} ago'} "
        f"to {config.get('end_offset')} ago"
    )


def _policies(conn: Connection) -> tuple[Policy, ...]:
    rows = conn.execute(
        "SELECT proc_name, hypertable_name, config, schedule_interval "
        "FROM timescaledb_information.jobs "
        "WHERE hypertable_schema = current_schema() AND proc_name = ANY(%s) "
        "ORDER BY hypertable_name, proc_name",
        (list(POLICIES),),
    ).fetchall()
    return tuple(
        Policy(POLICIES[proc], str(rel), _setting(POLICIES[proc], config or {}, every))
        for proc, rel, config, every in rows
    )


def inspect(conn: Connection) -> Layout:
    """The layout of the connection's database (its current schema)."""
    row = conn.execute(
        "SELECT (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'), "
        "current_setting('timescaledb.license', true), to_regclass(%s) IS NOT NULL",
        (AGGREGATE,),
    ).fetchone()
    version, license_, has_daily = row if row else (None, None, False)
    partitioned = _names(
        conn,
        "SELECT c.relname FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
        "WHERE c.relnamespace = current_schema()::regnamespace ORDER BY 1",
    )
    daily = "view" if has_daily else "missing"
    if version is None:
        return Layout("none", None, (), (), partitioned, (), (), daily)
    hyper = conn.execute(
        "SELECT hypertable_name, compression_enabled FROM timescaledb_information.hypertables "
        "WHERE hypertable_schema = current_schema() ORDER BY 1"
    ).fetchall()
    aggregates = _names(
        conn,
        "SELECT view_name FROM timescaledb_information.continuous_aggregates "
        "WHERE view_schema = current_schema() ORDER BY 1",
    )
    return Layout(
        edition=license_ or "apache",
        version=str(version),
        hypertables=tuple(str(h) for h, _ in hyper),
        compressed=tuple(str(h) for h, on in hyper if on),
        partitioned=partitioned,
        aggregates=aggregates,
        policies=_policies(conn),
        daily_closes="continuous aggregate" if AGGREGATE in aggregates else daily,
    )
