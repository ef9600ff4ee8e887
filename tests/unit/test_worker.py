"""Gate worker logic on fakeredis (the Lua commit runs through lupa).

The same scenarios that matter most run again against a real Redis in
tests/integration; these are the fast tier.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import fakeredis
import pytest

from consumers.bus.keys import DATA, GROUP_GATE
from consumers.bus.streams import Entry
from consumers.gate_worker.worker import GateSettings, GateWorker
from consumers.state import control
from schemas.messages import Status
from tests.builders import market_prices
from tests.harness import Harness


@pytest.fixture
def redis() -> Iterator[fakeredis.FakeRedis]:
    r = fakeredis.FakeRedis()
    yield r
    r.flushall()


@pytest.fixture
def h(redis: fakeredis.FakeRedis) -> Harness:
    harness = Harness(redis)
    harness.fund()
    return harness


def test_step_when_intent_then_decision_order_marker_and_ack(h: Harness) -> None:
    """One intent: one decision, one order, a decided marker, nothing pending."""
    iid = h.intent(quantity="0.1")
    h.pump()
    (d,) = h.decisions()
    assert (d.intent_id, d.status, str(d.approved_quantity)) == (iid, Status.APPROVED, "0.1")
    (order,) = h.orders()
    assert (order["intent_id"], order["quantity"], order["stop_price"]) == (iid, "0.1", "94000.00")
    assert h.redis.get(h.keys.decided(iid)) is not None
    assert h.pending() == 0
    assert iid in h.state().snapshot.reservations


def test_step_when_same_intent_id_twice_in_one_batch_then_one_decision(h: Harness) -> None:
    """A duplicate (same id, same content) within one read is acked without a second decision."""
    at = datetime.now(UTC)
    h.intent(intent_id="dup-1", created_at=at)
    h.intent(intent_id="dup-1", created_at=at)
    h.pump()
    assert [d.intent_id for d in h.decisions()] == ["dup-1"]
    assert h.pending() == 0


def test_step_when_intent_id_seen_in_an_earlier_batch_then_no_second_decision(h: Harness) -> None:
    """A later duplicate (same content) hits the decided marker in the commit: acked only."""
    at = datetime.now(UTC)
    h.intent(intent_id="again", quantity="0.1", created_at=at)
    h.pump()
    h.intent(intent_id="again", quantity="0.10", created_at=at)  # the same quantity
    h.intent(intent_id="fresh", quantity="0.05")
    h.pump()
    assert [d.intent_id for d in h.decisions()] == ["again", "fresh"]
    assert len(h.state().snapshot.reservations) == 2
    assert h.worker.stats["duplicates"] == 1
    assert h.pending() == 0


def test_fill_when_event_delivered_twice_then_position_moves_once(h: Harness) -> None:
    """The same fill event (same event_id) twice, in one batch and across batches."""
    iid = h.intent(quantity="0.1")
    h.pump()
    for _ in range(2):
        h.client.fill(iid, "BTC/USDT", "buy", "0.1", "100000", event_id="fill-1")
    h.pump()
    h.client.fill(iid, "BTC/USDT", "buy", "0.1", "100000", event_id="fill-1")
    h.pump()
    snap = h.state().snapshot
    assert snap.positions["BTC/USDT"].quantity == Decimal("0.1")
    assert iid not in snap.reservations
    assert h.pending(h.keys.events) == 0


def test_cancel_when_event_then_reservation_released(h: Harness) -> None:
    """cancel releases the approved order's reservation."""
    iid = h.intent(quantity="0.1")
    h.pump()
    h.client.cancel(iid)
    h.pump()
    assert h.state().snapshot.reservations == {}


def test_reservation_when_good_till_passes_then_held_until_executor_confirms(
    h: Harness,
) -> None:
    """An unfilled approval keeps holding risk past its good_till (the order may still
    work); the executor's ``expired`` releases it."""
    iid = h.intent(quantity="0.2")
    h.pump()
    later = datetime.now(UTC) + timedelta(hours=1, seconds=1)
    h.worker.clock = lambda: later
    h.mark_arriving(market_prices(), later)  # an hour on, the market is marked again
    h.intent(quantity="0.2", created_at=later)
    h.pump()
    assert iid in h.state().snapshot.reservations
    assert h.decisions()[-1].status is Status.REJECTED
    h.client.expired(iid, at=later)  # reported then (as an executor would date it)
    h.intent(quantity="0.2", created_at=later)
    h.pump()
    assert iid not in h.state().snapshot.reservations
    assert h.decisions()[-1].status is Status.APPROVED


BAD_INPUTS = [
    ("missing data field", {"payload": "x"}, None),
    ("not JSON", {DATA: "{nope"}, None),
    ("JSON but not an object", {DATA: "[1, 2]"}, None),
    (
        "wrong type",
        {
            DATA: json.dumps(
                {
                    "intent_id": "bad-type",
                    "agent_id": "a",
                    "symbol": "BTC/USDT",
                    "side": "buy",
                    "quantity": True,
                    "price": "1",
                    "created_at": "2026-01-01T00:00:00Z",
                }
            )
        },
        "bad-type",
    ),
    (
        "out of range",
        {
            DATA: json.dumps(
                {
                    "intent_id": "bad-range",
                    "agent_id": "a",
                    "symbol": "BTC/USDT",
                    "side": "buy",
                    "quantity": "-5",
                    "price": "1",
                    "created_at": "2026-01-01T00:00:00Z",
                }
            )
        },
        "bad-range",
    ),
    (
        "huge exponent",
        {
            DATA: '{"intent_id": "bad-exp", "agent_id": "a", "symbol": "BTC/USDT",'
            ' "side": "buy", "quantity": 1e999999, "price": "1",'
            ' "created_at": "2026-01-01T00:00:00Z"}'
        },
        "bad-exp",
    ),
    (
        "NaN",
        {
            DATA: '{"intent_id": "bad-nan", "agent_id": "a", "symbol": "BTC/USDT",'
            ' "side": "buy", "quantity": NaN, "price": "1",'
            ' "created_at": "2026-01-01T00:00:00Z"}'
        },
        "bad-nan",
    ),
    (
        "unknown field",
        {
            DATA: json.dumps(
                {
                    "intent_id": "bad-extra",
                    "agent_id": "a",
                    "symbol": "BTC/USDT",
                    "side": "buy",
                    "quantity": "1",
                    "price": "1",
                    "created_at": "2026-01-01T00:00:00Z",
                    "leverage": 100,
                }
            )
        },
        "bad-extra",
    ),
    (
        "bad intent_id",
        {
            DATA: json.dumps(
                {
                    "intent_id": "has space",
                    "agent_id": "a",
                    "symbol": "BTC/USDT",
                    "side": "buy",
                    "quantity": "1",
                    "price": "1",
                    "created_at": "2026-01-01T00:00:00Z",
                }
            )
        },
        None,
    ),
    (
        "oversized",
        {DATA: json.dumps({"intent_id": "bad-big", "agent_id": "a" * 70_000})},
        "bad-big",
    ),
]


@pytest.mark.parametrize(
    ("fields", "readable_id"), [b[1:] for b in BAD_INPUTS], ids=[b[0] for b in BAD_INPUTS]
)
def test_step_when_bad_input_then_dead_letter_ack_and_worker_goes_on(
    h: Harness, fields: dict[str, object], readable_id: str | None
) -> None:
    """Bad input: a dead letter with the error, acked; a rejection if the id is readable."""
    h.raw(h.keys.intents, fields)
    good = h.intent(quantity="0.1")
    h.pump()
    (dead,) = h.dead()
    assert dead["error"] and dead["stream"] == h.keys.intents
    assert len(dead["raw"]) <= 4096
    decided = {d.intent_id: d for d in h.decisions()}
    assert decided[good].status is Status.APPROVED
    if readable_id is None:
        assert set(decided) == {good}
    else:
        bad = decided[readable_id]
        assert (bad.status, [r.code.value for r in bad.reasons]) == (
            Status.REJECTED,
            ["invalid_intent"],
        )
    assert h.pending() == 0
    assert h.worker.stats["dead"] == 1


def test_step_when_bad_event_then_dead_letter_and_ack(h: Harness) -> None:
    """A malformed portfolio event is dead-lettered; later events still apply."""
    h.raw(h.keys.events, {DATA: json.dumps({"type": "deposit", "event_id": "d", "amount": "x"})})
    h.raw(h.keys.events, {DATA: json.dumps({"type": "teleport", "event_id": "t"})})
    h.client.deposit("5", event_id="d-ok")
    h.pump()
    assert len(h.dead()) == 2
    assert h.state().snapshot.account.cash == 100005
    assert h.pending(h.keys.events) == 0


def test_process_when_delivered_past_the_cap_then_dead_letter_and_rejection(h: Harness) -> None:
    """An entry delivered more than max_deliveries times is given up, loudly."""
    iid = h.intent()
    ((stream, items),) = h.redis.xreadgroup(GROUP_GATE, "w1", {h.keys.intents: ">"})
    msg_id, fields = items[0]
    entry = Entry(stream.decode(), msg_id, fields[DATA], fields, deliveries=6)
    h.worker.process([entry])
    assert h.decision(iid).status is Status.REJECTED
    assert "delivered 6 times" in h.dead()[0]["error"]
    assert h.pending() == 0


def test_halt_when_set_after_snapshot_cached_then_commit_conflicts_and_redecides(
    h: Harness,
) -> None:
    """A halt bumps the version: the worker's cached snapshot is refused and re-read."""
    h.intent(quantity="0.01")
    h.pump()  # the worker now caches version N
    control.halt(h.redis, h.keys)
    opening = h.intent(quantity="0.02")  # not a repeat of the first (duplicate_order)
    h.pump()
    assert h.worker.stats["conflicts"] == 1
    d = h.decision(opening)
    assert (d.status, [r.code.value for r in d.reasons]) == (Status.REJECTED, ["trading_halted"])


def test_phase_activated_event_when_read_then_assets_enabled_live(h: Harness) -> None:
    """phase_activated on the phases stream enables the phase's class and assets."""
    h.raw(
        h.keys.phases,
        {
            DATA: json.dumps(
                {
                    "type": "phase_activated",
                    "phase": "phase_1_stocks",
                    "assets": ["NVDA", "TSLA", "AMD"],
                    "metrics": {},
                    "at": "2026-11-24T00:00:00Z",
                }
            )
        },
    )
    h.pump()
    cfg = h.state().config
    assert cfg.assets["NVDA"].enabled and cfg.asset_classes["stocks"].enabled
    iid = h.intent("NVDA", quantity="10", price="132")
    h.pump()
    codes = [r.code.value for r in h.decision(iid).reasons]
    assert "asset_disabled" not in codes and "class_disabled" not in codes
    assert h.decision(iid).config_hash == cfg.config_hash != h.config.config_hash


def test_reduce_only_when_halted_then_approved(h: Harness) -> None:
    """While halted, reduce-only intents still pass."""
    iid = h.intent(quantity="0.1")
    h.pump()
    h.client.fill(iid, "BTC/USDT", "buy", "0.1", "100000", fill_id="x1")
    h.pump()
    control.halt(h.redis, h.keys)
    red = h.intent(side="sell", quantity="0.1", reduce_only=True)
    h.pump()
    assert h.decision(red).status is Status.APPROVED


def test_plan_when_nothing_decidable_then_no_commit(h: Harness) -> None:
    """An empty read commits nothing and does not bump the version."""
    before = h.state().snapshot.version
    assert h.pump() == 0
    assert h.state().snapshot.version == before


def test_state_when_corrupt_then_nothing_decided(h: Harness) -> None:
    """Fail closed: unreadable state means no decision at all, not a guess."""
    h.redis.hset(h.keys.state, "account", "{not json")
    h.worker.loaded = None
    iid = h.intent()
    with pytest.raises(Exception, match="unreadable"):
        h.worker.step()
    assert h.client.decision(iid) is None
    assert h.pending() == 1


def test_entry_copy_keeps_delivery_count() -> None:
    """Entry is a value object; replace() carries the delivery count."""
    e = Entry("s", b"1-0", b"{}", {}, 1)
    assert replace(e, deliveries=3).deliveries == 3


def test_fresh_worker_when_reservations_overdue_then_still_counted(h: Harness) -> None:
    """A reservation past its order's good_till still counts on a worker that loads it
    fresh: the order may still fill until the executor says how it ended."""
    h.intent(quantity="0.2")  # BTC's whole 20 % max position, reserved
    h.pump()
    later = datetime.now(UTC) + timedelta(hours=1, seconds=1)
    h.worker = GateWorker(
        h.redis,
        h.keys,
        h.config,
        GateSettings(consumer="w2", block_ms=5, verify_exposure=True),
        clock=lambda: later,
    )
    h.mark_arriving(market_prices(), later)
    iid = h.intent(quantity="0.3", created_at=later)
    h.pump()
    d = h.decision(iid)
    assert (d.status, str(d.approved_quantity)) == (Status.REJECTED, "0")
    assert d.reasons[0].code.value == "max_position"


def test_two_workers_when_racing_then_loser_rebases_and_stays_exact(h: Harness) -> None:
    """A lost race reloads, rebases the exposure by identity, and re-decides exactly."""
    other = GateWorker(
        h.redis, h.keys, h.config, GateSettings(consumer="w2", block_ms=5, verify_exposure=True)
    )
    for round_ in range(6):
        for worker in (h.worker, other):
            h.intent(quantity="0.01", agent_id=f"r{round_}")
            h.client.fill(
                "outside",
                "ETH/USDT",
                "buy",
                "0.01",
                "3900",
                fill_id=f"{round_}-{worker.settings.consumer}",
            )
            worker.step()
    assert h.worker.stats["conflicts"] + other.stats["conflicts"] >= 5
    assert len(h.decisions()) == 12
    assert h.pending() == 0


def test_rejection_when_quantity_invalid_then_requested_reported_as_zero(h: Harness) -> None:
    """A rejected unparseable intent never reports a negative requested quantity (the
    audit table refuses those); its reason says what was wrong."""
    h.raw_intent(
        {
            "intent_id": "neg-1",
            "agent_id": "a",
            "symbol": "BTC/USDT",
            "side": "buy",
            "quantity": "-5",
            "price": "1",
            "created_at": "2026-01-01T00:00:00Z",
        }
    )
    h.pump()
    d = h.decision("neg-1")
    assert (d.status, d.requested_quantity, d.approved_quantity) == (Status.REJECTED, 0, 0)
    assert "greater than 0" in d.reasons[0].message


def test_tune_collector_when_called_then_young_generation_set_and_older_kept() -> None:
    """A gate process collects its young generation every YOUNG_GENERATION allocations
    (Python's default is 700); the older generations' thresholds stay as they were."""
    import gc

    from consumers.gate_worker.handle import YOUNG_GENERATION, collector_tuned, tune_collector

    before = gc.get_threshold()
    gc.set_threshold(700, 11, 12)
    try:
        with collector_tuned():  # the bench's: for the block only
            assert gc.get_threshold() == (YOUNG_GENERATION, 11, 12)
        assert gc.get_threshold() == (700, 11, 12)
        assert tune_collector() == (700, 11, 12)
        assert gc.get_threshold() == (YOUNG_GENERATION, 11, 12)
        assert YOUNG_GENERATION > 700
    finally:
        gc.set_threshold(*before)
