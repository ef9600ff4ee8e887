"""``riskgate gate``: one process deciding many portfolios, each owned by lease.

The host holds one :class:`~consumers.gate_worker.seat.Seat` per portfolio it serves:
the ``--portfolio`` names it was started with, and with ``--all-portfolios`` every name
in the registry (``<prefix>:portfolios``, consumers/bus/portfolios.py), re-read every
``registry_every_s``: a portfolio added is served without a restart, one removed is let
go (its lease released). Every seat has its own :class:`GateWorker` (its own snapshot,
counters and telemetry, labelled by portfolio); they share one Redis client and the
consumer name. The seats take turns round robin (consumers/bus/rotation.py: fairness,
blocking, the idle wait), and any number of hosts may serve the same portfolios: one owns
each portfolio, the others stand by.

Nothing here spans portfolios in one Redis command: each portfolio's keys share one hash
tag, the registry is one key, so a host works the same on a Redis Cluster.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from redis import Redis
from redis.exceptions import RedisError

import gate
from consumers.bus.keys import Keys
from consumers.bus.lease import Lease
from consumers.bus.members import Membership
from consumers.bus.portfolios import registered
from consumers.bus.rotation import Rotation, Unit
from consumers.bus.runtime import Shutdown
from consumers.gate_worker.handle import tune_collector
from consumers.gate_worker.seat import Seat
from consumers.gate_worker.settings import GateSettings
from consumers.gate_worker.worker import GateWorker
from consumers.ops.telemetry import GateTelemetry, serve_host, serving
from schemas.config import AssetsConfig


class GateHost(Rotation):
    role = "gate"

    def __init__(
        self,
        redis: Redis,
        config: AssetsConfig,
        settings: GateSettings,
        *,
        portfolios: Sequence[str] = (),
        prefix: str = "riskgate",
        all_portfolios: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        settings.validate(config)  # bad settings stop here, at start-up
        super().__init__(block_ms=settings.block_ms, idle_ms=settings.idle_ms, clock=clock)
        self.redis = redis
        self.config = config
        self.settings = settings
        self.prefix = prefix
        self.fixed = list(dict.fromkeys(portfolios))
        self.all_portfolios = all_portfolios
        self.seats: dict[str, Seat] = {}
        self.telemetry: Any = None  # HostTelemetry, when metrics are served
        self.log = structlog.get_logger("riskgate.gate").bind(consumer=settings.consumer)
        self._next_registry = -math.inf
        self._unreadable: set[str] = set()
        # fair shares: the live gate processes (consumers/bus/members.py)
        self.members = Membership(
            redis, prefix, settings.consumer, window_ms=2 * settings.lease_ttl_ms
        )
        self.alive: int | None = None
        self._next_balance = -math.inf
        for name in self.fixed:
            self.add(name)

    # -- the portfolios ------------------------------------------------------------------

    def add(self, portfolio: str) -> Seat:
        keys = Keys(portfolio, self.prefix)
        lease = Lease(self.redis, keys, self.settings.consumer, self.settings.lease_ttl_ms)
        worker = GateWorker(self.redis, keys, self.config, self.settings, lease=lease)
        seat = Seat(
            worker,
            lease,
            renew_ms=self.settings.lease_renew_ms,
            clock=self.clock,
            may_take=self.may_take,
        )
        self.seats[portfolio] = seat
        if self.telemetry is not None:
            self._instrument(seat)
        return seat

    def drop(self, portfolio: str) -> None:
        seat = self.seats.pop(portfolio, None)
        if seat is not None:
            seat.close()

    # -- fair shares ----------------------------------------------------------------------

    def share(self) -> int | None:
        """The portfolios this process should own: its seats over the live processes."""
        if not self.alive:
            return None
        return math.ceil(len(self.seats) / self.alive)

    def owned(self) -> list[Seat]:
        return [s for s in self.seats.values() if s.owner]

    def may_take(self) -> bool:
        share = self.share()
        return share is None or len(self.owned()) < share

    def balance(self) -> None:
        """Beat; over our share, hand one portfolio over (one a beat: no stampede). A
        portfolio nobody else took when it was free is kept (nobody else serves it)."""
        now = self.clock()
        if now < self._next_balance:
            return
        self._next_balance = now + self.settings.lease_renew_ms / 1000
        self.alive = self.members.beat(self.seats)
        share = self.share()
        if share is None:
            return
        owned = self.owned()
        spare = [s for s in owned if not s.unwanted]
        if len(owned) > share and spare:
            seat = spare[-1]
            seat.log.info("over the fair share; handing the portfolio over",
                          owned=len(owned), share=share, alive=self.alive)  # fmt: skip
            seat.worker.stats["lease_shed"] += 1
            seat.close()

    def refresh(self) -> None:
        """Fair shares; with ``--all-portfolios``: re-read the registry when due."""
        self.balance()
        now = self.clock()
        if not self.all_portfolios or now < self._next_registry:
            return
        self._next_registry = now + self.settings.registry_every_s
        try:
            names, unreadable = registered(self.redis, self.prefix)
        except RedisError as exc:  # the seats go on with what they have
            self.log.warning("portfolio registry unreadable; keeping the portfolios served",
                             error=str(exc))  # fmt: skip
            return
        for bad in set(unreadable) - self._unreadable:
            self.log.warning("registry member is not a portfolio name; ignored", member=bad)
        self._unreadable = set(unreadable)
        wanted = set(self.fixed) | set(names)
        for name in names:
            if name not in self.seats:
                self.add(name)
                self.log.info("portfolio registered; serving it", portfolio=name)
        for name in [n for n in self.seats if n not in wanted]:
            self.drop(name)
            self.log.info("portfolio no longer registered; let go", portfolio=name)

    # -- the rotation --------------------------------------------------------------------

    def units(self) -> Sequence[Unit]:
        return list(self.seats.values())

    def beat(self) -> None:
        if self.telemetry is not None:
            self.telemetry.beat()

    def run(self, shutdown: Shutdown) -> None:
        tune_collector()  # the process is the gate's: its batches set the pace
        with serving(serve_host, self):  # metrics when a port is set
            if self.telemetry is not None:
                for seat in self.seats.values():
                    self._instrument(seat)
            self.log.info(
                "gate started",
                portfolios=sorted(self.seats),
                all_portfolios=self.all_portfolios,
                batch=self.settings.batch,
                lease_ttl_ms=self.settings.lease_ttl_ms,
                lease_renew_ms=self.settings.lease_renew_ms,
                compiled=gate.COMPILED,
                gc_thresholds=list(gc.get_threshold()),
            )
            if gate.STALE is not None:  # pure Python runs: the sources are what it runs
                self.log.warning("compiled gate modules not used", why=gate.STALE)
            try:
                super().run(shutdown)
            finally:
                self.members.leave()
            for seat in self.seats.values():
                seat.log.info("gate worker stopped", **dict(seat.worker.stats))

    # -- telemetry -----------------------------------------------------------------------

    def telemetries(self) -> list[GateTelemetry]:
        """Each portfolio's telemetry (read by the metrics threads)."""
        seats = list(self.seats.values())
        return [s.worker.telemetry for s in seats if s.worker.telemetry is not None]

    def _instrument(self, seat: Seat) -> None:
        telemetry = GateTelemetry(seat.worker)
        telemetry.owned = lambda: seat.owner
        seat.worker.telemetry = telemetry
