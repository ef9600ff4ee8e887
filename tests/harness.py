"""A gate worker driven step by step, on fakeredis or a real Redis (same tests, both)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from redis import Redis

from consumers.bus.keys import DATA, GROUP_GATE, Keys, registry_key
from consumers.gate_worker.worker import GateSettings, GateWorker
from consumers.sdk.client import GateClient
from consumers.state import control
from consumers.state.store import Loaded, Store
from schemas.messages import Decision, parse_json
from tests.builders import all_enabled, base_config, market_prices


def unique_portfolio(tag: str = "t") -> str:
    return f"{tag}-{uuid.uuid4().hex[:10]}"


def wipe(redis: Redis, portfolio: str) -> None:
    for key in redis.scan_iter(match=f"riskgate:{{{portfolio}}}:*", count=1000):
        redis.delete(key)
    redis.srem(registry_key(), portfolio)  # `riskgate deposit` registers what it funds


class Harness:
    def __init__(
        self,
        redis: Redis,
        portfolio: str | None = None,
        *,
        enable_all: bool = False,
        **settings: Any,
    ) -> None:
        self.redis = redis
        self.portfolio = portfolio or unique_portfolio()
        self.keys = Keys(self.portfolio)
        self.config = base_config()
        self.client = GateClient(redis=redis, portfolio=self.portfolio)
        opts = {
            "consumer": "w1",
            "block_ms": 5,
            "min_idle_ms": 10_000,
            "verify_exposure": True,
            **settings,
        }
        self.worker = GateWorker(redis, self.keys, self.config, GateSettings(**opts))
        self.worker.setup()
        if enable_all:
            everything = all_enabled()
            control.enable(redis, self.keys, everything, list(everything.phases), True)

    # -- input -----------------------------------------------------------------------------

    def intent(
        self,
        symbol: str = "BTC/USDT",
        side: str = "buy",
        quantity: str = "0.1",
        price: str = "100000",
        **kw: Any,
    ) -> str:
        return self.client.submit(symbol, side, quantity, price=price, **kw)

    def raw(self, stream: str, fields: dict[str, Any]) -> bytes:
        return self.redis.xadd(stream, fields)  # type: ignore[return-value]

    def raw_intent(self, data: Any) -> bytes:
        payload = data if isinstance(data, str | bytes) else json.dumps(data)
        return self.raw(self.keys.intents, {DATA: payload})

    def fund(self, amount: str = "100000", *, market: bool = True) -> None:
        """Deposit ``amount`` and, with ``market``, mark every asset at the test market."""
        self.client.deposit(amount, reference=f"fund-{uuid.uuid4().hex}")
        if market:
            self.client.mark(market_prices())
        self.pump()

    # -- driving ---------------------------------------------------------------------------

    def pump(self, max_rounds: int = 1000) -> int:
        """Step the worker until a read returns nothing; returns entries handled."""
        total = 0
        for _ in range(max_rounds):
            n = self.worker.step()
            total += n
            if n == 0:
                return total
        raise AssertionError("worker did not go idle")

    # -- output ----------------------------------------------------------------------------

    def decisions(self) -> list[Decision]:
        return [
            Decision.model_validate(parse_json(f[DATA]))
            for _, f in self.redis.xrange(self.keys.decisions)
        ]

    def decision(self, intent_id: str) -> Decision:
        found = self.client.decision(intent_id)
        assert found is not None, f"no decision for {intent_id}"
        return found

    def orders(self) -> list[dict[str, Any]]:
        return [json.loads(f[DATA]) for _, f in self.redis.xrange(self.keys.orders)]

    def dead(self) -> list[dict[str, Any]]:
        return [json.loads(f[DATA]) for _, f in self.redis.xrange(self.keys.deadletter)]

    def pending(self, stream: str | None = None) -> int:
        info = self.redis.xpending(stream or self.keys.intents, GROUP_GATE)
        return int(info["pending"])

    def state(self) -> Loaded:
        return Store(self.redis, self.keys, self.config).load()

    def mark_arriving(self, prices: Mapping[str, Any], at: datetime) -> None:
        """A mark event as if Redis took it in at ``at`` (its stream id's time): for
        tests that move the gate's clock."""
        payload = {
            "type": "mark",
            "event_id": f"mark-{uuid.uuid4().hex}",
            "prices": {s: str(p) for s, p in prices.items()},
            "at": at.isoformat(),
        }
        ms = int(at.timestamp() * 1000)
        self.redis.xadd(self.keys.events, {DATA: json.dumps(payload)}, id=f"{ms}-*")

    def mark(self, prices: dict[str, str], at: datetime | None = None) -> None:
        self.client.mark({s: Decimal(p) for s, p in prices.items()}, at=at or datetime.now(UTC))
        self.pump()
