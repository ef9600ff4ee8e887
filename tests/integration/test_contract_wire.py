"""The schemas in docs/schema describe the wire as it is: every entry a real gate and the
SDK write on a real Redis (intents, decisions, signed orders, cancel requests, every
kind of event, dead letters, phase events) validates against its schema, and what the
gate refuses does not."""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime
from functools import cache
from typing import Any

import jsonschema
import pytest
from redis import Redis

from consumers.bus.keys import DATA
from consumers.bus.signing import ENV_KEYS, order_signer
from consumers.state import control
from schemas.messages import PhaseEvent
from tests.builders import ROOT, base_config
from tests.harness import Harness

SCHEMAS = ROOT / "docs" / "schema"


@cache
def validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{name}.json").read_text())
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def entries(redis: Redis, stream: str) -> list[dict[str, Any]]:
    return [json.loads(f[DATA]) for _, f in redis.xrange(stream)]


def problems(name: str, message: dict[str, Any]) -> list[str]:
    return [e.message for e in validator(name).iter_errors(message)]


EVENT_SCHEMA = {
    "deposit": "Deposit", "fill": "Fill", "cancel": "Cancel", "expired": "Expired",
    "mark": "Mark", "resume": "Resume", "release": "Release",
}  # fmt: skip


def test_wire_when_a_gate_runs_then_every_entry_matches_its_schema(
    redis: Redis, portfolio: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A session of every message kind, each entry checked against its JSON Schema."""
    key = base64.b64encode(os.urandom(32)).decode()
    monkeypatch.setenv(ENV_KEYS, f"k1:{key}")  # signed orders and cancel requests
    h = Harness(redis, portfolio)
    h.fund()
    approved = h.intent(quantity="0.1")
    h.intent(quantity="3")  # resized
    h.intent("NVDA", quantity="1", price="132")  # rejected: not enabled
    h.intent(quantity="0.1", price="100000", reduce_only=True, stop_price="94000")
    h.raw_intent({"intent_id": "bad-1", "quantity": "-1"})  # a dead letter and a rejection
    h.pump()
    h.client.fill(approved, "BTC/USDT", "buy", "0.05", "100000", fill_id="t1", fee="1.5")
    h.client.expired(approved)
    h.client.release("nothing-open", "ann", "drill")
    h.client.resume("ann", "drill", reference="r1")
    h.client.mark({"BTC/USDT": "100100"}, fx={"JPY": "0.0066"})
    h.pump()
    control.halt(redis, h.keys)
    asked = control.cancel_open(
        redis, h.keys, base_config(), order_signer(h.keys), operator="ann", reason="drill"
    )
    assert asked  # the resized order's reservation is open
    h.client.cancel(asked[0])
    h.pump()

    intents = entries(redis, h.keys.intents)
    decisions = entries(redis, h.keys.decisions)
    orders = entries(redis, h.keys.orders)
    events = entries(redis, h.keys.events)
    dead = entries(redis, h.keys.deadletter)
    assert len(decisions) == 5 and {d["status"] for d in decisions} == {
        "approved", "resized", "rejected"
    }  # fmt: skip
    assert {o.get("action", "place") for o in orders} == {"place", "cancel"}
    assert all("signature" in o for o in orders)
    assert set(EVENT_SCHEMA) == {e["type"] for e in events}
    assert dead
    for intent in intents:
        if intent.get("intent_id") != "bad-1":
            assert problems("TradeIntent", intent) == [], intent
    for decision in decisions:
        assert problems("Decision", decision) == [], decision
    for order in orders:
        name = "CancelRequest" if order.get("action") == "cancel" else "ApprovedOrder"
        assert problems(name, order) == [], order
    for event in events:
        assert problems(EVENT_SCHEMA[event["type"]], event) == [], event
        assert problems("PortfolioEvent", event) == [], event
    for letter in dead:
        assert problems("DeadLetter", letter) == [], letter
    phase = PhaseEvent(
        type="phase_ready",
        phase="phase_1_stocks",
        assets=("NVDA",),
        metrics={"sharpe_ratio": "1.9"},
        at=datetime.now(UTC),
    )  # fmt: skip  (as the phase monitor writes it: model_dump_json)
    assert problems("PhaseEvent", json.loads(phase.model_dump_json())) == []


@pytest.mark.parametrize(
    ("name", "message", "field"),
    [
        ("TradeIntent", {"quantity": "-1"}, "quantity"),
        ("TradeIntent", {"price": "abc"}, "price"),
        ("TradeIntent", {"side": "hold"}, "side"),
        ("TradeIntent", {"intent_id": "has space"}, "intent_id"),
        ("TradeIntent", {"extra": 1}, "extra"),
        ("Fill", {"fee": "-0.1"}, "fee"),
        ("Mark", {"prices": {"BTC/USDT": 0}}, "prices"),
    ],
)
def test_schema_when_a_message_is_one_the_gate_refuses_then_invalid(
    name: str, message: dict[str, Any], field: str
) -> None:
    """The schemas are as strict as the models on the points an author gets wrong."""
    base = {
        "TradeIntent": {
            "intent_id": "a-1", "agent_id": "momo", "symbol": "BTC/USDT", "side": "buy",
            "quantity": "0.1", "price": "100000", "created_at": "2026-12-01T00:00:00Z",
        },
        "Fill": {
            "type": "fill", "event_id": "fill:a-1:t1", "intent_id": "a-1", "symbol": "BTC/USDT",
            "side": "buy", "quantity": "0.1", "price": "100000",
        },
        "Mark": {
            "type": "mark", "event_id": "m1", "prices": {"BTC/USDT": "1"},
            "at": "2026-12-01T00:00:00Z",
        },
    }[name]  # fmt: skip
    assert problems(name, base) == []
    found = list(validator(name).iter_errors({**base, **message}))
    assert found
    assert all(field in [*map(str, e.absolute_path), e.message] or field in e.message
               for e in found)  # fmt: skip
