"""The SDK's event ids (docs/PROTOCOL.md, "Event ids"): derived from what the event is,
so the same report published twice carries the same id; invalid parts are refused
before anything is published, naming the argument."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import fakeredis
import pytest

from consumers.bus.keys import DATA
from consumers.sdk.client import (
    GateClient,
    cancel_event_id,
    derived_event_id,
    fill_event_id,
    mark_event_id,
    resume_reference,
    token,
)
from gate.ledger import event_window, too_old
from schemas.messages import parse_event

EVENT_ID = re.compile(r"[^\x00-\x1f\x7f\s]{1,128}")  # schemas.messages.EventId
T = datetime(2026, 11, 24, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
def client() -> Iterator[GateClient]:
    redis = fakeredis.FakeRedis()
    yield GateClient(redis=redis, portfolio="ids")
    redis.flushall()


def published(client: GateClient) -> list[dict[str, Any]]:
    return [json.loads(f[DATA]) for _, f in client.redis.xrange(client.keys.events)]


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: fill_event_id("momo-42", "binance-88123"), "fill:momo-42:binance-88123"),
        (lambda: fill_event_id("momo-42", 88123), "fill:momo-42:88123"),
        (lambda: fill_event_id("a:b", "c"), "fill:a:b:c"),  # splits at the last colon
        (lambda: cancel_event_id("momo-42"), "cancel:momo-42"),
        (lambda: derived_event_id("deposit", "TX-2026-0001"), "deposit:TX-2026-0001"),
        (lambda: derived_event_id("resume", "ticket-7"), "resume:ticket-7"),
    ],
)
def test_event_id_when_derived_then_readable_and_deterministic(make: Any, expected: str) -> None:
    """The readable form, the same every time."""
    assert make() == make() == expected


def test_event_id_when_readable_form_over_128_then_kind_and_digest() -> None:
    """A 128-char intent id: ``fill:#`` + 40 hex chars, distinct per fill id, valid."""
    intent = "i" * 128
    one, two = fill_event_id(intent, "1"), fill_event_id(intent, "2")
    assert re.fullmatch(r"fill:#[0-9a-f]{40}", one) and one != two
    assert one == fill_event_id(intent, "1")
    assert re.fullmatch(r"cancel:#[0-9a-f]{40}", cancel_event_id(intent))
    assert all(EVENT_ID.fullmatch(x) for x in (one, two, cancel_event_id(intent)))


@pytest.mark.parametrize(
    ("fill_id", "message"),
    [
        ("", r"fill_id must be a non-empty string, got ''"),
        (None, r"fill_id must be a non-empty string, got None"),
        ("a b", r"fill_id must be 1-128 characters, no spaces or control characters, no ':'"),
        ("a:b", r"no ':': 'a:b'"),
        ("a\nb", r"fill_id must be 1-128 characters"),
        ("x" * 129, r"fill_id must be 1-128 characters"),
        (True, r"fill_id must be a non-empty string, got True"),
    ],
)
def test_fill_id_when_invalid_then_value_error_naming_it(fill_id: Any, message: str) -> None:
    """Empty, spaces, control characters, a colon or over 128 chars: refused by name."""
    with pytest.raises(ValueError, match=message):
        fill_event_id("momo-42", fill_id)


def test_fill_when_no_fill_id_then_value_error_and_nothing_published(client: GateClient) -> None:
    """fill() without fill_id (and without event_id) publishes nothing."""
    with pytest.raises(ValueError, match="fill_id is required"):
        client.fill("momo-42", "BTC/USDT", "buy", "0.1", "100000")
    with pytest.raises(ValueError, match="fill_id must be"):
        client.fill("momo-42", "BTC/USDT", "buy", "0.1", "100000", fill_id="two words")
    with pytest.raises(ValueError, match="intent_id must be 1-128 chars"):
        client.fill("momo 42", "BTC/USDT", "buy", "0.1", "100000", fill_id="1")
    assert published(client) == []


def test_fill_when_called_twice_then_same_event_id_and_both_parse(client: GateClient) -> None:
    """A retried fill() (stamped anew) carries the same id: the gate applies it once."""
    ids = [client.fill("momo-42", "BTC/USDT", "buy", "0.1", "100000", fill_id=7) for _ in "ab"]
    assert ids == ["fill:momo-42:7"] * 2
    events = [parse_event(json.dumps(p)) for p in published(client)]
    assert [e.event_id for e in events] == ids
    assert all(e.at is not None for e in events)


def test_deposit_when_no_reference_then_value_error_and_nothing_published(
    client: GateClient,
) -> None:
    """deposit() needs a reference (or an explicit event_id)."""
    with pytest.raises(ValueError, match="reference is required"):
        client.deposit("1000")
    with pytest.raises(ValueError, match="reference must be 1-128 characters"):
        client.deposit("1000", reference="bank transfer")
    assert published(client) == []


def test_every_event_when_published_then_at_stamped_and_id_derived(client: GateClient) -> None:
    """Each event the SDK writes carries ``at`` (UTC) and its derived id, and parses."""
    client.deposit("1000", reference="TX-1")
    client.cancel("momo-42")
    client.resume("alice", "reviewed", reference="ticket-7")
    client.mark({"BTC/USDT": "100000"}, at=T)
    client.fill("momo-42", "BTC/USDT", "buy", "0.1", "100000", fill_id="e1", at=T)
    events = [parse_event(json.dumps(p)) for p in published(client)]
    assert [e.event_id for e in events] == [
        "deposit:TX-1",
        "cancel:momo-42",
        "resume:ticket-7",
        mark_event_id(T.isoformat(), {"BTC/USDT": "100000"}, {}),
        "fill:momo-42:e1",
    ]
    assert all(e.at is not None and e.at.tzinfo is not None for e in events)


def test_explicit_event_id_when_given_then_overrides_and_is_validated(client: GateClient) -> None:
    """event_id= wins over the derived id; a malformed one is refused before publishing."""
    assert client.deposit("5", event_id="legacy-1") == "legacy-1"
    assert client.fill("i1", "BTC/USDT", "buy", "1", "1", event_id="venue-9") == "venue-9"
    with pytest.raises(ValueError, match="event_id must be 1-128 characters"):
        client.cancel("i1", event_id="has space")
    assert [p["event_id"] for p in published(client)] == ["legacy-1", "venue-9"]


def test_mark_id_when_same_time_other_prices_then_differs() -> None:
    """Two marks at one time with different prices are two events; the same prices
    written differently (100000 and 100000.00) are one."""
    at = T.isoformat()
    a = mark_event_id(at, {"BTC/USDT": "100000"}, {})
    assert a == mark_event_id(at, {"BTC/USDT": "100000.00"}, {})
    assert a != mark_event_id(at, {"ETH/USDT": "3900"}, {})
    assert a != mark_event_id(at, {"BTC/USDT": "100000"}, {"JPY": "0.0067"})
    assert re.fullmatch(r"mark:2026-11-24T12:00:00\.123456\+00:00:[0-9a-f]{16}", a)


def test_mark_when_at_not_utc_then_stamped_and_identified_in_utc(client: GateClient) -> None:
    """The same instant in another zone (or naive, taken as UTC) is the same mark."""
    cet = T.astimezone(timezone(timedelta(hours=1)))
    ids = {client.mark({"BTC/USDT": "1"}, at=when) for when in (T, cet, T.replace(tzinfo=None))}
    assert len(ids) == 1
    assert {p["at"] for p in published(client)} == {T.isoformat()}


def test_resume_when_no_reference_then_value_error(client: GateClient) -> None:
    """resume() needs what it clears named."""
    with pytest.raises(ValueError, match="reference is required"):
        client.resume("alice", "reviewed")
    assert published(client) == []


def test_resume_reference_when_same_latches_then_same_else_different() -> None:
    """The CLI's reference: the latches it clears, in any order; a new latch, a new one."""
    first = ["emergency stop latched 2026-11-24T12:00:00+00:00 at 0.28", "halt by event f1"]
    assert resume_reference(first) == resume_reference(reversed(first))
    later = ["emergency stop latched 2026-11-25T09:00:00+00:00 at 0.26"]
    assert resume_reference(first) != resume_reference(later)
    assert re.fullmatch(r"latches-[0-9a-f]{24}", resume_reference(later))
    assert token("reference", resume_reference(later))


# -- the gate's staleness refusal (gate.ledger, pure) ---------------------------------------


@pytest.mark.parametrize(
    ("ttl_s", "skew_s", "window"),
    [
        (7 * 86400, 5, timedelta(days=7) - timedelta(hours=1)),  # the default
        (2 * 3600, 300, timedelta(hours=1)),
        (3600, 5, timedelta(minutes=30)),  # under two hours: half the TTL is the margin
        (4, 1, timedelta(seconds=2)),
    ],
)
def test_event_window_when_ttl_given_then_ttl_less_its_margin(
    ttl_s: int, skew_s: int, window: timedelta
) -> None:
    """The TTL less an hour, or less half of it when it is under two hours."""
    assert event_window(ttl_s, skew_s) == window


@pytest.mark.parametrize(("ttl_s", "skew_s"), [(10, 5), (0, 0), (600, 300)])
def test_event_window_when_margin_not_above_the_skew_then_value_error(
    ttl_s: int, skew_s: int
) -> None:
    """A margin no larger than the clock skew could let a marker expire first."""
    with pytest.raises(ValueError, match=f"a dedupe TTL of {ttl_s}s leaves no safe window"):
        event_window(ttl_s, skew_s)


WINDOW = timedelta(days=6, hours=23)


def _fill(at: datetime | None) -> Any:
    return parse_event(
        json.dumps(
            {"type": "fill", "event_id": "fill:i:1", "intent_id": "i", "symbol": "BTC/USDT",
             "side": "buy", "quantity": "1", "price": "1",
             **({} if at is None else {"at": at.isoformat()})}
        )
    )  # fmt: skip


@pytest.mark.parametrize(
    ("age", "received_age", "refused"),
    [
        (WINDOW, None, False),  # exactly the window: still applied
        (WINDOW + timedelta(microseconds=1), None, True),
        (timedelta(0), None, False),
        (None, None, False),  # no ``at`` and no arrival time: nothing to judge
        (None, WINDOW, False),
        (None, WINDOW + timedelta(seconds=1), True),  # no ``at``: judged by its arrival
        (timedelta(0), WINDOW + timedelta(seconds=1), False),  # ``at`` wins over arrival
    ],
)
def test_too_old_when_dated_before_the_window_then_refused(
    age: timedelta | None, received_age: timedelta | None, refused: bool
) -> None:
    """Older than the window before the reference: a reason; else None."""
    ev = _fill(None if age is None else T - age)
    received = None if received_age is None else T - received_age
    why = too_old(ev, T, WINDOW, received=received)
    assert (why is not None) is refused
    if why is not None:
        assert why.startswith("fill fill:i:1 is ")
        assert f"before its stream id ({T.isoformat()})" in why
        assert "events more than 601200s old" in why
