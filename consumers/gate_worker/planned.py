"""What planning a batch produces (:class:`Planned`: the commit plan, the snapshot it
leads to, what to count and log), the approved order's JSON, and the dead letter every
planning step may write."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import structlog

from consumers.bus.signing import Signer, signed_order_json
from consumers.bus.streams import Entry
from consumers.gate_worker.commit_plan import CommitPlan, DecidedEntry
from consumers.gate_worker.rejections import dead_letter
from consumers.state.codec import iso
from gate.exposure import Exposure
from gate.portfolio import Reservation, Snapshot
from schemas.messages import Decision, decimal_text

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
    expired: int = 0  # intents dated outside the dedupe window: dead letters, no decision
    # intents past their agent's quota: rejected cheaply, not decided; committed after
    # ``plan.decided``'s decisions (which ``decisions`` matches one for one)
    cheap: list[DecidedEntry] = field(default_factory=list)

    @property
    def over_quota(self) -> int:
        return len(self.cheap)


def order_json(d: Decision, r: Reservation, signer: Signer | None = None) -> str:
    """The ApprovedOrder's ``data``, HMAC-signed when the signer has keys."""
    good_till = iso(r.expires_at)
    f = d.__dict__  # read once: a model's attribute costs ~5x a dict's item (decision_json)
    take_profit = f["take_profit"]
    return signed_order_json(
        signer or UNSIGNED,
        {
            "intent_id": f["intent_id"],
            "agent_id": f["agent_id"],
            "symbol": f["symbol"],
            "side": r.side._value_,
            "quantity": decimal_text(f["approved_quantity"]),
            "price": decimal_text(r.price),
            "stop_price": None if r.stop_price is None else decimal_text(r.stop_price),
            "take_profit": None if take_profit is None else decimal_text(take_profit),
            "reduce_only": r.reduce_only,
            "status": f["status"]._value_,
            "decided_at": iso(f["decided_at"]),
            "expires_at": good_till,
            "config_hash": f["config_hash"],
            "good_till": good_till,
        },
    )


UNSIGNED = Signer()


class PlanStep:
    """What the planner's steps share: the worker's name and the dead letter."""

    worker: str

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
