"""Agents' intent signatures: who an agent is, by its key.

The gate holds every agent's keys (``RISKGATE_AGENT_KEYS``: ``<key_id>:<agent_id>:<base64>``
entries) and verifies that an intent is signed by a key of its own ``agent_id``
(:class:`IntentVerifier`); an agent (the SDK, the CLI) holds its own key
(``RISKGATE_AGENT_KEY``) and signs (:class:`AgentSigner`). Signatures are those of
:mod:`consumers.bus.signing`, over the intents stream with the intent domain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from consumers.bus.keys import Keys
from consumers.bus.signing import (
    KEY_ID_FIELD,
    KeyConfigError,
    Signer,
    SigningKey,
    _decode_secret,
    _env_text,
    parse_keys,
    signed_object,
)

# -- agent intents: who an agent is, by its key -----------------------------------------

ENV_AGENT_KEYS = "RISKGATE_AGENT_KEYS"  # gate: every agent's keys
ENV_AGENT_KEYS_FILE = "RISKGATE_AGENT_KEYS_FILE"
ENV_AGENT_KEY = "RISKGATE_AGENT_KEY"  # an agent (SDK, CLI): its own key
ENV_AGENT_KEY_FILE = "RISKGATE_AGENT_KEY_FILE"
INTENT_DOMAIN = b"riskgate-intent-v1"


@dataclass(frozen=True, slots=True)
class AgentKey:
    """A key an agent signs its intents with; ``agent_id`` is who it proves."""

    key_id: str
    agent_id: str
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        SigningKey(self.key_id, self.secret)  # the same rules as every other key
        if not self.agent_id or len(self.agent_id) > 128 or not self.agent_id.isprintable():
            raise KeyConfigError(f"key {self.key_id!r}: the agent id must be 1-128 printable chars")


def _agent_entry(n: int, entry: str) -> AgentKey:
    """``<key_id>:<agent_id>:<base64>``: the id up to the first colon, the secret after
    the last (base64 has none), so an agent id may itself contain colons."""
    key_id, _, rest = entry.partition(":")
    agent_id, sep, secret = rest.rpartition(":")
    key_id, agent_id = key_id.strip(), agent_id.strip()
    if not sep or not agent_id or not secret.strip():
        raise KeyConfigError(f"agent key entry {n} must be <key_id>:<agent_id>:<base64 secret>")
    return AgentKey(key_id, agent_id, _decode_secret(key_id, secret))


def parse_agent_keys(text: str) -> tuple[AgentKey, ...]:
    """``key_id:agent_id:base64`` entries, separated by commas or newlines (``#``: comment).

    One agent may own several keys (rotation); a key id names one key only.
    """
    keys: list[AgentKey] = []
    lines = (line.split("#", 1)[0] for line in text.splitlines())
    entries = [e.strip() for line in lines for e in line.split(",")]
    for n, entry in enumerate((e for e in entries if e), start=1):
        key = _agent_entry(n, entry)
        if any(k.key_id == key.key_id for k in keys):
            raise KeyConfigError(f"key id {key.key_id!r} is listed twice")
        keys.append(key)
    return tuple(keys)


class IntentVerifier:
    """The gate's side: is an intent signed by a key of the agent it names?

    No keys configured: authentication is off and every intent is accepted.
    """

    def __init__(self, keys: Sequence[AgentKey] = (), context: str = "") -> None:
        self._signer = Signer(
            [SigningKey(k.key_id, k.secret) for k in keys], context, INTENT_DOMAIN
        )
        self._owners = {k.key_id: k.agent_id for k in keys}

    @property
    def enabled(self) -> bool:
        return self._signer.enabled

    @property
    def key_ids(self) -> tuple[str, ...]:
        return self._signer.key_ids

    def __repr__(self) -> str:
        return f"IntentVerifier(key_ids={list(self._owners)!r}, context={self._signer.context!r})"

    def problem(self, raw: bytes | str, agent_id: str) -> str | None:
        """Why the intent ``raw`` (its ``data``) does not prove it is ``agent_id``'s, or
        None when it does (or when authentication is off).

        ``agent_id`` is the one the gate parsed and decides on, so a signature is only
        good for its key's owner.
        """
        if not self.enabled:
            return None
        data, why = signed_object(self._signer, raw, "intent")
        if why:
            return f"{why}; agents must sign intents with their key (RISKGATE_AGENT_KEY)"
        owner = self._owners[data[KEY_ID_FIELD]]
        if owner != agent_id:
            return (
                f"intent is signed with key {data[KEY_ID_FIELD]!r} of agent {owner!r}, "
                f"not of agent {agent_id!r}"
            )
        return None


def intent_verifier(keys: Keys, environ: Mapping[str, str] | None = None) -> IntentVerifier:
    """The gate's verifier for ``keys``' intents stream, from ``RISKGATE_AGENT_KEYS`` (or
    ``RISKGATE_AGENT_KEYS_FILE``); none set: agents are not authenticated."""
    found = parse_agent_keys(_env_text(environ, ENV_AGENT_KEYS, ENV_AGENT_KEYS_FILE))
    return IntentVerifier(found, context=keys.intents)


@dataclass(frozen=True, slots=True)
class AgentSigner:
    """An agent's side: signs its intents with its one key. ``agent_id`` is set when the
    key was given as ``<key_id>:<agent_id>:<base64>``: intents for another agent are
    then refused before they are sent (the gate would reject them)."""

    signer: Signer
    agent_id: str | None = None

    @property
    def enabled(self) -> bool:
        return self.signer.enabled

    @property
    def key_id(self) -> str | None:
        return self.signer.current_key_id

    def sign(self, intent: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of ``intent`` (JSON values: decimals as strings) with its signature."""
        if self.agent_id is not None and intent.get("agent_id") != self.agent_id:
            raise ValueError(
                f"key {self.key_id!r} is agent {self.agent_id!r}'s; it cannot sign an intent "
                f"of agent {intent.get('agent_id')!r}"
            )
        return self.signer.sign(intent)


def parse_agent_key(text: str) -> tuple[SigningKey, str | None]:
    """An agent's own key: ``<key_id>:<base64>`` or the gate's ``<key_id>:<agent_id>:<base64>``."""
    entry = text.split("#", 1)[0].strip()
    if ":" not in entry or "," in entry or "\n" in entry:
        raise KeyConfigError("the agent key must be one <key_id>:<base64 secret> entry")
    if entry.count(":") >= 2:
        key = _agent_entry(1, entry)
        return SigningKey(key.key_id, key.secret), key.agent_id
    (found,) = parse_keys(entry)
    return found, None


def agent_signer(
    keys: Keys, key: str | None = None, environ: Mapping[str, str] | None = None
) -> AgentSigner:
    """Signs intents on ``keys``' intents stream with ``key`` (else ``RISKGATE_AGENT_KEY``
    or the file ``RISKGATE_AGENT_KEY_FILE``); no key: intents are sent unsigned."""
    text = key if key is not None else _env_text(environ, ENV_AGENT_KEY, ENV_AGENT_KEY_FILE)
    if not text.strip():
        return AgentSigner(Signer(context=keys.intents, domain=INTENT_DOMAIN))
    found, owner = parse_agent_key(text)
    return AgentSigner(Signer([found], context=keys.intents, domain=INTENT_DOMAIN), owner)
