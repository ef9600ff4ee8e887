"""Many workers, many intents, workers killed at random: exactly once, caps held."""

from __future__ import annotations

import random
import signal
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import combinations

import pytest
from redis import Redis

from consumers.bus.keys import DATA, GROUP_GATE, Keys
from consumers.bus.lease import holder
from consumers.bus.streams import group_lag
from consumers.state import control
from consumers.state.snapshot_codec import encode_correlations
from gate.money import floor_to_lot
from gate.portfolio import Correlations
from schemas.messages import Status, TradeIntent
from tests.builders import all_enabled, market_prices
from tests.harness import Harness
from tests.integration.conftest import Workers
from tests.integration.replay import broken_caps

D = Decimal


def _intents(n: int, symbols: list[str], seed: int, notional: tuple[int, int]) -> list[str]:
    """n intent payloads over ``symbols``, sized 1k-20k USD within 1 % of the market."""
    cfg = all_enabled()
    rng = random.Random(seed)
    now = datetime.now(UTC)
    out = []
    for i in range(n):
        sym = rng.choice(symbols)
        asset = cfg.assets[sym]
        fx = cfg.risk_management.fx_rates.get(asset.trading.quote_currency, D(1))
        price = (market_prices()[sym] * D(rng.randint(990, 1010)) / 1000).quantize(D("0.0001"))
        qty = floor_to_lot(D(rng.randint(*notional)) / (price * fx), asset.risk.lot_size)
        qty = max(qty, asset.risk.min_size)
        side = rng.choice(["buy", "sell"])
        stop = None
        if rng.random() < 0.6:  # a wide explicit stop: heat binds before the class caps
            k = D(rng.randint(50, 80)) / 100
            stop = (price * k if side == "buy" else price * (2 - k)).quantize(D("0.0001"))
        intent = TradeIntent.model_validate(
            {
                "intent_id": f"c-{seed}-{i}",
                "agent_id": f"agent-{i % 100}",
                "symbol": sym,
                "side": side,
                "quantity": qty,
                "price": price,
                "stop_price": stop,
                "created_at": now,
            }
        )
        out.append(intent.model_dump_json(exclude_none=True))
    return out


def _publish(redis: Redis, stream: str, payloads: list[str]) -> None:
    for start in range(0, len(payloads), 1000):
        pipe = redis.pipeline(transaction=False)
        for p in payloads[start : start + 1000]:
            pipe.xadd(stream, {DATA: p})
        pipe.execute()


def _wait_all_decided(h: Harness, n: int, workers: Workers, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if h.redis.xlen(h.keys.decisions) >= n and h.pending() == 0:
            groups = {g["name"]: g for g in h.redis.xinfo_groups(h.keys.intents)}
            if group_lag(h.redis, h.keys.intents, groups[GROUP_GATE.encode()]) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(
        f"only {h.redis.xlen(h.keys.decisions)}/{n} decided, {h.pending()} pending\n"
        + workers.logs()
    )


def _busiest(redis: Redis, stream: str, live: list[str], wait: float = 0.5) -> tuple[str, int]:
    """The live worker holding the most unacked entries, caught within ``wait`` seconds
    (entries are pending only while a batch is in flight)."""
    deadline = time.monotonic() + wait
    while True:
        held = {c["name"].decode(): c["pending"] for c in redis.xinfo_consumers(stream, GROUP_GATE)}
        victim = max(live, key=lambda name: held.get(name, 0))
        if held.get(victim, 0) > 0 or time.monotonic() > deadline:
            return victim, held.get(victim, 0)
        time.sleep(0.0005)


def _wait_owned(redis: Redis, keys: Keys, names: list[str], timeout: float = 60) -> None:
    """Until one of the named workers holds the portfolio's lease (and so reads it; the
    others stand by)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = holder(redis, keys)
        if found is not None and found.owner in names:
            return
        time.sleep(0.05)
    raise AssertionError(f"none of {names} took the portfolio within {timeout}s")


def _prepare(redis: Redis, portfolio: str, equity: str) -> Harness:
    h = Harness(redis, portfolio)
    cfg = all_enabled()
    control.enable(redis, h.keys, cfg, list(cfg.phases), True)
    far = (datetime.now(UTC) + timedelta(days=60)).date()
    for sym, asset in cfg.assets.items():
        if asset.special_rules.earnings_blackout_days is not None:
            control.set_earnings(redis, h.keys, sym, far)
        if asset.special_rules.avoid_sideways_market:
            control.set_regime(redis, h.keys, sym, "trending")
    # correlated within a class, not across: the class caps and heat bind first
    pairs = {
        Correlations.key(a, b): D("0.8")
        if cfg.assets[a].asset_class is cfg.assets[b].asset_class
        else D(0)
        for a, b in combinations(sorted(cfg.assets), 2)
    }
    redis.set(h.keys.correlations, encode_correlations(Correlations(pairs, datetime.now(UTC))))
    h.fund(equity)
    return h


@pytest.mark.slow
def test_four_workers_when_10k_intents_then_one_decision_each_and_no_cap_broken(
    redis: Redis, portfolio: str, workers: Workers
) -> None:
    """4 processes, 10,000 intents over all 22 assets plus duplicates: each decided once,
    and replaying the decisions stream shows no approval ever broke a cap."""
    n = 10_000
    equity = D(10_000_000)
    h = _prepare(redis, portfolio, str(equity))
    cfg = h.state().config
    payloads = _intents(n, sorted(cfg.assets), seed=1, notional=(1000, 20000))
    dupes = random.Random(2).sample(payloads, 300)
    for _ in range(4):
        workers.start()
    _publish(redis, h.keys.intents, payloads[: n // 2] + dupes + payloads[n // 2 :])
    _wait_all_decided(h, n, workers)
    assert set(workers.stop_all().values()) == {0}

    decisions = h.decisions()
    ids = [d.intent_id for d in decisions]
    assert len(ids) == n == len(set(ids))
    assert broken_caps(decisions, cfg, equity, market_prices()) == []
    by_status = {s: sum(d.status is s for d in decisions) for s in Status}
    assert by_status[Status.APPROVED] > 500 and by_status[Status.RESIZED] > 0
    assert by_status[Status.REJECTED] > 1000
    codes = {r.code.value for d in decisions for r in d.reasons}
    assert {"portfolio_heat", "asset_class_limit", "below_min_size"} <= codes
    approved = {d.intent_id for d in decisions if d.status is not Status.REJECTED}
    assert set(h.state().snapshot.reservations) == approved
    assert h.redis.xlen(h.keys.orders) == len(approved)
    assert h.dead() == []


@pytest.mark.slow
def test_sigkill_when_workers_die_at_random_then_nothing_lost_doubled_or_leaked(
    redis: Redis, portfolio: str, workers: Workers
) -> None:
    """Workers SIGKILLed at random instants and replaced: each intent decided once,
    every entry acked, reservations exactly the approved orders."""
    n = 3000
    equity = D(50_000_000)
    h = _prepare(redis, portfolio, str(equity))
    cfg = h.state().config
    payloads = _intents(
        n, ["BTC/USDT", "ETH/USDT", "NVDA", "GBP/JPY", "XAG/USD"], seed=3, notional=(1000, 5000)
    )
    # a high delivery cap: this test kills on purpose whoever holds entries, again and
    # again; the cap and its dead letters are the poison test's subject. A short lease:
    # each kill of the owner waits for it to expire
    opts = (
        "--min-idle-ms",
        "300",
        "--reclaim-every",
        "0.1",
        "--batch",
        "40",
        "--max-deliveries",
        "1000",
        "--lease-ttl-ms",
        "600",
        "--lease-renew-ms",
        "150",
    )
    live = [workers.start(None, *opts) for _ in range(2)]
    _wait_owned(redis, h.keys, live)  # a loaded host starts them slowly
    rng = random.Random(4)
    kills = kills_holding_entries = 0
    for start in range(0, n, 150):
        _publish(redis, h.keys.intents, payloads[start : start + 150])
        time.sleep(rng.uniform(0.0, 0.05))
        if rng.random() < 0.5:
            victim, holding = _busiest(redis, h.keys.intents, live)
            live.remove(victim)
            kills_holding_entries += holding > 0
            code = workers.kill(victim, signal.SIGKILL)
            assert code == -signal.SIGKILL, f"{victim} had already exited with {code}"
            kills += 1
            live.append(workers.start(None, *opts))
    assert kills >= 5
    assert kills_holding_entries >= 1, "no worker was killed while holding entries"
    _wait_all_decided(h, n, workers)
    workers.stop_all()
    reclaimed = workers.count_lines("reclaimed idle entries")
    taken = workers.count_lines("took over pending entries")
    assert reclaimed + taken > 0, "no entry was ever reclaimed"

    decisions = h.decisions()
    ids = [d.intent_id for d in decisions]
    assert len(ids) == n == len(set(ids)), "an intent was lost or decided twice"
    assert broken_caps(decisions, cfg, equity, market_prices()) == []
    approved = {d.intent_id for d in decisions if d.status is not Status.REJECTED}
    assert set(h.state().snapshot.reservations) == approved, "a reservation leaked"
    assert h.redis.xlen(h.keys.orders) == len(approved)
    assert h.pending() == 0
    assert h.dead() == []
