"""Bounded reads (:class:`BoundedReader`): XREADGROUP and XAUTOCLAIM as Lua scripts
that never bring more than a byte budget into the worker, entries over the size limit
arriving as their size and first bytes."""

from __future__ import annotations

from typing import Any

from redis import Redis

from consumers.bus.entries import (
    HEAD_KEEP,
    MAX_BATCH_BYTES,
    Entry,
    Reclaimed,
    _text,
    delivery_counts,
    to_entries,
)
from consumers.bus.keys import DATA
from schemas.messages import MAX_ENTRY_BYTES

# Reads that never bring more than ``budget`` bytes into the worker: XREADGROUP in
# chunks small enough that even entries of MAX_ENTRY_BYTES each fit what is left, and
# an entry over that size replaced by {its size (an integer: no XADD can forge one),
# its first HEAD_KEEP bytes}. Redis has no byte cap on XREADGROUP; this is one.
# KEYS: streams. ARGV: group, consumer, count (per stream), max entry bytes, budget,
# head bytes, then one start id per stream (">" for new entries, else an id: pending
# entries after it, this consumer's own).
READ_LUA = r"""
local group, consumer = ARGV[1], ARGV[2]
local count, max_entry = tonumber(ARGV[3]), tonumber(ARGV[4])
local budget, keep = tonumber(ARGV[5]), tonumber(ARGV[6])
local n = #KEYS
local ids, got, open, used = {}, {}, {}, 0
for i = 1, n do ids[i] = ARGV[6 + i]; got[i] = {}; open[i] = true end

local function shrink(item)
  local fields = item[2]
  if not fields then return item, 0 end
  local size = 0
  for j = 1, #fields do size = size + #fields[j] end
  if size <= max_entry then return item, size end
  local head = fields[2] or ''
  for j = 1, #fields, 2 do if fields[j] == 'data' then head = fields[j + 1] end end
  return {item[1], {size, string.sub(head, 1, keep)}}, keep
end

local function by_stream(reply)  -- {{stream, entries}, ...} (fakeredis: flattened)
  if not reply or #reply == 0 or type(reply[1]) == 'table' then return reply or {} end
  local out = {}
  for j = 1, #reply, 2 do out[#out + 1] = {reply[j], reply[j + 1]} end
  return out
end

while true do
  local names, starts, index = {}, {}, {}
  for i = 1, n do
    if open[i] and #got[i] < count then
      names[#names + 1] = KEYS[i]; starts[#starts + 1] = ids[i]; index[#index + 1] = i
    end
  end
  if #names == 0 then break end
  local chunk = math.floor((budget - used) / (max_entry * #names))
  local want = 0
  for j = 1, #index do want = math.max(want, count - #got[index[j]]) end
  chunk = math.min(chunk, want)
  if chunk < 1 then
    if used > 0 then break end
    chunk = 1
  end
  local args = {'XREADGROUP', 'GROUP', group, consumer, 'COUNT', chunk, 'STREAMS'}
  for j = 1, #names do args[#args + 1] = names[j] end
  for j = 1, #starts do args[#args + 1] = starts[j] end
  local reply = by_stream(redis.call(unpack(args)))
  local seen = {}
  if reply then
    for _, pair in ipairs(reply) do
      local i
      for j = 1, #index do if names[j] == pair[1] then i = index[j] end end
      seen[i] = #pair[2]
      for _, item in ipairs(pair[2]) do
        local small, size = shrink(item)
        used = used + size
        got[i][#got[i] + 1] = small
        if ids[i] ~= '>' then ids[i] = item[1] end
      end
    end
  end
  for j = 1, #index do
    local i = index[j]
    if (seen[i] or 0) < chunk then open[i] = false end
  end
end
local out = {}
for i = 1, n do if #got[i] > 0 then out[#out + 1] = {KEYS[i], got[i]} end end
return out
"""


# One XAUTOCLAIM step with oversize entries shrunk as in READ_LUA.
# KEYS: stream. ARGV: group, consumer, min idle ms, cursor, count, max entry, head.
RECLAIM_LUA = r"""
local reply = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4],
  'COUNT', ARGV[5])
local max_entry, keep = tonumber(ARGV[6]), tonumber(ARGV[7])
local items = reply[2]
for k, item in ipairs(items) do
  local fields = item[2]
  if fields then
    local size = 0
    for j = 1, #fields do size = size + #fields[j] end
    if size > max_entry then
      local head = fields[2] or ''
      for j = 1, #fields, 2 do if fields[j] == 'data' then head = fields[j + 1] end end
      items[k] = {item[1], {size, string.sub(head, 1, keep)}}
    end
  end
end
return reply
"""


def _lua_entry(stream: str, item: Any, deliveries: int = 1) -> Entry:
    """An entry from READ_LUA/RECLAIM_LUA (no fields: pending but trimmed away)."""
    msg_id, flat = item[0], item[1]
    if not flat:
        return Entry(stream, msg_id, None, {}, deliveries)
    if isinstance(flat[0], int):  # the shrunk form: {size, head}
        return Entry(stream, msg_id, None, {}, deliveries, int(flat[0]), bytes(flat[1]))
    fields = dict(zip(flat[0::2], flat[1::2], strict=True))
    return Entry(stream, msg_id, fields.get(DATA), fields, deliveries)


class BoundedReader:
    """XREADGROUP and XAUTOCLAIM that bound what one call brings in: ``count`` entries
    per stream and ``max_bytes`` in all, no entry over MAX_ENTRY_BYTES (such entries
    arrive as their size and first bytes). Needs EVALSHA (the gate's ACL has it)."""

    def __init__(self, redis: Redis, max_bytes: int = MAX_BATCH_BYTES) -> None:
        self.redis = redis
        self.max_bytes = max(max_bytes, MAX_ENTRY_BYTES)
        self._read = redis.register_script(READ_LUA)
        self._reclaim = redis.register_script(RECLAIM_LUA)

    def read(
        self,
        group: str,
        consumer: str,
        starts: dict[str, str],
        *,
        count: int,
        block_ms: int | None = None,
    ) -> list[Entry]:
        """Entries after ``starts`` ({stream: ">" or an id of our own pending ones}).

        With ``block_ms`` and nothing there, waits with a plain XREADGROUP COUNT 1: the
        one entry it may bring is dropped at once when oversize (Redis cannot size it
        first), then the batch is filled by the bounded read.
        """
        entries = self._bounded(group, consumer, starts, count)
        if entries or not block_ms or any(s != ">" for s in starts.values()):
            return entries
        reply = self.redis.xreadgroup(group, consumer, starts, count=1, block=block_ms)  # type: ignore[arg-type]
        first = to_entries(reply)
        if not first:
            return first
        return first + self._bounded(group, consumer, starts, max(count - 1, 1))

    def _bounded(
        self, group: str, consumer: str, starts: dict[str, str], count: int
    ) -> list[Entry]:
        names = list(starts)
        reply = self._read(keys=names, args=self._args(group, consumer, starts, count))
        return self.entries(reply)

    def _args(self, group: str, consumer: str, starts: dict[str, str], count: int) -> list[Any]:
        head = [group, consumer, count, MAX_ENTRY_BYTES, self.max_bytes, HEAD_KEEP]
        return [*head, *starts.values()]

    def command(
        self, group: str, consumer: str, starts: dict[str, str], *, count: int
    ) -> tuple[Any, ...]:
        """The bounded read (no blocking) as one ``EVALSHA`` command, for a caller that
        sends it on a connection of its own; its reply goes to :meth:`entries`. The
        script must be loaded (any :meth:`read` loads it): if the server lost it, the
        reply is a NOSCRIPT error and nothing was read."""
        names = list(starts)
        args = self._args(group, consumer, starts, count)
        return ("EVALSHA", self._read.sha, len(names), *names, *args)

    @staticmethod
    def entries(reply: Any) -> list[Entry]:
        """The entries of a bounded read's reply."""
        return [_lua_entry(_text(stream), item) for stream, items in reply or [] for item in items]

    def reclaim(
        self,
        stream: str,
        group: str,
        consumer: str,
        *,
        min_idle_ms: int,
        count: int,
        cursor: bytes | str = b"0-0",
    ) -> Reclaimed:
        """:func:`reclaim`, bounded: at most max_bytes // MAX_ENTRY_BYTES entries."""
        count = max(1, min(count, self.max_bytes // MAX_ENTRY_BYTES))
        args: list[Any] = [group, consumer, min_idle_ms, cursor, count, MAX_ENTRY_BYTES, HEAD_KEEP]
        reply = self._reclaim(keys=[stream], args=args)
        next_cursor, items = reply[0], reply[1]
        deleted = list(reply[2]) if len(reply) > 2 else []
        live = [i for i in items if i[1]]
        deleted += [i[0] for i in items if not i[1]]
        counts = delivery_counts(self.redis, stream, group, consumer, [i[0] for i in live])
        entries = [_lua_entry(stream, i, counts.get(i[0], 1)) for i in live]
        return Reclaimed(entries, deleted, next_cursor)
