"""The executor's side of the asyncio SDK: ``orders()`` as an async iterator, with the
rules of the synchronous one (``orders.py``): orders verified, handed out at most once
per intent and group, never past their ``good_till``; cancel requests delivered, or
confirmed here when their order was never handed out."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from consumers.bus.keys import Keys
from consumers.bus.runtime import REDIS_TRANSIENT, Backoff
from consumers.bus.signing import OrderSignatureError, Signer, verified_order
from consumers.bus.streams import to_entries
from consumers.sdk.aio_connect import server_time_async
from consumers.sdk.orders import CANCELLED, HANDED_IN_MEMORY, HANDED_TTL_S, log
from schemas.messages import ApprovedOrder, CancelRequest, MessageError


@dataclass(frozen=True, slots=True)
class AsyncOrderDelivery:
    """One entry of the orders stream (see :class:`~consumers.sdk.orders.OrderDelivery`);
    ``await delivery.ack()`` once handled."""

    order: ApprovedOrder | None
    msg_id: bytes
    _ack: Callable[[], Awaitable[None]]
    cancel: CancelRequest | None = None

    @property
    def action(self) -> str:
        """``place`` (``order`` is set) or ``cancel`` (``cancel`` is set)."""
        return "cancel" if self.cancel is not None else "place"

    @property
    def intent_id(self) -> str:
        if self.cancel is not None:
            return self.cancel.intent_id
        assert self.order is not None
        return self.order.intent_id

    async def ack(self) -> None:
        await self._ack()


class AsyncOrderTaker:
    """AsyncGateClient's executor half (a mixin: the attributes are the client's)."""

    redis: Redis
    keys: Keys
    signer: Signer
    _handed: OrderedDict[tuple[str, str], bytes]

    async def cancel(
        self, intent_id: str, *, event_id: str | None = None, at: datetime | None = None
    ) -> str:
        raise NotImplementedError  # the client's

    async def expired(
        self, intent_id: str, *, event_id: str | None = None, at: datetime | None = None
    ) -> str:
        raise NotImplementedError  # the client's

    async def orders(
        self,
        group: str,
        consumer: str,
        *,
        start: str = "$",
        count: int = 100,
        block_ms: int = 1000,
        stop: Callable[[], bool] = lambda: False,
    ) -> AsyncIterator[AsyncOrderDelivery]:
        """Orders and cancel requests for this executor group: its own unacked entries
        first, then new ones (:meth:`GateClient.orders`). Redis unavailable (down, a
        Sentinel or cluster failover) is waited out with backoff, never raised: the
        loop resumes with its own unacked entries, and what it handed out already is
        skipped, as the synchronous client does."""
        backoff = Backoff(base=0.05, cap=2.0)
        while not stop():
            try:
                deliveries = self._deliveries(
                    group, consumer, start=start, count=count, block_ms=block_ms, stop=stop
                )
                async for delivery in deliveries:
                    backoff.reset()
                    yield delivery
                return
            except REDIS_TRANSIENT as exc:
                delay = backoff.next_delay()
                log.warning("redis unavailable; retrying", error=str(exc), delay=round(delay, 3))
                await asyncio.sleep(delay)

    async def _deliveries(
        self,
        group: str,
        consumer: str,
        *,
        start: str,
        count: int,
        block_ms: int,
        stop: Callable[[], bool],
    ) -> AsyncIterator[AsyncOrderDelivery]:
        stream = self.keys.orders
        try:
            await self.redis.xgroup_create(stream, group, id=start, mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        pending, cursor = True, "0"
        while not stop():
            reply = await self.redis.xreadgroup(
                group,
                consumer,
                {stream: cursor if pending else ">"},
                count=count,
                block=None if pending else block_ms,
            )
            entries = to_entries(reply)
            if pending and not entries:
                pending = False
                continue
            for e in entries:
                if pending:
                    cursor = e.msg_id.decode()
                if e.raw is None:  # trimmed while pending: nothing left to execute
                    await self.redis.xack(stream, group, e.msg_id)
                    continue
                delivery = await self._delivery(stream, group, e.msg_id, e.raw)
                if delivery is not None:
                    yield delivery

    async def _delivery(
        self, stream: str, group: str, msg_id: bytes, raw: bytes
    ) -> AsyncOrderDelivery | None:
        """What to hand the executor for one entry (None: nothing; it is acked)."""
        try:
            fields = verified_order(self.signer, raw)
        except (OrderSignatureError, MessageError) as exc:
            log.error("order refused", msg_id=msg_id.decode(), reason=str(exc))
            await self.redis.xack(stream, group, msg_id)
            return None

        async def ack() -> None:
            await self.redis.xack(stream, group, msg_id)

        if fields.get("action") == "cancel":
            request = CancelRequest.model_validate(fields)
            iid = request.intent_id
            if await self.redis.set(
                self.keys.handed(group, iid), CANCELLED, nx=True, ex=HANDED_TTL_S
            ):
                log.warning("cancel before its order arrived: confirmed", intent_id=iid)
                await self.cancel(iid)
                await ack()
                return None
            return AsyncOrderDelivery(None, msg_id, ack, cancel=request)
        order = ApprovedOrder.model_validate(fields)
        if await self._withheld(order, group, msg_id):
            await ack()
            return None
        return AsyncOrderDelivery(order, msg_id, ack)

    async def _withheld(self, order: ApprovedOrder, group: str, msg_id: bytes) -> bool:
        """Whether ``order`` must not reach the executor (the synchronous rules)."""
        seconds, micros = await server_time_async(self.redis, self.keys.orders)
        now = datetime.fromtimestamp(seconds + micros / 1e6, UTC)
        iid = order.intent_id
        if order.deadline <= now:
            log.warning("order past good_till: not placed, reported expired", intent_id=iid)
            await self.expired(iid)
            return True
        if (group, iid) in self._handed:
            log.warning("order already handed out for this intent: skipped", intent_id=iid)
            return True
        marker = self.keys.handed(group, iid)
        if await self.redis.set(marker, msg_id, nx=True, ex=HANDED_TTL_S):
            self._remember(group, iid, msg_id)
            return False
        handed = await self.redis.get(marker)
        if handed == msg_id:  # our own entry again (unacked before a restart)
            self._remember(group, iid, msg_id)
            return False
        if handed == CANCELLED:
            log.warning("order cancelled before it arrived: not placed", intent_id=iid)
            return True
        log.warning("order already handed out for this intent: skipped", intent_id=iid)
        return True

    def _remember(self, group: str, intent_id: str, msg_id: bytes) -> None:
        self._handed[(group, intent_id)] = msg_id
        self._handed.move_to_end((group, intent_id))
        while len(self._handed) > HANDED_IN_MEMORY:
            self._handed.popitem(last=False)
