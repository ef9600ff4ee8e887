"""The Planner's events half: portfolio events refused before anything is applied
(dated ahead, too old, unsigned operator events), applied (one by one when the batch
fails), recorded; a halt for unreadable events that may carry a position or the cash;
and the exposure brought up to the applied snapshot."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from consumers.bus.signing import Signer, operator_problem
from consumers.bus.streams import Entry, stream_time
from consumers.gate_worker.commit_plan import AppliedEntry
from consumers.gate_worker.intake import PortfolioEvent
from consumers.gate_worker.planned import Planned, PlanStep, log
from consumers.state.store import Loaded
from gate.exposure import Exposure
from gate.ledger import Applied, apply_events, future_dated, too_old
from gate.portfolio import Halt, Snapshot
from schemas.config import AssetsConfig
from schemas.messages import OperatorEvent

# unreadable events that may carry a position or the cash (or, untyped, may be one)
HALTING_EVENTS = frozenset({"fill", "cancel", "expired", "deposit"})


class EventSteps(PlanStep):
    """The Planner's steps for portfolio events (a mixin: the attributes are the planner's)."""

    operators: Signer
    event_window: timedelta | None

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
