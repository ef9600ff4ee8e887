"""The SDK on asyncio (``redis.asyncio``): :class:`AsyncGateClient` has the surface of
:class:`~consumers.sdk.client.GateClient`, every call awaited.

    async with AsyncGateClient("redis://localhost:6379/0", portfolio="main") as client:
        decision = await client.submit_and_wait("BTC/USDT", "buy", "0.01", price="100000")
        async for delivery in client.orders(group="binance", consumer="exec-1"):
            ...
            await delivery.ack()

Payloads, event ids, signatures and checks are the synchronous client's
(``payloads``, ``event_ids``, ``decisions``), so both send byte-for-byte the same
messages and refuse the same bad values with the same :class:`InvalidField`.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime
from types import TracebackType
from typing import Any

from redis.asyncio import Redis

from consumers.bus.agent_signing import AgentSigner, agent_signer
from consumers.bus.keys import DATA, Keys
from consumers.bus.signing import Signer, operator_signer, order_signer
from consumers.sdk import payloads as build
from consumers.sdk.aio_connect import close_async, connect_async, open_async
from consumers.sdk.aio_orders import AsyncOrderDelivery, AsyncOrderTaker
from consumers.sdk.decisions import check_timeout, decision_of, decision_ref
from consumers.sdk.events import event_json
from consumers.sdk.payloads import InvalidField, Number
from schemas.messages import Decision

__all__ = ["AsyncGateClient", "AsyncOrderDelivery", "InvalidField", "connect_async", "open_async"]


class AsyncGateClient(AsyncOrderTaker):
    """The agent's and the executor's client on asyncio; see :class:`GateClient`."""

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
        self._owned = redis is None
        self.redis = redis if redis is not None else connect_async(redis_url)
        self.keys = Keys(portfolio, prefix) if prefix else Keys(portfolio)
        self.signer = signer if signer is not None else order_signer(self.keys)
        self.operators = operator_keys if operator_keys is not None else operator_signer(self.keys)
        if isinstance(agent_key, AgentSigner):
            self.agent = agent_key
        else:
            self.agent = agent_signer(self.keys, agent_key)
        self._handed: OrderedDict[tuple[str, str], bytes] = OrderedDict()

    @classmethod
    async def open(
        cls, redis_url: str | None = None, portfolio: str = "main", **kw: Any
    ) -> AsyncGateClient:
        """The client for ``redis_url``, asking the server what it is (a cluster node, or
        not) on the event loop instead of with one blocking call (aio_connect.py)."""
        client = cls(redis_url, portfolio, redis=await open_async(redis_url), **kw)
        client._owned = True
        return client

    async def aclose(self) -> None:
        """Close the connection pool (only the one this client opened)."""
        if self._owned:
            await close_async(self.redis)

    async def __aenter__(self) -> AsyncGateClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- the agent's side ------------------------------------------------------------------

    async def submit(
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
        """Validate and publish one trade intent; returns its ``intent_id``
        (:meth:`GateClient.submit`)."""
        intent_id, data = build.intent_data(
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
        await self.redis.xadd(self.keys.intents, {DATA: data})
        return intent_id

    async def decision(self, intent_id: str) -> Decision | None:
        """The effective decision for ``intent_id``, or None while there is none."""
        ref = decision_ref(await self.redis.get(self.keys.decided(intent_id)))
        if ref is None:
            return None
        return decision_of(await self.redis.xrange(self.keys.decisions, ref, ref))

    async def wait_decision(self, intent_id: str, timeout: float = 10.0) -> Decision | None:
        """Poll (without blocking the loop) until the decision exists or ``timeout``
        seconds pass (then None)."""
        deadline = time.monotonic() + check_timeout(timeout)
        delay = 0.002
        while True:
            found = await self.decision(intent_id)
            if found is not None or time.monotonic() >= deadline:
                return found
            await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 0.1)

    async def submit_and_wait(
        self, symbol: str, side: str, quantity: Number, *, timeout: float = 10.0, **intent: Any
    ) -> Decision | None:
        """:meth:`submit`, then :meth:`wait_decision`."""
        check_timeout(timeout)
        return await self.wait_decision(
            await self.submit(symbol, side, quantity, **intent), timeout
        )

    # -- portfolio events (executors and operators) ----------------------------------------

    async def _event(self, event: build.Event, *, operator: bool = False) -> str:
        payload, event_id = event
        if operator:
            payload = self.operators.sign(payload)
        await self.redis.xadd(self.keys.events, {DATA: event_json(payload)})
        return event_id

    async def fill(
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
        """One (partial) fill; event id ``fill:<intent_id>:<fill_id>`` (:meth:`GateClient.fill`)."""
        return await self._event(
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

    async def cancel(
        self, intent_id: str, *, event_id: str | None = None, at: datetime | None = None
    ) -> str:
        """The order is cancelled at its venue; event id ``cancel:<intent_id>``."""
        return await self._event(build.cancel_event(intent_id, event_id=event_id, at=at))

    async def expired(
        self, intent_id: str, *, event_id: str | None = None, at: datetime | None = None
    ) -> str:
        """The order ended unfilled at its good_till; event id ``expired:<intent_id>``."""
        return await self._event(build.expired_event(intent_id, event_id=event_id, at=at))

    async def release(
        self, intent_id: str, operator: str, reason: str, *, event_id: str | None = None
    ) -> str:
        """An operator releases a dead order's reservation (signed operator event)."""
        event = build.release_event(intent_id, operator, reason, event_id=event_id)
        return await self._event(event, operator=True)

    async def deposit(
        self,
        amount: Number,
        *,
        reference: str | None = None,
        event_id: str | None = None,
        at: datetime | None = None,
    ) -> str:
        """Pay in or withdraw (signed operator event); event id ``deposit:<reference>``."""
        event = build.deposit_event(amount, reference=reference, event_id=event_id, at=at)
        return await self._event(event, operator=True)

    async def resume(
        self,
        operator: str,
        reason: str,
        *,
        reference: str | None = None,
        event_id: str | None = None,
        at: datetime | None = None,
    ) -> str:
        """Clear latched stops (signed operator event); event id ``resume:<reference>``."""
        event = build.resume_event(operator, reason, reference=reference, event_id=event_id, at=at)
        return await self._event(event, operator=True)

    async def mark(
        self,
        prices: Mapping[str, Number],
        *,
        at: datetime | None = None,
        fx: Mapping[str, Number] | None = None,
        event_id: str | None = None,
    ) -> str:
        """Mark prices (and fx rates) at ``at``; event id ``mark:<at>:<digest>``."""
        return await self._event(build.mark_event(prices, at=at, fx=fx, event_id=event_id))
