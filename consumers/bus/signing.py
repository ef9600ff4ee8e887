"""HMAC-SHA256 signatures on approved orders, with key rotation by key id.

Keys come from the environment: ``RISKGATE_ORDER_KEYS="k2:<base64>,k1:<base64>"``
(or the same text in the file named by ``RISKGATE_ORDER_KEYS_FILE``; commas or
newlines separate entries, ``#`` starts a comment). The first key signs; every listed
key verifies. A key id is 1-32 chars of ``A-Za-z0-9_.-``; a secret is base64
(standard or URL-safe, padding optional) of at least 32 random bytes. No keys: signing
is off (``sign`` returns the order unchanged, ``verify`` accepts anything).

A signed order carries two more fields, ``key_id`` and ``signature`` (64 lowercase hex
chars): HMAC-SHA256 with that key over the *signing input*::

    b"riskgate-order-v1\\n" + context + b"\\n" + canonical(order without key_id, signature)

``context`` is the orders stream the order is published on (``riskgate:{P}:orders``),
so an order signed for one portfolio is refused on another. ``canonical`` is the
RFC 8785 (JCS) serialization, which for the values an order may hold (objects with
ASCII keys, strings, booleans, null, integers below 2**53, arrays) is exactly
``json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` in UTF-8.
Any other value (a float, a Decimal) cannot be signed and is refused when verifying.

Operator events (deposits, withdrawals, resumes) are signed the same way with their own
keys and domain (below); agents' intents in :mod:`consumers.bus.agent_signing`.

Nothing here logs, and no exception message or ``repr`` contains key material.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from consumers.bus.keys import Keys
from schemas.messages import parse_json

ENV_KEYS = "RISKGATE_ORDER_KEYS"
ENV_KEYS_FILE = "RISKGATE_ORDER_KEYS_FILE"
KEY_ID_FIELD = "key_id"
SIGNATURE_FIELD = "signature"
SIGNATURE_FIELDS = frozenset({KEY_ID_FIELD, SIGNATURE_FIELD})
DOMAIN = b"riskgate-order-v1"
KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
SIGNATURE_PATTERN = re.compile(r"^[0-9a-f]{64}$")
MIN_SECRET_BYTES = 32
MAX_SAFE_INT = 2**53 - 1


class OrderSignatureError(Exception):
    """An order whose signature is missing, unknown or wrong: never execute it."""


class KeyConfigError(ValueError):
    """The order keys are malformed. The message names the entry, never its secret."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    key_id: str
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not KEY_ID_PATTERN.match(self.key_id):
            raise KeyConfigError(f"key id {self.key_id!r} must be 1-32 chars of A-Za-z0-9_.-")
        if len(self.secret) < MIN_SECRET_BYTES:
            raise KeyConfigError(
                f"key {self.key_id!r} is {len(self.secret)} bytes; at least "
                f"{MIN_SECRET_BYTES} random bytes are required"
            )


def _decode_secret(key_id: str, text: str) -> bytes:
    clean = text.strip().replace("-", "+").replace("_", "/").rstrip("=")
    try:
        return base64.b64decode(clean + "=" * (-len(clean) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise KeyConfigError(f"key {key_id!r}: the secret is not valid base64") from None


def parse_keys(text: str) -> tuple[SigningKey, ...]:
    """``id:base64`` entries separated by commas or newlines; the first one signs."""
    keys: list[SigningKey] = []
    lines = (line.split("#", 1)[0] for line in text.splitlines())
    entries = [e.strip() for line in lines for e in line.split(",")]
    for n, entry in enumerate((e for e in entries if e), start=1):
        key_id, sep, secret = entry.partition(":")
        key_id = key_id.strip()
        if not sep or not secret.strip():
            raise KeyConfigError(f"order key entry {n} must be <key_id>:<base64 secret>")
        if any(k.key_id == key_id for k in keys):
            raise KeyConfigError(f"key id {key_id!r} is listed twice")
        keys.append(SigningKey(key_id, _decode_secret(key_id, secret)))
    return tuple(keys)


def _env_text(environ: Mapping[str, str] | None, var: str, file_var: str) -> str:
    env = os.environ if environ is None else environ
    inline, path = env.get(var, ""), env.get(file_var, "")
    if inline.strip() and path:
        raise KeyConfigError(f"set {var} or {file_var}, not both")
    if not path:
        return inline
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise KeyConfigError(f"{file_var}={path}: {exc.strerror}") from None


def keys_from_env(
    environ: Mapping[str, str] | None = None,
    var: str = ENV_KEYS,
    file_var: str = ENV_KEYS_FILE,
) -> tuple[SigningKey, ...]:
    """The keys in ``var`` (``RISKGATE_ORDER_KEYS``) or the file named by ``file_var``."""
    return parse_keys(_env_text(environ, var, file_var))


def _check_canonical(value: Any, where: str) -> str | None:
    """Why ``value`` has no canonical form, or None when it has one."""
    if value is None or isinstance(value, str | bool):
        return None
    if isinstance(value, int):
        return None if abs(value) <= MAX_SAFE_INT else f"{where}: integer out of range"
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            problem = _check_canonical(item, f"{where}[{i}]")
            if problem:
                return problem
        return None
    if isinstance(value, Mapping):
        for k, item in value.items():
            if not isinstance(k, str) or not k.isascii():
                return f"{where}: object keys must be ASCII strings"
            problem = _check_canonical(item, f"{where}.{k}")
            if problem:
                return problem
        return None
    return f"{where}: {type(value).__name__} values cannot be signed (send numbers as strings)"


def canonical(order: Mapping[str, Any]) -> bytes:
    """The order without its signature fields, as canonical JSON in UTF-8."""
    body = {k: v for k, v in order.items() if k not in SIGNATURE_FIELDS}
    problem = _check_canonical(body, "order")
    if problem:
        raise TypeError(problem)
    return _CANONICAL(body).encode()


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


class Signer:
    """Signs orders with the first key; verifies with any listed key."""

    def __init__(
        self, keys: Sequence[SigningKey] = (), context: str = "", domain: bytes = DOMAIN
    ) -> None:
        ids = [k.key_id for k in keys]
        if len(set(ids)) != len(ids):
            raise KeyConfigError("a key id is listed twice")
        self._keys = {k.key_id: k.secret for k in keys}
        self._current = ids[0] if ids else None
        self.context = context
        self.domain = domain  # what is signed: orders, operator events, intents

    @classmethod
    def from_env(cls, context: str = "", environ: Mapping[str, str] | None = None) -> Signer:
        return cls(keys_from_env(environ), context)

    @property
    def enabled(self) -> bool:
        return self._current is not None

    @property
    def current_key_id(self) -> str | None:
        return self._current

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def __repr__(self) -> str:
        return f"Signer(key_ids={list(self._keys)!r}, context={self.context!r})"

    def _mac(self, key_id: str, order: Mapping[str, Any]) -> str:
        message = self.domain + b"\n" + self.context.encode() + b"\n" + canonical(order)
        return hmac.new(self._keys[key_id], message, hashlib.sha256).hexdigest()

    def sign(self, order: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of ``order`` with ``key_id`` and ``signature`` (unchanged when off).

        Raises TypeError for a value without a canonical form (a float, a Decimal).
        """
        body = {k: v for k, v in order.items() if k not in SIGNATURE_FIELDS}
        if self._current is None:
            return body
        return body | {
            KEY_ID_FIELD: self._current,
            SIGNATURE_FIELD: self._mac(self._current, body),
        }

    def verify(self, order: Mapping[str, Any]) -> None:
        """Return if ``order`` is signed by a listed key; raise OrderSignatureError if not.

        With no keys configured every order is accepted (signed or not).
        """
        if self._current is None:
            return
        key_id, signature = order.get(KEY_ID_FIELD), order.get(SIGNATURE_FIELD)
        if key_id is None and signature is None:
            raise OrderSignatureError("order is not signed")
        if not isinstance(key_id, str) or key_id not in self._keys:
            raise OrderSignatureError(f"order is signed with an unknown key id {key_id!r}")
        if not isinstance(signature, str) or not SIGNATURE_PATTERN.match(signature):
            raise OrderSignatureError("order signature is malformed")
        try:
            expected = self._mac(key_id, order)
        except TypeError as exc:
            raise OrderSignatureError(f"order is not in canonical form: {exc}") from None
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise OrderSignatureError("order signature does not match: altered or forged")


def unsigned(order: Mapping[str, Any]) -> dict[str, Any]:
    """``order`` without ``key_id`` and ``signature``."""
    return {k: v for k, v in order.items() if k not in SIGNATURE_FIELDS}


# -- integration: one call each at the gate and at the client ---------------------------


def order_signer(keys: Keys, environ: Mapping[str, str] | None = None) -> Signer:
    """The signer (gate) or verifier (client) for ``keys``' orders stream, from the env."""
    return Signer.from_env(context=keys.orders, environ=environ)


def signed_order_json(signer: Signer, order: Mapping[str, Any]) -> str:
    """The ApprovedOrder's ``data``: compact JSON (UTF-8, written by orjson), signed when
    the signer has keys (the signature covers :func:`canonical`, not these bytes)."""
    if signer.enabled or not SIGNATURE_FIELDS.isdisjoint(order):
        order = signer.sign(order)
    return orjson.dumps(order).decode()


def verified_order(signer: Signer, raw: bytes | str) -> dict[str, Any]:
    """An order entry's ``data`` parsed and verified, without its signature fields.

    Raises OrderSignatureError (do not execute) or MessageError (not a JSON object).
    """
    data = parse_json(raw)
    if not isinstance(data, dict):
        raise OrderSignatureError("order is not a JSON object")
    signer.verify(data)
    return unsigned(data)


# -- operator events: deposits, withdrawals, resumes ------------------------------------

ENV_OPERATOR_KEYS = "RISKGATE_OPERATOR_KEYS"
ENV_OPERATOR_KEYS_FILE = "RISKGATE_OPERATOR_KEYS_FILE"
OPERATOR_DOMAIN = b"riskgate-operator-v1"


def operator_signer(keys: Keys, environ: Mapping[str, str] | None = None) -> Signer:
    """Signs (CLI, SDK) or verifies (gate) operator events on ``keys``' events stream.

    Keys from ``RISKGATE_OPERATOR_KEYS`` (or ``RISKGATE_OPERATOR_KEYS_FILE``), in the
    order keys' format; none: operator events are accepted unsigned (development).
    """
    found = keys_from_env(environ, ENV_OPERATOR_KEYS, ENV_OPERATOR_KEYS_FILE)
    return Signer(found, context=keys.events, domain=OPERATOR_DOMAIN)


def signed_object(signer: Signer, raw: bytes | str, what: str) -> tuple[dict[str, Any], str]:
    """``raw`` parsed and verified: (the object, "") or ({}, why not), the message
    naming ``what`` was signed (an operator event, an intent)."""
    try:
        data = parse_json(raw)
    except ValueError as exc:
        return {}, f"the {what} is unreadable: {exc}"
    if not isinstance(data, dict):
        return {}, f"the {what} is not a JSON object"
    try:
        signer.verify(data)
    except OrderSignatureError as exc:
        return {}, str(exc).replace("order", what, 1)
    return data, ""


def operator_problem(signer: Signer, raw: bytes | str) -> str | None:
    """Why the operator event ``raw`` is not properly signed, or None when it is."""
    _, why = signed_object(signer, raw, "operator event")
    return f"is an operator event and needs an operator signature: {why}" if why else None
