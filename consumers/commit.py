"""Commit one decided batch atomically: a single Lua script call.

The script refuses the whole batch when the portfolio version moved since the batch
was decided (``conflict``: re-read, re-decide) or when an intent or event in it was
already decided/applied (``duplicate``: drop those, re-decide the rest). Otherwise,
in one step: each decision XADDed and its "decided" marker set, each order XADDed,
each event's "applied" marker set, dead letters XADDed, reuse notices XADDed, the
state hash updated, the version bumped, and every entry of the batch XACKed. Nothing
is acked before its output exists; nothing is half-written.

The decided marker ``decided:<intent_id>`` holds ``<decision stream id> <digest>``
(the digest of what the intent said, :func:`schemas.messages.intent_digest`). An
intent whose id is marked with the same digest (or a marker written before digests,
which has none) is a duplicate; with a different digest it is *reused*: the reply
names it and the original decision's stream id, and the worker answers it with a
dead letter and a reuse notice instead of a decision (docs/PROTOCOL.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from redis import Redis

from consumers.keys import Keys

COMMIT_LUA = r"""
-- unpack() has a stack limit: call variadic commands 1000 arguments at a time
local function chunked(cmd, key, head, items)
  local i = 1
  while i <= #items do
    local args = {}
    if head then args[1] = head end
    for j = i, math.min(i + 999, #items) do args[#args + 1] = items[j] end
    redis.call(cmd, key, unpack(args))
    i = i + 1000
  end
end

local state = KEYS[1]
local version = redis.call('HGET', state, 'version') or '0'
if version ~= ARGV[1] then
  return {'conflict', version}
end
local group = ARGV[2]
local ni, ne, nd = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local nset, ndel, ttl = tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8]
local nacki, nacke = tonumber(ARGV[9]), tonumber(ARGV[10])
local first_marker, nmarkers = 7, ni + ne

local nnotice = tonumber(ARGV[11])
if nmarkers > 0 then
  local dup, reused = {}, {}
  for m = 1, ni do
    local mark = redis.call('GET', KEYS[first_marker + m - 1])
    if mark then
      local sid, digest = string.match(mark, '^(%S+) (%S+)$')
      local ours = ARGV[12 + (m - 1) * 5 + 3]
      if digest == nil or ours == '' or digest == ours then dup[#dup + 1] = tostring(m)
      else reused[#reused + 1] = tostring(m); reused[#reused + 1] = sid end
    end
  end
  for m = ni + 1, nmarkers do
    if redis.call('EXISTS', KEYS[first_marker + m - 1]) == 1 then dup[#dup + 1] = tostring(m) end
  end
  if #dup + #reused > 0 then return {'duplicate', version, dup, reused} end
end

local p = 12
local ack_intents, ack_events = {}, {}
for i = 1, ni do
  local msg, decision, order, digest = ARGV[p], ARGV[p + 1], ARGV[p + 2], ARGV[p + 3]
  local own_ttl = ARGV[p + 4]  -- '0': the default; quota rejections keep theirs short
  p = p + 5
  local id = redis.call('XADD', KEYS[4], '*', 'data', decision)
  if digest ~= '' then id = id .. ' ' .. digest end
  redis.call('SET', KEYS[first_marker + i - 1], id, 'EX', own_ttl ~= '0' and own_ttl or ttl)
  if order ~= '' then redis.call('XADD', KEYS[5], '*', 'data', order) end
  ack_intents[#ack_intents + 1] = msg
end
for j = 1, ne do
  redis.call('SET', KEYS[first_marker + ni + j - 1], '1', 'EX', ttl)
  ack_events[#ack_events + 1] = ARGV[p]
  p = p + 1
end
for d = 1, nd do
  local source, msg, payload = ARGV[p], ARGV[p + 1], ARGV[p + 2]
  p = p + 3
  redis.call('XADD', KEYS[6], '*', 'data', payload)
  if source == 'i' then ack_intents[#ack_intents + 1] = msg
  else ack_events[#ack_events + 1] = msg end
end
for n = 1, nnotice do  -- reuse notices: on the decisions stream, no marker (its dead letter acks)
  redis.call('XADD', KEYS[4], '*', 'data', ARGV[p])
  p = p + 1
end
local sets, dels = {}, {}
for s = 1, nset * 2 do sets[s] = ARGV[p]; p = p + 1 end
for s = 1, ndel do dels[s] = ARGV[p]; p = p + 1 end
chunked('HSET', state, nil, sets)
chunked('HDEL', state, nil, dels)
for a = 1, nacki do ack_intents[#ack_intents + 1] = ARGV[p]; p = p + 1 end
for a = 1, nacke do ack_events[#ack_events + 1] = ARGV[p]; p = p + 1 end
chunked('XACK', KEYS[2], group, ack_intents)
chunked('XACK', KEYS[3], group, ack_events)
local new_version = redis.call('HINCRBY', state, 'version', 1)
return {'ok', tostring(new_version)}
"""


@dataclass(slots=True)
class DecidedEntry:
    msg_id: bytes
    intent_id: str
    decision: str  # Decision JSON
    order: str  # ApprovedOrder JSON, "" when rejected
    digest: str = ""  # what the intent said (schemas.messages.intent_digest); "" unchecked
    ttl_s: int = 0  # its decided marker's TTL; 0: the committer's (quota rejections: short)


@dataclass(slots=True)
class AppliedEntry:
    msg_id: bytes
    event_id: str


@dataclass(slots=True)
class DeadEntry:
    source: Literal["i", "e"]  # which stream to ack it on: intents or events
    msg_id: bytes
    payload: str  # dead-letter JSON


@dataclass(slots=True)
class CommitPlan:
    expected_version: int
    decided: list[DecidedEntry] = field(default_factory=list)
    applied: list[AppliedEntry] = field(default_factory=list)
    dead: list[DeadEntry] = field(default_factory=list)
    hset: dict[str, str] = field(default_factory=dict)
    hdel: list[str] = field(default_factory=list)
    ack_intents: list[bytes] = field(default_factory=list)  # acked with no output
    ack_events: list[bytes] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)  # reuse notices (Decision JSON)

    def empty(self) -> bool:
        return not (
            self.decided
            or self.applied
            or self.dead
            or self.notices
            or self.hset
            or self.hdel
            or self.ack_intents
            or self.ack_events
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: Literal["ok", "conflict", "duplicate"]
    version: int
    duplicate_intents: tuple[str, ...] = ()
    duplicate_events: tuple[str, ...] = ()
    reused: tuple[tuple[str, str], ...] = ()  # (intent_id, stream id of its decision)


class Committer:
    def __init__(self, redis: Redis, keys: Keys, group: str, marker_ttl_s: int) -> None:
        self.redis = redis
        self.keys = keys
        self.group = group
        self.marker_ttl_s = marker_ttl_s
        self.script = redis.register_script(COMMIT_LUA)

    def commit(self, plan: CommitPlan) -> Outcome:
        k = self.keys
        keys = [k.state, k.intents, k.events, k.decisions, k.orders, k.deadletter]
        keys += [k.decided(d.intent_id) for d in plan.decided]
        keys += [k.applied(a.event_id) for a in plan.applied]
        args: list[Any] = [
            plan.expected_version,
            self.group,
            len(plan.decided),
            len(plan.applied),
            len(plan.dead),
            len(plan.hset),
            len(plan.hdel),
            self.marker_ttl_s,
            len(plan.ack_intents),
            len(plan.ack_events),
            len(plan.notices),
        ]
        for d in plan.decided:
            args += (d.msg_id, d.decision, d.order, d.digest, d.ttl_s)
        args += [a.msg_id for a in plan.applied]
        for x in plan.dead:
            args += (x.source, x.msg_id, x.payload)
        args += plan.notices
        for name, value in plan.hset.items():
            args += (name, value)
        args += plan.hdel
        args += plan.ack_intents
        args += plan.ack_events
        reply = self.script(keys=keys, args=args)
        kind = _text(reply[0])
        version = int(_text(reply[1]))
        if kind == "ok":
            return Outcome("ok", version)
        if kind == "conflict":
            return Outcome("conflict", version)
        marks = [int(_text(x)) for x in reply[2]]
        pairs = reply[3]
        n = len(plan.decided)
        return Outcome(
            "duplicate",
            version,
            tuple(plan.decided[m - 1].intent_id for m in marks if m <= n),
            tuple(plan.applied[m - n - 1].event_id for m in marks if m > n),
            tuple(
                (plan.decided[int(_text(pairs[j])) - 1].intent_id, _text(pairs[j + 1]))
                for j in range(0, len(pairs), 2)
            ),
        )


def _text(value: bytes | str | int) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
