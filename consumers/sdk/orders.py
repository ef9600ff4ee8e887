"""The executor's side of the SDK: the orders stream read as :class:`OrderDelivery`
items (orders to place, cancel requests), each order verified, handed out at most once
per intent and group, never past its ``good_till``."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from consumers.bus.nodes import server_time, serving_node
from consumers.bus.runtime import REDIS_TRANSIENT, Backoff
from consumers.bus.signing import OrderSignatureError, Signer, verified_order
from consumers.bus.streams import ensure_group, read_group
from consumers.sdk.events import EventPublisher
from schemas.messages import ApprovedOrder, CancelRequest, MessageError

log = structlog.get_logger("riskgate.client")


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
#: how long the SDK remembers a cancel request whose order it never handed out (the
#: order is withheld should it still come)
HANDED_TTL_S = 7 * 86400
#: which entry it handed out for an intent is remembered until the order's good_till
#: (after it the order is never handed out, whatever entry brings it) and this long more
HANDED_MARGIN_S = 300
#: intents one client remembers handing out, in memory as well as in Redis: a failover
#: can lose the ``handed`` marker together with the move that published the order, and
#: the new primary then publishes it again (consumers/state/outbox.py)
HANDED_IN_MEMORY = 100_000


class OrderTaker(EventPublisher):
    """GateClient's executor half (a mixin: the attributes are the client's)."""

    signer: Signer
    _handed: OrderedDict[tuple[str, str], bytes]

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

        Redis unavailable (down, a Sentinel or cluster failover, a slot moving) is
        waited out with backoff, never raised: the loop resumes with its own unacked
        entries, and what it handed out already is skipped. An ``ack()`` that fails
        that way leaves the entry pending; the next pass acks it.
        """
        backoff = Backoff(base=0.05, cap=2.0)
        while True:
            try:  # True when the stream moved to another server: own pending first again
                moved = yield from self._deliveries(
                    group, consumer, start=start, count=count, block_ms=block_ms, stop=stop,
                    backoff=backoff,
                )  # fmt: skip
                if not moved:
                    return  # stop() said so
            except REDIS_TRANSIENT as exc:
                # down, failing over, a slot moving: wait, then own pending entries first
                # (what was handed already is skipped, by the memory of this client)
                delay = backoff.next_delay()
                log.warning("redis unavailable; retrying", error=str(exc), delay=round(delay, 3))
                _sleep(delay, stop)
                if stop():
                    return

    def _deliveries(
        self,
        group: str,
        consumer: str,
        *,
        start: str,
        count: int,
        block_ms: int,
        stop: Callable[[], bool],
        backoff: Backoff,
    ) -> Generator[OrderDelivery, None, bool]:
        stream = self.keys.orders
        ensure_group(self.redis, stream, group, start=start)
        pending, cursor = True, "0"  # own unacked entries first, each once
        serving = serving_node(self.redis, stream)
        while not stop():
            now_serving = serving_node(self.redis, stream)
            if now_serving != serving and None not in (serving, now_serving):
                # a failover moved the stream without an error reaching us: the new
                # primary's pending list may hold entries whose ack it never got
                log.warning("orders stream moved; own pending entries again", to=now_serving)
                return True
            serving = now_serving or serving
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
            backoff.reset()
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
        return False

    def _withheld(self, order: ApprovedOrder, group: str, msg_id: bytes) -> bool:
        """Whether ``order`` must not reach the executor (and what the gate is told).
        Redis's clock is read per order, not per read: the executor works between
        deliveries, so a time read for the batch would go stale."""
        seconds, micros = server_time(self.redis, self.keys.orders)
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
        ttl = min(HANDED_TTL_S, int((order.deadline - now).total_seconds()) + HANDED_MARGIN_S)
        if self.redis.set(marker, msg_id, nx=True, ex=max(1, ttl)):
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
            try:
                self.redis.xack(stream, group, msg_id)
            except REDIS_TRANSIENT as exc:  # stays pending: the next pass acks it, unhanded
                log.warning("ack failed; retried later", msg_id=msg_id.decode(), error=str(exc))

        return ack


def _sleep(seconds: float, stop: Callable[[], bool]) -> None:
    """Sleep ``seconds``, waking early once ``stop()`` says so."""
    deadline = time.monotonic() + seconds
    while not stop() and time.monotonic() < deadline:
        time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
