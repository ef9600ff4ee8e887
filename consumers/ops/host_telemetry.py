"""Telemetry of a process that serves several portfolios (a gate host, an audit writer
or phase monitor with ``--portfolio`` repeated or ``--all-portfolios``): one ``/metrics``
with every portfolio's families merged by name (each sample keeps its ``portfolio``
label), and one ``/healthz``.

``/healthz`` answers 200 while the process's loop completes rounds and every portfolio
it serves completed a turn against Redis within ``RISKGATE_HEALTH_STALE_S``: a read or a
commit for a portfolio it owns, a lease poll for one it stands by for (a standby is
healthy), so one portfolio stuck on an unreachable shard shows (its
``riskgate_worker_healthy`` is 0) and the process reports it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import structlog
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from consumers.ops.instruments import Heartbeat
from consumers.ops.worker_telemetry import STALE_ENV, WorkerTelemetry, _env_float


class HostTelemetry(Collector):
    """The telemetry of several workers (``children``, read at each use) as one."""

    def __init__(
        self,
        children: Callable[[], Sequence[WorkerTelemetry]],
        role: str,
        *,
        stale_after_s: float | None = None,
    ) -> None:
        self.children = children
        self.role = role
        self.heartbeat = Heartbeat(
            stale_after_s if stale_after_s is not None else _env_float(STALE_ENV, 30.0)
        )
        self.stale_after_s = self.heartbeat.stale_after_s
        self.log = structlog.get_logger("riskgate.telemetry").bind(role=role)

    def beat(self) -> None:
        """The process's loop completed a round."""
        self.heartbeat.beat()

    def healthy(self) -> bool:
        return self.heartbeat.healthy() and all(c.healthy() for c in self.children())

    def sample(self) -> None:
        for child in self.children():
            child.sample()

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        for child in self.children():
            for family in child.collect():
                have = merged.get(family.name)
                if have is None:
                    merged[family.name] = family
                else:
                    have.samples.extend(family.samples)
        yield from merged.values()
