"""CLI commands that use PostgreSQL: migrate, sync-config, and the PostgreSQL consumers
(audit, phase-monitor); ``phase`` and the market commands have their own modules.
Exit codes: 0 ok, 1 refused (a migration mismatch), 2 bad arguments, 3 PostgreSQL
unreachable."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from consumers.bus.runtime import default_consumer_name
from consumers.cli.migrate_text import print_migrations, print_status
from consumers.cli.options import prefix, seconds_arg, serving_set
from consumers.cli.pg_options import (
    config_of,
    consumer_options,
    database_option,
    env_int,
    guarded,
)
from consumers.db import connection as db
from consumers.db.audit import AuditWriter
from consumers.db.layout import inspect
from consumers.db.migrate import discover, history, migrate
from consumers.db.registry import sync_config
from consumers.db.services import Builder, run_consumer
from consumers.db.stream_to_pg import ConsumerSettings
from consumers.errors import UsageError
from consumers.gate_worker.settings import MAX_IDLE_MS
from consumers.phase.monitor import DEDUPE_TTL_S, PhaseMonitor

if TYPE_CHECKING:
    Sub = argparse._SubParsersAction[argparse.ArgumentParser]


# --- schema and registries -------------------------------------------------------------


@guarded
def cmd_migrate(args: argparse.Namespace) -> int:
    url = db.database_url(args.database_url)
    migrations = discover(Path(args.migrations_dir) if args.migrations_dir else None)
    if args.status:  # changes nothing, creates nothing
        with db.connect(url) as conn:
            done = history(conn, migrations)
            print_status(db.describe_url(url), done, inspect(conn))
        return 1 if done.pending else 0
    created = db.ensure_database(url)
    with db.connect(url) as conn:
        report = migrate(conn, migrations)
        layout = inspect(conn)
    print_migrations(db.describe_url(url), created, report, layout)
    return 0


@guarded
def cmd_sync_config(args: argparse.Namespace) -> int:
    url = db.database_url(args.database_url)
    with db.connect(url) as conn:
        synced = sync_config(conn, config_of(args))
    print(
        f"{db.describe_url(url)}: {synced.assets} assets, {synced.classes} asset classes, "
        f"{synced.sources} data sources synced"
        + (f"; {synced.retired} no longer in the file" if synced.retired else "")
    )
    return 0


# --- the consumers ---------------------------------------------------------------------


def _settings(args: argparse.Namespace) -> ConsumerSettings:
    if not 1 <= args.idle_ms <= MAX_IDLE_MS:
        raise UsageError(f"--idle-ms is {args.idle_ms}: it must be from 1 to {MAX_IDLE_MS}")
    if not args.registry_every > 0:
        raise UsageError(f"--registry-every is {args.registry_every}: it must be > 0 seconds")
    return ConsumerSettings(
        consumer=args.consumer or default_consumer_name(),
        batch=args.batch,
        block_ms=args.block_ms,
        min_idle_ms=args.min_idle_ms,
        reclaim_every_s=args.reclaim_every,
        max_backoff_s=args.max_backoff,
        idle_ms=args.idle_ms,
        registry_every_s=args.registry_every,
    )


def _run(args: argparse.Namespace, build: Builder) -> int:
    return run_consumer(
        build,
        portfolios=serving_set(args),
        all_portfolios=args.all_portfolios,
        prefix=prefix(),
        config=config_of(args),
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
    # the gate's applied-marker window: both refuse the same events as too old
    ttl = env_int("RISKGATE_EVENT_DEDUPE_TTL_S", DEDUPE_TTL_S)
    return _run(args, lambda *a: PhaseMonitor(*a, evaluate_every_s=every, dedupe_ttl_s=ttl))


# --- registration ----------------------------------------------------------------------


def register(sub: Sub) -> None:
    p = sub.add_parser("migrate", help="create the database if needed and apply migrations")
    database_option(p)
    p.add_argument("--migrations-dir", help="directory of NNN_name.sql (default: the packaged)")
    p.add_argument(
        "--status",
        action="store_true",
        help="print what is applied and pending and what the time series are built on; "
        "change nothing (exit 1 when migrations are pending)",
    )
    p.set_defaults(handler=cmd_migrate)

    p = sub.add_parser("sync-config", help="upsert assets, classes and data sources into SQL")
    database_option(p)
    p.set_defaults(handler=cmd_sync_config)

    p = sub.add_parser("audit", help="write the decisions stream into trading_decisions")
    consumer_options(p, env_int("RISKGATE_AUDIT_BATCH", 500))
    p.set_defaults(handler=cmd_audit)

    p = sub.add_parser("phase-monitor", help="track performance and emit phase events")
    consumer_options(p, env_int("RISKGATE_PHASE_BATCH", 500))
    p.add_argument(
        "--evaluate-every",
        type=seconds_arg(inclusive=False),
        default=30.0,
        help="seconds between phase evaluations",
    )
    p.set_defaults(handler=cmd_phase_monitor)
