"""The audit writer or the phase monitor for many portfolios in one process.

One consumer per portfolio (:class:`StreamToPg`: its own group reads, counters and
telemetry, labelled by portfolio), all sharing one Redis client and one PostgreSQL
connection (:class:`PgLink`), taking turns round robin (consumers/bus/rotation.py: one
batch per portfolio per round; with one portfolio, today's blocking read). The
portfolios: the ``--portfolio`` names, and with ``--all-portfolios`` every name in the
registry (``<prefix>:portfolios``), re-read every ``registry_every_s``.

Ownership: the audit writer needs none (its writes are idempotent; several may run on
one portfolio). The phase monitor's is its PostgreSQL advisory lock per portfolio,
taken on the shared connection: a second process serving the same portfolios stands
by for each one another process holds, and takes it over when that process is gone.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from redis import Redis
from redis.exceptions import RedisError

from consumers.bus.keys import Keys
from consumers.bus.portfolios import registered
from consumers.bus.rotation import Rotation, Unit
from consumers.bus.runtime import Shutdown
from consumers.db.stream_to_pg import ConsumerSettings, PgLink, StreamToPg
from consumers.ops.telemetry import ConsumerTelemetry, WorkerTelemetry, serve_host, serving
from schemas.config import AssetsConfig

Builder = Callable[[Any, PgLink, Keys, AssetsConfig, ConsumerSettings], StreamToPg]


class ConsumerHost(Rotation):
    def __init__(
        self,
        build: Builder,
        redis: Redis,
        pg: PgLink,
        config: AssetsConfig,
        settings: ConsumerSettings,
        *,
        role: str,
        portfolios: Sequence[str] = (),
        prefix: str = "riskgate",
        all_portfolios: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(block_ms=settings.block_ms, idle_ms=settings.idle_ms, clock=clock)
        self.build = build
        self.redis = redis
        self.pg = pg
        self.config = config
        self.settings = settings
        self.role = role
        self.prefix = prefix
        self.fixed = list(dict.fromkeys(portfolios))
        self.all_portfolios = all_portfolios
        self.consumers: dict[str, StreamToPg] = {}
        self.telemetry: Any = None  # HostTelemetry, when metrics are served
        self.log = structlog.get_logger(f"riskgate.{role}").bind(consumer=settings.consumer)
        self._next_registry = -math.inf
        for name in self.fixed:
            self.add(name)

    def add(self, portfolio: str) -> StreamToPg:
        keys = Keys(portfolio, self.prefix)
        consumer = self.build(self.redis, self.pg, keys, self.config, self.settings)
        self.consumers[portfolio] = consumer
        if self.telemetry is not None:
            self._instrument(consumer, keys)
        return consumer

    def refresh(self) -> None:
        now = self.clock()
        if not self.all_portfolios or now < self._next_registry:
            return
        self._next_registry = now + self.settings.registry_every_s
        try:
            names, _ = registered(self.redis, self.prefix)
        except RedisError as exc:
            self.log.warning("portfolio registry unreadable; keeping the portfolios served",
                             error=str(exc))  # fmt: skip
            return
        for name in names:
            if name not in self.consumers:
                self.add(name)
                self.log.info("portfolio registered; serving it", portfolio=name)
        wanted = set(self.fixed) | set(names)
        for name in [n for n in self.consumers if n not in wanted]:
            self.consumers.pop(name).close()
            self.log.info("portfolio no longer registered; let go", portfolio=name)

    def units(self) -> Sequence[Unit]:
        return list(self.consumers.values())

    def beat(self) -> None:
        if self.telemetry is not None:
            self.telemetry.beat()

    def run(self, shutdown: Shutdown) -> None:
        with serving(serve_host, self):
            if self.telemetry is not None:
                for name, consumer in self.consumers.items():
                    self._instrument(consumer, Keys(name, self.prefix))
            self.log.info(
                "consumer started",
                portfolios=sorted(self.consumers),
                all_portfolios=self.all_portfolios,
            )
            try:
                super().run(shutdown)
            finally:
                self.pg.reset()  # the phase monitor's locks go with the session

    def telemetries(self) -> list[WorkerTelemetry]:
        consumers = list(self.consumers.values())
        return [c.telemetry for c in consumers if c.telemetry is not None]

    def _instrument(self, consumer: StreamToPg, keys: Keys) -> None:
        consumer.telemetry = ConsumerTelemetry(consumer, keys)
