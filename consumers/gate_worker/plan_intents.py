"""The Planner's intents half: intents dated outside the dedupe window refused without
a decision; intents not signed by their agent's key rejected ``unauthenticated``;
intents past their agent's quota rejected compact (``rate_limited``, before
enrichment); reused ids and unreadable intents answered. Deciding the rest is the
Planner's own step (``batch.py``)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime, timedelta

from consumers.bus.agent_signing import IntentVerifier
from consumers.bus.signing import Signer
from consumers.bus.streams import Entry
from consumers.gate_worker.commit_plan import DecidedEntry
from consumers.gate_worker.planned import Planned, PlanStep
from consumers.gate_worker.rejections import rejection
from consumers.state.codec import iso
from gate.checks import rate_window
from gate.portfolio import Snapshot
from schemas.config import AssetsConfig
from schemas.messages import Decision, ReasonCode, TradeIntent, decimal_text, decision_json


class IntentSteps(PlanStep):
    """The Planner's steps for trade intents (a mixin: the attributes are the planner's)."""

    signer: Signer
    agents: IntentVerifier
    quota: bool
    quota_marker_ttl_s: int
    marker_ttl_s: int
    intent_window: timedelta | None

    def _dated(
        self,
        out: Planned,
        intents: list[tuple[Entry, TradeIntent]],
        now: datetime,
        skew_s: int,
    ) -> tuple[list[tuple[Entry, TradeIntent]], dict[bytes, int]]:
        """The dedupe window (docs/PROTOCOL.md, "The dedupe window"): an intent dated
        ``intent_window`` or more before Redis's clock may have been decided already,
        its marker since expired: a dead letter, never a decision. One dated over the
        skew ahead is decided (``stale_intent``) with a marker that lives until the
        window after its date has passed (the second value: msg id -> marker TTL), or,
        dated more than the dedupe window ahead, dead-lettered too."""
        window = self.intent_window
        if window is None:
            return intents, {}
        kept, ahead_ttl = [], {}
        for entry, intent in intents:
            age = now - intent.created_at
            if age >= window:
                out.expired += 1
                self._dead(out, entry, _expired(intent, age, window), now)
                continue
            ahead = -age.total_seconds()
            if ahead > skew_s:
                ttl = self.marker_ttl_s + math.ceil(ahead)
                if ahead >= self.marker_ttl_s:
                    out.expired += 1
                    self._dead(out, entry, _far_ahead(intent, ahead, self.marker_ttl_s), now)
                    continue
                ahead_ttl[entry.msg_id] = ttl
            kept.append((entry, intent))
        return kept, ahead_ttl

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
                DecidedEntry(entry.msg_id, intent.intent_id, decision_json(decision), "")
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


def _expired(intent: TradeIntent, age: timedelta, window: timedelta) -> str:
    return (
        f"intent {intent.intent_id} is dated {intent.created_at.isoformat()}, "
        f"{int(age.total_seconds())}s before the gate's clock (Redis TIME): older than the "
        f"dedupe window ({int(window.total_seconds())}s), so it may have been decided "
        "already and is not decided again"
    )


def _far_ahead(intent: TradeIntent, ahead: float, marker_ttl_s: int) -> str:
    return (
        f"intent {intent.intent_id} is dated {intent.created_at.isoformat()}, {int(ahead)}s "
        f"ahead of the gate's clock (Redis TIME), more than the dedupe window "
        f"({marker_ttl_s}s): not decided"
    )
