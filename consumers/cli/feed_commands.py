"""``riskgate feed`` (market data in: a Procfile process) and ``riskgate sources status``
(the registry's sources, their usage and state, every symbol's coverage). Exit codes:
0 ok, 2 bad arguments, 3 Redis or PostgreSQL unreachable."""

from __future__ import annotations

import argparse
import json
import os
from typing import TYPE_CHECKING

from consumers.bus.runtime import Shutdown, configure_logging, connect
from consumers.cli.pg_options import config_of, guarded, keys_of, redis_options, startup_options
from consumers.db import connection as db
from consumers.db.services import wait_for_database
from consumers.errors import UsageError

if TYPE_CHECKING:
    from consumers.market.feed import FeedSettings

    Sub = argparse._SubParsersAction[argparse.ArgumentParser]


def _settings(args: argparse.Namespace) -> FeedSettings:
    from consumers.market.feed import FeedSettings  # noqa: PLC0415 - loaded by its command

    config = config_of(args)
    symbols = tuple(s for s in (args.symbols or "").split(",") if s)
    unknown = [s for s in symbols if s not in config.assets]
    if unknown:
        raise UsageError(f"--symbols: {', '.join(unknown)} not configured (e.g. BTC/USDT,NVDA)")
    for name in ("marks_every", "bars_every", "calendar_every", "extras_every"):
        if getattr(args, name) <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be > 0 seconds")
    if args.history_days < 30:
        raise UsageError("--history-days must be at least 30 (the regime needs 29 bars)")
    return FeedSettings(
        marks_every=args.marks_every, bars_every=args.bars_every,
        calendar_every=args.calendar_every, extras_every=args.extras_every,
        history_days=args.history_days, symbols=symbols,
    )  # fmt: skip


def _only(args: argparse.Namespace) -> list[str]:
    """``--source`` (repeatable), else ``RISKGATE_FEED_SOURCE`` (comma-separated)."""
    if args.source:
        return list(args.source)
    return [s.strip() for s in os.environ.get("RISKGATE_FEED_SOURCE", "").split(",") if s.strip()]


@guarded
def cmd_feed(args: argparse.Namespace) -> int:
    # the adapters (httpx and friends) load with their command, not with every command
    from consumers.market.feed_service import build, run  # noqa: PLC0415

    settings = _settings(args)
    config = config_of(args)
    configure_logging()
    shutdown = Shutdown().install()
    url = db.database_url(args.database_url)
    if not wait_for_database(url, config, shutdown, migrate=not args.no_migrate,
                             max_backoff=args.max_backoff):  # fmt: skip
        return 0
    redis = connect(args.redis_url)
    try:
        try:
            feed = build(redis, url, keys_of(args), config, settings, only=_only(args),
                         seed=args.seed)  # fmt: skip
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        return run(feed, shutdown, once=args.once)
    finally:
        redis.close()


@guarded
def cmd_sources(args: argparse.Namespace) -> int:
    from consumers.market import sources_status  # noqa: PLC0415 - loaded by its command

    redis = connect(args.redis_url)
    try:
        with db.connect(args.database_url) as conn:
            rep = sources_status.report(conn, redis, keys_of(args), config_of(args))
    finally:
        redis.close()
    print(json.dumps(rep, indent=2) if args.json else sources_status.text(rep))
    return 0


def register(sub: Sub) -> None:
    p = sub.add_parser("feed", help="market data in: marks, bars, calendars, regimes, flags")
    redis_options(p)
    startup_options(p)
    p.add_argument("--source", action="append", metavar="NAME",
                   help="use only this source for every symbol (repeatable; `sim`: the "
                        "simulated market; default $RISKGATE_FEED_SOURCE, else each "
                        "asset's configured sources)")  # fmt: skip
    p.add_argument("--seed", type=int, default=7, help="the sim source's seed (default 7)")
    p.add_argument("--once", action="store_true", help="run every job once, then exit")
    p.add_argument("--symbols", help="comma-separated symbols (default: every configured one)")
    p.add_argument("--marks-every", type=float, default=30.0, help="seconds (default 30)")
    p.add_argument("--bars-every", type=float, default=3600.0, help="seconds (default 3600)")
    p.add_argument("--calendar-every", type=float, default=21600.0, help="seconds (default 21600)")
    p.add_argument("--extras-every", type=float, default=900.0,
                   help="sentiment, options flow, indicators: seconds (default 900)")  # fmt: skip
    p.add_argument("--history-days", type=int, default=90, help="daily bars on the first run")
    p.set_defaults(handler=cmd_feed)

    p = sub.add_parser("sources", help="data sources: limits, usage, cost, state, coverage")
    actions = p.add_subparsers(dest="sources_command", required=True, metavar="ACTION")
    s = actions.add_parser("status", help="every source and every symbol's coverage")
    redis_options(s)
    s.add_argument("--json", action="store_true")
    s.set_defaults(handler=cmd_sources)
