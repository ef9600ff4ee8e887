"""What every PostgreSQL command shares: its options, the config and keys it runs with,
and :func:`guarded` (PostgreSQL and migration failures as one line and an exit status:
1 refused, 3 unreachable)."""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable

import psycopg

from consumers.bus.keys import Keys
from consumers.cli.options import add_redis_options, add_serving_options, seconds_arg, whole_arg
from consumers.db import connection as db
from consumers.db.migrate import MigrationError
from gate.assets import AssetManager
from schemas.config import AssetsConfig

Handler = Callable[[argparse.Namespace], int]


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def config_of(args: argparse.Namespace) -> AssetsConfig:
    return AssetManager(args.config).config


def keys_of(args: argparse.Namespace) -> Keys:
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


# --- options -------------------------------------------------------------------------


def database_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--database-url",
        default=None,
        help="default: $DATABASE_URL, else the data directory's embedded PostgreSQL",
    )


def redis_options(p: argparse.ArgumentParser) -> None:
    add_redis_options(p)
    database_option(p)


def consumer_options(p: argparse.ArgumentParser, batch: int) -> None:
    """The long-running PostgreSQL consumers: which portfolios, and how they read."""
    add_serving_options(p)
    database_option(p)
    p.add_argument("--consumer", help="consumer name (default: host-pid)")
    p.add_argument(
        "--batch", type=whole_arg(1, 100_000), default=batch, help="entries per transaction"
    )
    # a string default (argparse converts it): a bad RISKGATE_BLOCK_MS, which the gate
    # reads too, is reported by the command that uses it, not at every command's start
    p.add_argument(
        "--block-ms",
        type=whole_arg(1, 600_000),
        default=os.environ.get("RISKGATE_BLOCK_MS") or "1000",
    )
    p.add_argument(
        "--min-idle-ms",
        type=whole_arg(1),
        default=env_int("RISKGATE_PG_MIN_IDLE_MS", 30_000),
        help="reclaim entries pending this long on other consumers",
    )
    p.add_argument(
        "--reclaim-every",
        type=seconds_arg(inclusive=False),
        default=5.0,
        help="seconds between sweeps",
    )
    startup_options(p)


def startup_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-backoff",
        type=seconds_arg(inclusive=False),
        default=float(os.environ.get("RISKGATE_MAX_BACKOFF_S", "5")),
        help="longest wait between retries while PostgreSQL or Redis is down (seconds)",
    )
    p.add_argument(
        "--no-migrate",
        action="store_true",
        help="do not create/migrate the database and sync the registries at start",
    )
