"""How the long-running PostgreSQL processes start and run: wait for the database
(create, migrate, sync the registries), then loop until SIGTERM.

Under a process manager one process exiting stops them all (honcho does), so start-up
never gives up while PostgreSQL is merely unreachable: it retries with backoff. A
migration mismatch is not retried; it stops the process with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import structlog

from consumers.bus.runtime import (
    REDIS_TRANSIENT,
    Backoff,
    Shutdown,
    configure_logging,
    connect_when_ready,
)
from consumers.db import connection as db
from consumers.db.consumer_host import Builder, ConsumerHost
from consumers.db.migrate import discover, migrate
from consumers.db.registry import sync_config
from consumers.db.stream_to_pg import ConsumerSettings, PgLink
from schemas.config import AssetsConfig

RETRYABLE: tuple[type[Exception], ...] = (*db.PG_TRANSIENT, *REDIS_TRANSIENT)

__all__ = ["RETRYABLE", "Builder", "prepare", "run_consumer", "run_every", "wait_for_database"]


def prepare(url: str, config: AssetsConfig | None, migrations_dir: str | None = None) -> list[str]:
    """Create the database if needed, migrate it, sync the registries; returns applied names."""
    db.ensure_database(url)
    with db.connect(url) as conn:
        report = migrate(conn, discover(Path(migrations_dir) if migrations_dir else None))
        if config is not None:
            sync_config(conn, config)
    return list(report.applied)


def wait_for_database(
    url: str, config: AssetsConfig, shutdown: Shutdown, *, migrate: bool, max_backoff: float
) -> bool:
    """Prepare the database, retrying while it is unreachable; False if asked to stop."""
    log = structlog.get_logger("riskgate.db")
    backoff = Backoff(base=0.2, cap=max_backoff)
    while not shutdown.requested:
        try:
            applied = prepare(url, config) if migrate else []
            log.info("database ready", database=db.describe_url(url), migrations_applied=applied)
            return True
        except db.PG_TRANSIENT as exc:
            delay = backoff.next_delay()
            log.warning("database unavailable; retrying", error=str(exc).strip(), delay=delay)
            shutdown.wait(delay)
    return False


def run_consumer(
    build: Builder,
    *,
    portfolios: Sequence[str],
    config: AssetsConfig,
    settings: ConsumerSettings,
    database_url: str | None,
    redis_url: str | None,
    migrate: bool,
    name: str,
    prefix: str = "riskgate",
    all_portfolios: bool = False,
) -> int:
    """Start-up, then the consumers' loop (one per portfolio, one process) until
    SIGTERM; exit status 0."""
    configure_logging()
    url = db.database_url(database_url)
    shutdown = Shutdown().install()
    if not wait_for_database(
        url, config, shutdown, migrate=migrate, max_backoff=settings.max_backoff_s
    ):
        return 0
    redis = connect_when_ready(redis_url, shutdown, socket_timeout=settings.block_ms / 1000 + 10)
    if redis is None:
        return 0
    pg = PgLink(url, f"riskgate-{name}")
    host = ConsumerHost(
        build,
        redis,
        pg,
        config,
        settings,
        role=name,
        portfolios=portfolios,
        prefix=prefix,
        all_portfolios=all_portfolios,
    )
    try:
        host.run(shutdown)
    finally:
        pg.reset()
        redis.close()
    return 0


def run_every(
    task: Callable[[], dict[str, Any]],
    *,
    every: float,
    name: str,
    config: AssetsConfig,
    database_url: str | None,
    migrate: bool,
    max_backoff: float,
    **bind: Any,
) -> int:
    """``task`` every ``every`` seconds until SIGTERM; a failed run is logged and retried
    (sooner, with backoff), never fatal. ``task`` returns what to log."""
    configure_logging()
    log = structlog.get_logger(f"riskgate.{name}").bind(**bind)
    shutdown = Shutdown().install()
    url = db.database_url(database_url)
    if not wait_for_database(url, config, shutdown, migrate=migrate, max_backoff=max_backoff):
        return 0
    backoff = Backoff(base=1.0, cap=min(every, 60.0))
    while not shutdown.requested:
        delay = every
        try:
            fields = task()
            backoff.reset()
            log.info(str(fields.pop("event", f"{name} done")), **fields)
        except RETRYABLE as exc:
            delay = backoff.next_delay()
            log.warning(f"{name} failed; retrying", error=str(exc).strip(), delay=delay)
        except Exception as exc:
            delay = backoff.next_delay()
            log.exception(f"{name} failed; retrying", error=repr(exc), delay=delay)
        shutdown.wait(delay)
    return 0
