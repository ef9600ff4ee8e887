"""The state's change log: a reload reads what changed since the version it holds.

Every bump of a portfolio's version adds one entry to ``<prefix>:{P}:changes`` in the
same atomic step (a commit's script, or the MULTI of a control, phase or correlations
write), trimmed to about :data:`CHANGES_KEEP` entries:

- a commit's entry: ``v`` (the version it made) and ``f`` (a JSON array of the state
  fields it set or deleted);
- any other bump's: ``f`` ``[]`` alone (it changed the control hash or the correlations,
  which a reload reads whole: they are small), with no ``v``: inside a MULTI the
  version is not known yet.

:data:`SINCE_LUA` answers, in one atomic call, with the fields changed since version
``since`` and their values now. It trusts the log only when it accounts for every
version in between: read newest first, the entries must number exactly the versions
since ``since``, every entry that names its version must name the one it stands for,
and the entry just older must be the one that made ``since`` (a commit's). A bump
written without its entry (an older gate, a hand edit) breaks one of these, and the
answer is "read everything" (fail closed: never a snapshot that misses a change).
"""

from __future__ import annotations

from redis.client import Pipeline

from consumers.bus.keys import Keys

CHANGES_KEEP = 512  # entries kept (about): a reload further behind reads the whole state


def note_bump(pipe: Pipeline, keys: Keys) -> None:
    """Queue the change-log entry of a version bump that changed no state field."""
    pipe.xadd(keys.changes, {"f": "[]"}, maxlen=CHANGES_KEEP, approximate=True)


SINCE_LUA = r"""
-- KEYS: 1 state, 2 change log, 3 control, 4 correlations. ARGV: 1 the version held.
-- Reply: {version, control, correlations, fields, values}, fields = false when the log
-- does not account for every version since (then read the whole state).
local version = redis.call('HGET', KEYS[1], 'version') or '0'
local control = redis.call('HGETALL', KEYS[3])
local corr = redis.call('GET', KEYS[4])
local now, since = tonumber(version), tonumber(ARGV[1])
if now == nil or since == nil or now < since or now - since > 4096 then
  return {version, control, corr, false, false}
end
if now == since then return {version, control, corr, {}, {}} end
local need = now - since
local entries = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', need + 1)
if #entries ~= need + 1 then return {version, control, corr, false, false} end
local seen, names = {}, {}
for i = 1, need + 1 do
  local fields = entries[i][2]
  local v, f = nil, nil
  for j = 1, #fields, 2 do
    if fields[j] == 'v' then v = fields[j + 1] elseif fields[j] == 'f' then f = fields[j + 1] end
  end
  local stands_for = now - i + 1
  if i == need + 1 then
    if v == nil or tonumber(v) ~= since then return {version, control, corr, false, false} end
  else
    if (v ~= nil and tonumber(v) ~= stands_for) or f == nil then
      return {version, control, corr, false, false}
    end
    local ok, list = pcall(cjson.decode, f)
    if not ok or type(list) ~= 'table' then return {version, control, corr, false, false} end
    for _, name in ipairs(list) do
      if not seen[name] then seen[name] = true; names[#names + 1] = name end
    end
  end
end
local values = {}
local i = 1
while i <= #names do
  local chunk = {}
  for j = i, math.min(i + 999, #names) do chunk[#chunk + 1] = names[j] end
  local got = redis.call('HMGET', KEYS[1], unpack(chunk))
  for j = 1, #got do values[#values + 1] = got[j] end
  i = i + 1000
end
return {version, control, corr, names, values}
"""
