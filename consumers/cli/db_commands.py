"""CLI commands that use PostgreSQL: migrate, sync-config, audit, phase-monitor, phase,
prices, correlations. Exit codes: 0 ok, 1 refused (a migration mismatch, unmet phase
requirements, a bad price file), 2 bad arguments, 3 PostgreSQL unreachable."""

from __future__ import annotations

import argparse
import functools
import getpass
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from redis import Redis

from consumers.bus.keys import Keys
from consumers.bus.runtime import connect, default_consumer_name
from consumers.cli.commands import add_redis_options
from consumers.cli.status_text import print_migrations, print_phase_report
from consumers.db import connection as db
from consumers.db.audit import AuditWriter
from consumers.db.migrate import MigrationError, discover, migrate
from consumers.db.registry import sync_config
from consumers.db.services import Builder, run_consumer, run_every
from consumers.db.stream_to_pg import ConsumerSettings
from consumers.errors import UsageError
from consumers.market.correlations import Result as CorrelationResult
from consumers.market.correlations import run_once
from consumers.market.prices import PriceFileError, load_bars, read_bars
from consumers.phase.admin import ActivationRefused, activate, phase_report
from consumers.phase.monitor import DEDUPE_TTL_S, PhaseMonitor
from gate.assets import AssetManager
from gate.money import show
from schemas.config import AssetsConfig

if TYPE_CHECKING:
    Sub = argparse._SubParsersAction[argparse.ArgumentParser]

Handler = Callable[[argparse.Namespace], int]


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def _config(args: argparse.Namespace) -> AssetsConfig:
    return AssetManager(args.config).config


def _keys(args: argparse.Namespace) -> Keys:
    return Keys.from_env(args.portfolio)


def guarded(handler: Handler) -> Handler:
    """PostgreSQL and migration failures as one line and an exit status."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except MigrationError as exc:
            print(f"riskgate: {exc}", file=sys.stderr)
            return 1
        except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedFunction) as exc:
            where = db.describe_url(db.database_url(args.database_url))
            first = str(exc).strip().splitlines()[0]
            print(f"riskgate: {where} has no riskgate schema ({first}); run riskgate migrate",
                  file=sys.stderr)  # fmt: skip
            return 1
        except psycopg.OperationalError as exc:
            where = db.describe_url(db.database_url(args.database_url))
            print(f"riskgate: cannot use PostgreSQL at {where}: {exc}".strip(), file=sys.stderr)
            return 3

    return run


# --- schema and registries -------------------------------------------------------------


@guarded
def cmd_migrate(args: argparse.Namespace) -> int:
    url = db.database_url(args.database_url)
    created = db.ensure_database(url)
    migrations = discover(Path(args.migrations_dir) if args.migrations_dir else None)
    with db.connect(url) as conn:
        report = migrate(conn, migrations)
        timescale = conn.execute("SELECT riskgate_has_timescaledb()").fetchone()
    print_migrations(db.describe_url(url), created, report, bool(timescale and timescale[0]))
    return 0


@guarded
def cmd_sync_config(args: argparse.Namespace) -> int:
    url = db.database_url(args.database_url)
    with db.connect(url) as conn:
        synced = sync_config(conn, _config(args))
    print(
        f"{db.describe_url(url)}: {synced.assets} assets, {synced.classes} asset classes, "
        f"{synced.sources} data sources synced"
        + (f"; {synced.retired} no longer in the file" if synced.retired else "")
    )
    return 0


# --- the consumers ---------------------------------------------------------------------


def _settings(args: argparse.Namespace) -> ConsumerSettings:
    return ConsumerSettings(
        consumer=args.consumer or default_consumer_name(),
        batch=args.batch,
        block_ms=args.block_ms,
        min_idle_ms=args.min_idle_ms,
        reclaim_every_s=args.reclaim_every,
        max_backoff_s=args.max_backoff,
    )


def _run(args: argparse.Namespace, build: Builder) -> int:
    return run_consumer(
        build,
        keys=_keys(args),
        config=_config(args),
        settings=_settings(args),
        database_url=args.database_url,
        redis_url=args.redis_url,
        migrate=not args.no_migrate,
        name=args.command,
    )


@guarded
def cmd_audit(args: argparse.Namespace) -> int:
    return _run(args, AuditWriter)


@guarded
def cmd_phase_monitor(args: argparse.Namespace) -> int:
    every = args.evaluate_every
    ttl = _env_int("RISKGATE_DEDUPE_TTL_S", DEDUPE_TTL_S)  # the gate's: the same refusals
    return _run(args, lambda *a: PhaseMonitor(*a, evaluate_every_s=every, dedupe_ttl_s=ttl))


# --- phases ----------------------------------------------------------------------------


@guarded
def cmd_phase_status(args: argparse.Namespace) -> int:
    redis = connect(args.redis_url)
    try:
        with db.connect(args.database_url) as conn:
            report = phase_report(conn, redis, _keys(args), _config(args), datetime.now(UTC).date())
    finally:
        redis.close()
    print_phase_report(args.portfolio, report, as_json=args.json)
    return 0


@guarded
def cmd_phase_activate(args: argparse.Namespace) -> int:
    if args.force and not (args.reason or "").strip():
        raise UsageError("--force needs --reason TEXT (why the requirements are overridden)")
    config = _config(args)
    if args.phase not in config.phases:
        raise UsageError(f"unknown phase {args.phase!r}; phases: {', '.join(config.phases)}")
    redis = connect(args.redis_url)
    try:
        with db.connect(args.database_url) as conn:
            done = activate(
                conn, redis, _keys(args), config, args.phase,
                by=args.by, reason=args.reason, force=args.force, now=datetime.now(UTC),
            )  # fmt: skip
    except ActivationRefused as exc:
        print(f"riskgate: refusing to activate {exc.phase}; unmet requirements:", file=sys.stderr)
        for r in exc.unmet:
            print(
                f"  {r.name}: {show(r.value) or 'unknown'} (needs {r.requirement})", file=sys.stderr
            )
        print("use --force --reason TEXT to override", file=sys.stderr)
        return 1
    finally:
        redis.close()
    if done.already:
        print(f"{args.portfolio}: {done.phase} was already activated; nothing changed")
    else:
        unmet = ", ".join(r.name for r in done.unmet)
        forced = f" (forced; unmet: {unmet})" if done.forced else ""
        print(f"{args.portfolio}: {done.phase} activated by {args.by}{forced}")
    for stream_id in done.stream_ids:
        print(f"published {stream_id} on {_keys(args).phases}")
    return 0


# --- prices and correlations -----------------------------------------------------------


@guarded
def cmd_prices_load(args: argparse.Namespace) -> int:
    config = _config(args)
    try:
        bars = read_bars(Path(args.file), config, interval=args.interval, source=args.source)
    except PriceFileError as exc:
        print(f"riskgate: {exc}", file=sys.stderr)
        return 1
    with db.connect(args.database_url) as conn:
        sync_config(conn, config)  # price_data's foreign keys need the registry
        inserted, replaced = load_bars(conn, bars)
    symbols = len({b.symbol for b in bars})
    print(f"{args.file}: {inserted} bars loaded, {replaced} replaced ({symbols} symbols)")
    return 0


def _correlate(args: argparse.Namespace, redis: Redis) -> CorrelationResult:
    min_obs = args.min_observations or max(3, args.window // 2)
    with db.connect(args.database_url) as conn:
        return run_once(
            conn, redis, _keys(args), _config(args), window_days=args.window,
            min_observations=min_obs,
        )  # fmt: skip


@guarded
def cmd_correlations(args: argparse.Namespace) -> int:
    if args.window < 2:
        raise UsageError("--window must be at least 2 days")
    if args.every:
        return _correlations_every(args)
    redis = connect(args.redis_url)
    try:
        res = _correlate(args, redis)
    finally:
        redis.close()
    if res.as_of is None:
        print(f"{args.portfolio}: no prices in price_data; nothing published")
    else:
        print(
            f"{args.portfolio}: {len(res.pairs)} correlations as of {res.as_of.isoformat()} "
            f"({args.window} days, {len(res.symbols)} symbols, {res.skipped} pairs unknown)"
        )
    return 0


def _correlations_every(args: argparse.Namespace) -> int:
    """A long-running process (a Procfile line): every ``--every`` seconds until SIGTERM."""
    redis = connect(args.redis_url)

    def task() -> dict[str, Any]:
        res = _correlate(args, redis)
        return {
            "event": "correlations published" if res.as_of else "no prices; nothing published",
            "as_of": res.as_of.isoformat() if res.as_of else None,
            "pairs": len(res.pairs),
            "unknown_pairs": res.skipped,
            "symbols": list(res.symbols),
            "window_days": args.window,
        }

    try:
        return run_every(
            task, every=args.every, name="correlations", config=_config(args),
            database_url=args.database_url, migrate=not args.no_migrate,
            max_backoff=args.max_backoff, portfolio=args.portfolio,
        )  # fmt: skip
    finally:
        redis.close()


# --- registration ----------------------------------------------------------------------


def _database(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--database-url",
        default=None,
        help="default: $DATABASE_URL, else the data directory's embedded PostgreSQL",
    )


def _redis(p: argparse.ArgumentParser) -> None:
    add_redis_options(p)
    _database(p)


def _consumer_options(p: argparse.ArgumentParser, batch: int) -> None:
    _redis(p)
    p.add_argument("--consumer", help="consumer name (default: host-pid)")
    p.add_argument("--batch", type=int, default=batch, help="entries per transaction")
    # a string default (argparse converts it): a bad RISKGATE_BLOCK_MS, which the gate
    # reads too, is reported by the command that uses it, not at every command's start
    p.add_argument("--block-ms", type=int, default=os.environ.get("RISKGATE_BLOCK_MS") or "1000")
    p.add_argument(
        "--min-idle-ms",
        type=int,
        default=_env_int("RISKGATE_PG_MIN_IDLE_MS", 30_000),
        help="reclaim entries pending this long on other consumers",
    )
    p.add_argument("--reclaim-every", type=float, default=5.0, help="seconds between sweeps")
    _startup_options(p)


def _startup_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-backoff",
        type=float,
        default=float(os.environ.get("RISKGATE_MAX_BACKOFF_S", "5")),
        help="longest wait between retries while PostgreSQL or Redis is down (seconds)",
    )
    p.add_argument(
        "--no-migrate",
        action="store_true",
        help="do not create/migrate the database and sync the registries at start",
    )


def register(sub: Sub) -> None:
    p = sub.add_parser("migrate", help="create the database if needed and apply migrations")
    _database(p)
    p.add_argument("--migrations-dir", help="directory of NNN_name.sql (default: the packaged)")
    p.set_defaults(handler=cmd_migrate)

    p = sub.add_parser("sync-config", help="upsert assets, classes and data sources into SQL")
    _database(p)
    p.set_defaults(handler=cmd_sync_config)

    p = sub.add_parser("audit", help="write the decisions stream into trading_decisions")
    _consumer_options(p, _env_int("RISKGATE_AUDIT_BATCH", 500))
    p.set_defaults(handler=cmd_audit)

    p = sub.add_parser("phase-monitor", help="track performance and emit phase events")
    _consumer_options(p, _env_int("RISKGATE_PHASE_BATCH", 500))
    p.add_argument(
        "--evaluate-every", type=float, default=30.0, help="seconds between phase evaluations"
    )
    p.set_defaults(handler=cmd_phase_monitor)

    _register_phase(sub)
    _register_market(sub)


def _register_phase(sub: Sub) -> None:
    p = sub.add_parser("phase", help="phase requirements and manual activation")
    actions = p.add_subparsers(dest="phase_command", required=True, metavar="ACTION")
    s = actions.add_parser("status", help="each phase, its requirements, current values")
    _redis(s)
    s.add_argument("--json", action="store_true")
    s.set_defaults(handler=cmd_phase_status)
    a = actions.add_parser("activate", help="activate a phase (refused while unmet)")
    _redis(a)
    a.add_argument("phase", metavar="NAME")
    a.add_argument("--force", action="store_true", help="activate although requirements fail")
    a.add_argument("--reason", help="why (required with --force; logged)")
    a.add_argument("--by", default=os.environ.get("USER") or getpass.getuser(), help="who")
    a.set_defaults(handler=cmd_phase_activate)


def _register_market(sub: Sub) -> None:
    p = sub.add_parser("prices", help="price data")
    actions = p.add_subparsers(dest="prices_command", required=True, metavar="ACTION")
    load = actions.add_parser("load", help="load bars from a CSV file into price_data")
    _database(load)
    load.add_argument("file", metavar="FILE.csv")
    load.add_argument("--interval", default="1d", help="bar interval when the file has none")
    load.add_argument("--source", help="source name when the file has none")
    load.set_defaults(handler=cmd_prices_load)

    p = sub.add_parser("correlations", help="correlations of daily returns, for the gate")
    _redis(p)
    _startup_options(p)
    p.add_argument("--window", type=int, default=60, help="days of returns (default 60)")
    p.add_argument("--min-observations", type=int, help="common days needed (default window/2)")
    p.add_argument("--every", type=float, help="run every SECONDS until stopped")
    p.set_defaults(handler=cmd_correlations)
