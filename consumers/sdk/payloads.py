"""What the SDK sends, built and checked without I/O, for the client and its asyncio twin
alike: an intent's ``data`` and each portfolio event with its derived event id. A value
that cannot be sent raises :class:`InvalidField`, naming the field, the value and what
was expected, before anything reaches Redis.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, ValidationError

from consumers.bus.agent_signing import AgentSigner
from consumers.sdk.event_ids import (
    _intent_part,
    _stamp,
    cancel_event_id,
    derived_event_id,
    fill_event_id,
    mark_event_id,
    token,
)
from schemas.messages import (
    Cancel,
    Deposit,
    Expired,
    Fill,
    Mark,
    Release,
    Resume,
    TradeIntent,
    decimal_text,
)

Number = Decimal | int | str
#: the JSON of one event, and its event id
Event = tuple[dict[str, Any], str]


class InvalidField(ValueError):
    """A value the SDK will not send: ``field``, ``value`` and ``problem`` name it."""

    def __init__(self, field: str, value: object, problem: str) -> None:
        self.field, self.value, self.problem = field, value, problem
        super().__init__(f"{field}={value!r}: {problem}")


def number(field: str, value: object) -> Decimal:
    """``value`` (Decimal, int or decimal string) as a Decimal, else InvalidField."""
    if isinstance(value, bool):
        raise InvalidField(field, value, "expected a decimal number, not a bool")
    try:
        found = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise InvalidField(
            field, value, "not a number (expected a Decimal, an int or a string like '100.5')"
        ) from None
    if not found.is_finite():
        raise InvalidField(field, value, "must be a finite number")
    return found


def optional_number(field: str, value: object) -> Decimal | None:
    return None if value is None else number(field, value)


def checked(model: type[BaseModel], payload: Mapping[str, Any]) -> None:
    """Validate ``payload`` with the model the gate parses it with."""
    try:
        model.model_validate(dict(payload))
    except ValidationError as exc:
        raise invalid(exc, payload) from None


def invalid(exc: ValidationError, payload: Mapping[str, Any]) -> InvalidField:
    """The first problem pydantic found, as an InvalidField naming the field and the
    value as the caller gave it."""
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "message"
    value: Any = payload
    for part in first["loc"]:
        if not isinstance(value, Mapping) or part not in value:
            value = first.get("input")
            break
        value = value[part]
    return InvalidField(field, value, first["msg"])


def intent_data(
    signer: AgentSigner,
    symbol: str,
    side: str,
    quantity: Number,
    *,
    price: Number,
    stop_price: Number | None,
    take_profit: Number | None,
    reduce_only: bool,
    agent_id: str,
    intent_id: str | None,
    created_at: datetime | None,
) -> tuple[str, str]:
    """``(intent_id, data)``: the intent validated, signed when the agent has a key."""
    fields = {
        "intent_id": intent_id or f"{agent_id}-{uuid.uuid4().hex}"[:128],
        "agent_id": agent_id,
        "symbol": symbol,
        "side": side,
        "quantity": number("quantity", quantity),
        "price": number("price", price),
        "stop_price": optional_number("stop_price", stop_price),
        "take_profit": optional_number("take_profit", take_profit),
        "reduce_only": reduce_only,
        "created_at": created_at or datetime.now(UTC),
    }
    try:
        intent = TradeIntent.model_validate(fields)
    except ValidationError as exc:
        given = {"quantity": quantity, "price": price, "stop_price": stop_price}
        raise invalid(exc, {**fields, **given, "take_profit": take_profit}) from None
    if signer.enabled:
        body = signer.sign(intent.model_dump(mode="json", exclude_none=True))
        return intent.intent_id, json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    return intent.intent_id, intent.model_dump_json(exclude_none=True)


def fill_event(
    intent_id: str,
    symbol: str,
    side: str,
    quantity: Number,
    price: Number,
    *,
    fill_id: str | int | None,
    event_id: str | None,
    at: datetime | None,
    fee: Number | None,
) -> Event:
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
        "quantity": decimal_text(number("quantity", quantity)),
        "price": decimal_text(number("price", price)),
        "at": _stamp(at),
    }
    if fee is not None:
        payload["fee"] = decimal_text(number("fee", fee))
    return _valid(Fill, payload, event_id)


def cancel_event(intent_id: str, *, event_id: str | None, at: datetime | None) -> Event:
    payload = {"type": "cancel", "intent_id": intent_id, "at": _stamp(at)}
    return _valid(Cancel, payload, event_id or cancel_event_id(intent_id))


def expired_event(intent_id: str, *, event_id: str | None, at: datetime | None) -> Event:
    payload = {"type": "expired", "intent_id": intent_id, "at": _stamp(at)}
    eid = event_id or derived_event_id("expired", _intent_part(intent_id))
    return _valid(Expired, payload, eid)


def release_event(intent_id: str, operator: str, reason: str, *, event_id: str | None) -> Event:
    payload = {
        "type": "release",
        "intent_id": intent_id,
        "operator": operator,
        "reason": reason,
        "at": _stamp(None),
    }
    eid = event_id or derived_event_id("release", _intent_part(intent_id))
    return _valid(Release, payload, eid)


def deposit_event(
    amount: Number, *, reference: str | None, event_id: str | None, at: datetime | None
) -> Event:
    if event_id is None:
        if reference is None:
            raise ValueError(
                "reference is required: the transfer's id, so a retried deposit is "
                "applied once (or pass event_id=)"
            )
        event_id = derived_event_id("deposit", token("reference", reference))
    payload = {
        "type": "deposit",
        "amount": decimal_text(number("amount", amount)),
        "at": _stamp(at),
    }
    return _valid(Deposit, payload, event_id)


def resume_event(
    operator: str, reason: str, *, reference: str | None, event_id: str | None, at: datetime | None
) -> Event:
    if event_id is None:
        if reference is None:
            raise ValueError(
                "reference is required: what this resume clears (resume_reference() "
                "of the latches), so a retried resume is applied once (or pass event_id=)"
            )
        event_id = derived_event_id("resume", token("reference", reference))
    payload = {"type": "resume", "operator": operator, "reason": reason, "at": _stamp(at)}
    return _valid(Resume, payload, event_id)


def mark_event(
    prices: Mapping[str, Number],
    *,
    at: datetime | None,
    fx: Mapping[str, Number] | None,
    event_id: str | None,
) -> Event:
    when = _stamp(at)
    payload: dict[str, Any] = {
        "type": "mark",
        "prices": {s: decimal_text(number(f"prices.{s}", p)) for s, p in prices.items()},
        "at": when,
    }
    if fx:
        payload["fx"] = {c: decimal_text(number(f"fx.{c}", r)) for c, r in fx.items()}
    if event_id is None:
        event_id = mark_event_id(when, payload["prices"], payload.get("fx", {}))
    return _valid(Mark, payload, event_id)


def _valid(model: type[BaseModel], payload: dict[str, Any], event_id: str) -> Event:
    event_id = token("event_id", event_id)
    payload = {"type": payload["type"], **payload, "event_id": event_id}
    checked(model, payload)
    return payload, event_id
