"""What executors and operators publish on the events stream through the SDK: fills,
cancels, expiries, releases, deposits, resumes and marks, each under an event id derived
from what it is (``event_ids``), operator events signed with the operator key."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from redis import Redis

from consumers.bus.keys import DATA, Keys
from consumers.bus.signing import Signer
from consumers.sdk.event_ids import (
    _intent_part,
    _stamp,
    cancel_event_id,
    derived_event_id,
    fill_event_id,
    mark_event_id,
    token,
)

Number = Decimal | int | str


def _json(model_data: Mapping[str, Any]) -> str:
    return json.dumps(model_data, separators=(",", ":"), default=str)


class EventPublisher:
    """GateClient's events half (a mixin: the attributes are the client's)."""

    redis: Redis
    keys: Keys
    operators: Signer

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
