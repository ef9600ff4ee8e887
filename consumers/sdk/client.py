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
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import structlog
from redis import Redis

from consumers.bus.agent_signing import AgentSigner, agent_signer
from consumers.bus.keys import DATA, Keys
from consumers.bus.runtime import connect
from consumers.bus.signing import (
    OrderSignatureError,
    Signer,
    operator_signer,
    order_signer,
    verified_order,
)
from consumers.bus.streams import ensure_group, read_group
from schemas.messages import (
    ApprovedOrder,
    CancelRequest,
    Decision,
    MessageError,
    TradeIntent,
    is_intent_id,
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
#: intents one client remembers handing out, in memory as well as in Redis: a failover
#: can lose the ``handed`` marker together with the move that published the order, and
#: the new primary then publishes it again (consumers/state/outbox.py)
HANDED_IN_MEMORY = 100_000


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
        self._handed: OrderedDict[tuple[str, str], bytes] = OrderedDict()

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
        """Whether ``order`` must not reach the executor (and what the gate is told).
        Redis's clock is read per order, not per read: the executor works between
        deliveries, so a time read for the batch would go stale."""
        seconds, micros = self.redis.time()
        now = datetime.fromtimestamp(int(seconds) + int(micros) / 1e6, UTC)
        iid = order.intent_id
        if order.deadline <= now:
            log.warning("order past good_till: not placed, reported expired", intent_id=iid)
            self.expired(iid)
            return True
        if (group, iid) in self._handed:
            # this client handed it out already: never twice, whether it comes as
            # another entry (re-published after a failover) or as this one again (an
            # ack that failed or that a failover lost): the executor may have placed
            # it. Only a restarted executor, a new client, gets its unacked entries
            # again. An executor whose handler fails retries that delivery itself.
            log.warning("order already handed out for this intent: skipped", intent_id=iid)
            return True
        marker = self.keys.handed(group, iid)
        if self.redis.set(marker, msg_id, nx=True, ex=HANDED_TTL_S):
            self._remember(group, iid, msg_id)
            return False
        handed = self.redis.get(marker)
        if handed == msg_id:  # our own entry again (unacked before a restart)
            self._remember(group, iid, msg_id)
            return False
        if handed == CANCELLED:  # its cancel came first (and was confirmed then)
            log.warning("order cancelled before it arrived: not placed", intent_id=iid)
            return True
        log.warning("order already handed out for this intent: skipped", intent_id=iid)
        return True

    def _remember(self, group: str, intent_id: str, msg_id: bytes) -> None:
        self._handed[(group, intent_id)] = msg_id
        self._handed.move_to_end((group, intent_id))
        while len(self._handed) > HANDED_IN_MEMORY:
            self._handed.popitem(last=False)

    def _acker(self, stream: str, group: str, msg_id: bytes) -> Callable[[], None]:
        def ack() -> None:
            self.redis.xack(stream, group, msg_id)

        return ack

    def _event(
        self, payload: dict[str, Any], event_id: str | None = None, *, operator: bool = False
    ) -> str:
        """Publish one event under ``event_id`` (else ``payload["event_id"]``): always one
        the caller derived or was given, never a random one (a retry must repeat it)."""
        event_id = token("event_id", event_id or payload.get("event_id"))
        payload = {"type": payload["type"], **payload, "event_id": event_id}
        if operator:
            payload = self.operators.sign(payload)
        self.redis.xadd(self.keys.events, {DATA: _json(payload)})
        return event_id

    def fill(
        self,
        intent_id: str,
        symbol: str,
        side: str,
        quantity: Number,
        price: Number,
        *,
        fill_id: str | int | None = None,
        event_id: str | None = None,
        at: datetime | None = None,
        fee: Number | None = None,
    ) -> str:
        """Report one (partial) fill of ``intent_id``'s order; returns its event id.

        ``fill_id`` is the venue's own id of this execution (a trade or execution id):
        the event id is ``fill:<intent_id>:<fill_id>``, so reporting the same execution
        again (a retried call, a restarted executor) is applied once. Required unless
        ``event_id`` is given.
        """
        if event_id is None:
            if fill_id is None:
                raise ValueError(
                    "fill_id is required: the venue's id of this execution, so a retried "
                    "report is applied once (or pass event_id=)"
                )
            event_id = fill_event_id(intent_id, fill_id)
        payload: dict[str, Any] = {
            "type": "fill",
            "intent_id": intent_id,
            "symbol": symbol,
            "side": side,
            "quantity": str(quantity),
            "price": str(price),
            "at": _stamp(at),
        }
        if fee is not None:
            payload["fee"] = str(fee)
        return self._event(payload, event_id)

    def cancel(
        self, intent_id: str, *, event_id: str | None = None, at: datetime | None = None
    ) -> str:
        """Release what is left of ``intent_id``'s reservation: event id ``cancel:<intent_id>``
        (an order is cancelled once)."""
        payload: dict[str, Any] = {"type": "cancel", "intent_id": intent_id, "at": _stamp(at)}
        return self._event(payload, event_id or cancel_event_id(intent_id))

    def expired(
        self, intent_id: str, *, event_id: str | None = None, at: datetime | None = None
    ) -> str:
        """Confirm the order for ``intent_id`` ended unfilled at its ``good_till`` (or
        was never placed): what was not filled of it is released. Event id
        ``expired:<intent_id>``."""
        payload: dict[str, Any] = {
            "type": "expired",
            "intent_id": intent_id,
            "at": _stamp(at),
        }
        return self._event(
            payload, event_id or derived_event_id("expired", _intent_part(intent_id))
        )

    def release(
        self, intent_id: str, operator: str, reason: str, *, event_id: str | None = None
    ) -> str:
        """An operator releases the reservation of ``intent_id`` (an operator event):
        for an order known to be dead that no executor will confirm. Event id
        ``release:<intent_id>`` (a reservation is released once)."""
        payload: dict[str, Any] = {
            "type": "release",
            "intent_id": intent_id,
            "operator": operator,
            "reason": reason,
            "at": _stamp(None),
        }
        return self._event(
            payload,
            event_id or derived_event_id("release", _intent_part(intent_id)),
            operator=True,
        )

    def deposit(
        self,
        amount: Number,
        *,
        reference: str | None = None,
        event_id: str | None = None,
        at: datetime | None = None,
    ) -> str:
        """Pay in (``amount`` > 0) or withdraw (< 0): an operator event, signed with the
        operator key when one is configured.

        ``reference`` names this movement of money (a transfer id, a ticket): the event
        id is ``deposit:<reference>``, so the same deposit sent twice is applied once.
        Required unless ``event_id`` is given; one reference, one deposit.
        """
        if event_id is None:
            if reference is None:
                raise ValueError(
                    "reference is required: the transfer's id, so a retried deposit is "
                    "applied once (or pass event_id=)"
                )
            event_id = derived_event_id("deposit", token("reference", reference))
        payload: dict[str, Any] = {"type": "deposit", "amount": str(amount), "at": _stamp(at)}
        return self._event(payload, event_id, operator=True)

    def resume(
        self,
        operator: str,
        reason: str,
        *,
        reference: str | None = None,
        event_id: str | None = None,
        at: datetime | None = None,
    ) -> str:
        """Clear the latched emergency and daily-loss stops and an unknown-fill halt (an
        operator event).

        ``reference`` names what this resume clears: the event id is
        ``resume:<reference>``, so a retried resume is applied once and can never clear
        a stop that latched after it. ``riskgate resume`` uses a digest of the latches it
        read (:func:`resume_reference`). Required unless ``event_id`` is given.
        """
        if event_id is None:
            if reference is None:
                raise ValueError(
                    "reference is required: what this resume clears (resume_reference() "
                    "of the latches), so a retried resume is applied once (or pass event_id=)"
                )
            event_id = derived_event_id("resume", token("reference", reference))
        payload: dict[str, Any] = {
            "type": "resume",
            "operator": operator,
            "reason": reason,
            "at": _stamp(at),
        }
        return self._event(payload, event_id, operator=True)

    def mark(
        self,
        prices: Mapping[str, Number],
        *,
        at: datetime | None = None,
        fx: Mapping[str, Number] | None = None,
        event_id: str | None = None,
    ) -> str:
        """Mark prices (and fx rates) at ``at`` (default now): event id
        ``mark:<at>:<digest of prices and fx>``, so the same observation is applied once."""
        when = _stamp(at)
        payload: dict[str, Any] = {
            "type": "mark",
            "prices": {s: str(p) for s, p in prices.items()},
            "at": when,
        }
        if fx:
            payload["fx"] = {c: str(r) for c, r in fx.items()}
        if event_id is None:
            event_id = mark_event_id(when, payload["prices"], payload.get("fx", {}))
        return self._event(payload, event_id)


# -- event ids (docs/PROTOCOL.md, "Event ids") ------------------------------------------

#: The longest event id the gate accepts (schemas.messages.EventId).
MAX_EVENT_ID = 128
_TOKEN = re.compile(r"[^\x00-\x1f\x7f\s]+")
_FILL_ID = re.compile(r"[^\x00-\x1f\x7f\s:]+")


def _stamp(at: datetime | None) -> str:
    """An event's ``at`` on the wire: UTC ISO-8601 (a naive time is taken as UTC)."""
    when = at or datetime.now(UTC)
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return when.isoformat()


def token(name: str, value: object, *, colon: bool = True) -> str:
    """``value`` as a part of an event id: 1–128 printable characters without spaces (and
    without ``:`` when ``colon`` is false); else ValueError naming ``name``."""
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not text:
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    pattern = _TOKEN if colon else _FILL_ID
    if len(text) > MAX_EVENT_ID or pattern.fullmatch(text) is None:
        allowed = "no spaces or control characters" + ("" if colon else ", no ':'")
        raise ValueError(f"{name} must be 1-{MAX_EVENT_ID} characters, {allowed}: {text!r}")
    return text


def derived_event_id(kind: str, *parts: str) -> str:
    """``<kind>:<part>:<part>...``; past 128 characters, ``<kind>:#`` and 40 hex chars of
    the sha256 of that text (the same parts give the same id either way)."""
    text = ":".join((kind, *parts))
    if len(text) <= MAX_EVENT_ID:
        return text
    return f"{kind}:#{hashlib.sha256(text.encode()).hexdigest()[:40]}"


def _intent_part(intent_id: str) -> str:
    if not is_intent_id(intent_id):
        raise ValueError(f"intent_id must be 1-128 chars of A-Za-z0-9._:-, got {intent_id!r}")
    return intent_id


def fill_event_id(intent_id: str, fill_id: str | int) -> str:
    """``fill:<intent_id>:<fill_id>``: ``fill_id`` may not contain ``:``, so the id splits
    unambiguously at its last colon (intent ids may contain colons)."""
    return derived_event_id("fill", _intent_part(intent_id), token("fill_id", fill_id, colon=False))


def cancel_event_id(intent_id: str) -> str:
    return derived_event_id("cancel", _intent_part(intent_id))


def mark_event_id(at: str, prices: Mapping[str, str], fx: Mapping[str, str]) -> str:
    """``mark:<at>:<16 hex chars>``: the digest of the prices and fx rates, decimals
    normalized, so two marks at the same time with different prices differ."""
    body = {
        "prices": {s: _normal(p) for s, p in sorted(prices.items())},
        "fx": {c: _normal(r) for c, r in sorted(fx.items())},
    }
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=True)
    return derived_event_id("mark", at, hashlib.sha256(text.encode()).hexdigest()[:16])


def _normal(value: str) -> str:
    try:
        return format(Decimal(value).normalize(), "f")
    except (ArithmeticError, ValueError):
        return value  # not a number: the gate refuses the mark; the id is still stable


def resume_reference(latches: Iterable[str]) -> str:
    """A resume's reference from what it clears (each latch's kind and time, a halt's
    event id): ``latches-`` and 24 hex chars of their sha256, in sorted order."""
    text = "\n".join(sorted(latches))
    return "latches-" + hashlib.sha256(text.encode()).hexdigest()[:24]
