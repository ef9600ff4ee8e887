"""Wire protocol v1 (DESIGN.md section 3): every stream entry's ``data`` JSON.

Inbound messages (intents, portfolio events) are strict: unknown fields, wrong
types, non-finite or out-of-range numbers are errors. Decimals may arrive as JSON
strings or numbers; :func:`parse_json` keeps numbers exact (no float round trip).
Outbound messages (decisions, orders, phase events) serialise decimals as strings.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    TypeAdapter,
    WithJsonSchema,
)

#: Largest ``data`` (and largest whole entry, every field counted) any consumer reads.
MAX_ENTRY_BYTES = 64 * 1024
#: Deepest nesting of JSON arrays/objects accepted (an intent needs 1, a mark 2).
MAX_JSON_DEPTH = 32
#: For pydantic (Rust regex: ``$`` is the end of the text). Python code must not use
#: it with ``re.match`` (there ``$`` also matches before a final newline): use
#: :func:`is_intent_id`.
INTENT_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
_INTENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def is_intent_id(value: object) -> bool:
    """True for a well-formed intent id (the whole string: no trailing newline)."""
    return isinstance(value, str) and _INTENT_ID.fullmatch(value) is not None


def _bounded(value: Decimal) -> Decimal:
    """Reject magnitudes and precisions no price or quantity has (and Decimal DoS)."""
    if not value.is_finite():
        raise ValueError("must be a finite number")
    if value.adjusted() > 14:
        raise ValueError("must be below 1e15")
    if value != 0 and value.adjusted() < -18:
        raise ValueError("must be above 1e-18")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -18:
        raise ValueError("has more than 18 decimal places")
    return value


def _as_utc(value: datetime) -> datetime:
    """ISO-8601 UTC; a naive timestamp is taken to be UTC as the protocol says."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def decimal_text(value: Decimal) -> str:
    """A decimal on the wire: exact, never in exponent notation (1E-8 -> 0.00000001).

    ``str()`` writes the same digits unless it chooses exponent notation (a positive
    exponent, or more than six zeros after the point), and costs a third of
    ``format(value, "f")``: the gate writes a dozen per intent.
    """
    text = str(value)
    return text if "E" not in text else format(value, "f")


#: decimals as JSON Schema sees them (docs/schema): what riskgate writes, and what it
#: asks of a string it reads (a JSON number is read exactly too)
DECIMAL_OUT = r"^-?[0-9]+(\.[0-9]+)?$"
DECIMAL_IN = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_STRING_BOUND = {  # a decimal string's sign (and a nonzero digit) as the bound demands
    "exclusiveMinimum": r"^\+?(?=[0-9.]*[1-9])([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$",
    "minimum": r"^\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$",
}


def _decimal_in(**bound: int) -> WithJsonSchema:
    """The schema of a decimal an agent or executor sends: a number or a decimal string."""
    pattern = _STRING_BOUND[next(iter(bound))] if bound else DECIMAL_IN
    return WithJsonSchema(
        {"anyOf": [{"type": "number", **bound}, {"type": "string", "pattern": pattern}]},
        mode="validation",
    )


DecimalStr = PlainSerializer(
    decimal_text, return_type=Annotated[str, Field(pattern=DECIMAL_OUT)], when_used="json"
)
Num = Annotated[Decimal, AfterValidator(_bounded), DecimalStr, _decimal_in()]
Positive = Annotated[
    Decimal, Field(gt=0), AfterValidator(_bounded), DecimalStr, _decimal_in(exclusiveMinimum=0)
]
NonNegative = Annotated[
    Decimal, Field(ge=0), AfterValidator(_bounded), DecimalStr, _decimal_in(minimum=0)
]
KeyId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,32}$")]
Signature = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
UtcTime = Annotated[datetime, AfterValidator(_as_utc)]
Text = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]
Symbol = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[^\x00-\x1f\x7f\s]+$")]
IntentId = Annotated[str, Field(pattern=INTENT_ID_PATTERN)]
EventId = Annotated[str, Field(pattern=r"^[^\x00-\x1f\x7f\s]{1,128}$")]

# The per-intent writers read an enum member's text as ``member._value_`` (its own
# attribute, ~30 ns); ``member.value`` goes through a Python property in 3.11 (~170 ns).


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class Status(StrEnum):
    APPROVED = "approved"
    RESIZED = "resized"
    REJECTED = "rejected"


class ReasonCode(StrEnum):
    """Stable machine-readable reasons (DESIGN.md section 3, plus extensions below)."""

    UNKNOWN_SYMBOL = "unknown_symbol"
    ASSET_DISABLED = "asset_disabled"
    CLASS_DISABLED = "class_disabled"
    INVALID_STOP = "invalid_stop"
    MAX_POSITION = "max_position"
    PORTFOLIO_HEAT = "portfolio_heat"
    ASSET_CLASS_LIMIT = "asset_class_limit"
    CORRELATED_EXPOSURE = "correlated_exposure"
    EMERGENCY_STOP = "emergency_stop"
    DAILY_LOSS_LIMIT = "daily_loss_limit"
    TRADING_HALTED = "trading_halted"
    EARNINGS_BLACKOUT = "earnings_blackout"
    SIDEWAYS_MARKET = "sideways_market"
    MAX_HOLD = "max_hold"
    BELOW_MIN_SIZE = "below_min_size"
    RATE_LIMITED = "rate_limited"
    STALE_PORTFOLIO = "stale_portfolio"
    # extensions (protocol v1 allows more codes)
    INVALID_TAKE_PROFIT = "invalid_take_profit"
    REDUCE_ONLY = "reduce_only"
    NO_EQUITY = "no_equity"
    INVALID_INTENT = "invalid_intent"
    STALE_INTENT = "stale_intent"
    LOT_SIZE = "lot_size"
    PRICE_COLLAR = "price_collar"  # the intent's price is too far from the latest mark
    NO_MARKET_PRICE = "no_market_price"  # no mark recent enough to value an opening
    INTENT_ID_REUSED = "intent_id_reused"  # the id was decided for different content
    UNAUTHENTICATED = "unauthenticated"  # agent keys are set: not signed by its agent's key
    TOO_MANY_AGENTS = "too_many_agents"  # the portfolio's distinct agents this minute at cap
    MAX_ORDER_VALUE = "max_order_value"  # the order's value above its asset's cap
    MAX_ORDER_QUANTITY = "max_order_quantity"  # the order's quantity above its asset's cap
    DUPLICATE_ORDER = "duplicate_order"  # same agent, symbol, side, quantity just approved


class Inbound(BaseModel):
    # a field's docstring is its description (IDEs, docs/schema/*.json)
    model_config = ConfigDict(
        frozen=True, extra="forbid", allow_inf_nan=False, use_attribute_docstrings=True
    )


class Outbound(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class TradeIntent(Inbound):
    """An agent asks to trade (agents -> ``intents``); the gate answers with one Decision."""

    intent_id: IntentId
    """1-128 chars of ``A-Za-z0-9._:-``, unique per portfolio: the key of its decision."""
    agent_id: Text
    """Who asks: rate limits and duplicate checks are per agent."""
    symbol: Symbol
    """As configured: ``BTC/USDT``, ``NVDA``, ``GBP/JPY``, ..."""
    side: Side
    """``buy`` or ``sell``."""
    quantity: Positive
    """Asset units (> 0)."""
    price: Positive
    """Reference price in the quote currency (> 0); collared against the latest mark."""
    stop_price: Positive | None = None
    """The stop; absent: the asset's stop rule (percent, or pips) sets it."""
    take_profit: Positive | None = None
    """The take profit; absent: the asset's rule, if it has one."""
    reduce_only: bool = False
    """Only shrinks an open position (skips the portfolio gates, never grows it)."""
    created_at: UtcTime
    """ISO-8601, UTC when no offset; older than 300 s or ahead of the gate's clock is rejected."""
    # the agent's signature when agent keys are configured (consumers.signing); not
    # part of what the intent says (intent_digest leaves them out)
    key_id: KeyId | None = None
    """The agent key that signed the intent (when the gate has agent keys)."""
    signature: Signature | None = None
    """HMAC-SHA256 of the intent, 64 lowercase hex chars (docs/SECURITY.md)."""


class Reason(Outbound):
    """Why a decision is not "approved as asked": one per rule that bit."""

    code: ReasonCode
    """Stable, machine-readable (docs/PROTOCOL.md, "Reason codes")."""
    message: str
    """For people: what was seen against what limit."""
    value: str | None = None
    """The value the rule saw (a decimal as a string: a fraction of equity for a limit)."""
    limit: str | None = None
    """The bound it was held to."""


class Decision(Outbound):
    """The gate's answer to one intent (gate -> ``decisions``), exactly one per intent_id."""

    intent_id: str
    """The intent's id."""
    agent_id: str
    """The intent's agent."""
    symbol: str
    """The intent's symbol."""
    side: Side | None
    """The intent's side; null on a rejection of an intent that could not be read."""
    status: Status
    """``approved`` (as asked), ``resized`` (to the largest quantity every limit allows) or
    ``rejected``."""
    requested_quantity: Num
    """The quantity asked for."""
    approved_quantity: Num
    """The quantity approved: 0 when rejected, whole lots when resized."""
    stop_price: Num | None
    """The effective stop (the intent's, or the asset's rule); null for a reduce-only
    intent without one."""
    reasons: tuple[Reason, ...]
    """Every rule that bit, in rule order; empty when approved as asked."""
    checks: dict[str, Any]
    """The numbers the decision used: equity, cash, drawdown, daily PnL and, for each
    limit, ``<name>_before``/``_after``/``_limit`` as fractions of equity
    (docs/PROTOCOL.md lists every key)."""
    decided_at: datetime
    """The gate's clock (Redis ``TIME``) at the decision."""
    config_hash: str
    """16 hex chars: the effective config (the file and the live enables) it was decided under."""
    # extensions
    price: Num | None = None
    """Extension: the intent's reference price."""
    take_profit: Num | None = None
    """Extension: the effective take profit, or null."""
    reduce_only: bool = False
    """Extension: the intent's reduce_only."""


def _opt_text(value: Decimal | None) -> str | None:
    return None if value is None else decimal_text(value)


def decision_json(d: Decision) -> str:
    """``d.model_dump_json()``, the same text at about half the cost (the gate writes one
    per intent).

    Built field by field in the model's order and written by orjson, which writes what
    pydantic writes for these values: decimals as :func:`decimal_text`, UTC times with
    ``Z``, strings as UTF-8. ``checks`` holds only JSON values (strings, integers,
    booleans, null, lists of strings); anything else there, or a string orjson refuses,
    falls back to pydantic. Tests hold the two equal.
    """
    # the fields read out of the model's ``__dict__``: a pydantic model's attribute goes
    # through its ``__getattr__`` hook (~440 instructions, which Python cannot specialize)
    f = d.__dict__
    try:
        return orjson.dumps(
            {
                "intent_id": f["intent_id"],
                "agent_id": f["agent_id"],
                "symbol": f["symbol"],
                "side": f["side"],
                "status": f["status"],
                "requested_quantity": decimal_text(f["requested_quantity"]),
                "approved_quantity": decimal_text(f["approved_quantity"]),
                "stop_price": _opt_text(f["stop_price"]),
                "reasons": [
                    {"code": r.code, "message": r.message, "value": r.value, "limit": r.limit}
                    for r in f["reasons"]
                ],
                "checks": f["checks"],
                "decided_at": f["decided_at"],
                "config_hash": f["config_hash"],
                "price": _opt_text(f["price"]),
                "take_profit": _opt_text(f["take_profit"]),
                "reduce_only": f["reduce_only"],
            },
            option=orjson.OPT_UTC_Z,
        ).decode()
    except TypeError:
        return d.model_dump_json()


class ApprovedOrder(Outbound):
    """An approved or resized intent for executors to place (gate -> ``orders``)."""

    intent_id: str
    """The intent it approves: report fills, cancels and expiries under it."""
    agent_id: str
    """The intent's agent."""
    symbol: str
    """The symbol to trade."""
    side: Side
    """``buy`` or ``sell``."""
    quantity: Num
    """The approved quantity (asset units)."""
    price: Num
    """The intent's reference price."""
    stop_price: Num | None
    """The effective stop; null only for reduce-only orders."""
    take_profit: Num | None
    """The effective take profit, or null."""
    reduce_only: bool
    """Only shrinks a position."""
    status: Status
    """``approved`` or ``resized``."""
    decided_at: datetime
    """When the gate decided it (Redis's clock)."""
    expires_at: datetime
    """Equal to good_till (kept for older executors)."""
    config_hash: str
    """The config it was decided under."""
    # the order's time in force: an executor must not place it after this (the SDK
    # never hands it out then; it reports it ``expired``). Equal to ``expires_at``
    # (kept for older executors); absent on orders approved before it existed.
    good_till: datetime | None = None
    """The order's time in force: never place it after this (its reservation holds until
    a fill, cancel or expired event says how it ended)."""
    action: Literal["place"] = "place"
    """``place`` (cancel requests share the stream: ``action: cancel``)."""

    @property
    def deadline(self) -> datetime:
        return self.good_till or self.expires_at


class CancelRequest(Outbound):
    """``action: cancel`` on the orders stream (``riskgate halt --cancel-open``): the
    executor cancels the open order for ``intent_id`` at its venue and confirms with a
    ``cancel`` event (or a ``fill`` for what filled first); only then is the
    reservation released."""

    action: Literal["cancel"]
    """Always ``cancel``."""
    intent_id: str
    """The order to cancel at its venue; confirm with a ``cancel`` event."""
    symbol: str
    """The order's symbol."""
    side: Side
    """The order's side."""
    reason: str
    """Why (the operator's words)."""
    operator: str
    """Who asked."""
    requested_at: datetime
    """When (Redis's clock)."""


class OperatorEvent(Inbound):
    """Money in or out and stop resets are an operator's, not an executor's: when
    operator keys are configured they must carry an operator signature
    (``key_id``, ``signature``; see consumers.signing)."""

    key_id: KeyId | None = None
    """The operator key that signed the event (when the gate has operator keys)."""
    signature: Signature | None = None
    """HMAC-SHA256 of the event, 64 lowercase hex chars (docs/SECURITY.md)."""


class Deposit(OperatorEvent):
    """``amount`` > 0 pays in, < 0 withdraws."""

    type: Literal["deposit"]
    """Always ``deposit``."""
    event_id: EventId
    """Applied once per id: ``deposit:<transfer reference>``."""
    amount: Annotated[Decimal, AfterValidator(_bounded), _decimal_in()]
    """Account currency; negative withdraws (refused above the cash)."""
    at: UtcTime | None = None
    """When (default: the gate's clock); never ahead of it."""


class Resume(OperatorEvent):
    """An operator clears the latched emergency stop and daily-loss stop (``riskgate
    resume``): the drawdown's reference peak restarts from the current value."""

    type: Literal["resume"]
    """Always ``resume``."""
    event_id: EventId
    """Applied once per id: ``resume:<reference of the latches it clears>``."""
    operator: Text
    """Who resumes."""
    reason: Annotated[str, Field(min_length=1, max_length=500)]
    """Why."""
    at: UtcTime | None = None
    """When (default: the gate's clock)."""


class Fill(Inbound):
    """An executor reports an execution (a partial fill too)."""

    type: Literal["fill"]
    """Always ``fill``."""
    event_id: EventId
    """Applied once per id: ``fill:<intent_id>:<venue execution id>``."""
    intent_id: IntentId
    """The approved intent it fills."""
    symbol: Symbol
    """The symbol filled."""
    side: Side
    """``buy`` or ``sell``."""
    quantity: Positive
    """Units filled (> 0)."""
    price: Positive
    """Fill price in the quote currency; refused outside the class's fill band of the mark."""
    fee: NonNegative | None = None  # in the symbol's quote currency, like price
    """Fee in the quote currency, like price."""
    at: UtcTime | None = None
    """When it filled (default: the gate's clock); never ahead of it."""


class Cancel(Inbound):
    """The executor confirms the order is cancelled at its venue: what was not filled
    of it is released."""

    type: Literal["cancel"]
    """Always ``cancel``."""
    event_id: EventId
    """Applied once per id: ``cancel:<intent_id>``."""
    intent_id: IntentId
    """The order that is cancelled."""
    at: UtcTime | None = None
    """When (default: the gate's clock)."""


class Expired(Inbound):
    """The executor confirms the order ended unfilled at its ``good_till`` (or was
    never placed because it arrived after it): what was not filled is released."""

    type: Literal["expired"]
    """Always ``expired``."""
    event_id: EventId
    """Applied once per id: ``expired:<intent_id>``."""
    intent_id: IntentId
    """The order that ended unfilled."""
    at: UtcTime | None = None
    """When (default: the gate's clock)."""


class Release(OperatorEvent):
    """An operator releases the reservation of ``intent_id`` (``riskgate release``):
    for an order known to be dead that no executor will confirm."""

    type: Literal["release"]
    """Always ``release``."""
    event_id: EventId
    """Applied once per id: ``release:<intent_id>``."""
    intent_id: IntentId
    """The order whose reservation is released."""
    operator: Text
    """Who releases it."""
    reason: Annotated[str, Field(min_length=1, max_length=500)]
    """Why the order is known to be dead."""
    at: UtcTime | None = None
    """When (default: the gate's clock)."""


class Mark(Inbound):
    """Market prices (mark-to-market): equity, peak, daily PnL and the price collar."""

    type: Literal["mark"]
    """Always ``mark``."""
    event_id: EventId
    """Applied once per id: ``mark:<at>:<digest of prices and fx>``."""
    prices: Annotated[dict[Symbol, Positive], Field(max_length=10_000)]
    """Symbol to price, in its quote currency."""
    at: UtcTime
    """When the prices were observed; never ahead of the gate's clock."""
    fx: Annotated[dict[str, Positive], Field(max_length=100)] = Field(default_factory=dict)
    """Currency to its value in the account currency (fresher than the configured rates)."""


AnyEvent = Deposit | Fill | Cancel | Expired | Mark | Resume | Release
PortfolioEvent = Annotated[AnyEvent, Field(discriminator="type")]
_EVENT = TypeAdapter[AnyEvent](PortfolioEvent)


class PhaseEvent(Outbound):
    """A phase's requirements are met (``phase_ready``) or it is activated
    (``phase_activated``: the gate enables its classes and assets, live)."""

    type: Literal["phase_ready", "phase_activated"]
    """``phase_ready`` or ``phase_activated``."""
    phase: str
    """The phase's name in the config (``phase_1_stocks``, ...)."""
    assets: tuple[str, ...]
    """The symbols it unlocks."""
    metrics: dict[str, Any]
    """The track-record metrics it was judged on."""
    at: datetime
    """When."""


class DeadLetter(Outbound):
    """An entry the gate could not use (gate -> ``deadletter``): acked where it was, kept
    here with the error. No consumer group reads this stream; operators and alerts do."""

    stream: str
    """The stream the entry was on."""
    msg_id: str
    """Its stream id there."""
    error: str
    """What was wrong with it."""
    raw: str | None
    """Its first 4,096 bytes (the fields as JSON when ``data`` was missing); null when it
    was trimmed from its stream before anyone handled it."""
    raw_bytes: int | None = None
    """Its size in bytes."""
    truncated: bool | None = None
    """Whether ``raw`` is cut short."""
    deliveries: int | None = None
    """How often it had been delivered."""
    worker: str
    """The consumer that dead-lettered it."""
    at: datetime
    """When (the gate's clock)."""


M = TypeVar("M", bound=BaseModel)


def construct_unchecked(cls: type[M], fields: dict[str, Any]) -> M:
    """Build a model from values our own code produced, without validating them again.

    ``model_construct`` minus default handling: ``fields`` must name every field. Used
    on the hot path for decisions (inputs were validated when the intent was parsed);
    tests hold it equal to ``model_construct``.
    """
    model = object.__new__(cls)  # what cls.__new__ is, without the metaclass's lookup
    object.__setattr__(model, "__dict__", fields)
    object.__setattr__(model, "__pydantic_fields_set__", set(fields))
    object.__setattr__(model, "__pydantic_extra__", None)
    object.__setattr__(model, "__pydantic_private__", None)
    return model


class MessageError(ValueError):
    """An inbound entry that cannot be used; the message names the problem."""


def _reject_constant(name: str) -> Any:
    raise MessageError(f"non-finite number {name} is not allowed")


_STRING = re.compile(rb'"(?:[^"\\]|\\.)*+"', re.DOTALL)
_BRACKET = re.compile(rb"[][{}]")


def check_shape(
    raw: bytes | str, *, max_bytes: int = MAX_ENTRY_BYTES, max_depth: int = MAX_JSON_DEPTH
) -> bytes:
    """``raw`` as bytes if it is small and shallow enough to parse; else MessageError.

    Runs before any parser: the size, then the bracket depth outside strings. Costs
    two ``bytes.count`` calls when the payload has at most ``max_depth`` brackets (any
    intent or event), one linear scan otherwise; never recursion, never a parse.
    """
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if len(data) > max_bytes:
        raise MessageError(f"entry is {len(data)} bytes, over the {max_bytes} limit")
    if data.count(b"[") + data.count(b"{") <= max_depth:
        return data
    depth = 0
    for m in _BRACKET.finditer(_STRING.sub(b'""', data)):
        if m.group() in (b"[", b"{"):
            depth += 1
            if depth > max_depth:
                raise MessageError(f"JSON nested deeper than {max_depth} levels")
        else:
            depth -= 1
    return data


def parse_json(raw: bytes | str) -> Any:
    """JSON with exact decimals: numbers with a fraction or exponent become Decimal.

    Only UTF-8, only within :func:`check_shape`'s bounds; every failure is a MessageError.
    """
    data = check_shape(raw)
    try:
        return json.loads(
            data.decode("utf-8"), parse_float=Decimal, parse_constant=_reject_constant
        )
    except UnicodeDecodeError as exc:
        raise MessageError(f"not UTF-8: {exc}") from exc
    except (json.JSONDecodeError, RecursionError) as exc:  # RecursionError: belt and braces
        raise MessageError(f"not JSON: {exc}") from exc


#: A JSON number with a fraction or exponent, as a value (after ``:``, ``[`` or ``,``
#: and followed by a delimiter). Timestamps inside strings ("12:00:00.5Z") do not match.
_FRACTIONAL_NUMBER = re.compile(rb"[:\[,]\s*-?\d+(?:\.\d+(?:[eE][+-]?\d+)?|[eE][+-]?\d+)\s*[,}\]]")


def _exact_json_path(raw: bytes | str) -> bytes | None:
    """``raw`` as bytes when the fast Rust parser reads it exactly, else None.

    Strings and integers are exact there; fractional numbers would go through a
    binary float, so those payloads take :func:`parse_json` instead. An object is
    looked at by orjson (a float in it is a fractional number, or an integer past 64
    bits, which orjson reads as a float: either way the exact path; 2x cheaper than
    the pattern on an intent); anything else, or what orjson does not read (lone
    surrogates, bad JSON), by the pattern, as before.
    """
    data = check_shape(raw)
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        value = None
    if type(value) is not dict:
        return None if _FRACTIONAL_NUMBER.search(data) else data
    return None if _holds_float(value) else data


def _holds_float(value: Any) -> bool:
    """A float anywhere in ``value``, a dict or list (nesting bounded by
    :func:`check_shape`)."""
    for item in value.values() if type(value) is dict else value:
        kind = type(item)
        if kind is float or ((kind is dict or kind is list) and _holds_float(item)):
            return True
    return False


def parse_intent(raw: bytes | str) -> TradeIntent:
    """Parse one intent's ``data``; raises MessageError or pydantic ValidationError."""
    fast = _exact_json_path(raw)
    if fast is not None:
        return TradeIntent.model_validate_json(fast)
    data = parse_json(raw)
    if not isinstance(data, dict):
        raise MessageError("intent must be a JSON object")
    return TradeIntent.model_validate(data)


def parse_event(raw: bytes | str) -> AnyEvent:
    """Parse one portfolio event's ``data``."""
    fast = _exact_json_path(raw)
    if fast is not None:
        return _EVENT.validate_json(fast)
    data = parse_json(raw)
    if not isinstance(data, dict):
        raise MessageError("event must be a JSON object")
    return _EVENT.validate_python(data)


def _canonical_decimal(value: Decimal | None) -> str | None:
    return None if value is None else decimal_text(value.normalize())


_DIGEST_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True).encode


def intent_digest(intent: TradeIntent) -> str:
    """What an intent says, as 32 hex chars: ``c`` + sha256 of its canonical JSON.

    Canonical: every field but ``created_at`` in declaration order, decimals normalized
    (``0.10`` and ``0.1`` are the same quantity), absent optionals as null; so a
    re-delivery, a re-send serialized differently, or a publish the SDK retried after a
    dropped connection (stamped anew) matches. ``created_at`` says when, not what: a
    retried intent decided once is still judged by the first copy's age.
    """
    f = intent.__dict__  # a model's fields, read once (see :func:`decision_json`)
    fields = [
        f["intent_id"],
        f["agent_id"],
        f["symbol"],
        f["side"]._value_,
        _canonical_decimal(f["quantity"]),
        _canonical_decimal(f["price"]),
        _canonical_decimal(f["stop_price"]),
        _canonical_decimal(f["take_profit"]),
        f["reduce_only"],
    ]
    # the stdlib's ASCII text (digests are stored: they must not change), which orjson
    # writes 3x cheaper unless it escaped something or wrote what the stdlib escapes
    try:
        data = orjson.dumps(fields)
    except TypeError:  # a lone surrogate
        data = b"\\"
    if not data.isascii() or b"\\" in data or b"\x7f" in data:
        data = _DIGEST_JSON(fields).encode()
    return "c" + hashlib.sha256(data).hexdigest()[:31]


def raw_digest(raw: bytes | None) -> str:
    """The digest of an intent that could not be parsed: ``r`` + sha256 of its bytes."""
    return "r" + hashlib.sha256(raw or b"").hexdigest()[:31]
