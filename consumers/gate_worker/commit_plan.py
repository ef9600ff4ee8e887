"""What one commit writes (:class:`CommitPlan`: decided intents, applied events, dead
letters, state fields, acks, notices) and what the commit answered (:class:`Outcome`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(slots=True)
class DecidedEntry:
    msg_id: bytes
    intent_id: str
    decision: str  # Decision JSON
    order: str  # ApprovedOrder JSON, "" when rejected
    digest: str = ""  # what the intent said (schemas.messages.intent_digest); "" unchecked
    ttl_s: int = 0  # its decided marker's TTL; 0: the committer's (quota rejections: short)


@dataclass(slots=True)
class AppliedEntry:
    msg_id: bytes
    event_id: str


@dataclass(slots=True)
class DeadEntry:
    source: Literal["i", "e"]  # which stream to ack it on: intents or events
    msg_id: bytes
    payload: str  # dead-letter JSON


@dataclass(slots=True)
class CommitPlan:
    expected_version: int
    decided: list[DecidedEntry] = field(default_factory=list)
    applied: list[AppliedEntry] = field(default_factory=list)
    dead: list[DeadEntry] = field(default_factory=list)
    hset: dict[str, str] = field(default_factory=dict)
    hdel: list[str] = field(default_factory=list)
    ack_intents: list[bytes] = field(default_factory=list)  # acked with no output
    ack_events: list[bytes] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)  # reuse notices (Decision JSON)

    def empty(self) -> bool:
        return not (
            self.decided
            or self.applied
            or self.dead
            or self.notices
            or self.hset
            or self.hdel
            or self.ack_intents
            or self.ack_events
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: Literal["ok", "conflict", "duplicate"]
    version: int
    duplicate_intents: tuple[str, ...] = ()
    duplicate_events: tuple[str, ...] = ()
    reused: tuple[tuple[str, str], ...] = ()  # (intent_id, stream id of its decision)
    # ok: markers found that recorded a version the state never reached (their commit
    # did not write its state): not proof, so decided/applied again and overwritten
    unproven_intents: tuple[str, ...] = ()
    unproven_events: tuple[str, ...] = ()
