"""Process plumbing for the workers: logging, signals, backoff, Redis connections
(which deployment a URL names and its client: ``topology.py``; transient errors:
``redis_errors.py``)."""

from __future__ import annotations

import logging
import os
import random
import secrets
import signal
import socket
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import structlog
from redis import Redis

from consumers.bus.redis_errors import REDIS_TRANSIENT, error_kind
from consumers.bus.topology import describe, open_client
from consumers.bus.urls import check_redis_url

__all__ = [
    "REDIS_TRANSIENT",
    "Backoff",
    "Shutdown",
    "configure_logging",
    "connect",
    "connect_when_ready",
    "default_consumer_name",
    "redis_url",
]


class _Stderr:
    """Whatever ``sys.stderr`` is when a line is written (not when logging was set up):
    a replaced stream (a test's capture, a redirect) is followed, a closed one never
    written to."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(level: str | None = None, json_logs: bool | None = None) -> None:
    """structlog once per process: JSON when not on a terminal, key=value on one."""
    level_name = (level or os.environ.get("RISKGATE_LOG_LEVEL", "INFO")).upper()
    if json_logs is None:  # RISKGATE_LOG_FORMAT=json|console overrides the terminal test
        fmt = os.environ.get("RISKGATE_LOG_FORMAT", "").lower()
        json_logs = fmt == "json" if fmt in ("json", "console") else not sys.stderr.isatty()
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json_logs
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level_name, logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(_Stderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )


def redis_url(url: str | None = None) -> str:
    """``url``, else ``$REDIS_URL``, else the embedded Redis of the data directory."""
    if url:
        return check_redis_url(url)
    if os.environ.get("REDIS_URL"):
        return check_redis_url(os.environ["REDIS_URL"], "REDIS_URL")
    from consumers.servers import embedded  # noqa: PLC0415 - only when no URL is set

    return embedded.redis_url()


def connect(url: str | None = None, *, socket_timeout: float | None = 10.0) -> Redis:
    """A client for ``url`` (``$REDIS_URL``, else the embedded Redis): standalone, a
    Redis Cluster (detected) or a Sentinel-managed primary; ``rediss://`` uses TLS.
    Timeouts sit above any BLOCK we use. See consumers/bus/topology.py."""
    return open_client(redis_url(url), socket_timeout=socket_timeout)


def connect_when_ready(
    url: str | None, shutdown: Shutdown, *, socket_timeout: float | None = 10.0
) -> Redis | None:
    """:func:`connect` for a long-running process: while Redis does not answer (down,
    loading, a cluster without a reachable node) retry with backoff, as the loops do
    later on; None if asked to stop meanwhile."""
    log = structlog.get_logger("riskgate.redis")
    backoff = Backoff(base=0.2, cap=5.0)
    while not shutdown.requested:
        try:
            client = connect(url, socket_timeout=socket_timeout)
        except REDIS_TRANSIENT as exc:
            delay = backoff.next_delay()
            log.warning(
                "redis unavailable at start-up; retrying",
                error=str(exc).strip(),
                kind=error_kind(exc),
                delay=round(delay, 3),
            )
            shutdown.wait(delay)
            continue
        log.info("redis connected", deployment=describe(client))
        return client
    return None


def default_consumer_name() -> str:
    """Unique per process start: host-pid-random. In containers host and pid repeat
    (pid 1, same hostname), and a repeated name would silently inherit the pending
    list of the process before; its entries are reclaimed by XAUTOCLAIM instead."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Shutdown:
    """First SIGTERM/SIGINT asks the loop to stop after its batch; a second exits now."""

    def __init__(self, on_force: Callable[[], None] | None = None) -> None:
        self._event = threading.Event()
        self._on_force = on_force

    def install(self) -> Shutdown:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self._event.is_set():
            if self._on_force:
                self._on_force()
            os._exit(128 + signum)
        self._event.set()

    def request(self) -> None:
        self._event.set()

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True if shutdown was requested meanwhile."""
        return self._event.wait(seconds)


class Backoff:
    """Exponential backoff with full jitter, reset on success."""

    def __init__(self, base: float = 0.05, cap: float = 5.0) -> None:
        self.base = base
        self.cap = cap
        self.failures = 0

    def next_delay(self) -> float:
        self.failures += 1
        return random.uniform(0, min(self.cap, self.base * 2 ** min(self.failures, 16)))

    def reset(self) -> None:
        self.failures = 0
