"""The SDK agents and executors use: submit intents, wait for decisions, take orders.

client = GateClient("redis://localhost:6379/0", portfolio="main")
intent_id = client.submit("BTC/USDT", "buy", "0.01", price="100000", agent_id="momo")
decision = client.wait_decision(intent_id, timeout=5)

for delivery in client.orders(group="binance-executor", consumer="exec-1"):
    if delivery.action == "cancel":                 # the kill switch
        cancel_at_venue(delivery.intent_id)
        client.cancel(delivery.intent_id)           # confirmed: the reservation goes
    else:
        place(delivery.order)                       # time in force <= order.good_till
        client.fill(delivery.order.intent_id, ..., fill_id=venue_trade_id)
        # or client.expired(delivery.order.intent_id) if it ends unfilled
    delivery.ack()

Here: the client and the agent's side (submit, decisions). The executor's side is in
``orders.py``, the events it publishes in ``events.py``, their ids in ``event_ids.py``.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from datetime import datetime
from typing import Any

from redis import Redis

from consumers.bus.agent_signing import AgentSigner, agent_signer
from consumers.bus.keys import DATA, Keys
from consumers.bus.runtime import connect
from consumers.bus.signing import Signer, operator_signer, order_signer
from consumers.sdk.decisions import check_timeout, decision_of, decision_ref
from consumers.sdk.event_ids import (
    MAX_EVENT_ID,
    cancel_event_id,
    derived_event_id,
    fill_event_id,
    mark_event_id,
    resume_reference,
    token,
)
from consumers.sdk.events import Number
from consumers.sdk.orders import (
    CANCELLED,
    HANDED_IN_MEMORY,
    HANDED_TTL_S,
    OrderDelivery,
    OrderTaker,
    log,
)
from consumers.sdk.payloads import InvalidField, intent_data
from schemas.messages import Decision

__all__ = [
    "CANCELLED",
    "HANDED_IN_MEMORY",
    "HANDED_TTL_S",
    "MAX_EVENT_ID",
    "GateClient",
    "InvalidField",
    "Number",
    "OrderDelivery",
    "cancel_event_id",
    "derived_event_id",
    "fill_event_id",
    "log",
    "mark_event_id",
    "resume_reference",
    "token",
]


class GateClient(OrderTaker):
    def __init__(
        self,
        redis_url: str | None = None,
        portfolio: str = "main",
        *,
        redis: Redis | None = None,
        prefix: str | None = None,
        signer: Signer | None = None,
        operator_keys: Signer | None = None,
        agent_key: str | AgentSigner | None = None,
    ) -> None:
        self.redis = redis if redis is not None else connect(redis_url)
        self.keys = Keys(portfolio, prefix) if prefix else Keys(portfolio)
        # verifies approved orders (RISKGATE_ORDER_KEYS); without keys, accepts all
        self.signer = signer if signer is not None else order_signer(self.keys)
        # signs deposits and resumes (RISKGATE_OPERATOR_KEYS); without keys, unsigned
        self.operators = operator_keys if operator_keys is not None else operator_signer(self.keys)
        # signs intents: ``agent_key`` ("<key_id>:<base64>", or the gate's
        # "<key_id>:<agent_id>:<base64>" entry), else RISKGATE_AGENT_KEY; none: unsigned
        if isinstance(agent_key, AgentSigner):
            self.agent = agent_key
        else:
            self.agent = agent_signer(self.keys, agent_key)
        self._handed: OrderedDict[tuple[str, str], bytes] = OrderedDict()

    def submit(
        self,
        symbol: str,
        side: str,
        quantity: Number,
        *,
        price: Number,
        stop_price: Number | None = None,
        take_profit: Number | None = None,
        reduce_only: bool = False,
        agent_id: str = "sdk",
        intent_id: str | None = None,
        created_at: datetime | None = None,
    ) -> str:
        """Validate and publish one trade intent; returns its ``intent_id``.

        Decimals are ``Decimal``, ``int`` or decimal strings (never through a float). A
        value the gate would refuse raises :class:`InvalidField` (a ValueError) naming
        the field and the value, before anything is sent; an intent signed with another
        agent's key raises ValueError. The decision comes later: :meth:`decision`,
        :meth:`wait_decision`.
        """
        intent_id, data = intent_data(
            self.agent,
            symbol,
            side,
            quantity,
            price=price,
            stop_price=stop_price,
            take_profit=take_profit,
            reduce_only=reduce_only,
            agent_id=agent_id,
            intent_id=intent_id,
            created_at=created_at,
        )
        self.redis.xadd(self.keys.intents, {DATA: data})
        return intent_id

    def decided(self, intent_id: str) -> bool:
        """Whether ``intent_id`` was decided within the dedupe window (its decided marker
        lives ``RISKGATE_DEDUPE_TTL_S``, 900 s by default), even once its decision entry
        was trimmed: do not send it again under a new ``created_at``."""
        return bool(self.redis.exists(self.keys.decided(intent_id)))

    def decision(self, intent_id: str) -> Decision | None:
        """The decision for ``intent_id`` if there is one yet: always the first, effective
        one (the marker names it), never a later ``intent_id_reused`` notice.

        Readable from Redis while its entry is kept: at least ``RISKGATE_DECISIONS_KEEP_S``
        (60 s) after it was written and until the audit writer has it; then from
        PostgreSQL (``trading_decisions``). None also once trimmed: :meth:`decided` tells
        the two apart."""
        ref = decision_ref(self.redis.get(self.keys.decided(intent_id)))
        if ref is None:
            return None
        return decision_of(self.redis.xrange(self.keys.decisions, ref, ref))

    def wait_decision(self, intent_id: str, timeout: float = 10.0) -> Decision | None:
        """Poll until the decision exists or ``timeout`` seconds pass (then None)."""
        deadline = time.monotonic() + check_timeout(timeout)
        delay = 0.002
        while True:
            found = self.decision(intent_id)
            if found is not None or time.monotonic() >= deadline:
                return found
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 0.1)

    def submit_and_wait(
        self, symbol: str, side: str, quantity: Number, *, timeout: float = 10.0, **intent: Any
    ) -> Decision | None:
        """:meth:`submit`, then :meth:`wait_decision` (None when none came in ``timeout``)."""
        check_timeout(timeout)
        return self.wait_decision(self.submit(symbol, side, quantity, **intent), timeout)
