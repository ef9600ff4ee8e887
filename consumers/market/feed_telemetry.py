"""``riskgate feed``'s metrics (``--metrics-port``): besides every worker's health and
loop counters, the source failovers, source errors, marks published and each source's
state."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from redis import Redis

from consumers.bus.keys import Keys
from consumers.market.router import Router
from consumers.ops.worker_telemetry import WorkerTelemetry

STATES = ("ok", "failing", "rate_limited", "not_configured")


class FeedTelemetry(WorkerTelemetry):
    role = "feed"

    def __init__(self, redis: Redis, keys: Keys, router: Router, stats: dict[str, int]) -> None:
        super().__init__(redis, keys, stats, [], "feed")
        self.router = router

    def collect_more(self, stats: dict[str, int]) -> Iterable[Metric]:
        labels = list(self.labels)
        fam = CounterMetricFamily("riskgate_feed_failovers_total",
                                  "Assets handed from a failing source to the next.",
                                  labels=[*labels, "kind", "from_source", "to_source"])  # fmt: skip
        for (kind, src, dst), n in sorted(self.router.failovers.items()):
            fam.add_metric([*self.labels.values(), kind, src, dst], n)
        yield fam
        errs = CounterMetricFamily("riskgate_feed_source_errors_total",
                                   "Failed source calls (HTTP errors, timeouts, malformed).",
                                   labels=[*labels, "source"])  # fmt: skip
        for src, n in sorted(self.router.errors.items()):
            errs.add_metric([*self.labels.values(), src], n)
        yield errs
        state = GaugeMetricFamily("riskgate_feed_source_state",
                                  "1 for the state each source is in (ok, failing, ...).",
                                  labels=[*labels, "source", "state"])  # fmt: skip
        for src, h in sorted(self.router.health.items()):
            for s in STATES:
                state.add_metric([*self.labels.values(), src, s], 1 if h.state == s else 0)
        yield state
        yield self._counter("riskgate_feed_marks_published_total", "Prices published as marks.",
                            stats.get("marks", 0))  # fmt: skip
        yield self._counter("riskgate_feed_job_errors_total", "Feed jobs that failed (retried).",
                            stats.get("job_errors", 0))  # fmt: skip
