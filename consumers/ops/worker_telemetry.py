"""What every worker exports (:class:`WorkerTelemetry`): health, loop counters and the
consumer lag of its groups; the environment variables that configure telemetry."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import structlog
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis import Redis
from redis.exceptions import RedisError

from consumers.bus.keys import Keys
from consumers.bus.redis_errors import by_kind
from consumers.ops.instruments import Heartbeat, group_backlog

PORT_ENV = "RISKGATE_METRICS_PORT"
HOST_ENV = "RISKGATE_METRICS_HOST"
STALE_ENV = "RISKGATE_HEALTH_STALE_S"
SAMPLE_ENV = "RISKGATE_METRICS_SAMPLE_S"


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def metrics_port() -> int:
    value = os.environ.get(PORT_ENV, "").strip()
    return int(value) if value else 0


class WorkerTelemetry(Collector):
    """What every worker exports: health, loop counters, consumer lag of its groups."""

    role = "worker"

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        stats: dict[str, int],
        groups: Sequence[tuple[str, str]],
        consumer: str,
        *,
        stale_after_s: float | None = None,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.stats = stats
        self.groups = list(groups)  # (stream, group) pairs whose lag we watch
        self.consumer = consumer
        self.heartbeat = Heartbeat(
            stale_after_s if stale_after_s is not None else _env_float(STALE_ENV, 30.0)
        )
        self.samples: dict[str, Any] = {}
        self.sample_errors = 0
        self.labels = {"portfolio": keys.portfolio, "role": self.role}
        self.log = structlog.get_logger("riskgate.telemetry").bind(
            portfolio=keys.portfolio, role=self.role
        )

    # -- hooks ---------------------------------------------------------------------------

    def beat(self) -> None:
        self.heartbeat.beat()

    def healthy(self) -> bool:
        return self.heartbeat.healthy()

    # -- sampling (its own thread) -------------------------------------------------------

    def sample(self) -> None:
        """Read the gauges that need Redis; on failure keep the last values."""
        try:
            lags = {(s, g): group_backlog(self.redis, s, g) for s, g in self.groups}
            extra = self.sample_more()
        except (RedisError, OSError, ValueError) as exc:
            self.sample_errors += 1
            self.log.debug("metrics sample failed", error=str(exc))
            return
        self.samples = {"lags": lags, **extra}

    def sample_more(self) -> dict[str, Any]:
        return {}

    # -- export --------------------------------------------------------------------------

    def _counter(self, name: str, doc: str, value: float, **labels: str) -> CounterMetricFamily:
        all_labels = {**self.labels, **labels}
        fam = CounterMetricFamily(name, doc, labels=list(all_labels))
        fam.add_metric(list(all_labels.values()), value)
        return fam

    def _gauge(self, name: str, doc: str, value: float, **labels: str) -> GaugeMetricFamily:
        all_labels = {**self.labels, **labels}
        fam = GaugeMetricFamily(name, doc, labels=list(all_labels))
        fam.add_metric(list(all_labels.values()), value)
        return fam

    def collect(self) -> Iterator[Metric]:
        stats = dict(self.stats)  # one C-level copy: consistent against the worker thread
        hb = self.heartbeat
        info = GaugeMetricFamily(
            "riskgate_worker_info", "Worker identity.", labels=[*self.labels, "consumer"]
        )
        info.add_metric([*self.labels.values(), self.consumer], 1)
        yield info
        yield self._gauge(
            "riskgate_worker_healthy", "1 while the loop completes turns against Redis.",
            1 if hb.healthy() else 0,
        )  # fmt: skip
        yield self._gauge(
            "riskgate_last_success_timestamp_seconds",
            "Unix time of the loop's last successful turn (0 before the first).",
            hb.last_wall or 0.0,
        )
        yield self._counter("riskgate_batches_total", "Batches committed.", stats.get("batches", 0))
        yield self._redis_errors(stats)
        yield self._counter(
            "riskgate_errors_total", "Unexpected errors (batch retried).", stats.get("errors", 0)
        )
        yield self._counter(
            "riskgate_reclaimed_total", "Entries reclaimed from idle consumers.",
            stats.get("reclaimed", 0),
        )  # fmt: skip
        yield self._counter(
            "riskgate_duplicates_total", "Entries already decided/applied/written (no-ops).",
            stats.get("duplicates", 0),
        )  # fmt: skip
        yield self._counter(
            "riskgate_metrics_sample_errors_total", "Failed gauge samples.", self.sample_errors
        )
        yield from self._lag_families()
        yield from self.collect_more(stats)

    def _redis_errors(self, stats: dict[str, int]) -> Metric:
        """Transient Redis errors (retried) by kind: connection, timeout, loading, moved,
        ask, cluster_down, master_down, try_again, readonly, slot_not_covered, ...
        (consumers/bus/redis_errors.py); ``connection`` 0 when there were none."""
        fam = CounterMetricFamily(
            "riskgate_redis_errors_total",
            "Transient Redis errors (retried with backoff), by kind.",
            labels=[*self.labels, "kind"],
        )
        for kind, n in sorted((by_kind(stats) or {"connection": 0}).items()):
            fam.add_metric([*self.labels.values(), kind], n)
        return fam

    def _lag_families(self) -> Iterator[Metric]:
        names = (
            ("pending", "riskgate_consumer_pending_entries", "Delivered, not yet acked."),
            ("lag", "riskgate_consumer_lag_entries", "Entries not yet delivered to the group."),
            ("lag_seconds", "riskgate_consumer_lag_seconds", "Newest entry minus last delivered."),
        )
        lags: dict[tuple[str, str], dict[str, float | None]] = self.samples.get("lags", {})
        for key, name, doc in names:
            fam = GaugeMetricFamily(name, doc, labels=[*self.labels, "stream", "group"])
            for (stream, group), values in lags.items():
                value = values.get(key)
                if value is not None:
                    short = stream.rsplit(":", 1)[-1]
                    fam.add_metric([*self.labels.values(), short, group], value)
            yield fam

    def collect_more(self, stats: dict[str, int]) -> Iterable[Metric]:
        return ()
