"""Durable approvals: a batch's decisions and orders reach agents and executors only
once replicas (``--replicas N``) or append-only files (``--aof``) hold its commit.

Redis replicates asynchronously: a commit that returned OK, and orders executors
already read, can vanish when a failover promotes a replica that never received
them; the intents are then decided again and a second order goes out while the first
one's reservation is gone. A durable gate therefore commits its decisions and orders
to the portfolio's **outbox** stream (same script, same atomicity: commit.py), then

1. reads what the outbox holds,
2. writes ``outbox-sync`` and sends ``WAIT N timeout`` (``WAITAOF 1 N timeout`` with
   ``--aof``) on the same connection: replication is one ordered stream, so a replica
   that acknowledged that write holds every commit before it (on a Redis Cluster both
   go to the primary that owns the portfolio's slot, on that node's own connection:
   consumers/bus/nodes.py),
3. moves what it read to the decisions and orders streams (MOVE_LUA, each entry once:
   an entry another worker moved meanwhile is gone from the outbox and skipped), and
   points each decided marker at its decision's new stream id.

When the wait falls short (a replica down or behind), nothing is published: the
entries stay in the outbox, their reservations keep counting, the failure is counted
(``riskgate_outbox_wait_failures_total``) and retried no more than once per
``retry_s``; ``riskgate_outbox_entries`` and ``riskgate_outbox_oldest_age_seconds``
show what is held. After a failover the new primary's outbox holds exactly the commits
the replica received; publishing them can repeat a decision or an order that the old
primary published but never replicated the move of. Executors deduplicate by
``intent_id`` (the SDK does), and the audit writer keeps the first decision per intent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import ResponseError

from consumers.bus.keys import Keys
from consumers.bus.nodes import on_node

#: entries read and moved per round trip
CHUNK = 500

MOVE_LUA = r"""
-- KEYS: 1 outbox, 2 decisions, 3 orders, then the decided markers named by the entries.
-- ARGV: per entry, its outbox id and the index of its marker among KEYS[4..] (0: none).
-- Each entry is moved whole (XADD, marker, XDEL) or left in the outbox; one already
-- moved (by another worker) is gone and skipped. Nothing is written before the checks.
local kinds = {'stream', 'stream', 'stream'}
for i = 1, #KEYS do
  local t = redis.call('TYPE', KEYS[i]).ok
  local want = kinds[i] or 'string'
  if t ~= 'none' and t ~= want then
    return {'invalid', KEYS[i] .. ' is a ' .. t .. ', not a ' .. want}
  end
end
local moved = 0
for a = 1, #ARGV, 2 do
  local id, m = ARGV[a], tonumber(ARGV[a + 1])
  local got = redis.call('XRANGE', KEYS[1], id, id)
  if #got == 1 then
    local f = got[1][2]
    local to, data = nil, nil
    for j = 1, #f, 2 do
      if f[j] == 'to' then to = f[j + 1] elseif f[j] == 'data' then data = f[j + 1] end
    end
    if data ~= nil then
      local sid = redis.call('XADD', to == 'o' and KEYS[3] or KEYS[2], '*', 'data', data)
      if m and m > 0 then
        local mark = redis.call('GET', KEYS[3 + m])
        if mark then
          local first, rest = string.match(mark, '^(%S+)(.*)$')
          if first == id then redis.call('SET', KEYS[3 + m], sid .. rest, 'KEEPTTL') end
        end
      end
    end
    redis.call('XDEL', KEYS[1], id)
    moved = moved + 1
  end
end
return {'ok', moved}
"""


class OutboxError(RuntimeError):
    """The outbox or a stream it publishes to is unusable; nothing was moved."""


class DurabilityError(ValueError):
    """The server cannot give the durability asked for (``--aof`` without WAITAOF)."""


@dataclass(frozen=True, slots=True)
class Held:
    """What the outbox holds: entries, and the oldest one's age on Redis's clock."""

    entries: int
    oldest_age_s: float


def held(redis: Redis, keys: Keys) -> Held:
    """Entries waiting in the outbox and the oldest one's age (the clock of the node
    that holds the portfolio: on a cluster, TIME is sent there)."""
    with on_node(redis, keys.outbox) as node:
        pipe = node.pipeline(transaction=False)
        pipe.xlen(keys.outbox)
        pipe.xrange(keys.outbox, count=1)
        pipe.time()
        n, first, (seconds, micros) = pipe.execute()
    if not first:
        return Held(int(n), 0.0)
    raw = first[0][0]
    sent_ms = int((raw.decode() if isinstance(raw, bytes) else raw).split("-", 1)[0])
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    return Held(int(n), max(0.0, (now_ms - sent_ms) / 1000))


class Outbox:
    """Publish a durable gate's committed outputs once ``replicas`` (and, with ``aof``,
    the append-only files) hold them. ``release()`` after each commit, and from time to
    time while something is held. With no replicas and no aof it publishes at once:
    every gate drains what a durable one left (after a failover, or a change of mode)."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        *,
        replicas: int,
        aof: bool = False,
        timeout_ms: int = 500,
        retry_s: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if replicas < 0:
            raise ValueError(f"replicas must be 0 or more, not {replicas}")
        self.redis = redis
        self.keys = keys
        self.replicas = replicas
        self.aof = aof
        self.timeout_ms = timeout_ms
        self.retry_s = retry_s
        self.monotonic = monotonic
        self.script = redis.register_script(MOVE_LUA)
        self.moved = 0
        self.wait_failures = 0
        self.last_acked: int | None = None  # replicas that acknowledged the last wait
        self._retry_at = 0.0

    def check_server(self) -> int:
        """Raise :class:`DurabilityError` when ``aof`` cannot be confirmed here; return
        how many replicas are connected now (fewer than ``replicas``: orders are held
        until enough are)."""
        with on_node(self.redis, self.keys.outbox_sync) as node:
            if self.aof:
                try:  # answers at once: nothing written on this connection to wait for
                    node.execute_command("WAITAOF", 1, 0, 1)  # type: ignore[no-untyped-call]
                except ResponseError as exc:
                    raise DurabilityError(
                        f"--aof cannot be confirmed by this Redis ({exc}): it needs WAITAOF "
                        "(Redis 7.2 or later) and appendonly yes; use --replicas N, and "
                        "appendfsync always on the server for its own disk"
                    ) from exc
            # on a fresh connection WAIT 0 0 answers at once: the replicas connected now
            return int(node.wait(0, 0))

    def held(self) -> Held:
        return held(self.redis, self.keys)

    def release(self) -> int:
        """Publish what the outbox holds if replicas confirm it; the entries moved.
        After a wait that fell short, tries again only once ``retry_s`` has passed."""
        if self.monotonic() < self._retry_at:
            return 0
        total = 0
        while True:
            rows = self.redis.xrange(self.keys.outbox, count=CHUNK)
            if not rows:
                return total
            if not self._confirmed():
                self.wait_failures += 1
                self._retry_at = self.monotonic() + self.retry_s
                return total
            total += self._move(rows)  # type: ignore[arg-type]
            if len(rows) < CHUNK:
                return total

    def _confirmed(self) -> bool:
        """Whether the replicas (and AOFs) hold every write made before this call;
        a gate that is not durable publishes what a durable one left at once."""
        if self.replicas == 0 and not self.aof:
            return True
        # one connection to the primary that holds the portfolio (on a cluster, that
        # node's own client): the WAIT covers the SET, and every commit before it
        with on_node(self.redis, self.keys.outbox_sync) as node:
            pipe = node.pipeline(transaction=False)
            pipe.set(self.keys.outbox_sync, str(time.time_ns()))
            if self.aof:
                pipe.execute_command("WAITAOF", 1, self.replicas, self.timeout_ms)  # type: ignore[no-untyped-call]
            else:
                pipe.wait(self.replicas, self.timeout_ms)
            _, acked = pipe.execute()
        if self.aof:
            local, replicas = (int(x) for x in acked)
            self.last_acked = replicas
            return local >= 1 and replicas >= self.replicas
        self.last_acked = int(acked)
        return self.last_acked >= self.replicas

    def _move(self, rows: list[tuple[bytes, dict[bytes, bytes]]]) -> int:
        k = self.keys
        keys = [k.outbox, k.decisions, k.orders]
        markers: dict[bytes, int] = {}
        args: list[bytes | int] = []
        for msg_id, fields in rows:
            mk = fields.get(b"mk") or b""
            index = 0
            if mk:
                index = markers.setdefault(mk, len(markers) + 1)
            args += (msg_id, index)
        keys += [m.decode() for m in markers]
        reply = self.script(keys=keys, args=args)
        kind = _text(reply[0])
        if kind != "ok":
            raise OutboxError(f"outbox not published, nothing moved: {_text(reply[1])}")
        moved = int(reply[1])
        self.moved += moved
        return moved


def _text(value: bytes | str | int) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
