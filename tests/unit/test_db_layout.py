"""What riskgate migrate prints about the time series, for each kind of server."""

from __future__ import annotations

from consumers.cli.migrate_text import layout_lines
from consumers.db.layout import Layout, Policy

SERIES = ("price_data", "trades")


def test_layout_when_plain_postgresql_then_partitions_and_plain_view() -> None:
    """No TimescaleDB: the partitioned tables and the plain daily-close view."""
    lines = layout_lines(Layout("none", None, (), (), SERIES, (), (), "view"))
    assert lines == [
        "PostgreSQL without TimescaleDB: time series as monthly partitions",
        "  partitioned: price_data, trades (2)",
        "  daily closes: price_data_daily, a plain view",
    ]


def test_layout_when_apache_edition_then_hypertables_and_says_what_it_lacks() -> None:
    """The apache edition: hypertables, and why there is no compression, aggregate or policy."""
    lines = layout_lines(Layout("apache", "2.25.2", SERIES, (), (), (), (), "view"))
    assert lines[0] == "TimescaleDB 2.25.2, apache edition"
    assert lines[1] == "  hypertables: price_data, trades (2)"
    assert "need the community edition, timescaledb.license = 'timescale'" in lines[2]
    assert lines[3] == "  daily closes: price_data_daily, a plain view"


def test_layout_when_community_edition_then_compression_aggregates_and_policies() -> None:
    """The community edition: what is compressed, the aggregates, each policy."""
    policy = Policy("compression", "price_data", "after 7 days")
    layout = Layout("timescale", "2.25.2", SERIES, ("price_data",), ("trades",),
                    ("price_data_daily",), (policy,), "continuous aggregate")  # fmt: skip
    assert layout_lines(layout) == [
        "TimescaleDB 2.25.2, community edition",
        "  hypertables: price_data, trades (2)",
        "  partitioned: trades (1)",
        "  compressed: price_data (1)",
        "  continuous aggregates: price_data_daily (1)",
        "  policy: compression on price_data, after 7 days",
        "  daily closes: price_data_daily, a real-time continuous aggregate",
    ]
