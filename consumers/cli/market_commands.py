"""``riskgate prices load`` (price bars from a CSV into PostgreSQL) and ``riskgate
correlations`` (once, or ``--every`` seconds as a Procfile process). Exit codes: 0 ok,
1 a bad price file, 2 bad arguments, 3 PostgreSQL unreachable."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from redis import Redis

from consumers.bus.runtime import connect
from consumers.cli.options import seconds_arg
from consumers.cli.pg_options import (
    config_of,
    database_option,
    guarded,
    keys_of,
    redis_options,
    startup_options,
)
from consumers.db import connection as db
from consumers.db.registry import sync_config
from consumers.db.services import run_every
from consumers.errors import UsageError
from consumers.market.correlations import Result as CorrelationResult
from consumers.market.correlations import run_once
from consumers.market.prices import PriceFileError, load_bars, read_bars

if TYPE_CHECKING:
    Sub = argparse._SubParsersAction[argparse.ArgumentParser]


@guarded
def cmd_prices_load(args: argparse.Namespace) -> int:
    config = config_of(args)
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
            conn, redis, keys_of(args), config_of(args), window_days=args.window,
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
    """A long-running process (a Procfile line): every ``--every`` seconds until SIGTERM.
    Connects at the first run, so a Redis that does not answer yet is retried there."""
    clients: list[Redis] = []

    def task() -> dict[str, Any]:
        if not clients:
            clients.append(connect(args.redis_url))
        res = _correlate(args, clients[0])
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
            task, every=args.every, name="correlations", config=config_of(args),
            database_url=args.database_url, migrate=not args.no_migrate,
            max_backoff=args.max_backoff, portfolio=args.portfolio,
        )  # fmt: skip
    finally:
        for client in clients:
            client.close()


def register(sub: Sub) -> None:
    p = sub.add_parser("prices", help="price data")
    actions = p.add_subparsers(dest="prices_command", required=True, metavar="ACTION")
    load = actions.add_parser("load", help="load bars from a CSV file into price_data")
    database_option(load)
    load.add_argument("file", metavar="FILE.csv")
    load.add_argument("--interval", default="1d", help="bar interval when the file has none")
    load.add_argument("--source", help="source name when the file has none")
    load.set_defaults(handler=cmd_prices_load)

    p = sub.add_parser("correlations", help="correlations of daily returns, for the gate")
    redis_options(p)
    startup_options(p)
    p.add_argument("--window", type=int, default=60, help="days of returns (default 60)")
    p.add_argument("--min-observations", type=int, help="common days needed (default window/2)")
    p.add_argument(
        "--every", type=seconds_arg(inclusive=False), help="run every SECONDS until stopped"
    )
    p.set_defaults(handler=cmd_correlations)
