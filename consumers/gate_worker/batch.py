"""Plan one batch: events applied, intents decided, all as one commit.

Pure except for logging: the worker hands in what it read and a loaded snapshot and
gets back the :class:`CommitPlan` plus the snapshot that the commit will produce.

Here: the order of the steps, and deciding the admitted intents. The steps for events
are in ``plan_events.py``, those that answer intents without deciding them in
``plan_intents.py``; ``planned.py`` holds what a plan produces.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime, timedelta

from consumers.bus.agent_signing import IntentVerifier
from consumers.bus.signing import Signer
from consumers.bus.streams import Entry
from consumers.gate_worker.commit_plan import CommitPlan, DecidedEntry
from consumers.gate_worker.intake import Intake, PortfolioEvent
from consumers.gate_worker.plan_events import HALTING_EVENTS, EventSteps, _follow, _halted
from consumers.gate_worker.plan_intents import IntentSteps
from consumers.gate_worker.planned import UNSIGNED, Planned, log, order_json
from consumers.gate_worker.stages import NO_STAGES, Stages
from consumers.state.changes import approvals_touched, changes
from consumers.state.store import Loaded
from gate.decide import BatchResult, decide_batch
from gate.exposure import Exposure
from gate.portfolio import Reservation, Snapshot
from schemas.config import AssetsConfig
from schemas.messages import Status, TradeIntent, decision_json

__all__ = [
    "ANYONE",
    "HALTING_EVENTS",
    "UNSIGNED",
    "Planned",
    "Planner",
    "_follow",
    "_halted",
    "log",
    "order_json",
]

ANYONE = IntentVerifier()  # no agent keys: agents are who they say


class Planner(EventSteps, IntentSteps):
    def __init__(
        self,
        worker: str,
        max_deliveries: int,
        signer: Signer = UNSIGNED,
        operators: Signer = UNSIGNED,
        agents: IntentVerifier = ANYONE,
        *,
        quota: bool = True,
        quota_marker_ttl_s: int = 3600,
        event_window: timedelta | None = None,
        marker_ttl_s: int = 900,
        intent_window: timedelta | None = None,
        stages: Stages = NO_STAGES,
    ) -> None:
        self.worker = worker
        self.stages = stages  # where the time goes: deciding within planning
        self.max_deliveries = max_deliveries
        self.signer = signer
        self.operators = operators  # verifies deposits and resumes (off: accept all)
        self.agents = agents  # verifies intents are their agent's (off: accept all)
        self.quota = quota  # reject intents past the agent's quota before enrichment
        self.quota_marker_ttl_s = quota_marker_ttl_s
        # events older than this are refused (gate.ledger.event_window); None: never
        self.event_window = event_window
        # intents this old or older are refused undecided (settings.intent_window); None:
        # never. A decided marker lives marker_ttl_s (longer for intents dated ahead)
        self.marker_ttl_s = marker_ttl_s
        self.intent_window = intent_window

    def plan(
        self,
        intake: Intake,
        loaded: Loaded,
        now: datetime,
        *,
        done_intents: Collection[str] = (),
        done_events: Collection[str] = (),
        exposure: Exposure | None = None,
        reused: Mapping[str, str] | None = None,
    ) -> Planned:
        """One commit's worth of work for ``intake`` against ``loaded``.

        ``done_*``: ids the commit found already decided/applied; they are only acked.
        ``reused``: intent ids the commit found decided for different content, with the
        stream id of that decision: each such entry gets a dead letter and a notice.
        ``exposure``: the exposure of every reservation and position in ``loaded.snapshot``
        (as the previous batch left it), if known.
        """
        cfg = loaded.config
        base = loaded.snapshot
        out = Planned(CommitPlan(expected_version=base.version), base)
        book = exposure.copy() if exposure is not None else Exposure.of(base, cfg)
        snapshot = base
        plan = out.plan
        plan.ack_intents += [e.msg_id for e in intake.repeats_intents]
        plan.ack_events += [e.msg_id for e in intake.repeats_events]

        events: list[tuple[Entry, PortfolioEvent]] = []
        for entry, ev in intake.events:  # the delivery cap was applied by intake
            if ev.event_id in done_events:
                plan.ack_events.append(entry.msg_id)
            else:
                events.append((entry, ev))
        for bad in intake.bad_events:
            self._dead(out, bad.entry, bad.error, now)
            if bad.salvage.get("type") in HALTING_EVENTS or not bad.salvage.get("type"):
                ref = bad.salvage.get("event_id") or f"entry {bad.entry.msg_id.decode()}"
                kind = bad.salvage.get("type") or "event of unreadable type"
                out.halts.append((str(ref), f"unparseable {kind}: {bad.error}"))

        events = self._admissible(out, events, cfg, now)
        applied, events = self._apply(out, snapshot, events, loaded, now)
        self._record(out, applied, events, now)
        book = _follow(book, snapshot, applied, cfg, now)
        snapshot = _halted(applied.snapshot, out.halts, now)

        intents, ahead_ttl = self._intents(
            out, intake, now, cfg, done_intents=done_intents, reused=reused or {}
        )
        intents = self._admit(out, snapshot, intents, now, cfg)
        result = self._decide(out, snapshot, intents, loaded, now, book=book)
        plan.decided += out.cheap
        for d in plan.decided:  # what each intent said, for the decided marker
            d.digest = intake.digests.get(d.msg_id, "")
            if d.msg_id in ahead_ttl:  # dated ahead: its marker outlives its window
                d.ttl_s = max(d.ttl_s, ahead_ttl[d.msg_id])
        snapshot = result.snapshot
        plan.hset, plan.hdel = changes(
            snapshot,
            account=snapshot.account is not base.account,
            positions=applied.positions_touched,
            reservations=applied.reservations_touched | {r.intent_id for r in result.reserved},
            rates={i.agent_id for _, i in intents} | (base.rates.keys() - snapshot.rates.keys()),
            marks=applied.marks_touched,
            approvals=approvals_touched(base, snapshot),
        )
        out.snapshot = snapshot
        out.exposure = result.exposure
        return out

    def _intents(
        self,
        out: Planned,
        intake: Intake,
        now: datetime,
        cfg: AssetsConfig,
        *,
        done_intents: Collection[str],
        reused: Mapping[str, str],
    ) -> tuple[list[tuple[Entry, TradeIntent]], dict[bytes, int]]:
        """The intents to decide: duplicates acked, reused ids and unreadable intents
        answered, intents outside the dedupe window and unsigned ones refused; with the
        marker TTLs of intents dated ahead (msg id -> seconds)."""
        plan = out.plan
        intents: list[tuple[Entry, TradeIntent]] = []
        for entry, intent in intake.intents:  # the delivery cap was applied by intake
            if intent.intent_id in done_intents:
                plan.ack_intents.append(entry.msg_id)
            elif intent.intent_id in reused:
                salvage = intent.model_dump(mode="json")
                self._reused(
                    out, entry, intent.intent_id, salvage,
                    reused=reused, error="", now=now, config_hash=cfg.config_hash,
                )  # fmt: skip
            else:
                intents.append((entry, intent))
        skew = cfg.risk_management.max_clock_skew_seconds
        intents, ahead_ttl = self._dated(out, intents, now, skew)
        intents = self._signed(out, intents, now, cfg.config_hash)
        for bad in intake.bad_intents:
            if bad.intent_id is not None and bad.intent_id in reused:
                self._reused(
                    out, bad.entry, bad.intent_id, bad.salvage,
                    reused=reused, error=bad.error, now=now, config_hash=cfg.config_hash,
                )  # fmt: skip
                continue
            self._dead(out, bad.entry, bad.error, now)
            if bad.intent_id is not None and bad.intent_id not in done_intents:
                self._reject(
                    out,
                    bad.entry,
                    bad.intent_id,
                    bad.salvage,
                    message=bad.error,
                    now=now,
                    config_hash=cfg.config_hash,
                )

        return intents, ahead_ttl

    def _decide(
        self,
        out: Planned,
        snapshot: Snapshot,
        intents: list[tuple[Entry, TradeIntent]],
        loaded: Loaded,
        now: datetime,
        *,
        book: Exposure,
    ) -> BatchResult:
        cfg = loaded.config
        try:
            with self.stages.time("decide"):
                result = decide_batch([i for _, i in intents], snapshot, cfg, now, exposure=book)
            decided = list(zip(intents, result.decisions, strict=True))
        except Exception:
            log.exception("intent batch failed; deciding one by one")
            decided = []
            reserved: list[Reservation] = []
            for pair in intents:
                entry, intent = pair
                try:
                    one = decide_batch([intent], snapshot, cfg, now, exposure=book)
                except Exception:  # fail closed: never approve, never skip -> retried
                    log.exception(
                        "intent left pending",
                        intent_id=intent.intent_id,
                        msg_id=entry.msg_id.decode(),
                    )
                    out.left_pending += 1
                    continue
                snapshot, book = one.snapshot, one.exposure
                reserved += one.reserved
                decided.append((pair, one.decisions[0]))
            result = BatchResult(tuple(d for _, d in decided), snapshot, book, tuple(reserved))
        for (entry, intent), decision in decided:
            order = ""
            if decision.status is not Status.REJECTED:
                reservation = result.snapshot.reservations[intent.intent_id]
                order = order_json(decision, reservation, self.signer)
            out.plan.decided.append(
                DecidedEntry(entry.msg_id, intent.intent_id, decision_json(decision), order)
            )
            out.decisions.append(decision)
        return result
