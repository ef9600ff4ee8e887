"""The state's change log on a real Redis: a reload built from the snapshot held and
what changed since is the snapshot a full read gives; a log that cannot account for
every version since falls back to the full read."""

from __future__ import annotations

import gc
import json
from dataclasses import replace
from decimal import Decimal

import pytest
from redis import Redis

from consumers.gate_worker.worker import GateSettings, GateWorker
from consumers.market.correlations import Pair, publish
from consumers.state import control
from consumers.state.store import Loaded, Store
from tests.builders import NOW, market_prices
from tests.harness import Harness

PRICES = market_prices()


def buy(h: Harness, n: int, qty: str = "0.01", agent: str = "a") -> list[str]:
    return [
        h.intent(
            symbol="BTC/USDT", quantity=qty, agent_id=f"{agent}{i}", price=str(PRICES["BTC/USDT"])
        )
        for i in range(n)
    ]


def log(h: Harness) -> list[dict[str, object]]:
    rows = h.redis.xrange(h.keys.changes)
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in rows]


def same(a: Loaded, b: Loaded) -> None:
    x, y = a.snapshot, b.snapshot
    assert x.version == y.version
    assert x.account == y.account
    for part in ("positions", "reservations", "rates", "marks", "approvals"):
        assert dict(getattr(x, part)) == dict(getattr(y, part)), part
    assert x.flags == y.flags and x.correlations == y.correlations
    assert a.config.config_hash == b.config.config_hash


def test_commit_when_fields_change_then_one_log_entry_naming_them(h: Harness) -> None:
    before = len(log(h))
    (iid,) = buy(h, 1)
    h.pump()
    entry = log(h)[before]
    assert int(str(entry["v"])) == h.state().snapshot.version
    names = json.loads(str(entry["f"]))
    assert f"res:{iid}" in names and "rate:a0" in names


def test_load_since_when_others_wrote_then_same_as_a_full_read(h: Harness, redis: Redis) -> None:
    """Another gate's commits (approvals, a fill ending a reservation), a control write
    and new correlations: the snapshot built from the change log is the full read's."""
    store = Store(redis, h.keys, h.config)
    first = buy(h, 3)
    h.pump()
    held = store.load()
    other = Harness(redis, h.portfolio, consumer="w2")  # same portfolio, another gate
    buy(other, 4, agent="b")
    other.pump()
    h.client.fill(first[0], "BTC/USDT", "buy", "0.01", str(PRICES["BTC/USDT"]), fill_id="f1")
    other.pump()
    control.set_control(redis, h.keys, {"earnings:NVDA": "2027-01-05"})
    publish(redis, h.keys, [Pair("BTC/USDT", "ETH/USDT", Decimal("0.8"), 90)], NOW)
    got, touched = store.load_since(held.snapshot)
    same(got, store.load())
    assert touched is not None and first[0] in touched and len(touched) == 5  # 4 new, 1 filled
    assert first[1] not in touched


def test_load_since_when_a_bump_left_no_entry_then_full_read(h: Harness, redis: Redis) -> None:
    """A version bumped outside the log (an older gate, a hand edit) cannot be accounted
    for: the whole state is read."""
    store = Store(redis, h.keys, h.config)
    buy(h, 2)
    h.pump()
    held = store.load()
    redis.hincrby(h.keys.state, "version", 1)  # no entry
    got, touched = store.load_since(held.snapshot)
    assert touched is None
    assert got.snapshot.version == held.snapshot.version + 1


def test_load_since_when_log_trimmed_past_it_then_full_read(h: Harness, redis: Redis) -> None:
    store = Store(redis, h.keys, h.config)
    buy(h, 1)
    h.pump()
    held = store.load()
    buy(h, 3, agent="c")
    h.pump()
    redis.xtrim(
        h.keys.changes, maxlen=1, approximate=False
    )  # the entry that made the held version is gone
    got, touched = store.load_since(held.snapshot)
    assert touched is None
    same(got, store.load())


def test_racing_gates_when_they_lose_races_then_reloads_from_the_log_and_stay_exact(
    h: Harness, redis: Redis
) -> None:
    """Two gates on one portfolio lose races to each other; each reload is built from
    the change log, and every batch's exposure equals the one from scratch
    (verify_exposure) and the worker's snapshot the one in Redis."""
    other = GateWorker(
        redis, h.keys, h.config, GateSettings(consumer="w2", block_ms=5, verify_exposure=True)
    )
    for round_ in range(6):
        for worker in (h.worker, other):
            buy(h, 2, agent=f"r{round_}{worker.settings.consumer}")
            h.client.fill(
                "outside", "ETH/USDT", "buy", "0.01", str(PRICES["ETH/USDT"]),
                fill_id=f"{round_}-{worker.settings.consumer}",
            )  # fmt: skip
            worker.step()
    reloads = h.worker.stats["reloads_incremental"] + other.stats["reloads_incremental"]
    assert reloads >= 5 and h.worker.stats["reloads_whole"] + other.stats["reloads_whole"] == 0
    for worker in (h.worker, other):
        worker.step()
        if (
            worker.loaded is not None
            and worker.loaded.snapshot.version == h.state().snapshot.version
        ):
            same(replace(worker.loaded, config=h.state().config), h.state())
    assert len(h.decisions()) == 24


def test_big_state_when_read_whole_or_doubled_then_heap_frozen_once_each(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A big state is collected and frozen when read whole, and again each time it
    doubles: the collector stops walking what lives long (gc.freeze)."""
    from consumers.gate_worker import handle

    monkeypatch.setattr(handle, "FREEZE_AT", 4)
    gc.unfreeze()
    try:
        buy(h, 4, agent="x")
        h.pump()  # 4 reservations: at the mark, grown from nothing: frozen
        assert h.worker.stats["heap_frozen"] == 1 and gc.get_freeze_count() > 0
        buy(h, 2, agent="y")
        h.pump()  # 6 < 2 x 4: not again
        assert h.worker.stats["heap_frozen"] == 1
        buy(h, 2, agent="z")
        h.pump()  # 8: doubled
        assert h.worker.stats["heap_frozen"] == 2
        h.worker._forget()
        h.worker.step()  # read whole
        buy(h, 1, agent="w")
        h.pump()
        assert h.worker.stats["heap_frozen"] == 3
    finally:
        gc.unfreeze()
