"""Every stream, group and key name riskgate uses, in one place.

Per portfolio ``P`` all keys share the prefix ``<prefix>:{P}:`` (default prefix
``riskgate``). The braces are a Redis Cluster hash tag: one portfolio's keys live in
one slot, so one Lua script can touch all of them.

Streams and groups are the wire protocol (DESIGN.md section 3); the rest
(``state``, ``control``, markers, correlations, the gate's ``lease``, the portfolio
registry) is internal and may change.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

DEFAULT_PREFIX = "riskgate"
DEFAULT_PORTFOLIO = "main"
PORTFOLIO_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

GROUP_GATE = "gate"
GROUP_AUDIT = "audit"
GROUP_PHASE = "phase"

DATA = b"data"  # the one field of every stream entry

# fields of the state hash
F_VERSION = "version"
F_ACCOUNT = "account"
P_POSITION = "pos:"
P_RESERVATION = "res:"
P_RATE = "rate:"
P_MARK = "mark:"  # latest trusted mark of a symbol: "price|iso time"
P_APPROVAL = "dup:"  # + JSON [agent, symbol]: its approvals in the duplicate window

# fields of the control hash
F_HALTED = "halted"
P_ASSET_ENABLED = "asset:"
P_CLASS_ENABLED = "class:"
P_EARNINGS = "earnings:"
P_REGIME = "regime:"


def source_requests_key(prefix: str, source: str) -> str:
    """Sorted set: a data source's requests in its rate-limit window (the feed's shared
    limiter, consumers/market/limiter.py). Not per portfolio: one API key, one budget,
    shared by every process on this Redis; the source name is the hash tag."""
    return f"{prefix}:source:{{{source}}}:requests"


@dataclass(frozen=True, slots=True)
class Keys:
    portfolio: str = DEFAULT_PORTFOLIO
    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        if not PORTFOLIO_PATTERN.match(self.portfolio):
            raise ValueError(
                f"portfolio name {self.portfolio!r} must be 1-64 chars of A-Za-z0-9_.-"
            )
        if not self.prefix or any(c in self.prefix for c in "{}: \t\n"):
            raise ValueError(
                f"key prefix {self.prefix!r} must be non-empty, without {{}}: or spaces"
            )

    @classmethod
    def from_env(cls, portfolio: str | None = None) -> Keys:
        return cls(
            portfolio or os.environ.get("RISKGATE_PORTFOLIO", DEFAULT_PORTFOLIO),
            os.environ.get("RISKGATE_PREFIX", DEFAULT_PREFIX),
        )

    @property
    def base(self) -> str:
        return f"{self.prefix}:{{{self.portfolio}}}:"

    @property
    def registry(self) -> str:
        """Set: the registered portfolios (:func:`registry_key` of this prefix)."""
        return registry_key(self.prefix)

    # -- streams (protocol) ------------------------------------------------------------
    @property
    def intents(self) -> str:
        return self.base + "intents"

    @property
    def decisions(self) -> str:
        return self.base + "decisions"

    @property
    def orders(self) -> str:
        return self.base + "orders"

    @property
    def events(self) -> str:
        return self.base + "events"

    @property
    def phases(self) -> str:
        return self.base + "phases"

    @property
    def deadletter(self) -> str:
        return self.base + "deadletter"

    # -- internal keys -----------------------------------------------------------------
    @property
    def state(self) -> str:
        """Hash: version, account, pos:<symbol>, res:<intent_id>, rate:<agent>, mark:<symbol>."""
        return self.base + "state"

    @property
    def changes(self) -> str:
        """Stream: the state's change log, one entry per version bump: ``v`` (the version
        made, on a commit's entries) and ``f`` (a JSON array of the state fields it set or
        deleted); a reload reads what changed since its version (consumers/state/changelog.py)."""
        return self.base + "changes"

    @property
    def control(self) -> str:
        """Hash: halted, asset:<symbol>, class:<class>, earnings:<symbol>, regime:<symbol>."""
        return self.base + "control"

    @property
    def correlations(self) -> str:
        """String: JSON {as_of, pairs: {"A|B": "0.81"}} written by the correlation job."""
        return self.base + "correlations"

    @property
    def outbox(self) -> str:
        """Stream: a durable gate's decisions and orders until replicas hold them
        (``--replicas``/``--aof``; consumers/state/outbox.py); fields ``to`` (d|o), ``data``,
        ``iid`` (a decision's intent id, "" for notices and orders)."""
        return self.base + "outbox"

    @property
    def outbox_sync(self) -> str:
        """String: written just before ``WAIT``, so the wait covers every earlier write."""
        return self.base + "outbox-sync"

    @property
    def lease(self) -> str:
        """String with a PX TTL: which gate process decides this portfolio now
        (JSON ``{owner, since, token}``; consumers/bus/lease.py)."""
        return self.base + "lease"

    def decided(self, intent_id: str) -> str:
        """String: the decision's stream id, once the intent is decided (with a TTL)."""
        return self.base + "decided:" + intent_id

    def handed(self, group: str, intent_id: str) -> str:
        """Which orders-stream entry the SDK handed an executor group for an intent
        (``cancelled`` once a cancel request for it arrived): executors dedupe by it."""
        return self.base + "handed:" + group + ":" + intent_id

    def applied(self, event_id: str) -> str:
        """String: set once the portfolio event is applied (with a TTL)."""
        return self.base + "applied:" + event_id

    def streams(self) -> tuple[str, ...]:
        return (
            self.intents,
            self.decisions,
            self.orders,
            self.events,
            self.phases,
            self.deadletter,
        )


def registry_key(prefix: str = DEFAULT_PREFIX) -> str:
    """Set of portfolio names: what ``riskgate gate --all-portfolios`` (and the audit
    writer and phase monitor) serve. One key outside every portfolio's hash tag, read
    with one command (SMEMBERS), so it works on a Redis Cluster too."""
    return f"{prefix}:portfolios"
