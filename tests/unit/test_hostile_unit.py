"""Fast checks of the hostile-input guards: shape before parse, ids, names, PG parsing."""

from __future__ import annotations

import pytest

from consumers.bus.runtime import default_consumer_name
from consumers.bus.streams import Entry, entry_of
from consumers.db.audit import Reject, parse_decision, parse_entry
from schemas.messages import (
    MAX_ENTRY_BYTES,
    MessageError,
    check_shape,
    is_intent_id,
    parse_event,
    parse_json,
)


@pytest.mark.parametrize(
    ("raw", "ok"),
    [
        (b"[" * 32 + b"]" * 32, True),
        (b"[" * 33 + b"]" * 33, False),
        (b'{"a": "' + b"[" * 5000 + b'"}', True),  # brackets inside a string
        (b'{"a": "\\"' + b"[" * 40 + b'"}', True),  # an escaped quote does not end it
        (b"[" * 100_000, False),
        (b" " * (MAX_ENTRY_BYTES + 1), False),
    ],
)
def test_check_shape_when_depth_or_size_varies_then_bounded_before_parse(
    raw: bytes, ok: bool
) -> None:
    """Depth over 32 or size over the limit is refused without a parse."""
    if ok:
        assert check_shape(raw) == raw
    else:
        with pytest.raises(MessageError):
            check_shape(raw)


def test_parse_json_when_not_utf8_then_message_error() -> None:
    """Bytes that are not UTF-8 (UTF-16 included) are refused, as the protocol says."""
    for raw in (b"\xff\xfe{\x00}\x00", '{"a": 1.5}'.encode("utf-16")):
        with pytest.raises(MessageError):
            parse_json(raw)


@pytest.mark.parametrize(("value", "ok"), [("abc", True), ("abc\n", False), ("a b", False)])
def test_is_intent_id_when_trailing_newline_then_refused(value: str, ok: bool) -> None:
    """Python's $ matches before a final newline; the id check does not."""
    assert is_intent_id(value) is ok


def test_default_consumer_name_when_called_twice_then_differs() -> None:
    """A restarted container (same host, same pid) never reuses the last name."""
    a, b = default_consumer_name(), default_consumer_name()
    assert a != b and a.rsplit("-", 1)[0] == b.rsplit("-", 1)[0]


def test_parse_entry_when_nested_2000_deep_then_reject_not_exception() -> None:
    """The PostgreSQL consumers' parser never raises, whatever the bytes."""
    raw = b'{"type": "deposit", "x": ' + b"[" * 2000 + b"1.5" + b"]" * 2000 + b"}"
    got = parse_entry(Entry("s", b"1-0", raw, {b"data": raw}), parse_event, "an event")
    assert isinstance(got, Reject) and "nested deeper" in got.error

    def boom(raw: bytes) -> object:
        raise RecursionError("deep")

    got = parse_entry(Entry("s", b"1-0", b"{}", {b"data": b"{}"}), boom, "x")
    assert isinstance(got, Reject) and "RecursionError" in got.error


def test_entry_of_when_oversize_then_payload_dropped_head_kept() -> None:
    """An oversize entry keeps its size and first 4 KiB, never the payload."""
    e = entry_of("s", b"1-0", {b"data": b"x" * (MAX_ENTRY_BYTES + 1)})
    assert (e.raw, e.fields, e.oversize, len(e.head)) == (None, {}, MAX_ENTRY_BYTES + 5, 4096)
    got = parse_entry(e, parse_event, "an event")
    assert isinstance(got, Reject) and "over the" in got.error


def test_parse_decision_when_reuse_notice_then_reject() -> None:
    """The audit writer records a reuse notice as a reject, never as the decision."""
    raw = (
        b'{"intent_id": "x", "agent_id": "a", "symbol": "BTC/USDT", "side": "buy",'
        b' "status": "rejected", "requested_quantity": "1", "approved_quantity": "0",'
        b' "stop_price": null, "reasons": [{"code": "intent_id_reused", "message": "m",'
        b' "value": "5-0"}], "checks": {"original_decision": "5-0"},'
        b' "decided_at": "2026-01-01T00:00:00Z", "config_hash": "h"}'
    )
    got = parse_decision(Entry("d", b"9-0", raw, {b"data": raw}))
    assert isinstance(got, Reject) and "5-0" in got.error
