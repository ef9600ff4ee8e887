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
        client.fill(delivery.order.intent_id, ...)  # what filled; expired(...) if none
    delivery.ack()
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import structlog
from redis import Redis

from consumers.keys import DATA, Keys
from consumers.runtime import connect
from consumers.signing import (
    AgentSigner,
    OrderSignatureError,
    Signer,
    agent_signer,
    operator_signer,
    order_signer,
    verified_order,
)
from consumers.streams import ensure_group, read_group
from schemas.messages import (
    ApprovedOrder,
    CancelRequest,
    Decision,
    MessageError,
    TradeIntent,
    parse_json,
)

Number = Decimal | int | str
log = structlog.get_logger("riskgate.client")


def _json(model_data: Mapping[str, Any]) -> str:
    return json.dumps(model_data, separators=(",", ":"), default=str)


@dataclass(frozen=True, slots=True)
class OrderDelivery:
    """One entry of the orders stream for an executor; ack() once you have handled it.

    ``action`` "place": ``order`` is an approved order to place, with a venue time in
    force no later than its ``good_till``. ``action`` "cancel": ``cancel`` asks you to
    cancel the open order for ``intent_id`` (the kill switch); confirm with
    :meth:`GateClient.cancel` (or report the fills that came first).
    """

    order: ApprovedOrder | None
    msg_id: bytes
    _ack: Callable[[], None]
    cancel: CancelRequest | None = None

    @property
    def action(self) -> str:
        return "cancel" if self.cancel is not None else "place"

    @property
    def intent_id(self) -> str:
        if self.cancel is not None:
            return self.cancel.intent_id
        assert self.order is not None
        return self.order.intent_id

    def ack(self) -> None:
        self._ack()


#: the ``handed`` marker of an intent whose cancel request arrived
CANCELLED = b"cancelled"
#: how long the SDK remembers which entry it handed out for an intent (and cancels)
HANDED_TTL_S = 7 * 86400


class GateClient:
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

    # -- agents --------------------------------------------------------------------------

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
        """Validate and publish one trade intent; returns its intent_id."""
        intent = TradeIntent.model_validate(
            {
                "intent_id": intent_id or f"{agent_id}-{uuid.uuid4().hex}"[:128],
                "agent_id": agent_id,
                "symbol": symbol,
                "side": side,
                "quantity": Decimal(str(quantity)),
                "price": Decimal(str(price)),
                "stop_price": None if stop_price is None else Decimal(str(stop_price)),
                "take_profit": None if take_profit is None else Decimal(str(take_profit)),
                "reduce_only": reduce_only,
                "created_at": created_at or datetime.now(UTC),
            }
        )
        if self.agent.enabled:
            body = self.agent.sign(intent.model_dump(mode="json", exclude_none=True))
            data = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
        else:
            data = intent.model_dump_json(exclude_none=True)
        self.redis.xadd(self.keys.intents, {DATA: data})
        return intent.intent_id

    def decision(self, intent_id: str) -> Decision | None:
        """The decision for ``intent_id`` if there is one yet: always the first, effective
        one (the marker names it), never a later ``intent_id_reused`` notice."""
        mark = self.redis.get(self.keys.decided(intent_id))
        if mark is None:
            return None
        text = mark.decode() if isinstance(mark, bytes) else str(mark)
        ref = text.split(" ", 1)[0]  # "<stream id> <digest>", or a bare id (older markers)
        rows = self.redis.xrange(self.keys.decisions, ref, ref)
        fields = rows[0][1] if rows else None
        if not fields:  # trimmed by retention: the marker outlives the stream entry
            return None
        return Decision.model_validate(parse_json(fields[DATA]))

    def wait_decision(self, intent_id: str, timeout: float = 10.0) -> Decision | None:
        """Poll until the decision exists or ``timeout`` seconds pass (then None)."""
        deadline = time.monotonic() + timeout
        delay = 0.002
        while True:
            found = self.decision(intent_id)
            if found is not None or time.monotonic() >= deadline:
                return found
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 0.1)

    # -- executors -----------------------------------------------------------------------

    def orders(
        self,
        group: str,
        consumer: str,
        *,
        start: str = "$",
        count: int = 100,
        block_ms: int = 1000,
        stop: Callable[[], bool] = lambda: False,
    ) -> Iterator[OrderDelivery]:
        """Orders and cancel requests for this executor group: first its unacked
        entries, then new ones. A new group starts at ``start`` ("$": from now on).

        Never hands out an order past its ``good_till`` (on Redis's clock): it is acked
        and reported to the gate as ``expired``, which releases its reservation. Never
        hands out a second entry for an intent this group already had (a re-published
        order after a failover). A cancel request for an order this group was never
        handed (not yet published) is confirmed here, not delivered, and that order is
        withheld if it still comes.
        """
        stream = self.keys.orders
        ensure_group(self.redis, stream, group, start=start)
        pending, cursor = True, "0"  # own unacked entries first, each once
        while not stop():
            entries = read_group(
                self.redis,
                group,
                consumer,
                (stream,),
                count=count,
                block_ms=block_ms,
                pending=pending,
                after=cursor,
            )
            if pending and not entries:
                pending = False
                continue
            for e in entries:
                if pending:
                    cursor = e.msg_id.decode()
                if e.raw is None:  # trimmed while pending: nothing left to execute
                    self.redis.xack(stream, group, e.msg_id)
                    continue
                try:
                    fields = verified_order(self.signer, e.raw)
                except (OrderSignatureError, MessageError) as exc:
                    # never executed, and acked so it cannot wedge the pending-first loop
                    log.error("order refused", msg_id=e.msg_id.decode(), reason=str(exc))
                    self.redis.xack(stream, group, e.msg_id)
                    continue
                ack = self._acker(stream, group, e.msg_id)
                if fields.get("action") == "cancel":
                    request = CancelRequest.model_validate(fields)
                    iid = request.intent_id
                    marker = self.keys.handed(group, iid)
                    if self.redis.set(marker, CANCELLED, nx=True, ex=HANDED_TTL_S):
                        # no consumer of this group was ever handed the order (it is
                        # not published yet): nothing to cancel at a venue; confirmed
                        # here, and the order is withheld should it still arrive
                        log.warning("cancel before its order arrived: confirmed", intent_id=iid)
                        self.cancel(iid)
                        ack()
                        continue
                    yield OrderDelivery(None, e.msg_id, ack, cancel=request)
                    continue
                order = ApprovedOrder.model_validate(fields)
                if self._withheld(order, group, e.msg_id):
                    ack()
                    continue
                yield OrderDelivery(order, e.msg_id, ack)

    def _withheld(self, order: ApprovedOrder, group: str, msg_id: bytes) -> bool:
        """Whether ``order`` must not reach the executor (and what the gate is told)."""
        seconds, micros = self.redis.time()
        now = datetime.fromtimestamp(int(seconds) + int(micros) / 1e6, UTC)
        iid = order.intent_id
        if order.deadline <= now:
            log.warning("order past good_till: not placed, reported expired", intent_id=iid)
            self.expired(iid)
            return True
        marker = self.keys.handed(group, iid)
        if self.redis.set(marker, msg_id, nx=True, ex=HANDED_TTL_S):
            return False
        handed = self.redis.get(marker)
        if handed == msg_id:  # our own entry again (unacked before a restart)
            return False
        if handed == CANCELLED:  # its cancel came first (and was confirmed then)
            log.warning("order cancelled before it arrived: not placed", intent_id=iid)
            return True
        log.warning("order already handed out for this intent: skipped", intent_id=iid)
        return True

    def _acker(self, stream: str, group: str, msg_id: bytes) -> Callable[[], None]:
        def ack() -> None:
            self.redis.xack(stream, group, msg_id)

        return ack

    def _event(self, payload: dict[str, Any], *, operator: bool = False) -> str:
        payload.setdefault("event_id", f"{payload['type']}-{uuid.uuid4().hex}")
        if operator:
            payload = self.operators.sign(payload)
        self.redis.xadd(self.keys.events, {DATA: _json(payload)})
        return str(payload["event_id"])

    def fill(
        self,
        intent_id: str,
        symbol: str,
        side: str,
        quantity: Number,
        price: Number,
        *,
        event_id: str | None = None,
        at: datetime | None = None,
        fee: Number | None = None,
    ) -> str:
        payload: dict[str, Any] = {
            "type": "fill",
            "intent_id": intent_id,
            "symbol": symbol,
            "side": side,
            "quantity": str(quantity),
            "price": str(price),
            "at": (at or datetime.now(UTC)).isoformat(),
        }
        if fee is not None:
            payload["fee"] = str(fee)
        if event_id:
            payload["event_id"] = event_id
        return self._event(payload)

    def cancel(self, intent_id: str, *, event_id: str | None = None) -> str:
        payload: dict[str, Any] = {"type": "cancel", "intent_id": intent_id}
        if event_id:
            payload["event_id"] = event_id
        return self._event(payload)

    def expired(self, intent_id: str, *, event_id: str | None = None) -> str:
        """Confirm the order for ``intent_id`` ended unfilled at its ``good_till`` (or
        was never placed): what was not filled of it is released."""
        payload: dict[str, Any] = {
            "type": "expired",
            "intent_id": intent_id,
            "event_id": event_id or f"expired:{intent_id}",
            "at": datetime.now(UTC).isoformat(),
        }
        return self._event(payload)

    def release(
        self, intent_id: str, operator: str, reason: str, *, event_id: str | None = None
    ) -> str:
        """An operator releases the reservation of ``intent_id`` (an operator event):
        for an order known to be dead that no executor will confirm."""
        payload: dict[str, Any] = {
            "type": "release",
            "intent_id": intent_id,
            "operator": operator,
            "reason": reason,
            "event_id": event_id or f"release:{intent_id}",
            "at": datetime.now(UTC).isoformat(),
        }
        return self._event(payload, operator=True)

    def deposit(self, amount: Number, *, event_id: str | None = None) -> str:
        """Pay in (``amount`` > 0) or withdraw (< 0): an operator event, signed with the
        operator key when one is configured."""
        payload: dict[str, Any] = {"type": "deposit", "amount": str(amount)}
        if event_id:
            payload["event_id"] = event_id
        return self._event(payload, operator=True)

    def resume(self, operator: str, reason: str, *, event_id: str | None = None) -> str:
        """Clear the latched emergency and daily-loss stops (an operator event)."""
        payload: dict[str, Any] = {"type": "resume", "operator": operator, "reason": reason}
        if event_id:
            payload["event_id"] = event_id
        return self._event(payload, operator=True)

    def mark(
        self,
        prices: Mapping[str, Number],
        *,
        at: datetime | None = None,
        fx: Mapping[str, Number] | None = None,
        event_id: str | None = None,
    ) -> str:
        payload: dict[str, Any] = {
            "type": "mark",
            "prices": {s: str(p) for s, p in prices.items()},
            "at": (at or datetime.now(UTC)).isoformat(),
        }
        if fx:
            payload["fx"] = {c: str(r) for c, r in fx.items()}
        if event_id:
            payload["event_id"] = event_id
        return self._event(payload)
