"""The hot path's own JSON writers write what pydantic (or the stdlib) would.

``decision_json`` replaces ``Decision.model_dump_json`` on the gate's hot path: agents,
the audit writer and the golden test read those bytes, so they must be the same bytes,
for every kind of decision and for the awkward values (unicode, escapes, times with
microseconds or other offsets, values only pydantic knows how to write).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.bench import pure
from consumers.state import codec
from consumers.state.codec import encode_approvals
from gate.decide import decide_batch
from schemas.messages import (
    Decision,
    Reason,
    ReasonCode,
    Side,
    Status,
    TradeIntent,
    _canonical_decimal,
    decision_json,
    intent_digest,
)

D = Decimal


@pytest.fixture(scope="module")
def decided() -> list[Decision]:
    cfg = pure.config()
    out: list[Decision] = []
    for name in ("approved", "resized", "rejected_limit", "rejected_gate"):
        case = pure.cases(cfg, 64)[name]()
        got = decide_batch(case.intents, case.snapshot, cfg, pure.NOW, exposure=case.exposure)
        out += got.decisions
    return out


def test_decision_json_when_gate_decisions_then_same_text_as_pydantic(
    decided: list[Decision],
) -> None:
    statuses = {d.status for d in decided}
    assert statuses == {Status.APPROVED, Status.RESIZED, Status.REJECTED}
    assert any(d.reasons for d in decided)
    for d in decided:
        assert decision_json(d) == d.model_dump_json()


def _decision(**over: object) -> Decision:
    fields: dict[str, object] = {
        "intent_id": "i-1",
        "agent_id": "agent",
        "symbol": "BTC/USDT",
        "side": Side.BUY,
        "status": Status.RESIZED,
        "requested_quantity": D("0.50"),
        "approved_quantity": D("1E-8"),
        "stop_price": None,
        "reasons": (Reason(code=ReasonCode.LOT_SIZE, message="m", value="1", limit=None),),
        "checks": {"equity": "100", "halted": False, "n": 3, "with": ["ETH/USDT"], "x": None},
        "decided_at": datetime(2026, 11, 24, 12, 0, 0, 120, tzinfo=UTC),
        "config_hash": "0123456789abcdef",
        "price": D("60000.000"),
        "take_profit": None,
        "reduce_only": True,
    }
    fields.update(over)
    return Decision.model_validate(fields)


@pytest.mark.parametrize(
    "over",
    [
        {},
        {"side": None, "status": Status.REJECTED, "approved_quantity": D(0)},
        {"decided_at": datetime(2026, 11, 24, 12, 0, tzinfo=UTC)},
        {"decided_at": datetime(2026, 11, 24, 12, 0, 0, 999999, tzinfo=UTC)},
        {"decided_at": datetime(2026, 11, 24, 12, 0, tzinfo=timezone(timedelta(hours=-5)))},
        {"agent_id": 'ägent "quoted" \\ back/slash \u2028 \U0001f600'},
        {"reasons": (), "stop_price": D("-0.0"), "take_profit": D("123456789012345.5")},
    ],
)
def test_decision_json_when_awkward_values_then_same_text_as_pydantic(
    over: dict[str, object],
) -> None:
    d = _decision(**over)
    assert decision_json(d) == d.model_dump_json()


def test_decision_json_when_checks_hold_what_only_pydantic_writes_then_pydantic_writes_it() -> None:
    # a Decimal in checks (the gate puts none there) and a lone surrogate (orjson refuses)
    for over in ({"checks": {"v": D("1.5")}}, {"agent_id": "a\udc80b"}):
        d = _decision(**over)
        try:
            expected = d.model_dump_json()
        except Exception as exc:  # pydantic refuses too: the same error reaches the caller
            with pytest.raises(type(exc)):
                decision_json(d)
            continue
        assert decision_json(d) == expected


@settings(max_examples=300, deadline=None)
@given(
    agent=st.text(min_size=1, max_size=40),
    message=st.text(max_size=80),
    digits=st.integers(1, 10**14 - 1),
    places=st.integers(0, 18),
    micro=st.integers(0, 999_999),
)
def test_decision_json_when_any_text_and_number_then_same_text_as_pydantic(
    agent: str, message: str, digits: int, places: int, micro: int
) -> None:
    qty = D(digits).scaleb(-places)
    d = _decision(
        agent_id=agent,
        requested_quantity=qty,
        reasons=(Reason(code=ReasonCode.MAX_POSITION, message=message),),
        decided_at=datetime(2026, 1, 2, 3, 4, 5, micro, tzinfo=UTC),
    )
    try:
        expected = d.model_dump_json()
    except Exception:
        return  # pydantic cannot write it either (a lone surrogate)
    got = decision_json(d)
    assert got == expected
    assert json.loads(got)["agent_id"] == agent


def _digest_as_before(intent: TradeIntent) -> str:
    """intent_digest as it was written before orjson: the stdlib's ASCII text."""
    fields = [
        intent.intent_id,
        intent.agent_id,
        intent.symbol,
        intent.side.value,
        _canonical_decimal(intent.quantity),
        _canonical_decimal(intent.price),
        _canonical_decimal(intent.stop_price),
        _canonical_decimal(intent.take_profit),
        intent.reduce_only,
    ]
    text = json.dumps(fields, separators=(",", ":"), ensure_ascii=True)
    return "c" + hashlib.sha256(text.encode()).hexdigest()[:31]


@settings(max_examples=400, deadline=None)
@given(
    agent=st.text(min_size=1, max_size=30),  # any text: controls, DEL, quotes, unicode
    symbol=st.sampled_from(["BTC/USDT", "NVDA", 'we"ird\\', "é/€", "A\x7fB", "lone\udc80"]),
    stop=st.none() | st.integers(1, 10**6).map(lambda n: D(n).scaleb(-3)),
    reduce_only=st.booleans(),
)
def test_intent_digest_when_any_text_then_same_digest_as_the_stdlib_text(
    agent: str, symbol: str, stop: Decimal | None, reduce_only: bool
) -> None:
    # stored digests outlive an upgrade (decided markers): the digest must not change
    intent = TradeIntent.model_construct(
        intent_id="i-1",
        agent_id=agent,
        symbol=symbol,
        side=Side.SELL,
        quantity=D("1.50"),
        price=D("100"),
        stop_price=stop,
        take_profit=None,
        reduce_only=reduce_only,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    try:
        expected = _digest_as_before(intent)
    except UnicodeEncodeError:
        return
    assert intent_digest(intent) == expected


def test_encode_approvals_when_entries_repeat_then_each_written_as_its_own_text() -> None:
    """The memory's text is what the compact JSON of its entries was, entry by entry,
    whether an entry was met before or not, and equal entries in other notations keep
    their own notation (the identity cache never hands one the other's text)."""
    t = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    a = (Side.BUY, D("0.10"), t)
    b = (Side.BUY, D("0.1"), t.astimezone(timezone(timedelta(hours=2))))  # equal to a
    c = (Side.SELL, D("2E+1"), t)
    for entries in ((a,), (a, c), (b, a, c), (b,), (c, b)):
        expected = json.dumps(
            [[s.value, str(q), at.isoformat()] for s, q, at in entries],
            separators=(",", ":"),
        )
        assert encode_approvals(entries) == expected
    assert encode_approvals((b,)) != encode_approvals((a,))


def test_encode_approvals_when_the_cache_fills_then_it_starts_over() -> None:
    t = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    many = [(Side.BUY, D(n), t) for n in range(codec.ENTRY_TEXTS_MAX + 10)]
    for e in many:
        encode_approvals((e,))
    assert len(codec._ENTRY_TEXTS) <= codec.ENTRY_TEXTS_MAX
    assert encode_approvals((many[0],)) == f'[["buy","0","{t.isoformat()}"]]'


_ANY_DECIMAL = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True),
    st.builds(
        lambda digits, exponent, negative: Decimal((negative, digits, exponent)),
        st.lists(st.integers(0, 9), min_size=1, max_size=30).map(tuple),
        st.integers(-40, 40),
        st.integers(0, 1),
    ),
)


@given(_ANY_DECIMAL)
def test_decimal_text_when_any_decimal_then_what_format_f_writes(value: Decimal) -> None:
    """The wire's decimal text takes ``str()`` where it writes the same digits: held equal
    to ``format(value, "f")`` for every decimal (exponents either way, zeros with
    exponents, negative zero, NaN and infinities); ``plain`` likewise to its old text."""
    from gate.money import plain
    from schemas.messages import decimal_text

    assert decimal_text(value) == format(value, "f")
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    assert plain(value) == (text or "0")
