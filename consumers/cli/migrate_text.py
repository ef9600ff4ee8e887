"""What ``riskgate migrate`` prints: the migrations applied, and what the time series are
built on (TimescaleDB's hypertables, aggregates and policies, or PostgreSQL partitions)."""

from __future__ import annotations

from consumers.db.layout import Layout
from consumers.db.migrate import History
from consumers.db.migrate import Report as MigrationReport

COMMUNITY_ONLY = (
    "compression, continuous aggregates, policies: none (the apache edition has none; "
    "they need the community edition, timescaledb.license = 'timescale')"
)
DAILY = {
    "continuous aggregate": "a real-time continuous aggregate",
    "view": "a plain view",
    "missing": "missing (run riskgate migrate)",
}


EDITIONS = {"apache": "apache edition", "timescale": "community edition"}


def _listed(names: tuple[str, ...]) -> str:
    return f"{', '.join(names)} ({len(names)})" if names else "none"


def layout_lines(layout: Layout) -> list[str]:
    """The layout, a heading line and indented details."""
    if layout.edition == "none":
        lines = [
            "PostgreSQL without TimescaleDB: time series as monthly partitions",
            f"  partitioned: {_listed(layout.partitioned)}",
        ]
    else:
        lines = [
            f"TimescaleDB {layout.version}, {EDITIONS.get(layout.edition, layout.edition)}",
            f"  hypertables: {_listed(layout.hypertables)}",
        ]
        if layout.partitioned:  # built before the extension was there: left as they are
            lines.append(f"  partitioned: {_listed(layout.partitioned)}")
        if layout.community:
            lines.append(f"  compressed: {_listed(layout.compressed)}")
            lines.append(f"  continuous aggregates: {_listed(layout.aggregates)}")
            lines += [f"  policy: {p.kind} on {p.relation}, {p.setting}" for p in layout.policies]
            if not layout.policies:
                lines.append("  policies: none")
        else:
            lines.append(f"  {COMMUNITY_ONLY}")
    lines.append(f"  daily closes: price_data_daily, {DAILY[layout.daily_closes]}")
    return lines


def print_migrations(where: str, created: bool, report: MigrationReport, layout: Layout) -> None:
    if created:
        print(f"{where}: database created")
    for name in report.applied:
        print(f"{where}: applied {name}")
    print(
        f"{where}: schema up to date ({len(report.applied)} applied now, "
        f"{len(report.already)} before)"
    )
    print(f"{where}: " + "\n".join(layout_lines(layout)))


def print_status(where: str, history: History, layout: Layout) -> None:
    amended = f", {len(history.amended)} from an earlier text" if history.amended else ""
    pending = f": {', '.join(history.pending)}" if history.pending else ""
    print(f"{where}: {len(history.applied)} migrations applied{amended}, "
          f"{len(history.pending)} pending{pending}")  # fmt: skip
    for name in history.amended:
        print(f"{where}: {name} recorded with the text it had before it was amended")
    print(f"{where}: " + "\n".join(layout_lines(layout)))
