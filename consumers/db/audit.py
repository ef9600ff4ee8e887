"""The audit writer: the ``decisions`` stream into ``trading_decisions``, once per intent.

A batch is one transaction: ``trading_decision_ids`` takes the (portfolio, intent_id)
keys with ON CONFLICT DO NOTHING, and only the decisions whose key was new are
written, with every reason and check as JSONB and the reason codes as ``text[]``.
A redelivered decision is therefore a no-op; so is a second, different decision for
an intent already recorded (the first stands, the duplicate is counted and logged).
The batch is XACKed after the commit (see :mod:`consumers.db.stream_to_pg`).

An entry that is not a decision, or a decision PostgreSQL refuses (a CHECK), goes to
``consumer_rejects`` with the error, in the same transaction, and is acked: it can
never block the stream. When a batch is refused, its rows are written one by one
(savepoints) to find the culprit; the rest still land.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import TypeVar

import structlog
from pydantic import ValidationError
from redis import Redis

from consumers.bus.keys import GROUP_AUDIT, Keys
from consumers.bus.streams import Entry
from consumers.db.connection import PG_REFUSED, Connection, PartitionCache, jsonb
from consumers.db.stream_to_pg import ConsumerSettings, PgLink, StreamToPg
from consumers.gate_worker.intake import RAW_KEEP, describe
from schemas.config import AssetsConfig
from schemas.messages import MAX_ENTRY_BYTES, Decision, MessageError, ReasonCode, parse_json

INSERT_DECISIONS = """
WITH batch AS (
    SELECT * FROM unnest(
        %(decided_at)s::timestamptz[], %(intent_id)s::text[], %(agent_id)s::text[],
        %(symbol)s::text[], %(asset_class)s::text[], %(side)s::text[], %(status)s::text[],
        %(requested_quantity)s::numeric[], %(approved_quantity)s::numeric[],
        %(price)s::numeric[], %(stop_price)s::numeric[], %(take_profit)s::numeric[],
        %(reduce_only)s::boolean[], %(reasons)s::jsonb[], %(checks)s::jsonb[],
        %(config_hash)s::text[], %(stream_id)s::text[]
    ) AS b (decided_at, intent_id, agent_id, symbol, asset_class, side, status,
            requested_quantity, approved_quantity, price, stop_price, take_profit,
            reduce_only, reasons, checks, config_hash, stream_id)
), fresh AS (
    INSERT INTO trading_decision_ids (portfolio, intent_id, decided_at, stream_id)
    SELECT %(portfolio)s, intent_id, decided_at, stream_id FROM batch
    ON CONFLICT DO NOTHING
    RETURNING intent_id
)
INSERT INTO trading_decisions (
    portfolio, decided_at, intent_id, agent_id, symbol, asset_class, side, status,
    requested_quantity, approved_quantity, price, stop_price, take_profit, reduce_only,
    reason_codes, reasons, checks, config_hash, stream_id)
SELECT %(portfolio)s, b.decided_at, b.intent_id, b.agent_id, b.symbol, b.asset_class, b.side,
       b.status, b.requested_quantity, b.approved_quantity, b.price, b.stop_price,
       b.take_profit, b.reduce_only,
       ARRAY(SELECT e.r ->> 'code'
               FROM jsonb_array_elements(b.reasons) WITH ORDINALITY AS e (r, i) ORDER BY e.i),
       b.reasons, b.checks, b.config_hash, b.stream_id
  FROM batch b JOIN fresh USING (intent_id)
"""

INSERT_REJECTS = """
INSERT INTO consumer_rejects (portfolio, consumer, stream, stream_id, raw, error)
SELECT %(portfolio)s, %(consumer)s, %(stream)s, r.stream_id, r.raw, r.error
  FROM unnest(%(stream_id)s::text[], %(raw)s::text[], %(error)s::text[])
       AS r (stream_id, raw, error)
ON CONFLICT DO NOTHING
"""


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Reject:
    stream_id: str
    raw: str | None
    error: str


def printable(raw: bytes | None) -> str | None:
    """Entry bytes as storable text (PostgreSQL text cannot hold NUL)."""
    if raw is None:
        return None
    return raw.decode("utf-8", "replace").replace("\x00", "\ufffd")


def insert_rejects(
    conn: Connection, portfolio: str, consumer: str, stream: str, rejects: Sequence[Reject]
) -> None:
    if rejects:
        conn.execute(
            INSERT_REJECTS,
            {
                "portfolio": portfolio,
                "consumer": consumer,
                "stream": stream,
                "stream_id": [r.stream_id for r in rejects],
                "raw": [r.raw for r in rejects],
                "error": [r.error[:2000] for r in rejects],
            },
        )


def decision_columns(
    decisions: Sequence[tuple[Decision, str]], config: AssetsConfig
) -> dict[str, list[object]]:
    """Column arrays for INSERT_DECISIONS, one element per (decision, stream id)."""
    cols: dict[str, list[object]] = {}

    def put(name: str, value: object) -> None:
        cols.setdefault(name, []).append(value)

    for d, stream_id in decisions:
        asset = config.assets.get(d.symbol)
        decided = d.decided_at if d.decided_at.tzinfo else d.decided_at.replace(tzinfo=UTC)
        put("decided_at", decided)
        put("intent_id", d.intent_id)
        put("agent_id", d.agent_id)
        put("symbol", d.symbol)
        put("asset_class", asset.asset_class.value if asset else None)
        put("side", d.side.value if d.side else None)
        put("status", d.status.value)
        put("requested_quantity", d.requested_quantity)
        put("approved_quantity", d.approved_quantity)
        put("price", d.price)
        put("stop_price", d.stop_price)
        put("take_profit", d.take_profit)
        put("reduce_only", d.reduce_only)
        put("reasons", jsonb([r.model_dump(mode="json") for r in d.reasons]))
        put("checks", jsonb(d.checks))
        put("config_hash", d.config_hash)
        put("stream_id", stream_id)
    return cols


def insert_decisions(
    conn: Connection,
    portfolio: str,
    decisions: Sequence[tuple[Decision, str]],
    config: AssetsConfig,
) -> int:
    """Write the decisions whose intent is new; returns how many rows were written."""
    if not decisions:
        return 0
    params = {"portfolio": portfolio, **decision_columns(decisions, config)}
    return conn.execute(INSERT_DECISIONS, params).rowcount


def parse_entry(entry: Entry, parse: Callable[[bytes], T], what: str) -> T | Reject:
    """``parse(entry.raw)``, or a Reject saying what was wrong with it (never raises:
    whatever ``parse`` raises, RecursionError included, is this entry's Reject)."""
    msg_id = entry.msg_id.decode()
    if entry.oversize:
        error = f"entry is {entry.oversize} bytes, over the {MAX_ENTRY_BYTES} limit"
        return Reject(msg_id, printable(entry.head), error)
    if entry.raw is None:
        return Reject(msg_id, None, "entry has no data field")
    raw = entry.raw[:RAW_KEEP]
    try:
        return parse(entry.raw)
    except MessageError as exc:
        return Reject(msg_id, printable(raw), str(exc))
    except ValidationError as exc:
        return Reject(msg_id, printable(raw), f"not {what}: {describe(exc)}")
    except Exception as exc:
        return Reject(msg_id, printable(raw), f"unexpected {type(exc).__name__}: {exc}"[:1000])


def _decision(raw: bytes) -> Decision:
    decision = Decision.model_validate(parse_json(raw))
    if any(r.code is ReasonCode.INTENT_ID_REUSED for r in decision.reasons):
        # a reuse notice, not a decision: the intent's decision is the one before it
        original = decision.checks.get("original_decision")
        raise MessageError(
            f"reuse notice for intent {decision.intent_id}, not a decision "
            f"(the decision is {original})"
        )
    return decision


def parse_decision(entry: Entry) -> Decision | Reject:
    """A decision, or a Reject (also for ``intent_id_reused`` notices: recorded in
    consumer_rejects, never written as the intent's decision)."""
    return parse_entry(entry, _decision, "a decision")


class AuditWriter(StreamToPg):
    group = GROUP_AUDIT

    def __init__(
        self,
        redis: Redis,
        pg: PgLink,
        keys: Keys,
        config: AssetsConfig,
        settings: ConsumerSettings,
    ) -> None:
        log = structlog.get_logger("riskgate.audit").bind(
            portfolio=keys.portfolio, consumer=settings.consumer, stream=keys.decisions
        )
        super().__init__(redis, pg, settings, log)
        self.keys = keys
        self.stream = keys.decisions
        self.config = config
        self.partitions = PartitionCache()

    def write(self, conn: Connection, entries: list[Entry]) -> None:
        decisions: list[tuple[Decision, str]] = []
        rejects: list[Reject] = []
        seen: set[str] = set()
        for entry in entries:
            parsed = parse_decision(entry)
            if isinstance(parsed, Reject):
                rejects.append(parsed)
            elif parsed.intent_id not in seen:  # a batch never holds one intent twice
                seen.add(parsed.intent_id)
                decisions.append((parsed, entry.msg_id.decode()))
        self.partitions.ensure(conn, "trading_decisions", [d.decided_at for d, _ in decisions])
        try:
            with conn.transaction():
                written = insert_decisions(conn, self.keys.portfolio, decisions, self.config)
                self._rejects(conn, rejects)
        except PG_REFUSED as exc:
            self.log.warning("batch refused; writing it row by row", error=str(exc).strip())
            written = self._one_by_one(conn, decisions, rejects)
        self._report(len(entries), len(decisions), written, rejects)

    def _one_by_one(
        self, conn: Connection, decisions: list[tuple[Decision, str]], rejects: list[Reject]
    ) -> int:
        written = 0
        with conn.transaction():
            for d, stream_id in decisions:
                try:
                    with conn.transaction():  # a savepoint per row
                        written += insert_decisions(
                            conn, self.keys.portfolio, [(d, stream_id)], self.config
                        )
                except PG_REFUSED as exc:
                    raw = d.model_dump_json().encode()
                    rejects.append(Reject(stream_id, printable(raw), str(exc).strip()))
            self._rejects(conn, rejects)
        return written

    def _rejects(self, conn: Connection, rejects: Sequence[Reject]) -> None:
        insert_rejects(conn, self.keys.portfolio, self.group, self.stream, rejects)

    def _report(self, entries: int, decisions: int, written: int, rejects: list[Reject]) -> None:
        duplicates = entries - len(rejects) - written
        self.stats["written"] += written
        self.stats["duplicates"] += duplicates
        self.stats["rejected"] += len(rejects)
        for r in rejects:
            self.log.error("entry rejected", msg_id=r.stream_id, error=r.error)
        level = "info" if duplicates or rejects else "debug"
        getattr(self.log, level)(
            "batch written",
            entries=entries,
            written=written,
            duplicates=duplicates,
            rejected=len(rejects),
            decisions=decisions,
        )
