"""What executors and operators publish on the events stream through the SDK: fills,
cancels, expiries, releases, deposits, resumes and marks, each under an event id derived
from what it is (``event_ids``), operator events signed with the operator key. The
payloads are built and checked in ``payloads`` (shared with the asyncio client); a value
the gate would refuse raises :class:`~consumers.sdk.payloads.InvalidField` here."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from redis import Redis

from consumers.bus.keys import DATA, Keys
from consumers.bus.signing import Signer
from consumers.sdk import payloads as build
from consumers.sdk.payloads import Number

__all__ = ["EventPublisher", "Number", "event_json"]


def event_json(payload: Mapping[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), default=str)


class EventPublisher:
    """GateClient's events half (a mixin: the attributes are the client's)."""

    redis: Redis
    keys: Keys
    operators: Signer

    def _event(self, event: build.Event, *, operator: bool = False) -> str:
        """Publish one checked event under its event id: always one the caller derived or
        was given, never a random one (a retry must repeat it)."""
        payload, event_id = event
        if operator:
            payload = self.operators.sign(payload)
        self.redis.xadd(self.keys.events, {DATA: event_json(payload)})
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
        return self._event(
            build.fill_event(
                intent_id,
                symbol,
                side,
                quantity,
                price,
                fill_id=fill_id,
                event_id=event_id,
                at=at,
                fee=fee,
            )
        )

    def cancel(
        self, intent_id: str, *, event_id: str | None = None, at: datetime | None = None
    ) -> str:
        """Release what is left of ``intent_id``'s reservation: event id ``cancel:<intent_id>``
        (an order is cancelled once)."""
        return self._event(build.cancel_event(intent_id, event_id=event_id, at=at))

    def expired(
        self, intent_id: str, *, event_id: str | None = None, at: datetime | None = None
    ) -> str:
        """Confirm the order for ``intent_id`` ended unfilled at its ``good_till`` (or
        was never placed): what was not filled of it is released. Event id
        ``expired:<intent_id>``."""
        return self._event(build.expired_event(intent_id, event_id=event_id, at=at))

    def release(
        self, intent_id: str, operator: str, reason: str, *, event_id: str | None = None
    ) -> str:
        """An operator releases the reservation of ``intent_id`` (an operator event):
        for an order known to be dead that no executor will confirm. Event id
        ``release:<intent_id>`` (a reservation is released once)."""
        event = build.release_event(intent_id, operator, reason, event_id=event_id)
        return self._event(event, operator=True)

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
        event = build.deposit_event(amount, reference=reference, event_id=event_id, at=at)
        return self._event(event, operator=True)

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
        event = build.resume_event(operator, reason, reference=reference, event_id=event_id, at=at)
        return self._event(event, operator=True)

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
        return self._event(build.mark_event(prices, at=at, fx=fx, event_id=event_id))
