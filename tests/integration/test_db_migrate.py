"""riskgate migrate and sync-config against a real PostgreSQL (fresh database per test)."""

from __future__ import annotations

import shutil
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from consumers.cli.main import main
from consumers.db import connection as db
from consumers.db.migrate import default_directory, discover, migrate
from tests.integration.pg import (
    POSTGRESQL,
    Server,
    drop_database,
    query,
    scalar,
    temp_database,
)

pytestmark = pytest.mark.pg  # once per server: PostgreSQL, TimescaleDB

TIME_SERIES = (
    "price_data",
    "leading_indicators",
    "social_sentiment",
    "options_flow",
    "asset_correlations",
    "trading_decisions",
    "agent_signals",
    "predictions",
    "trades",
)
PARTITIONS = "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = %s::regclass"
EXTENSION_TABLES = (
    "asset_registry",
    "asset_class_config",
    "data_source_registry",
    "phase_activation_log",
    "asset_performance",
    "leading_indicators",
    "social_sentiment",
    "options_flow",
    "economic_calendar",
    "asset_correlations",
)


@pytest.fixture
def empty_db() -> Iterator[str]:
    with temp_database("migrate", prepared=False) as url:
        yield url


@pytest.fixture
def sql_copy(tmp_path: Path) -> Path:
    """The shipped migrations, copied where a test may change them."""
    target = tmp_path / "sql"
    target.mkdir()
    for entry in default_directory().iterdir():
        if entry.name.endswith(".sql"):
            (target / entry.name).write_bytes(entry.read_bytes())
    return target


def test_migrate_when_database_empty_then_every_table_and_history_row(
    empty_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """From empty: each migration applied once, recorded with its checksum; all tables exist."""
    assert main(["migrate", "--database-url", empty_db]) == 0
    out = capsys.readouterr().out
    names = [m.name for m in discover()]
    assert all(f"applied {n}" in out for n in names)
    rows = query(empty_db, "SELECT name, checksum FROM schema_migrations ORDER BY name")
    assert rows == [(m.name, m.checksum) for m in discover()]
    tables = {r[0] for r in query(empty_db, "SELECT tablename FROM pg_tables")}
    base = {"price_data", "trading_decisions", "agent_signals", "predictions", "trades"}
    assert base | set(EXTENSION_TABLES) <= tables | set(TIME_SERIES)
    for table in base:
        cols = {r[0] for r in query(empty_db, "SELECT column_name FROM information_schema"
                                    ".columns WHERE table_name = %s", (table,))}  # fmt: skip
        assert "asset_class" in cols, table


def test_migrate_when_run_twice_then_second_run_applies_nothing(
    empty_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Safe to run twice: the second run changes nothing and says so."""
    assert main(["migrate", "--database-url", empty_db]) == 0
    before = query(empty_db, "SELECT name, applied_at FROM schema_migrations ORDER BY name")
    capsys.readouterr()
    assert main(["migrate", "--database-url", empty_db]) == 0
    assert "0 applied now" in capsys.readouterr().out
    assert query(empty_db, "SELECT name, applied_at FROM schema_migrations ORDER BY name") == before


def test_migrate_when_applied_file_tampered_then_refused_with_exit_1(
    empty_db: str, sql_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A migration changed after it was applied: refused, non-zero, naming the file."""
    assert main(["migrate", "--database-url", empty_db, "--migrations-dir", str(sql_copy)]) == 0
    first = sorted(sql_copy.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- an innocent edit\n")
    (sql_copy / "999_later.sql").write_text("CREATE TABLE must_not_exist (x int);")
    capsys.readouterr()
    assert main(["migrate", "--database-url", empty_db, "--migrations-dir", str(sql_copy)]) == 1
    err = capsys.readouterr().err
    assert f"{first.name} was changed after it was applied" in err
    assert scalar(empty_db, "SELECT to_regclass('must_not_exist')") is None


def test_migrate_when_a_migration_fails_then_it_is_rolled_back_whole(
    empty_db: str, sql_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each migration is one transaction: a failing one leaves no table and no history row."""
    (sql_copy / "998_broken.sql").write_text(
        "CREATE TABLE half_done (x int);\nSELECT no_such_function();\n"
    )
    assert main(["migrate", "--database-url", empty_db, "--migrations-dir", str(sql_copy)]) == 1
    assert "998_broken.sql failed and was rolled back" in capsys.readouterr().err
    assert scalar(empty_db, "SELECT to_regclass('half_done')") is None
    names = {r[0] for r in query(empty_db, "SELECT name FROM schema_migrations")}
    assert "998_broken.sql" not in names and len(names) == len(discover())


def test_migrate_when_run_then_time_series_laid_out_for_the_server_and_reported(
    empty_db: str, pg_server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    """PostgreSQL: no extension, monthly partitions; TimescaleDB: the nine time series are
    hypertables with the keys they have on PostgreSQL; migrate prints which."""
    assert main(["migrate", "--database-url", empty_db]) == 0
    out = capsys.readouterr().out
    kinds = dict(
        query(empty_db, "SELECT relname, relkind FROM pg_class WHERE relname = ANY(%s)",
              (list(TIME_SERIES),))
    )  # fmt: skip
    keys = {r[0] for r in query(empty_db, "SELECT conname FROM pg_constraint WHERE contype = 'p'")}
    assert {f"{t}_pkey" for t in TIME_SERIES} <= keys
    listed = f"{', '.join(sorted(TIME_SERIES))} ({len(TIME_SERIES)})"
    if pg_server.name == POSTGRESQL:
        assert scalar(empty_db, "SELECT riskgate_has_timescaledb()") is False
        assert scalar(empty_db, "SELECT riskgate_timescale_edition()") == "none"
        assert kinds == dict.fromkeys(TIME_SERIES, "p")
        for table in TIME_SERIES:
            parts = {r[0] for r in query(empty_db, PARTITIONS, (table,))}
            assert f"{table}_default" in parts and len(parts) >= 4, table
        assert "PostgreSQL without TimescaleDB: time series as monthly partitions" in out
        assert f"partitioned: {listed}" in out
        return
    hypertables = {r[0] for r in query(empty_db, "SELECT hypertable_name FROM "
                                       "timescaledb_information.hypertables")}  # fmt: skip
    assert hypertables == set(TIME_SERIES)
    assert kinds == dict.fromkeys(TIME_SERIES, "r")  # hypertables are plain tables with chunks
    version = scalar(empty_db, "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
    assert f"TimescaleDB {version}, " in out and f"hypertables: {listed}" in out


def test_ensure_partitions_when_month_missing_then_created_and_rows_routed(
    empty_db: str, pg_server: Server
) -> None:
    """Writers create the month's partition first (PostgreSQL); on hypertables (TimescaleDB
    makes chunks as rows arrive) and plain tables it is a no-op."""
    assert main(["migrate", "--database-url", empty_db]) == 0
    with db.connect(empty_db) as conn:
        created = conn.execute(
            "SELECT riskgate_ensure_partitions('trades', '2020-01-31T23:00:00-05:00', "
            "'2020-02-01T00:00:00Z')"
        ).fetchone()
        again = conn.execute(
            "SELECT riskgate_ensure_partitions('trades', '2020-02-01', '2020-02-02')"
        ).fetchone()
        noop = conn.execute(
            "SELECT riskgate_ensure_partitions('applied_events', '2020-01-01', '2020-02-01')"
        ).fetchone()
    if pg_server.name == POSTGRESQL:
        assert (created, again, noop) == ((1,), (0,), (0,))  # Feb 2020 UTC only; plain: no-op
        assert scalar(empty_db, "SELECT to_regclass('trades_p202002') IS NOT NULL") is True
    else:
        assert (created, again, noop) == ((0,), (0,), (0,))
        assert scalar(empty_db, "SELECT to_regclass('trades_p202002')") is None


@pytest.mark.pg(POSTGRESQL)  # TimescaleDB's tables are hypertables already: nothing to unpartition
def test_unpartition_when_called_then_plain_table_keeps_keys_checks_and_indexes(
    empty_db: str,
) -> None:
    """The TimescaleDB path's first step (partitioned -> plain, for create_hypertable)."""
    assert main(["migrate", "--database-url", empty_db]) == 0
    with db.connect(empty_db) as conn:
        conn.execute("SELECT riskgate_unpartition('predictions')")
        kind = conn.execute("SELECT relkind FROM pg_class WHERE relname = 'predictions'")
        assert kind.fetchone() == ("r",)
        indexes = conn.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'predictions'")
        defs = " ".join(r[0] for r in indexes.fetchall())
        assert "UNIQUE INDEX" in defs and '(model, symbol, target_time, "time")' in defs
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(
                "INSERT INTO predictions (time, model, symbol, asset_class, target_time, "
                "direction) VALUES ('2026-01-02', 'm', 'NVDA', 'stocks', '2026-01-01', 'up')"
            )


def test_migrate_when_two_run_at_once_then_each_migration_applied_once(empty_db: str) -> None:
    """Concurrent migrators (processes starting together) serialise on an advisory lock."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with db.connect(empty_db) as conn:
                migrate(conn, discover())
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert scalar(empty_db, "SELECT count(*) FROM schema_migrations") == len(discover())


def test_sync_config_when_run_twice_then_registries_match_the_yaml(
    empty_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """22 assets, 6 classes, 13 data sources; usage counters survive a re-sync."""
    assert main(["migrate", "--database-url", empty_db]) == 0
    assert main(["sync-config", "--database-url", empty_db]) == 0
    assert "22 assets, 6 asset classes, 13 data sources" in capsys.readouterr().out
    with db.connect(empty_db) as conn:
        conn.execute("UPDATE data_source_registry SET requests_total = 42 WHERE name = 'glassnode'")
    assert main(["sync-config", "--database-url", empty_db]) == 0
    counts = query(
        empty_db,
        "SELECT (SELECT count(*) FROM asset_registry), (SELECT count(*) FROM asset_class_config),"
        " (SELECT count(*) FROM data_source_registry WHERE in_config)",
    )
    assert counts == [(22, 6, 13)]
    # and the simulated market of riskgate feed --source sim (migration 007), not a config row
    assert query(empty_db, "SELECT in_config FROM data_source_registry WHERE name = 'sim'") == [
        (False,)
    ]
    row = query(
        empty_db,
        "SELECT requests_total, monthly_cost_usd, rate_limit_requests, rate_limit_per_seconds "
        "FROM data_source_registry WHERE name = 'glassnode'",
    )
    assert row == [(42, 29, 10, 60)]
    nvda = query(empty_db, "SELECT asset_class, phase, enabled, reference_price FROM "
                 "asset_registry WHERE symbol = 'NVDA'")  # fmt: skip
    assert nvda[0][:3] == ("stocks", "phase_1_stocks", False)
    sources = query(empty_db, "SELECT source FROM asset_data_sources WHERE symbol = 'NVDA' "
                    "ORDER BY source")  # fmt: skip
    assert [r[0] for r in sources] == ["alpha_vantage", "polygon_io", "unusual_whales"]


def test_migrate_when_database_missing_then_created(capsys: pytest.CaptureFixture[str]) -> None:
    """riskgate migrate creates the database its URL names when it does not exist."""
    with temp_database("created", prepared=False) as url:
        name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
        missing = psycopg.conninfo.make_conninfo(url, dbname=f"{name}_new")
        try:
            assert main(["migrate", "--database-url", missing]) == 0
            assert "database created" in capsys.readouterr().out
            assert scalar(missing, "SELECT count(*) FROM schema_migrations") == len(discover())
        finally:
            drop_database(f"{name}_new")


def test_migrate_when_server_unreachable_then_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    """No server: one line naming where, exit status 3."""
    url = "postgresql://postgres@127.0.0.1:1/nowhere"
    assert main(["migrate", "--database-url", url]) == 3
    assert "cannot use PostgreSQL at 127.0.0.1:1/nowhere" in capsys.readouterr().err


def test_packaged_sql_when_listed_then_matches_the_repository() -> None:
    """The installed package finds the same migrations as the source tree."""
    repo = Path(__file__).resolve().parents[2] / "sql"
    assert [m.name for m in discover(repo)] == [m.name for m in discover()]
    # the console script is installed beside the interpreter running the tests
    assert shutil.which("riskgate", path=str(Path(sys.executable).parent)) is not None


def test_commands_when_database_not_migrated_then_exit_1_saying_run_migrate(
    empty_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A command on an empty database says what to do instead of a traceback."""
    assert main(["sync-config", "--database-url", empty_db]) == 1
    assert "has no riskgate schema" in capsys.readouterr().err
