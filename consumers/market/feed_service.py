"""Assembling and running ``riskgate feed``: the registry's limits and sources, the
shared limiter, the gateway, the adapters (or ``--source sim``), the router and the
feed; then the loop until SIGTERM (or one turn with ``--once``).

Tests call :func:`build` with an httpx transport (and a ``requests`` adapter for ccxt)
that replays recorded responses; production passes neither.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx
import structlog
from redis import Redis

from consumers.bus.keys import Keys
from consumers.bus.runtime import Shutdown
from consumers.db import connection as db
from consumers.market import source_registry
from consumers.market.feed import Feed, FeedSettings
from consumers.market.feed_telemetry import FeedTelemetry
from consumers.market.router import Router
from consumers.market.sources.base import Source
from consumers.market.sources.catalog import build as build_sources
from consumers.market.sources.gateway import Gateway, UsageBook
from consumers.market.sources.limiter import SharedLimiter
from consumers.market.sources.sim import SimMarket
from consumers.ops.exporter import Exporter
from consumers.ops.worker_telemetry import HOST_ENV, metrics_port
from consumers.state.control import redis_now
from schemas.config import AssetsConfig

TICK_S = 1.0
SECRET_ENV = (
    "POLYGON_API_KEY", "ALPHA_VANTAGE_KEY", "OANDA_API_KEY", "FRED_API_KEY", "EIA_API_KEY",
    "REDDIT_CLIENT_ID", "REDDIT_SECRET", "UNUSUAL_WHALES_API_KEY",
)  # fmt: skip


def build(
    redis: Redis,
    database_url: str,
    keys: Keys,
    config: AssetsConfig,
    settings: FeedSettings,
    *,
    only: Sequence[str] = (),
    seed: int = 7,
    env: Mapping[str, str] | None = None,
    transport: httpx.BaseTransport | None = None,
    binance_adapter: Any = None,
    max_wait_s: float = 30.0,
    limiter_prefix: str | None = None,
) -> Feed:
    env = os.environ if env is None else env
    clock = lambda: redis_now(redis)  # noqa: E731  (Redis's clock, the gate's)

    def conn() -> db.Connection:
        return db.connect(database_url, application_name="riskgate-feed")

    with conn() as c:
        limits = source_registry.load_limits(c)
    gateway = Gateway(
        SharedLimiter(redis, limiter_prefix or keys.prefix, max_wait_s=max_wait_s), limits,
        UsageBook(), clock,
        transport=transport, secrets=lambda: [env.get(n, "") for n in SECRET_ENV],
    )  # fmt: skip
    extra = {"adapter": binance_adapter} if binance_adapter is not None else {}
    sources: dict[str, Source] = build_sources(gateway, env, sorted(config.data_sources), **extra)
    if "sim" in only:
        sources["sim"] = SimMarket(seed, clock)
    unknown = [n for n in only if n not in sources]
    if unknown:
        raise ValueError(f"--source {', '.join(unknown)}: no such source with an adapter "
                         f"(one of: {', '.join(sorted([*sources, 'sim']))})")  # fmt: skip
    router = Router(sources, gateway.usage, clock, only=only)
    return Feed(conn, redis, keys, config, router, settings=settings, clock=clock)


def run(feed: Feed, shutdown: Shutdown, *, once: bool = False) -> int:
    log = structlog.get_logger("riskgate.feed").bind(portfolio=feed.keys.portfolio)
    not_configured = {n: h.reason for n, h in feed.router.health.items()
                      if h.state == "not_configured"}  # fmt: skip
    log.info("feed started", sources=sorted(feed.router.sources), only=list(feed.router.only),
             not_configured=not_configured)  # fmt: skip
    telemetry = FeedTelemetry(feed.redis, feed.keys, feed.router, feed.stats.counts)
    exporter = _serve(telemetry)
    try:
        while not shutdown.requested:
            fields = feed.turn(None)
            telemetry.beat()
            if fields:
                log.info("feed turn", **fields)
            if once:
                return 0
            shutdown.wait(TICK_S)
    finally:
        if exporter is not None:
            exporter.close()
        for source in feed.router.sources.values():
            source.close()
    return 0


def _serve(telemetry: FeedTelemetry) -> Exporter | None:
    port = metrics_port()
    if port <= 0:
        return None
    return Exporter(telemetry, port, os.environ.get(HOST_ENV, "127.0.0.1"))


Builder = Callable[..., Feed]
