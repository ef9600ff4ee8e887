"""Order signatures: canonical form, key parsing, rotation, and every way to be refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumers.bus.keys import Keys
from consumers.bus.signing import (
    ENV_KEYS,
    ENV_KEYS_FILE,
    KeyConfigError,
    OrderSignatureError,
    Signer,
    SigningKey,
    canonical,
    keys_from_env,
    order_signer,
    parse_keys,
    signed_order_json,
    unsigned,
    verified_order,
)

SECRET_1 = bytes(range(32))
SECRET_2 = bytes(range(100, 140))
B64_1 = base64.b64encode(SECRET_1).decode()
B64_2 = base64.urlsafe_b64encode(SECRET_2).decode().rstrip("=")
CONTEXT = "riskgate:{main}:orders"

ORDER: dict[str, Any] = {
    "intent_id": "momo-42",
    "agent_id": "momo",
    "symbol": "BTC/USDT",
    "side": "buy",
    "quantity": "0.2",
    "price": "100000",
    "stop_price": "94000.00",
    "take_profit": None,
    "reduce_only": False,
    "status": "resized",
    "decided_at": "2026-11-24T12:00:00.004Z",
    "expires_at": "2026-11-24T13:00:00.004Z",
    "config_hash": "0795815fdfee99b6",
}


def signer(*keys: tuple[str, bytes], context: str = CONTEXT) -> Signer:
    return Signer([SigningKey(i, s) for i, s in keys], context)


def test_sign_when_keys_then_hmac_over_domain_context_and_sorted_compact_json() -> None:
    """The signature is HMAC-SHA256(key, domain \\n context \\n canonical JSON), in hex."""
    signed = signer(("k1", SECRET_1)).sign(ORDER)
    body = json.dumps(ORDER, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    message = b"riskgate-order-v1\n" + CONTEXT.encode() + b"\n" + body.encode()
    assert signed["key_id"] == "k1"
    assert signed["signature"] == hmac.new(SECRET_1, message, hashlib.sha256).hexdigest()
    assert unsigned(signed) == ORDER


def test_canonical_when_fields_reordered_or_resigned_then_same_bytes() -> None:
    """Field order and existing signature fields do not change the canonical form."""
    shuffled = dict(reversed(list(ORDER.items()))) | {"key_id": "x", "signature": "y"}
    assert canonical(shuffled) == canonical(ORDER)


def test_canonical_when_non_ascii_text_then_raw_utf8_as_in_rfc8785() -> None:
    """Strings are written as UTF-8, not \\u escapes, so other languages can match (JCS)."""
    assert canonical({"agent_id": "zoë"}) == '{"agent_id":"zoë"}'.encode()


@pytest.mark.parametrize(
    "value",
    [1.5, Decimal("1.5"), 2**53, {1: "x"}, {"é": "x"}, [object()]],
    ids=["float", "decimal", "big-int", "int-key", "non-ascii-key", "object"],
)
def test_sign_when_value_has_no_canonical_form_then_type_error(value: Any) -> None:
    """Floats, Decimals and other values without one exact JSON spelling cannot be signed."""
    with pytest.raises(TypeError):
        signer(("k1", SECRET_1)).sign(ORDER | {"extra": value})


def test_verify_when_signed_by_current_key_then_accepted() -> None:
    """A freshly signed order verifies, and verified_order returns it without signature."""
    s = signer(("k1", SECRET_1))
    s.verify(s.sign(ORDER))
    assert verified_order(s, signed_order_json(s, ORDER)) == ORDER


@pytest.mark.parametrize("field", sorted(ORDER))
def test_verify_when_any_field_altered_then_refused(field: str) -> None:
    """Changing any one field (quantity, side, expiry, ...) breaks the signature."""
    s = signer(("k1", SECRET_1))
    signed = s.sign(ORDER)
    signed[field] = "tampered" if signed[field] != "tampered" else "other"
    with pytest.raises(OrderSignatureError, match="altered or forged"):
        s.verify(signed)


def test_verify_when_field_added_or_removed_then_refused() -> None:
    """Adding or dropping a field is an alteration too."""
    s = signer(("k1", SECRET_1))
    signed = s.sign(ORDER)
    with pytest.raises(OrderSignatureError):
        s.verify(signed | {"venue": "elsewhere"})
    del signed["take_profit"]
    with pytest.raises(OrderSignatureError):
        s.verify(signed)


def test_verify_when_signed_for_another_portfolio_then_refused() -> None:
    """The orders stream is part of the signed input: no replay across portfolios."""
    signed = signer(("k1", SECRET_1), context="riskgate:{a}:orders").sign(ORDER)
    with pytest.raises(OrderSignatureError, match="altered or forged"):
        signer(("k1", SECRET_1), context="riskgate:{b}:orders").verify(signed)


def test_verify_when_signed_with_a_different_secret_then_refused() -> None:
    """A forger who guesses the key id but not the secret is refused."""
    forged = signer(("k1", SECRET_2)).sign(ORDER)
    with pytest.raises(OrderSignatureError, match="altered or forged"):
        signer(("k1", SECRET_1)).verify(forged)


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({}, "not signed"),
        ({"key_id": "k9", "signature": "0" * 64}, "unknown key id"),
        ({"key_id": "k1"}, "malformed"),
        ({"key_id": "k1", "signature": "XYZ"}, "malformed"),
        ({"key_id": "k1", "signature": "A" * 64}, "malformed"),
        ({"key_id": 1, "signature": "0" * 64}, "unknown key id"),
        ({"signature": "0" * 64}, "unknown key id"),
    ],
    ids=["unsigned", "unknown-id", "no-signature", "short", "uppercase", "int-id", "no-id"],
)
def test_verify_when_signature_fields_missing_or_malformed_then_refused(
    patch: dict[str, Any], message: str
) -> None:
    """Missing, unknown or malformed signature fields are refused when keys are set."""
    with pytest.raises(OrderSignatureError, match=message):
        signer(("k1", SECRET_1)).verify(ORDER | patch)


def test_verify_when_forged_order_has_decimal_number_then_refused() -> None:
    """A number where the gate writes strings has no canonical form: refused, not crashed."""
    s = signer(("k1", SECRET_1))
    raw = signed_order_json(s, ORDER).replace('"quantity":"0.2"', '"quantity":0.2')
    with pytest.raises(OrderSignatureError, match="canonical"):
        verified_order(s, raw)


def test_verified_order_when_not_an_object_then_refused() -> None:
    """A JSON array or string is not an order."""
    with pytest.raises(OrderSignatureError, match="not a JSON object"):
        verified_order(signer(("k1", SECRET_1)), "[1, 2]")


def test_rotation_when_new_key_first_then_signs_with_it_and_still_verifies_old() -> None:
    """Keys "k2,k1": k2 signs; orders signed with k1 before the switch still verify."""
    old = signer(("k1", SECRET_1)).sign(ORDER)
    rotated = signer(("k2", SECRET_2), ("k1", SECRET_1))
    assert rotated.sign(ORDER)["key_id"] == "k2"
    rotated.verify(old)
    rotated.verify(rotated.sign(ORDER))


def test_rotation_when_old_key_retired_then_its_orders_refused() -> None:
    """Once k1 is dropped from the list, an order signed with k1 is refused."""
    old = signer(("k1", SECRET_1)).sign(ORDER)
    with pytest.raises(OrderSignatureError, match="unknown key id 'k1'"):
        signer(("k2", SECRET_2)).verify(old)


def test_verify_when_no_keys_then_accepts_signed_and_unsigned() -> None:
    """Signing off: sign() leaves the order as it is and verify() accepts anything."""
    off = Signer()
    assert not off.enabled
    assert off.sign(ORDER) == ORDER
    off.verify(ORDER)
    off.verify(signer(("k1", SECRET_1)).sign(ORDER))
    assert json.loads(signed_order_json(off, ORDER)) == ORDER


def test_parse_keys_when_commas_newlines_comments_then_first_is_current() -> None:
    """Entries split on commas or newlines; comments and blanks ignored; order kept."""
    keys = parse_keys(f"# rotated 2026-11\nk2:{B64_2}\n\n k1 : {B64_1} , ")
    assert [k.key_id for k in keys] == ["k2", "k1"]
    assert keys[0].secret == SECRET_2 and keys[1].secret == SECRET_1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("k1", "must be <key_id>:<base64 secret>"),
        ("k1:", "must be <key_id>:<base64 secret>"),
        (f"bad id:{B64_1}", "key id"),
        ("k1:not*base64", "not valid base64"),
        (f"k1:{base64.b64encode(b'short').decode()}", "at least 32"),
        (f"k1:{B64_1},k1:{B64_2}", "listed twice"),
    ],
)
def test_parse_keys_when_malformed_then_error_without_secret(text: str, message: str) -> None:
    """Bad entries fail at start-up with a message that never echoes the secret."""
    with pytest.raises(KeyConfigError, match=message) as info:
        parse_keys(text)
    assert B64_1 not in str(info.value) and B64_2 not in str(info.value)
    assert "not*base64" not in str(info.value)


def test_keys_from_env_when_file_variable_then_read_from_file(tmp_path: Path) -> None:
    """RISKGATE_ORDER_KEYS_FILE names a file with the same format."""
    path = tmp_path / "order.keys"
    path.write_text(f"k1:{B64_1}\n")
    assert [k.key_id for k in keys_from_env({ENV_KEYS_FILE: str(path)})] == ["k1"]
    with pytest.raises(KeyConfigError, match="not both"):
        keys_from_env({ENV_KEYS_FILE: str(path), ENV_KEYS: f"k1:{B64_1}"})
    with pytest.raises(KeyConfigError, match="No such file"):
        keys_from_env({ENV_KEYS_FILE: str(tmp_path / "missing")})


def test_order_signer_when_env_keys_then_context_is_the_orders_stream() -> None:
    """The integration helper binds signatures to the portfolio's orders stream."""
    s = order_signer(Keys("p1"), {ENV_KEYS: f"k2:{B64_2},k1:{B64_1}"})
    assert s.context == Keys("p1").orders
    assert s.current_key_id == "k2" and s.key_ids == ("k2", "k1")
    assert not order_signer(Keys("p1"), {}).enabled


def test_repr_when_keys_loaded_then_shows_ids_not_secrets() -> None:
    """Neither the signer nor a key prints its secret (logs, tracebacks, debuggers)."""
    s = signer(("k1", SECRET_1))
    text = repr(s) + repr(SigningKey("k1", SECRET_1)) + repr(s.sign(ORDER))
    for needle in (B64_1, SECRET_1.hex(), repr(SECRET_1)):
        assert needle not in text


@given(
    st.dictionaries(
        st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=12),
        st.one_of(
            st.none(), st.booleans(), st.text(max_size=20), st.integers(-(2**53) + 1, 2**53 - 1)
        ),
        max_size=8,
    )
)
def test_sign_when_any_plain_order_then_roundtrips_through_json(order: dict[str, Any]) -> None:
    """Any order of strings, bools, nulls and safe ints verifies after a JSON round trip."""
    s = signer(("k1", SECRET_1))
    body = unsigned(order)
    assert verified_order(s, signed_order_json(s, body)) == body
