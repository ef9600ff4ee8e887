"""Plan one batch: events applied, intents decided, all as one commit.

Pure except for logging: the worker hands in what it read and a loaded snapshot and
gets back the :class:`CommitPlan` plus the snapshot that the commit will produce.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import structlog

from consumers.bus.agent_signing import IntentVerifier
from consumers.bus.signing import Signer, operator_problem, signed_order_json
from consumers.bus.streams import Entry, stream_time
from consumers.gate_worker.commit import AppliedEntry, CommitPlan, DecidedEntry
from consumers.gate_worker.intake import Intake, PortfolioEvent, dead_letter, rejection
from consumers.state.changes import approvals_touched, changes
from consumers.state.codec import iso
from consumers.state.store import Loaded
from gate.checks import rate_window
from gate.decide import BatchResult, decide_batch
from gate.exposure import Exposure
from gate.ledger import Applied, apply_events, future_dated, too_old
from gate.portfolio import Halt, Reservation, Snapshot
from schemas.config import AssetsConfig
from schemas.messages import (
    Decision,
    OperatorEvent,
    ReasonCode,
    Status,
    TradeIntent,
    decimal_text,
)

log = structlog.get_logger("riskgate.batch")


@dataclass(slots=True)
class Planned:
    plan: CommitPlan
    snapshot: Snapshot  # the state after this commit
    exposure: Exposure | None = None  # its exposure, to reuse for the next batch
    decisions: list[Decision] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)  # event oddities to log
    dead: int = 0
    refused: int = 0  # events refused as implausible (future-dated, unsigned, ...)
    # (event id or entry, why): fills, cancels, expiries or deposits the gate could not
    # read, so its positions or cash may be wrong: it halts until an operator resumes
    halts: list[tuple[str, str]] = field(default_factory=list)
    escalations: list[tuple[str, str]] = field(default_factory=list)  # unknown_fill: halted
    left_pending: int = 0  # entries an unexpected error kept out (retried later)
    reused: int = 0  # intents refused: their id was decided for other content
    # intents past their agent's quota: rejected cheaply, not decided; committed after
    # ``plan.decided``'s decisions (which ``decisions`` matches one for one)
    cheap: list[DecidedEntry] = field(default_factory=list)

    @property
    def over_quota(self) -> int:
        return len(self.cheap)


def order_json(d: Decision, r: Reservation, signer: Signer | None = None) -> str:
    """The ApprovedOrder's ``data``, HMAC-signed when the signer has keys."""
    return signed_order_json(
        signer or UNSIGNED,
        {
            "intent_id": d.intent_id,
            "agent_id": d.agent_id,
            "symbol": d.symbol,
            "side": r.side.value,
            "quantity": decimal_text(d.approved_quantity),
            "price": decimal_text(r.price),
            "stop_price": None if r.stop_price is None else decimal_text(r.stop_price),
            "take_profit": None if d.take_profit is None else decimal_text(d.take_profit),
            "reduce_only": r.reduce_only,
            "status": d.status.value,
            "decided_at": iso(d.decided_at),
            "expires_at": iso(r.expires_at),
            "config_hash": d.config_hash,
            "good_till": iso(r.expires_at),
        },
    )


UNSIGNED = Signer()
# unreadable events that may carry a position or the cash (or, untyped, may be one)
HALTING_EVENTS = frozenset({"fill", "cancel", "expired", "deposit"})
ANYONE = IntentVerifier()  # no agent keys: agents are who they say


class Planner:
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
    ) -> None:
        self.worker = worker
        self.max_deliveries = max_deliveries
        self.signer = signer
        self.operators = operators  # verifies deposits and resumes (off: accept all)
        self.agents = agents  # verifies intents are their agent's (off: accept all)
        self.quota = quota  # reject intents past the agent's quota before enrichment
        self.quota_marker_ttl_s = quota_marker_ttl_s
        # events older than this are refused (gate.ledger.event_window); None: never
        self.event_window = event_window

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

        reused = reused or {}
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

        intents = self._admit(out, snapshot, intents, now, cfg)
        result = self._decide(out, snapshot, intents, loaded, now, book=book)
        plan.decided += out.cheap
        for d in plan.decided:  # what each intent said, for the decided marker
            d.digest = intake.digests.get(d.msg_id, "")
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

    # -- steps ---------------------------------------------------------------------------

    def _admissible(
        self,
        out: Planned,
        events: list[tuple[Entry, PortfolioEvent]],
        config: AssetsConfig,
        now: datetime,
    ) -> list[tuple[Entry, PortfolioEvent]]:
        """Events the gate refuses before applying anything: dated too far ahead of when
        Redis took them in (their stream id: the phase monitor judges by the same clock,
        so both refuse the same); too old to be applied only once (docs/PROTOCOL.md,
        "Event ids"): dated more than the event window before their stream id (the phase
        monitor refuses the same), or dated (else received) more than the window before
        Redis's clock now, an entry read late whose applied marker may have expired
        meanwhile; and operator events without a valid operator signature (when
        operator keys are configured)."""
        kept = []
        window = self.event_window
        for entry, ev in events:
            received = stream_time(entry)
            why = future_dated(ev, received, config, "its stream id")
            if why is None and window is not None:
                why = too_old(ev, received, window) or too_old(
                    ev, now, window, "the gate's clock (Redis TIME)", received=received
                )
            if why is None and self.operators.enabled and isinstance(ev, OperatorEvent):
                problem = operator_problem(self.operators, entry.raw or b"")
                why = None if problem is None else f"{ev.type} {problem}"
            if why is None:
                kept.append((entry, ev))
            else:
                self._refuse(out, entry, ev, why, now)
        return kept

    def _signed(
        self,
        out: Planned,
        intents: list[tuple[Entry, TradeIntent]],
        now: datetime,
        config_hash: str,
    ) -> list[tuple[Entry, TradeIntent]]:
        """With agent keys, an intent not signed by a key of the agent it names is
        rejected ``unauthenticated`` (a decision: the agent learns why). It is never
        decided, so it counts towards no agent's rate and adds no state."""
        if not self.agents.enabled:
            return intents
        kept = []
        for entry, intent in intents:
            problem = self.agents.problem(entry.raw or b"", intent.agent_id)
            if problem is None:
                kept.append((entry, intent))
                continue
            decision = rejection(
                intent.intent_id,
                intent.model_dump(mode="json"),
                code=ReasonCode.UNAUTHENTICATED,
                message=problem,
                now=now,
                config_hash=config_hash,
            )
            out.plan.decided.append(
                DecidedEntry(entry.msg_id, intent.intent_id, decision.model_dump_json(), "")
            )
            out.decisions.append(decision)
        return kept

    def _admit(
        self,
        out: Planned,
        snapshot: Snapshot,
        intents: list[tuple[Entry, TradeIntent]],
        now: datetime,
        config: AssetsConfig,
    ) -> list[tuple[Entry, TradeIntent]]:
        """The per-agent queue quota: an agent's openings past its allowance for this UTC
        minute (``max_intents_per_agent_per_minute`` less what it already used) are
        certain to be ``rate_limited``; they get that rejection here, compact (no
        enrichment, no checks but the count) and with a short-lived marker, so a flood
        costs the gate, Redis and every other agent little. Reduce-only intents are
        never rate limited and always go on to ``decide``. docs/PROTOCOL.md, Backpressure.
        """
        if not self.quota:
            return intents
        limit = config.risk_management.max_intents_per_agent_per_minute
        window = rate_window(now)
        used: dict[str, int] = {}
        kept = []
        for entry, intent in intents:
            agent = intent.agent_id
            if intent.reduce_only:
                kept.append((entry, intent))
                continue
            n = used.get(agent)
            if n is None:
                seen = snapshot.rates.get(agent)
                n = seen.count if seen is not None and seen.window == window else 0
            if n < limit:
                used[agent] = n + 1
                kept.append((entry, intent))
                continue
            used[agent] = n
            self._over_quota(
                out, entry, intent, count=n, limit=limit, now=now, config_hash=config.config_hash
            )
        return kept

    def _over_quota(
        self,
        out: Planned,
        entry: Entry,
        intent: TradeIntent,
        *,
        count: int,
        limit: int,
        now: datetime,
        config_hash: str,
    ) -> None:
        """The compact rejection, written as JSON directly (a flood's cost is this)."""
        decision = {
            "intent_id": intent.intent_id,
            "agent_id": intent.agent_id,
            "symbol": intent.symbol,
            "side": intent.side.value,
            "status": "rejected",
            "requested_quantity": decimal_text(intent.quantity),
            "approved_quantity": "0",
            "stop_price": None,
            "reasons": [
                {
                    "code": "rate_limited",
                    "message": (
                        f"agent {intent.agent_id} sent {count} intents this minute, limit "
                        f"{limit}; past its quota: rejected before any other check"
                    ),
                    "value": str(count),
                    "limit": str(limit),
                }
            ],
            "checks": {"agent_intents_this_minute": count, "agent_rate_limit": limit},
            "decided_at": iso(now),
            "config_hash": config_hash,
            "price": decimal_text(intent.price),
            "take_profit": None,
            "reduce_only": False,
        }
        data = json.dumps(decision, separators=(",", ":"))
        out.cheap.append(
            DecidedEntry(entry.msg_id, intent.intent_id, data, "", ttl_s=self.quota_marker_ttl_s)
        )

    def _record(
        self,
        out: Planned,
        applied: Applied,
        events: list[tuple[Entry, PortfolioEvent]],
        now: datetime,
    ) -> None:
        """Applied events get their markers; refused ones a dead letter that says why."""
        refused = dict(applied.refused)
        for e, ev in events:
            why = refused.get(ev.event_id)
            if why is None:
                out.plan.applied.append(AppliedEntry(e.msg_id, ev.event_id))
            else:
                self._refuse(out, e, ev, why, now)

    def _refuse(
        self, out: Planned, entry: Entry, ev: PortfolioEvent, why: str, now: datetime
    ) -> None:
        """A dead letter that says why (counted and alerted: riskgate_refused_events_total).
        Not a halt: the event was read and judged implausible (docs/PROTOCOL.md)."""
        out.refused += 1
        self._dead(out, entry, f"refused: {why}", now)

    def _apply(
        self,
        out: Planned,
        snapshot: Snapshot,
        events: list[tuple[Entry, PortfolioEvent]],
        loaded: Loaded,
        now: datetime,
    ) -> tuple[Applied, list[tuple[Entry, PortfolioEvent]]]:
        try:
            applied = apply_events(snapshot, [ev for _, ev in events], loaded.config, now)
        except Exception:
            log.exception("event batch failed; applying one by one")
        else:
            out.notes += applied.notes
            out.escalations += applied.escalations
            return applied, events
        kept = []
        current = snapshot
        refused: list[tuple[str, str]] = []
        for entry, ev in events:
            try:
                one = apply_events(current, [ev], loaded.config, now)
            except Exception:
                log.exception(
                    "event left pending", event_id=ev.event_id, msg_id=entry.msg_id.decode()
                )
                out.left_pending += 1
                continue
            current = one.snapshot
            out.notes += one.notes
            out.escalations += one.escalations
            refused += one.refused
            kept.append((entry, ev))
        # rare path: say everything may have changed, so callers recompute from scratch
        return Applied(
            current,
            (),
            frozenset(snapshot.positions) | frozenset(current.positions),
            tuple(snapshot.reservations.values()),
            tuple(current.reservations.values()),
            fx_changed=True,
            marks_touched=frozenset(current.marks),
            refused=tuple(refused),
            escalations=tuple(out.escalations),
        ), kept

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
                DecidedEntry(entry.msg_id, intent.intent_id, decision.model_dump_json(), order)
            )
            out.decisions.append(decision)
        return result

    def _dead(self, out: Planned, entry: Entry, error: str, now: datetime) -> None:
        out.plan.dead.append(dead_letter(entry, error, self.worker, now))
        out.dead += 1
        log.warning(
            "dead letter",
            stream=entry.stream,
            msg_id=entry.msg_id.decode(),
            error=error[:300],
            deliveries=entry.deliveries,
        )

    def _reused(
        self,
        out: Planned,
        entry: Entry,
        intent_id: str,
        salvage: dict[str, object],
        *,
        reused: Mapping[str, str],
        error: str,
        now: datetime,
        config_hash: str,
    ) -> None:
        """A dead letter and a notice (not a decision: no marker) for a reused id."""
        original = reused[intent_id]
        message = (
            f"intent_id {intent_id} was already decided (decision {original}) for different "
            "content; this intent was not decided"
        )
        self._dead(out, entry, f"{message}; {error}" if error else message, now)
        notice = rejection(
            intent_id,
            salvage,
            code=ReasonCode.INTENT_ID_REUSED,
            message=message,
            now=now,
            config_hash=config_hash,
            value=original,
            checks={"original_decision": original},
        )
        out.plan.notices.append(notice.model_dump_json())
        out.reused += 1

    def _reject(
        self,
        out: Planned,
        entry: Entry,
        intent_id: str,
        salvage: dict[str, object],
        *,
        message: str,
        now: datetime,
        config_hash: str,
    ) -> None:
        def build(fields: dict[str, object], text: str) -> Decision:
            return rejection(
                intent_id,
                fields,
                code=ReasonCode.INVALID_INTENT,
                message=text,
                now=now,
                config_hash=config_hash,
            )

        decision = build(salvage, message)
        try:
            data = decision.model_dump_json()
        except Exception:  # what was salvaged will not serialize: the id alone (it does)
            decision = build({}, message.encode("utf-8", "replace").decode("utf-8"))
            data = decision.model_dump_json()
        out.plan.decided.append(DecidedEntry(entry.msg_id, intent_id, data, ""))
        out.decisions.append(decision)


def _halted(snapshot: Snapshot, halts: list[tuple[str, str]], now: datetime) -> Snapshot:
    """``snapshot`` halted by the first of ``halts`` (an existing halt is kept)."""
    if not halts or snapshot.account.halted_by is not None:
        return snapshot
    event_id, why = halts[0]
    more = f" (and {len(halts) - 1} more)" if len(halts) > 1 else ""
    halt = Halt(now, event_id, f"unaccounted_event: {why}{more}"[:1000])
    return replace(snapshot, account=replace(snapshot.account, halted_by=halt))


def _follow(
    book: Exposure, before: Snapshot, applied: Applied, config: AssetsConfig, now: datetime
) -> Exposure:
    """Bring ``book`` (the exposure of ``before``) up to ``applied.snapshot``."""
    after = applied.snapshot
    if applied.fx_changed:
        return Exposure.of(after, config)
    for r in applied.released:  # at the marks they were reserved at
        book.release(r, after.account, config)
    for r in applied.reserved:
        book.reserve(r, after.account, config)
    # then what is reserved in a symbol whose mark moved is valued at the new mark
    book.reprice(after, applied.marks_touched | applied.positions_touched, config)
    if applied.positions_touched or after.account is not before.account:
        book.revalue_positions(after, config)
    return book
