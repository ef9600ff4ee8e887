"""Prometheus metrics and a health endpoint for the workers (gate, audit, phase monitor).

Each worker process serves ``/metrics`` (Prometheus text format) and ``/healthz`` on
``RISKGATE_METRICS_PORT`` (``--metrics-port``; 0, the default, serves nothing) at
``RISKGATE_METRICS_HOST`` (default 127.0.0.1). ``/healthz`` answers 200 while the
worker's loop has completed a turn against Redis within ``RISKGATE_HEALTH_STALE_S``
seconds (default 30; a turn blocks at most ``--block-ms``), 503 otherwise.

Cost on the hot path: counters the workers keep anyway (their ``stats``) are read at
scrape time; per committed batch the gate adds one call that counts reasons and files
each decision's latency into a bucket list (no lock, no label lookup). Gauges that need
Redis (lag, pending, portfolio heat, drawdown, daily PnL, halted) are sampled every
``RISKGATE_METRICS_SAMPLE_S`` seconds (default 5) by a thread of their own, so a scrape
never waits on Redis.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from redis import Redis
from redis.exceptions import RedisError, ResponseError

from consumers.bus.keys import GROUP_GATE, Keys
from consumers.bus.streams import group_lag as undelivered
from consumers.errors import UsageError
from consumers.state.outbox import held as outbox_held
from consumers.state.store import Store
from gate.exposure import Exposure
from gate.ledger import overdue
from gate.money import ratio
from gate.phases import active_phases
from gate.portfolio import Vitals
from schemas.messages import ReasonCode, Status

if TYPE_CHECKING:  # what telemetry reads of the workers, not the workers (they sit above)
    from consumers.bus.streams import Entry
    from consumers.ops.observed import CommittedBatch as Planned
    from consumers.ops.observed import ObservedConsumer as StreamToPg
    from consumers.ops.observed import ObservedGate as GateWorker

PORT_ENV = "RISKGATE_METRICS_PORT"
HOST_ENV = "RISKGATE_METRICS_HOST"
STALE_ENV = "RISKGATE_HEALTH_STALE_S"
SAMPLE_ENV = "RISKGATE_METRICS_SAMPLE_S"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

LATENCY_BUCKETS = (
    0.001,
    0.002,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
BATCH_BUCKETS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0)


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def metrics_port() -> int:
    value = os.environ.get(PORT_ENV, "").strip()
    return int(value) if value else 0


class Buckets:
    """A histogram observed without locks (one writer thread), exported cumulatively."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = list(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def family(self, name: str, doc: str, labels: dict[str, str]) -> HistogramMetricFamily:
        counts, total = list(self.counts), self.sum
        cumulative, running = [], 0
        for bound, n in zip([*self.bounds, float("inf")], counts, strict=True):
            running += n
            cumulative.append(("+Inf" if bound == float("inf") else repr(bound), running))
        fam = HistogramMetricFamily(name, doc, labels=list(labels))
        fam.add_metric(list(labels.values()), cumulative, total)
        return fam


class Heartbeat:
    """When the worker's loop last completed a turn against Redis."""

    def __init__(self, stale_after_s: float) -> None:
        self.stale_after_s = stale_after_s
        self.last = time.monotonic()  # a starting worker gets one period to connect
        self.last_wall: float | None = None

    def beat(self) -> None:
        self.last = time.monotonic()
        self.last_wall = time.time()

    def healthy(self) -> bool:
        return time.monotonic() - self.last <= self.stale_after_s


def _id_ms(value: Any) -> int | None:
    if value is None:
        return None
    text = value.decode() if isinstance(value, bytes) else str(value)
    try:
        return int(text.split("-", 1)[0])
    except ValueError:
        return None


def group_backlog(redis: Redis, stream: str, group: str) -> dict[str, float | None]:
    """Pending entries, and lag in entries and in seconds (Redis 6.2 and 7).

    Seconds: from the last entry delivered to the group to the newest entry of the
    stream, by their ids' times; 0 when the group has read everything.
    """
    try:
        groups = redis.xinfo_groups(stream)
        last_id = _id_ms(redis.xinfo_stream(stream).get("last-generated-id"))
    except ResponseError:  # no stream yet
        return {"pending": 0.0, "lag": 0.0, "lag_seconds": 0.0}
    for g in groups:
        name = g["name"].decode() if isinstance(g["name"], bytes) else g["name"]
        if name != group:
            continue
        delivered = _id_ms(g.get("last-delivered-id"))
        lag = undelivered(redis, stream, g)
        behind = 0.0
        if last_id is not None and delivered is not None and lag != 0:
            behind = max(0.0, (last_id - delivered) / 1000)
        return {
            "pending": float(g["pending"]),
            "lag": float(lag),
            "lag_seconds": behind,
        }
    return {"pending": 0.0, "lag": None, "lag_seconds": 0.0}


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
        yield self._counter(
            "riskgate_redis_errors_total", "Redis errors (retried).", stats.get("redis_errors", 0)
        )
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


class GateTelemetry(WorkerTelemetry):
    role = "gate"

    def __init__(self, worker: GateWorker, *, stale_after_s: float | None = None) -> None:
        kk = worker.keys
        super().__init__(
            worker.redis,
            kk,
            worker.stats,
            [(kk.intents, GROUP_GATE), (kk.events, GROUP_GATE)],
            worker.settings.consumer,
            stale_after_s=stale_after_s,
        )
        self.worker = worker
        self.reasons: dict[str, int] = dict.fromkeys((c.value for c in ReasonCode), 0)
        self.latency = Buckets(LATENCY_BUCKETS)
        self.batch_size = Buckets(BATCH_BUCKETS)

    def batch(self, planned: Planned, entries: list[Entry]) -> None:
        """Hook: one committed batch (called by the gate after its commit)."""
        now_ms = time.time() * 1000
        self.batch_size.observe(len(entries))
        reasons, latency = self.reasons, self.latency
        decided = planned.plan.decided
        full = len(planned.decisions)
        for d, entry in zip(planned.decisions, decided[:full], strict=True):
            sent_ms = int(entry.msg_id.split(b"-", 1)[0])
            latency.observe(max(0.0, now_ms - sent_ms) / 1000)
            for r in d.reasons:
                code = r.code.value
                reasons[code] = reasons.get(code, 0) + 1
        for entry in decided[full:]:  # past an agent's quota: compact rate_limited
            sent_ms = int(entry.msg_id.split(b"-", 1)[0])
            latency.observe(max(0.0, now_ms - sent_ms) / 1000)
        if planned.over_quota:
            reasons["rate_limited"] = reasons.get("rate_limited", 0) + planned.over_quota

    def sample_more(self) -> dict[str, Any]:
        loaded = Store(self.redis, self.keys, self.worker.store.base).load()
        snap, cfg = loaded.snapshot, loaded.config
        now = datetime.now(UTC)
        exposure = Exposure.of(snap, cfg)
        v = Vitals.of(snap, exposure.equity, now.date())
        eq = v.equity
        rm = cfg.risk_management
        classes = {
            c.value: float(ratio(exposure.class_notional(c.value), eq)) for c in cfg.asset_classes
        }
        seconds, micros = self.redis.time()  # good_till is on Redis's clock
        late = overdue(snap, datetime.fromtimestamp(int(seconds) + int(micros) / 1e6, UTC))
        oldest = (int(seconds) - late[0].expires_at.timestamp()) if late else 0.0
        held = outbox_held(self.redis, self.keys)
        return {
            "portfolio": {
                "riskgate_equity": float(eq),
                "riskgate_portfolio_heat_ratio": float(ratio(exposure.heat, eq)),
                "riskgate_portfolio_heat_limit_ratio": float(rm.max_portfolio_heat),
                "riskgate_drawdown_ratio": float(v.drawdown),
                "riskgate_drawdown_limit_ratio": float(rm.emergency_stop_drawdown),
                "riskgate_daily_pnl": float(v.daily_pnl),
                "riskgate_daily_loss_ratio": float(v.daily_loss),
                "riskgate_daily_loss_limit_ratio": float(rm.daily_loss_limit),
                "riskgate_halted": (
                    1.0 if snap.flags.halted or snap.account.halted_by is not None else 0.0
                ),
                "riskgate_overdue_reservations": float(len(late)),
                "riskgate_overdue_reservation_max_seconds": max(0.0, oldest),
                "riskgate_outbox_entries": float(held.entries),
                "riskgate_outbox_oldest_age_seconds": held.oldest_age_s,
            },
            "classes": classes,
            "phases": {name: name in active_phases(cfg) for name in cfg.phases},
        }

    def collect_more(self, stats: dict[str, int]) -> Iterable[Metric]:
        decisions = CounterMetricFamily(
            "riskgate_decisions", "Decisions committed, by status.", labels=[*self.labels, "status"]
        )
        for status in Status:
            decisions.add_metric([*self.labels.values(), status.value], stats.get(status.value, 0))
        yield decisions
        reasons = CounterMetricFamily(
            "riskgate_decision_reasons",
            "Reasons on committed decisions (a decision may carry several).",
            labels=[*self.labels, "reason"],
        )
        for code, n in sorted(dict(self.reasons).items()):
            reasons.add_metric([*self.labels.values(), code], n)
        yield reasons
        yield self._counter(
            "riskgate_dead_letters_total", "Entries sent to the deadletter stream.",
            stats.get("dead", 0) + stats.get("lost", 0),
        )  # fmt: skip
        yield self._counter(
            "riskgate_intent_id_reused_total",
            "Intents refused: their id was already decided for different content.",
            stats.get("intent_id_reused", 0),
        )
        yield self._counter(
            "riskgate_unknown_fills_total",
            "Fills applied that the gate never approved (or far beyond their approval): "
            "each halts trading until riskgate resume.",
            stats.get("unknown_fill", 0),
        )
        yield self._counter(
            "riskgate_intents_over_quota_total",
            "Intents past their agent's per-minute quota: compact rate_limited rejections.",
            stats.get("over_quota", 0),
        )
        yield self._counter(
            "riskgate_oversize_entries_total",
            "Entries over the size limit, dead-lettered without being read whole.",
            stats.get("oversize", 0),
        )
        yield self._counter(
            "riskgate_refused_events_total",
            "Portfolio events refused as implausible: dated ahead of Redis's clock, an "
            "operator event without its signature, a withdrawal over the cash.",
            stats.get("refused_events", 0),
        )
        yield self._counter(
            "riskgate_outbox_wait_failures_total",
            "Waits for replicas (WAIT/WAITAOF) that fell short: outputs stayed held.",
            stats.get("outbox_wait_failures", 0),
        )
        yield self._counter(
            "riskgate_version_conflicts_total", "Commits refused: the portfolio moved meanwhile.",
            stats.get("conflicts", 0),
        )  # fmt: skip
        yield self._counter(
            "riskgate_events_applied_total", "Portfolio events applied.", stats.get("events", 0)
        )
        yield self.latency.family(
            "riskgate_decision_latency_seconds",
            "From the intent's stream id time to the commit of its decision.",
            self.labels,
        )
        yield self.batch_size.family(
            "riskgate_gate_batch_entries", "Entries per committed batch.", self.labels
        )
        yield from self._portfolio_families()

    def _portfolio_families(self) -> Iterator[Metric]:
        docs = {
            "riskgate_equity": "Portfolio equity (account currency).",
            "riskgate_portfolio_heat_ratio": "Risk to stop of positions and reservations / equity.",
            "riskgate_portfolio_heat_limit_ratio": "max_portfolio_heat.",
            "riskgate_drawdown_ratio": "Drawdown from peak equity.",
            "riskgate_drawdown_limit_ratio": "emergency_stop_drawdown.",
            "riskgate_daily_pnl": "Today's PnL (account currency).",
            "riskgate_daily_loss_ratio": "Today's loss / start-of-day equity.",
            "riskgate_daily_loss_limit_ratio": "daily_loss_limit.",
            "riskgate_halted": "1 while halted: the operator kill switch, or an unknown fill.",
            "riskgate_overdue_reservations": (
                "Reservations past their order's good_till, still counted: no executor has "
                "confirmed how the order ended."
            ),
            "riskgate_overdue_reservation_max_seconds": (
                "How long the oldest overdue reservation is past its good_till."
            ),
            "riskgate_outbox_entries": (
                "Decisions and orders committed but held: replicas have not confirmed them "
                "(--replicas/--aof; 0 otherwise)."
            ),
            "riskgate_outbox_oldest_age_seconds": "How long the oldest held entry has waited.",
        }
        values: dict[str, float] = self.samples.get("portfolio", {})
        for name, doc in docs.items():
            fam = GaugeMetricFamily(name, doc, labels=list(self.labels))
            if name in values:
                fam.add_metric(list(self.labels.values()), values[name])
            yield fam
        shares = GaugeMetricFamily(
            "riskgate_class_share_ratio",
            "Class notional / equity.",
            labels=[*self.labels, "asset_class"],
        )
        for cls, share in sorted(self.samples.get("classes", {}).items()):
            shares.add_metric([*self.labels.values(), cls], share)
        yield shares
        phases = GaugeMetricFamily(
            "riskgate_phase_active", "1 when the phase's classes and assets are enabled.",
            labels=[*self.labels, "phase"],
        )  # fmt: skip
        for phase, on in self.samples.get("phases", {}).items():
            phases.add_metric([*self.labels.values(), phase], 1 if on else 0)
        yield phases


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


# --- serving ------------------------------------------------------------------------------


class Exporter:
    """``/metrics`` and ``/healthz`` on a port, plus the sampling thread; ``close()`` ends both."""

    def __init__(
        self,
        telemetry: WorkerTelemetry,
        port: int,
        host: str = "127.0.0.1",
        sample_every_s: float = 5.0,
    ) -> None:
        self.telemetry = telemetry
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(telemetry)
        self.sample_every_s = sample_every_s
        self._stop = threading.Event()
        self.server = ThreadingHTTPServer((host, port), _handler(self.registry, telemetry.healthy))
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self._threads = [
            threading.Thread(target=self.server.serve_forever, name="metrics-http", daemon=True),
            threading.Thread(target=self._sampling, name="metrics-sample", daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _sampling(self) -> None:
        while True:
            self.telemetry.sample()
            if self._stop.wait(self.sample_every_s):
                return

    def close(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()
        for t in self._threads:
            t.join(10)

    def __enter__(self) -> Exporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _handler(
    registry: CollectorRegistry, healthy: Callable[[], bool]
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE)
            elif path == "/healthz":
                ok = healthy()
                self._send(200 if ok else 503, b"ok\n" if ok else b"stale\n", "text/plain")
            else:
                self._send(404, b"not found: try /metrics or /healthz\n", "text/plain")

        def _send(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return None  # scrapes are not news

    return Handler


def _serve(telemetry: WorkerTelemetry) -> Exporter | None:
    port = metrics_port()
    if port <= 0:
        return None
    host = os.environ.get(HOST_ENV, "127.0.0.1")
    try:
        exporter = Exporter(telemetry, port, host, _env_float(SAMPLE_ENV, 5.0))
    except OSError as exc:  # a port in use is a deployment mistake: stop, and say which
        raise UsageError(f"cannot serve metrics on {host}:{port}: {exc.strerror}") from exc
    telemetry.log.info("metrics served", port=exporter.port, paths=["/metrics", "/healthz"])
    return exporter


@contextlib.contextmanager
def serving(serve: Callable[[Any], Exporter | None], worker: Any) -> Iterator[None]:
    """Serve ``worker``'s metrics while the block runs (unless it came with telemetry)."""
    exporter = serve(worker) if getattr(worker, "telemetry", None) is None else None
    try:
        yield
    finally:
        if exporter is not None:
            exporter.close()


def serve_gate(worker: GateWorker) -> Exporter | None:
    """When a metrics port is configured: instrument the worker and serve; else None."""
    if metrics_port() <= 0:
        return None
    telemetry = GateTelemetry(worker)
    worker.telemetry = telemetry
    return _serve(telemetry)


def serve_consumer(consumer: StreamToPg) -> Exporter | None:
    """The same for the audit writer and the phase monitor."""
    if metrics_port() <= 0:
        return None
    keys: Keys = getattr(consumer, "keys", None) or Keys.from_env()
    telemetry = ConsumerTelemetry(consumer, keys)
    consumer.telemetry = telemetry
    return _serve(telemetry)
