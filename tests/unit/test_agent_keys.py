"""Agent keys: the entry format, intent signatures, and every way to be unauthenticated."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest

from consumers.bus.agent_signing import (
    AgentKey,
    agent_signer,
    intent_verifier,
    parse_agent_key,
    parse_agent_keys,
)
from consumers.bus.keys import Keys
from consumers.bus.signing import KeyConfigError
from schemas.messages import TradeIntent, intent_digest, parse_intent

SECRET = bytes(range(32))
OTHER = bytes(range(50, 90))
B64 = base64.b64encode(SECRET).decode()
B64_OTHER = base64.urlsafe_b64encode(OTHER).decode().rstrip("=")
KEYS = Keys("main")
GATE_KEYS = f"m1:momo:{B64}, m0:momo:{B64_OTHER}\nd1:desk:7:{B64_OTHER}  # a colon in an id"

INTENT: dict[str, Any] = {
    "intent_id": "momo-1",
    "agent_id": "momo",
    "symbol": "BTC/USDT",
    "side": "buy",
    "quantity": "0.1",
    "price": "100000",
    "created_at": "2026-11-24T12:00:00Z",
}


def verifier() -> Any:
    return intent_verifier(KEYS, {"RISKGATE_AGENT_KEYS": GATE_KEYS})


def signed(data: dict[str, Any], key: str = f"m1:{B64}") -> dict[str, Any]:
    return agent_signer(KEYS, key).sign(data)


def raw(data: dict[str, Any]) -> bytes:
    return json.dumps(data).encode()


def test_parse_agent_keys_when_agent_id_has_colons_then_split_at_first_and_last() -> None:
    """``key_id:agent_id:base64``: the key id ends at the first colon, the secret at the last."""
    keys = parse_agent_keys(GATE_KEYS)
    assert [(k.key_id, k.agent_id) for k in keys] == [
        ("m1", "momo"),
        ("m0", "momo"),
        ("d1", "desk:7"),
    ]
    assert keys[2].secret == OTHER


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (f"m1:{B64}", "entry 1 must be <key_id>:<agent_id>:<base64 secret>"),
        (f"m1::{B64}", "entry 1 must be"),
        (f"m1:a:{B64},m1:b:{B64}", "'m1' is listed twice"),
        ("m1:a:" + base64.b64encode(b"short").decode(), "at least 32 random bytes"),
        ("m1:a:not*base64", "not valid base64"),
        (f"bad id:a:{B64}", "must be 1-32 chars"),
    ],
)
def test_parse_agent_keys_when_malformed_then_error_names_entry_never_secret(
    text: str, says: str
) -> None:
    """A malformed entry stops start-up; the message never contains the secret."""
    with pytest.raises(KeyConfigError) as err:
        parse_agent_keys(text)
    assert says in str(err.value) and B64 not in str(err.value)


def test_verify_when_signed_by_a_key_of_the_named_agent_then_no_problem() -> None:
    """Either of momo's keys (rotation) proves an intent of momo."""
    assert verifier().problem(raw(signed(INTENT)), "momo") is None
    assert verifier().problem(raw(signed(INTENT, f"m0:{B64_OTHER}")), "momo") is None


def test_signature_when_computed_by_hand_then_matches_the_documented_form() -> None:
    """HMAC-SHA256(secret, "riskgate-intent-v1\\n" + intents stream + "\\n" + JCS(intent))."""
    body = json.dumps(INTENT, sort_keys=True, separators=(",", ":")).encode()
    message = b"riskgate-intent-v1\nriskgate:{main}:intents\n" + body
    expected = hmac.new(SECRET, message, hashlib.sha256).hexdigest()
    assert signed(INTENT) == {**INTENT, "key_id": "m1", "signature": expected}


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("unsigned", "intent is not signed"),
        ("unknown key", "unknown key id 'zz'"),
        ("altered", "does not match: altered or forged"),
        ("forged", "does not match: altered or forged"),
        ("wrong owner", "of agent 'momo', not of agent 'other'"),
        ("other portfolio", "does not match"),
        ("float quantity", "not in canonical form"),
    ],
)
def test_verify_when_not_the_named_agents_signature_then_problem(case: str, says: str) -> None:
    """Unsigned, unknown key, altered, forged, another agent's key, another stream,
    a number without a canonical form: each is a problem that says which."""
    good = signed(INTENT)
    agent = "momo"
    data: dict[str, Any] = {
        "unsigned": INTENT,
        "unknown key": {**good, "key_id": "zz"},
        "altered": {**good, "quantity": "10"},
        "forged": {**good, "signature": "0" * 64},
        "wrong owner": signed({**INTENT, "agent_id": "other"}),
        "other portfolio": agent_signer(Keys("alt"), f"m1:{B64}").sign(INTENT),
        "float quantity": {**good, "quantity": 0.1},
    }[case]
    if case == "wrong owner":
        agent = "other"
    problem = verifier().problem(raw(data), agent)
    assert problem is not None and says in problem, problem


def test_verify_when_no_agent_keys_then_anything_accepted() -> None:
    """Authentication is off without RISKGATE_AGENT_KEYS: an unsigned intent passes."""
    off = intent_verifier(KEYS, {})
    assert not off.enabled and off.problem(raw(INTENT), "momo") is None


def test_agent_signer_when_key_names_another_agent_then_refuses_to_sign() -> None:
    """Given the gate's three-part entry, the SDK will not sign for another agent id."""
    mine = agent_signer(KEYS, f"m1:momo:{B64}")
    assert mine.agent_id == "momo" and "signature" in mine.sign(INTENT)
    with pytest.raises(ValueError, match="agent 'momo'"):
        mine.sign({**INTENT, "agent_id": "other"})


def test_agent_signer_when_key_from_env_then_used_and_none_means_unsigned() -> None:
    """RISKGATE_AGENT_KEY signs; without it intents go unsigned."""
    on = agent_signer(KEYS, environ={"RISKGATE_AGENT_KEY": f"m1:{B64}"})
    assert on.key_id == "m1" and on.sign(INTENT)["key_id"] == "m1"
    off = agent_signer(KEYS, environ={})
    assert not off.enabled and off.sign(INTENT) == INTENT


@pytest.mark.parametrize("text", ["", "nocolon", f"a:{B64},b:{B64}"])
def test_parse_agent_key_when_not_one_entry_then_error(text: str) -> None:
    """An agent holds exactly one key."""
    with pytest.raises(KeyConfigError):
        parse_agent_key(text)


def test_intent_digest_when_signed_then_same_as_unsigned() -> None:
    """The signature is not what the intent says: the digest leaves it out."""
    plain = TradeIntent.model_validate(INTENT)
    sig = parse_intent(raw(signed(INTENT)))
    assert sig.key_id == "m1" and intent_digest(sig) == intent_digest(plain)


def test_repr_when_keys_loaded_then_no_secret() -> None:
    """Neither a key, a verifier nor a signer shows a secret in its repr."""
    texts = [
        repr(AgentKey("m1", "momo", SECRET)),
        repr(verifier()),
        repr(agent_signer(KEYS, f"m1:{B64}")),
    ]
    for text in texts:
        assert B64 not in text and SECRET.hex() not in text and repr(SECRET) not in text
