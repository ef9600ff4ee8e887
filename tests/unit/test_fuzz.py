"""Fuzzing: whatever arrives, only a validation error comes out (never a crash).

The limit properties of decide() live in test_properties; here the inputs are
hostile: arbitrary bytes, JSON of the wrong shapes, mutated config files.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from consumers.bus.streams import Entry
from consumers.gate_worker.intake import sort_entries
from gate.decide import decide_batch
from schemas.config import ConfigError, parse_config
from schemas.messages import (
    MessageError,
    Status,
    TradeIntent,
    _exact_json_path,
    parse_event,
    parse_intent,
)
from tests.builders import CONFIG_PATH, NOW, all_enabled, snapshot

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
GOOD = {
    "intent_id": "f-1", "agent_id": "a", "symbol": "BTC/USDT", "side": "buy",
    "quantity": "0.1", "price": "100000", "created_at": "2026-11-24T12:00:00Z",
}  # fmt: skip

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=30)
    | st.floats(allow_nan=False, allow_infinity=False)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
numberish = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
    st.sampled_from(["NaN", "Infinity", "-0", "1e999999", "0x10", "", " 1 ", "1_000"]),
)


def _parses_or_refuses(raw: bytes | str) -> None:
    with contextlib.suppress(MessageError, ValidationError):
        parse_intent(raw)


@FUZZ
@given(st.binary(max_size=300))
def test_parse_intent_when_arbitrary_bytes_then_only_validation_errors(raw: bytes) -> None:
    """Random bytes: parsed or refused with MessageError/ValidationError, nothing else."""
    _parses_or_refuses(raw)


@FUZZ
@given(json_values)
def test_parse_intent_when_any_json_then_only_validation_errors(value: object) -> None:
    """Any JSON document at all."""
    _parses_or_refuses(json.dumps(value))


@FUZZ
@given(st.sampled_from(sorted(GOOD)), json_values | numberish)
def test_parse_intent_when_one_field_replaced_then_only_validation_errors(
    field: str, value: object
) -> None:
    """A good intent with one field set to anything: still only validation errors."""
    _parses_or_refuses(json.dumps({**GOOD, field: value}))


@FUZZ
@given(st.sampled_from(["quantity", "price", "stop_price", "take_profit"]), numberish)
def test_parse_intent_when_numbers_strange_then_exact_or_refused(field: str, value: object) -> None:
    """Strange numbers are refused, or read exactly as written: never via a binary float."""
    text = json.dumps({**GOOD, field: value})  # a float is written as its repr
    try:
        intent = parse_intent(text)
    except (MessageError, ValidationError):
        return
    got = getattr(intent, field)
    assert isinstance(got, Decimal) and got.is_finite() and got > 0
    written = repr(value) if isinstance(value, float) else str(value)
    assert got == Decimal(written)


def _anywhere(value: object, found: Callable[[object], bool]) -> bool:
    if isinstance(value, dict):
        return any(_anywhere(v, found) for v in value.values())
    if isinstance(value, list):
        return any(_anywhere(v, found) for v in value)
    return found(value)


@FUZZ
@given(json_values | st.dictionaries(st.text(max_size=10), numberish | json_values, max_size=6))
def test_exact_json_path_when_any_json_then_fast_only_without_fractional_numbers(
    value: object,
) -> None:
    """The fast parser (numbers through binary floats) is taken only when no number in
    an object or array has a fraction or exponent (a bare number is refused either way:
    not an object); an object without any always takes it."""
    raw = json.dumps(value).encode()
    fractional = _anywhere(json.loads(raw, parse_float=Decimal), lambda v: isinstance(v, Decimal))
    fast = _exact_json_path(raw) is not None
    assert not (fast and fractional and isinstance(value, dict | list))
    if isinstance(value, dict) and not fractional and "\\ud" not in raw.decode():
        big = _anywhere(value, lambda v: isinstance(v, int) and abs(v) >= 2**63)
        assert fast or big  # orjson reads integers past 64 bits as floats: the slow path


@FUZZ
@given(
    json_values
    | st.fixed_dictionaries(
        {"type": st.sampled_from(["deposit", "fill", "cancel", "mark", "x"])},
        optional={
            "event_id": json_values,
            "amount": numberish,
            "prices": json_values,
            "at": json_values,
            "fx": json_values,
            "quantity": numberish,
        },
    )
)
def test_parse_event_when_any_json_then_only_validation_errors(value: object) -> None:
    """Portfolio events of any shape."""
    with contextlib.suppress(MessageError, ValidationError):
        parse_event(json.dumps(value))


@FUZZ
@given(
    st.lists(
        st.tuples(st.sampled_from(["i", "e"]), st.binary(max_size=200) | st.none()), max_size=12
    )
)
def test_sort_entries_when_garbage_then_every_entry_lands_somewhere(
    raw: list[tuple[str, bytes | None]],
) -> None:
    """Intake never raises, and every entry ends up parsed, repeated or bad."""
    entries = [
        Entry(
            "p:intents" if kind == "i" else "p:events",
            f"{n}-0".encode(),
            data,
            {b"data": data} if data is not None else {},
        )
        for n, (kind, data) in enumerate(raw)
    ]
    out = sort_entries(entries, "p:intents")
    placed = (
        len(out.intents)
        + len(out.events)
        + len(out.bad_intents)
        + len(out.bad_events)
        + len(out.repeats_intents)
        + len(out.repeats_events)
        + len(out.later)
    )
    assert placed == len(entries)


CONFIG_TEXT = CONFIG_PATH.read_text()
CONFIG_LINES = CONFIG_TEXT.splitlines()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(CONFIG_LINES) - 1), st.text(max_size=40))
def test_parse_config_when_a_line_is_replaced_then_config_or_config_error(
    line: int, replacement: str
) -> None:
    """A config file with any one line replaced loads or fails with ConfigError."""
    lines = list(CONFIG_LINES)
    lines[line] = replacement
    try:
        parse_config("\n".join(lines), "fuzz.yaml")
    except ConfigError as exc:
        assert str(exc).startswith("fuzz.yaml")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(CONFIG_TEXT) - 1), st.integers(1, 40), st.text(max_size=20))
def test_parse_config_when_bytes_spliced_then_config_or_config_error(
    at: int, cut: int, insert: str
) -> None:
    """Any splice into the file's text: loads or fails with ConfigError."""
    with contextlib.suppress(ConfigError):
        parse_config(CONFIG_TEXT[:at] + insert + CONFIG_TEXT[at + cut :], "fuzz.yaml")


decimals = st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal("1e12"), places=8)


@FUZZ
@given(
    st.sampled_from([*sorted(all_enabled().assets), "NOPE/USD"]),
    st.sampled_from(["buy", "sell"]),
    decimals,
    decimals,
    st.none() | decimals,
    st.booleans(),
    st.decimals(min_value=-100000, max_value=10**12, places=2),
    st.integers(-400, 400),
)
def test_decide_when_any_valid_intent_then_a_decision_never_an_exception(
    symbol: str,
    side: str,
    qty: Decimal,
    price: Decimal,
    stop: Decimal | None,
    reduce_only: bool,
    cash: Decimal,
    age: int,
) -> None:
    """Any parseable intent against any cash level gets a decision, and a rejection is 0."""
    intent = TradeIntent.model_validate(
        {
            **GOOD,
            "symbol": symbol,
            "side": side,
            "quantity": qty,
            "price": price,
            "stop_price": stop,
            "reduce_only": reduce_only,
            "created_at": NOW - timedelta(seconds=age),
        }
    )
    (d,) = decide_batch([intent], snapshot(cash), all_enabled(), NOW).decisions
    assert d.approved_quantity <= intent.quantity
    if d.status is Status.REJECTED:
        assert d.approved_quantity == 0 and d.reasons
    json.loads(d.model_dump_json())


nesting = st.builds(
    lambda opens, leaf, tail: opens + leaf + tail,
    st.text(alphabet="[{", min_size=0, max_size=3000),
    st.sampled_from(["1.5", '"a"', "", "1", '"x": 1']),
    st.text(alphabet="]}", max_size=3000),
)


@FUZZ
@given(nesting, st.sampled_from(["i", "e"]), st.integers(1, 9))
def test_sort_entries_when_nested_or_capped_then_never_raises_and_one_outcome_each(
    body: str, kind: str, deliveries: int
) -> None:
    """Any nesting (RecursionError bait), any delivery count: one outcome, no exception."""
    raw = ('{"intent_id": "n-1", "x": ' + body + "}").encode()
    stream = "p:intents" if kind == "i" else "p:events"
    entry = Entry(stream, b"1-0", raw, {b"data": raw}, deliveries)
    out = sort_entries([entry], "p:intents", max_deliveries=5)
    bad = out.bad_intents + out.bad_events
    assert len(bad) == 1  # never a valid intent or event
    if deliveries > 5:
        assert bad[0].error.startswith("delivered")
