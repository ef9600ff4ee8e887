"""The commit script (Lua): check everything and write nothing, then the state, then
the outputs and the acks last. The phases and the markers are explained in
:mod:`consumers.gate_worker.commit`; the KEYS and ARGV layout is at the script's top."""

from __future__ import annotations

COMMIT_LUA = r"""
-- KEYS: 1 state, 2 intents, 3 events, 4 decisions, 5 orders, 6 dead letters, 7 the
--   state's change log; then one decided marker per decided intent and one applied
--   marker per applied event; then, for a fenced commit (a gate holding the
--   portfolio's lease), the lease key.
--   A durable gate (ARGV[12] = 1) names its outbox as both 4 and 5.
-- ARGV: 1 expected version, 2 group, 3 decided, 4 applied, 5 dead letters,
--   6 fields to set, 7 fields to delete, 8 marker TTL, 9 intents to ack, 10 events to
--   ack, 11 notices, 12 outbox (0: publish directly, 1: to the outbox); then per
--   decided intent (msg id, decision, order, digest, own TTL),
--   per applied event (msg id), per dead letter (source i|e, msg id, payload), the
--   notices, the (field, value) pairs to set, the fields to delete, the ack ids; last,
--   for a fenced commit, the lease value the committer holds: the batch is refused
--   ('fenced', nothing written) unless the lease still holds exactly that value.
--   ARGV[13]: how many entries the change log keeps (about).
-- Every commit adds one entry to the change log: v (the version it made) and f (a JSON
-- array of the state fields it set or deleted), so a reload reads what changed since
-- the version it holds instead of the whole state (consumers/state/store.py).

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

local function shown(s)  -- for a message: quoted, short, printable
  return "'" .. string.gsub(string.sub(tostring(s), 1, 80), '[%c\128-\255]', '?') .. "'"
end
local function count(s)  -- a non-negative integer, or nil
  if s == nil or #s > 9 or not string.match(s, '^%d+$') then return nil end
  return tonumber(s)
end
local function seconds(s)  -- a positive whole number of seconds SET EX takes
  return #s <= 12 and string.match(s, '^[1-9]%d*$') ~= nil
end
local function stream_id(s)
  local ms, seq = string.match(s, '^(%d+)%-(%d+)$')
  if ms then return #ms <= 19 and #seq <= 19 end
  return #s <= 19 and string.match(s, '^%d+$') ~= nil
end
local function decided_mark(mark)  -- sid, digest or nil, version or nil; nil: unreadable
  local sid, digest, made = string.match(mark, '^(%S+) (%S+) (%d+)$')
  if sid == nil then sid, digest = string.match(mark, '^(%S+) (%S+)$') end
  if sid == nil then sid = string.match(mark, '^(%S+)$') end
  if digest == '-' then digest = nil end
  return sid, digest, made
end
local function get_string(key, what)  -- value or false; nil, problem when not a string
  local got = redis.pcall('GET', key)
  if type(got) == 'table' and got.err then
    return nil, string.format('%s %s is a %s, not a string', what, key,
      redis.call('TYPE', key).ok)
  end
  return got
end

local function check()  -- nil, or what is wrong; reads only
  if #ARGV < 13 then return 'ARGV has ' .. #ARGV .. ' entries, fewer than its 13 counts' end
  local names = {[3] = 'decided intents', [4] = 'applied events', [5] = 'dead letters',
    [6] = 'fields to set', [7] = 'fields to delete', [9] = 'intents to ack',
    [10] = 'events to ack', [11] = 'notices'}
  local n = {}
  for _, i in ipairs({3, 4, 5, 6, 7, 9, 10, 11}) do
    n[i] = count(ARGV[i])
    if n[i] == nil then
      return 'ARGV[' .. i .. '] (' .. names[i] .. ') is ' .. shown(ARGV[i]) ..
        ', not a non-negative integer'
    end
  end
  local ni, ne, nd, nnotice = n[3], n[4], n[5], n[11]
  local fence = (#KEYS == 8 + ni + ne) and 1 or 0  -- the lease key and value, last
  local want = 13 + 5 * ni + ne + 3 * nd + nnotice + 2 * n[6] + n[7] + n[9] + n[10] + fence
  if #ARGV ~= want then return 'ARGV has ' .. #ARGV .. ' entries, its counts say ' .. want end
  if #KEYS ~= 7 + ni + ne + fence then
    return 'KEYS has ' .. #KEYS .. ' keys, the counts say ' .. (7 + ni + ne)
  end
  if #ARGV[1] > 15 or not string.match(ARGV[1], '^%d+$') then
    return 'the expected version ' .. shown(ARGV[1]) .. ' is not a non-negative integer'
  end
  if ARGV[2] == '' then return 'the consumer group is empty' end
  if ARGV[12] ~= '0' and ARGV[12] ~= '1' then
    return 'ARGV[12] (outbox) is ' .. shown(ARGV[12]) .. ', neither 0 nor 1'
  end
  if ARGV[12] == '1' and KEYS[4] ~= KEYS[5] then
    return 'a durable commit names one outbox, not ' .. KEYS[4] .. ' and ' .. KEYS[5]
  end
  if count(ARGV[13]) == nil or tonumber(ARGV[13]) < 1 then
    return 'ARGV[13] (change log length) is ' .. shown(ARGV[13]) .. ', not a positive integer'
  end
  if not seconds(ARGV[8]) then
    return 'the marker TTL ' .. shown(ARGV[8]) .. ' is not a positive whole number of seconds'
  end
  -- which of KEYS[1..6] this batch writes: only those must be usable
  local writes = {true, ni + n[9] > 0, ne + n[10] > 0, ni + nnotice > 0, false, nd > 0, true}
  local p = 14
  for i = 1, ni do
    if ARGV[p + 2] ~= '' then writes[5] = true end
    if not stream_id(ARGV[p]) then
      return 'decided intent ' .. i .. ': message id ' .. shown(ARGV[p]) .. ' is not a stream id'
    end
    if ARGV[p + 1] == '' then return 'decided intent ' .. i .. ': the decision is empty' end
    if string.find(ARGV[p + 3], '%s') then
      return 'decided intent ' .. i .. ': the digest ' .. shown(ARGV[p + 3]) .. ' has a space'
    end
    if ARGV[p + 4] ~= '0' and not seconds(ARGV[p + 4]) then
      return 'decided intent ' .. i .. ': its marker TTL ' .. shown(ARGV[p + 4]) ..
        ' is neither 0 nor a positive whole number of seconds'
    end
    p = p + 5
  end
  for j = 1, ne do
    if not stream_id(ARGV[p]) then
      return 'applied event ' .. j .. ': message id ' .. shown(ARGV[p]) .. ' is not a stream id'
    end
    p = p + 1
  end
  for d = 1, nd do
    if ARGV[p] ~= 'i' and ARGV[p] ~= 'e' then
      return 'dead letter ' .. d .. ': source ' .. shown(ARGV[p]) .. ' is neither i nor e'
    end
    if ARGV[p] == 'i' then writes[2] = true else writes[3] = true end
    if not stream_id(ARGV[p + 1]) then
      return 'dead letter ' .. d .. ': message id ' .. shown(ARGV[p + 1]) .. ' is not a stream id'
    end
    p = p + 3
  end
  p = p + nnotice
  for s = 1, n[6] do
    if ARGV[p] == 'version' then return 'a field to set is the version' end
    p = p + 2
  end
  for s = 1, n[7] do
    if ARGV[p] == 'version' then return 'a field to delete is the version' end
    p = p + 1
  end
  for a = 1, n[9] + n[10] do
    if not stream_id(ARGV[p]) then return 'ack id ' .. shown(ARGV[p]) .. ' is not a stream id' end
    p = p + 1
  end
  local kinds = {'hash', 'stream', 'stream', 'stream', 'stream', 'stream', 'stream'}
  local roles = {'the state', 'the intents stream', 'the events stream',
    'the decisions stream', 'the orders stream', 'the dead-letter stream',
    "the state's change log"}
  if ARGV[12] == '1' then roles[4], roles[5] = 'the outbox', 'the outbox' end
  for i = 1, 7 do
    local t = writes[i] and redis.call('TYPE', KEYS[i]).ok or 'none'
    if t ~= 'none' and t ~= kinds[i] then
      return roles[i] .. ' ' .. KEYS[i] .. ' is a ' .. t .. ', not a ' .. kinds[i]
    end
    if t == 'stream' and i >= 4 then  -- an output: XADD '*' needs an id left
      local info = redis.call('XINFO', 'STREAM', KEYS[i])
      for f = 1, #info, 2 do
        if info[f] == 'last-generated-id'
            and info[f + 1] == '18446744073709551615-18446744073709551615' then
          return roles[i] .. ' ' .. KEYS[i] .. ' has used up its stream ids'
        end
      end
    end
  end
  return nil
end

local bad = check()
if bad then return {'invalid', bad} end

-- fencing: only the lease's holder commits (consumers/bus/lease.py)
if #KEYS == 8 + tonumber(ARGV[3]) + tonumber(ARGV[4]) then
  local holder, problem = get_string(KEYS[#KEYS], 'the lease')
  if problem then return {'invalid', problem} end
  if holder ~= ARGV[#ARGV] then return {'fenced', holder or ''} end
end

local state = KEYS[1]
local version = redis.call('HGET', state, 'version') or '0'
if #version > 15 or not string.match(version, '^%d+$') then
  return {'invalid', 'the state ' .. state .. ' has version ' .. shown(version) ..
    ', not a non-negative integer'}
end
if version ~= ARGV[1] then
  return {'conflict', version}
end
local group = ARGV[2]
local ni, ne, nd = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local nset, ndel, ttl = tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8]
local nacki, nacke, nnotice = tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])
local first_marker = 8
local current = tonumber(version)

-- markers: a proven one is a duplicate (or a reuse); an unproven one is overwritten
local dup, reused, unproven = {}, {}, {}
for m = 1, ni do
  local key = KEYS[first_marker + m - 1]
  local mark, problem = get_string(key, 'the decided marker')
  if problem then return {'invalid', problem} end
  if mark then
    local sid, digest, made = decided_mark(mark)
    if sid == nil then
      return {'invalid', 'the decided marker ' .. key .. ' holds ' .. shown(mark) ..
        ', not "<stream id> <digest> <version>"'}
    end
    if made ~= nil and tonumber(made) > current then
      unproven[#unproven + 1] = tostring(m)
    else
      local ours = ARGV[14 + (m - 1) * 5 + 3]
      if digest == nil or ours == '' or digest == ours then dup[#dup + 1] = tostring(m)
      else reused[#reused + 1] = tostring(m); reused[#reused + 1] = sid end
    end
  end
end
for m = ni + 1, ni + ne do
  local key = KEYS[first_marker + m - 1]
  local mark, problem = get_string(key, 'the applied marker')
  if problem then return {'invalid', problem} end
  if mark then
    local made = string.match(mark, '^(%d+)$')
    if made == nil then
      return {'invalid', 'the applied marker ' .. key .. ' holds ' .. shown(mark) ..
        ', not "<version>"'}
    end
    if tonumber(made) > current then unproven[#unproven + 1] = tostring(m)
    else dup[#dup + 1] = tostring(m) end
  end
end
if #dup + #reused > 0 then return {'duplicate', version, dup, reused} end

-- every check passed: nothing below can fail. The state first.
local outbox = ARGV[12] == '1'
local p = 14
local decided = p
p = p + 5 * ni
local applied = p
p = p + ne
local dead = p
p = p + 3 * nd
local notices = p
p = p + nnotice
local sets, dels = {}, {}
for s = 1, nset * 2 do sets[s] = ARGV[p]; p = p + 1 end
for s = 1, ndel do dels[s] = ARGV[p]; p = p + 1 end
local acks = p
chunked('HSET', state, nil, sets)
chunked('HDEL', state, nil, dels)
local new_version = tostring(redis.call('HINCRBY', state, 'version', 1))
local changed = {}
for s = 1, nset * 2, 2 do changed[#changed + 1] = sets[s] end
for s = 1, ndel do changed[#changed + 1] = dels[s] end
redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[13], '*', 'v', new_version,
  'f', #changed > 0 and cjson.encode(changed) or '[]')

-- then the outputs, each carried by the state just written
local ack_intents, ack_events, marks = {}, {}, {}
p = decided
for i = 1, ni do
  local msg, decision, order, digest = ARGV[p], ARGV[p + 1], ARGV[p + 2], ARGV[p + 3]
  p = p + 5
  local sid
  if outbox then  -- published by consumers/state/outbox.py once replicas hold it
    local mk = KEYS[first_marker + i - 1]
    sid = redis.call('XADD', KEYS[4], '*', 'to', 'd', 'mk', mk, 'data', decision)
    if order ~= '' then redis.call('XADD', KEYS[5], '*', 'to', 'o', 'mk', '', 'data', order) end
  else
    sid = redis.call('XADD', KEYS[4], '*', 'data', decision)
    if order ~= '' then redis.call('XADD', KEYS[5], '*', 'data', order) end
  end
  marks[i] = sid .. ' ' .. (digest ~= '' and digest or '-') .. ' ' .. new_version
  ack_intents[#ack_intents + 1] = msg
end
p = dead
for d = 1, nd do
  local source, msg, payload = ARGV[p], ARGV[p + 1], ARGV[p + 2]
  p = p + 3
  redis.call('XADD', KEYS[6], '*', 'data', payload)
  if source == 'i' then ack_intents[#ack_intents + 1] = msg
  else ack_events[#ack_events + 1] = msg end
end
-- reuse notices: on the decisions stream, no marker (their dead letters ack)
for n = 0, nnotice - 1 do
  if outbox then redis.call('XADD', KEYS[4], '*', 'to', 'd', 'mk', '', 'data', ARGV[notices + n])
  else redis.call('XADD', KEYS[4], '*', 'data', ARGV[notices + n]) end
end
p = decided
for i = 1, ni do
  local own_ttl = ARGV[p + 4]  -- '0': the default; quota rejections keep theirs short
  redis.call('SET', KEYS[first_marker + i - 1], marks[i], 'EX', own_ttl ~= '0' and own_ttl or ttl)
  p = p + 5
end
for j = 1, ne do
  redis.call('SET', KEYS[first_marker + ni + j - 1], new_version, 'EX', ttl)
  ack_events[#ack_events + 1] = ARGV[applied + j - 1]
end
-- the acks last
p = acks
for a = 1, nacki do ack_intents[#ack_intents + 1] = ARGV[p]; p = p + 1 end
for a = 1, nacke do ack_events[#ack_events + 1] = ARGV[p]; p = p + 1 end
chunked('XACK', KEYS[2], group, ack_intents)
chunked('XACK', KEYS[3], group, ack_events)
return {'ok', new_version, unproven}
"""
