"""Process plumbing for the workers: logging, signals, backoff, Redis connections."""

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
from redis.exceptions import BusyLoadingError, ConnectionError, TimeoutError

from consumers.bus.tls import tls_options
from consumers.bus.urls import check_redis_url

#: Redis errors that mean "not now" (down, restarting, loading): retry, never give up.
REDIS_TRANSIENT = (ConnectionError, TimeoutError, BusyLoadingError)


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
    """A Redis client; ``rediss://`` URLs use TLS. Timeouts sit above any BLOCK we use."""
    url = redis_url(url)
    return Redis.from_url(
        url,
        **tls_options(url),
        socket_timeout=socket_timeout,
        socket_connect_timeout=5.0,
        socket_keepalive=True,
        health_check_interval=30,
    )


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
