"""The stream-to-PostgreSQL consumers' metrics (the audit writer, the phase monitor):
rows written, PostgreSQL errors, rejected and acked entries."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client.core import Metric

from consumers.bus.keys import Keys
from consumers.ops.worker_telemetry import WorkerTelemetry

if TYPE_CHECKING:  # what telemetry reads of the consumer, not the consumer (it sits above)
    from consumers.ops.observed import ObservedConsumer as StreamToPg


class ConsumerTelemetry(WorkerTelemetry):
    """The audit writer and the phase monitor (stream -> PostgreSQL)."""

    def __init__(
        self, consumer: StreamToPg, keys: Keys, *, stale_after_s: float | None = None
    ) -> None:
        self.role = consumer.group  # "audit" | "phase"
        super().__init__(
            consumer.redis,
            keys,
            consumer.stats,
            [(consumer.stream, consumer.group)],
            consumer.settings.consumer,
            stale_after_s=stale_after_s,
        )

    def collect_more(self, stats: dict[str, int]) -> Iterable[Metric]:
        rows = stats.get("written", 0) + stats.get("applied", 0)
        yield self._counter(
            "riskgate_rows_written_total",
            "Entries recorded in PostgreSQL (audit: decisions; phase: events applied).",
            rows,
        )
        yield self._counter(
            "riskgate_postgres_errors_total", "PostgreSQL errors (retried).",
            stats.get("pg_errors", 0),
        )  # fmt: skip
        yield self._counter(
            "riskgate_rejected_entries_total", "Unusable entries recorded in consumer_rejects.",
            stats.get("rejected", 0),
        )  # fmt: skip
        yield self._counter(
            "riskgate_acked_total", "Entries acked after their transaction committed.",
            stats.get("acked", 0),
        )  # fmt: skip
