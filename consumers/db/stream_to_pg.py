"""The loop shared by consumers that turn one Redis stream into PostgreSQL rows.

Ack policy: a batch is written in one PostgreSQL transaction and XACKed only after
that transaction committed. A crash or an outage anywhere before the XACK leaves the
entries pending; they are read again (our own pending entries first, after every
error) or reclaimed by another consumer of the group once idle for ``min_idle_ms``
(XAUTOCLAIM). The writer's unique keys make the second write a no-op.

Error policy: PostgreSQL or Redis unreachable -> nothing acked, the batch in hand
dropped, retry with backoff and jitter; NOGROUP -> recreate the group; anything else
-> logged with its traceback, nothing acked, retried after a backoff. Entries the
writer cannot use at all are its business (it records them and they are acked).
Shutdown: the first SIGTERM stops reading; the batch in hand is finished first.

One process may serve several portfolios (``--portfolio`` repeated, ``--all-portfolios``;
consumers/db/consumer_host.py): each portfolio's consumer is a unit of a
:class:`~consumers.bus.rotation.Rotation` (:meth:`StreamToPg.turn`), and they share one
PostgreSQL connection (:class:`PgLink`; :attr:`PgLink.generation` tells each consumer when
the connection is new, so it takes its lock again).
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

from redis import Redis
from redis.exceptions import ResponseError

from consumers.bus.redis_errors import count_redis_error
from consumers.bus.rotation import Turn
from consumers.bus.runtime import REDIS_TRANSIENT, Backoff, Shutdown
from consumers.bus.streams import (
    Entry,
    delivery_counts,
    ensure_group,
    is_nogroup,
    read_group,
    reclaim,
)
from consumers.db.connection import PG_TRANSIENT, Connection, connect, describe_url
from consumers.ops.telemetry import WorkerTelemetry, serve_consumer, serving


@dataclass(frozen=True, slots=True)
class ConsumerSettings:
    consumer: str
    batch: int = 500
    block_ms: int = 1000
    min_idle_ms: int = 30_000
    reclaim_every_s: float = 5.0
    max_backoff_s: float = 5.0
    idle_ms: int = 20  # several portfolios: the longest sleep after rounds with nothing
    registry_every_s: float = 5.0  # --all-portfolios: how often the registry is re-read


class Standby(Exception):
    """This process may not write now (another holds the lock); wait and try again."""


class PgLink:
    """One PostgreSQL connection, opened on demand and dropped after any failure; may be
    shared by the consumers of several portfolios (``generation`` counts connections)."""

    def __init__(self, url: str, application_name: str) -> None:
        self.url = url
        self.application_name = application_name
        self._conn: Connection | None = None
        self.generation = 0  # +1 per connection opened

    def get(self) -> Connection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self.reset()
            self._conn = connect(self.url, application_name=self.application_name)
            self.generation += 1
        return self._conn

    @property
    def fresh(self) -> bool:
        return self._conn is None or self._conn.closed or self._conn.broken

    def reset(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def describe(self) -> str:
        return describe_url(self.url)


class StreamToPg(ABC):
    """Subclasses name the stream and group and write a batch: :meth:`write`."""

    stream: str
    group: str

    def __init__(self, redis: Redis, pg: PgLink, settings: ConsumerSettings, log: Any) -> None:
        self.redis = redis
        self.pg = pg
        self.settings = settings
        self.log = log
        self.stats: Counter[str] = Counter()
        self._next_reclaim = 0.0
        self.telemetry: WorkerTelemetry | None = None  # instrumentation only
        self._ready_on = 0  # the PgLink generation on_connect last succeeded on
        self._drain = True  # our own pending entries first, then new ones
        self._backoff = Backoff(cap=settings.max_backoff_s)
        self._retry_at = 0.0  # after an error or while standing by: no turn before this

    # -- to implement --------------------------------------------------------------------

    @abstractmethod
    def write(self, conn: Connection, entries: list[Entry]) -> None:
        """Make the batch durable (commit) or raise; acking is done by the caller."""

    def on_connect(self, conn: Connection) -> None:
        """Called with each new connection before it is used (raise Standby to wait)."""
        return None

    def idle(self, conn: Connection) -> None:
        """Called once per loop turn after the reads (periodic work)."""
        return None

    # -- loop ----------------------------------------------------------------------------

    def setup(self) -> None:
        if ensure_group(self.redis, self.stream, self.group):
            self.log.info("group created", stream=self.stream, group=self.group)

    def connection(self) -> Connection:
        conn = self.pg.get()
        if self._ready_on != self.pg.generation:  # a new connection: take our lock on it
            self.on_connect(conn)
            self._ready_on = self.pg.generation
        return conn

    def run(self, shutdown: Shutdown) -> None:
        with serving(serve_consumer, self):  # metrics when a port is set
            self._loop(shutdown)

    def _loop(self, shutdown: Shutdown) -> None:
        self.log.info("consumer started", stream=self.stream, group=self.group)
        while not shutdown.requested:
            done = self.cycle()
            if done.retry_in:
                shutdown.wait(done.retry_in)
        self.pg.reset()
        self.log.info("consumer stopped", **dict(self.stats))

    # -- as a unit of a rotation (consumers/bus/rotation.py) ---------------------------------

    @property
    def reading(self) -> bool:
        return time.monotonic() >= self._retry_at

    @property
    def wake_at(self) -> float:
        return self._retry_at if self._retry_at > time.monotonic() else math.inf

    def turn(self, block_ms: int) -> int:
        if time.monotonic() < self._retry_at:
            return 0
        done = self.cycle(block_ms)
        if done.retry_in:
            self._retry_at = time.monotonic() + done.retry_in
        return done.handled

    def close(self) -> None:
        self.log.info("consumer stopped", **dict(self.stats))

    # -- one turn ----------------------------------------------------------------------------

    def cycle(self, block_ms: int | None = None) -> Turn:
        """Our own pending entries first, else one batch (blocking up to ``block_ms``,
        default the setting's); errors end the turn with a delay to back off."""
        try:
            if self._drain:
                self.setup()
                self._drain = self.drain_pending()
                handled = int(self._drain)
            else:
                handled = self.work(block_ms)
            self._backoff.reset()
            if self.telemetry is not None:
                self.telemetry.beat()
            return Turn(handled)
        except Standby as exc:  # the connection stays: another turn asks for the lock again
            self._drain = True
            return self._wait("standing by", exc, level="info")
        except PG_TRANSIENT as exc:
            self.pg.reset()
            self._drain = True
            self.stats["pg_errors"] += 1
            return self._wait("postgresql unavailable; retrying", exc)
        except REDIS_TRANSIENT as exc:  # before ResponseError: MOVED, CLUSTERDOWN are both
            self._drain = True
            count_redis_error(self.stats, exc)
            return self._wait("redis unavailable; retrying", exc)
        except ResponseError as exc:
            self._drain = True
            if not is_nogroup(exc):
                return self._failed(exc)
            self.log.warning("consumer group missing; recreating", error=str(exc))
            return Turn()
        except Exception as exc:
            self._drain = True
            return self._failed(exc)

    def _wait(self, what: str, exc: Exception, level: str = "warning") -> Turn:
        delay = self._backoff.next_delay()
        getattr(self.log, level)(
            what, error=str(exc).strip(), delay=round(delay, 3), database=self.pg.describe()
        )
        return Turn(retry_in=delay)

    def _failed(self, exc: Exception) -> Turn:
        self.pg.reset()
        self.stats["errors"] += 1
        self.log.exception("batch failed; nothing acked, will retry", error=repr(exc))
        return Turn(retry_in=self._backoff.next_delay())

    def work(self, block_ms: int | None = None) -> int:
        """Reclaim if due, read and handle one batch, then the periodic work."""
        if self.pg.fresh or self._ready_on != self.pg.generation:
            self._drain = True  # the shared connection is new: our lock and pending first
            return 0
        conn = self.connection()
        now = time.monotonic()
        if now >= self._next_reclaim:
            self._next_reclaim = now + self.settings.reclaim_every_s
            self.reclaim_idle()
        handled = self.step(block_ms)
        self.idle(conn)
        return handled

    def step(self, block_ms: int | None = None) -> int:
        """Read up to ``batch`` new entries (blocking up to ``block_ms``, default the
        setting's; 0: not at all) and handle them."""
        block = self.settings.block_ms if block_ms is None else block_ms
        entries = read_group(
            self.redis,
            self.group,
            self.settings.consumer,
            (self.stream,),
            count=self.settings.batch,
            block_ms=block or None,
        )
        if entries:
            self.process(entries)
        return len(entries)

    def drain_pending(self) -> bool:
        """Handle this consumer's own unacked entries; False once there are none."""
        self.connection()
        entries = read_group(
            self.redis,
            self.group,
            self.settings.consumer,
            (self.stream,),
            count=self.settings.batch,
            block_ms=None,
            pending=True,
        )
        if not entries:
            return False
        counts = delivery_counts(
            self.redis, self.stream, self.group, self.settings.consumer, [e.msg_id for e in entries]
        )
        self.stats["redelivered"] += len(entries)
        self.process([replace(e, deliveries=counts.get(e.msg_id, e.deliveries)) for e in entries])
        return True

    def reclaim_idle(self, max_pages: int = 20) -> int:
        """Take over entries idle for ``min_idle_ms`` on other (dead) consumers."""
        total = 0
        cursor: bytes = b"0-0"
        for _ in range(max_pages):
            got = reclaim(
                self.redis,
                self.stream,
                self.group,
                self.settings.consumer,
                min_idle_ms=self.settings.min_idle_ms,
                count=self.settings.batch,
                cursor=cursor,
            )
            for msg_id in got.deleted:
                self.stats["lost"] += 1
                self.log.error(
                    "pending entry was trimmed before it was written",
                    stream=self.stream,
                    msg_id=msg_id.decode(),
                )
            if got.entries:
                total += len(got.entries)
                self.stats["reclaimed"] += len(got.entries)
                self.log.info("reclaimed idle entries", count=len(got.entries))
                self.process(got.entries)
            cursor = got.cursor
            if cursor in (b"0-0", "0-0"):
                break
        return total

    def process(self, entries: list[Entry]) -> None:
        """Write, then ack: the XACK only ever follows a committed transaction."""
        self.write(self.connection(), entries)
        self.redis.xack(self.stream, self.group, *[e.msg_id for e in entries])
        self.stats["acked"] += len(entries)
        self.stats["batches"] += 1
