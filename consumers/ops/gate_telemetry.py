"""The gate's metrics: decisions by status and reason, decision latency, batch sizes,
and the portfolio gauges (equity, heat, drawdown, daily PnL, halted, overdue
reservations, the outbox) sampled from Redis on the sampling thread."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from consumers.bus.keys import GROUP_GATE
from consumers.bus.nodes import server_time
from consumers.ops.instruments import Buckets
from consumers.ops.worker_telemetry import WorkerTelemetry
from consumers.state.outbox import held as outbox_held
from consumers.state.store import Store
from gate.exposure import Exposure
from gate.ledger import overdue
from gate.money import ratio
from gate.phases import active_phases
from gate.portfolio import Vitals
from schemas.messages import ReasonCode, Status

if TYPE_CHECKING:  # what telemetry reads of the gate, not the gate (it sits above)
    from consumers.bus.streams import Entry
    from consumers.ops.observed import CommittedBatch as Planned
    from consumers.ops.observed import ObservedGate as GateWorker

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
        # a gate that decides by lease (seat.py): whether it owns the portfolio now
        self.owned: Callable[[], bool] | None = None

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
        seconds, micros = server_time(self.redis, self.keys.state)  # good_till: Redis's clock
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
            "riskgate_intents_expired_total",
            "Intents dated outside the dedupe window: dead-lettered, never decided (a "
            "copy of one may have been decided before its marker expired).",
            stats.get("expired_intents", 0),
        )
        yield self._counter(
            "riskgate_trimmed_entries_total",
            "Stream entries trimmed once every group that needed them had acked them.",
            stats.get("trimmed", 0),
        )
        unconsumed = CounterMetricFamily(
            "riskgate_trimmed_unconsumed",
            "Stream entries trimmed before a group acked them: nobody ran that group for "
            "RISKGATE_IDLE_GROUP_S and they were older than RISKGATE_UNCONSUMED_KEEP_S.",
            labels=[*self.labels, "stream"],
        )
        for role in ("intents", "events", "decisions", "orders", "deadletter"):
            n = stats.get(f"unconsumed:{role}", 0)
            unconsumed.add_metric([*self.labels.values(), role], n)
        yield unconsumed
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
        stages = CounterMetricFamily(
            "riskgate_gate_stage_seconds",
            "Seconds the gate loop spent in each stage (consumers/gate_worker/stages.py): "
            "read, parse, decide, encode, send, commit (waiting for its reply), report.",
            labels=[*self.labels, "stage"],
        )
        for stage, seconds in self.worker.stages.seconds.items():
            stages.add_metric([*self.labels.values(), stage], seconds)
        yield stages
        reloads = CounterMetricFamily(
            "riskgate_state_reloads",
            "Snapshots read again after a lost race: from the change log (what changed), "
            "or whole (the log could not account for every version since).",
            labels=[*self.labels, "kind"],
        )
        for kind in ("incremental", "whole"):
            reloads.add_metric([*self.labels.values(), kind], stats.get(f"reloads_{kind}", 0))
        yield reloads
        yield self._counter(
            "riskgate_pipeline_replans_total",
            "Pipelined commits that did not go through as planned (a lost race, entries "
            "already decided): the batch planned on top of them was decided again.",
            stats.get("pipeline_replans", 0),
        )
        yield self.latency.family(
            "riskgate_decision_latency_seconds",
            "From the intent's stream id time to the commit of its decision.",
            self.labels,
        )
        yield self.batch_size.family(
            "riskgate_gate_batch_entries", "Entries per committed batch.", self.labels
        )
        yield from self._lease_families(stats)
        yield from self._portfolio_families()

    def _lease_families(self, stats: dict[str, int]) -> Iterator[Metric]:
        if self.owned is None:
            return
        yield self._gauge(
            "riskgate_portfolio_owned",
            "1 while this process holds the portfolio's lease and decides it; 0 standing by.",
            1 if self.owned() else 0,
        )
        changes = CounterMetricFamily(
            "riskgate_lease_changes",
            "Lease changes of this process: acquired, lost (another took it, or a commit "
            "was fenced), released (graceful shutdown).",
            labels=[*self.labels, "change"],
        )
        for change in ("acquired", "lost", "released"):
            changes.add_metric([*self.labels.values(), change], stats.get(f"lease_{change}", 0))
        yield changes
        yield self._counter(
            "riskgate_taken_over_total",
            "Pending entries claimed at once on taking a portfolio over (XAUTOCLAIM, min idle 0).",
            stats.get("taken_over", 0),
        )

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
