"""The shared rate limiter: one budget per data source for every process on a Redis.

A provider limits an API key, not a process, so the budget lives in Redis: each
source has a sorted set of the times of its requests in the last window (key
``<prefix>:source:{<name>}:requests``), and one Lua script, run atomically, drops
what left the window, and either records a new request or says how long until the
oldest one leaves. It is a sliding-window log, stricter than a token bucket: no span
of ``per_seconds`` ever holds more than ``requests`` requests, however many processes
ask (a token bucket of the same rate lets up to twice that through a window boundary,
enough for a free tier's "5 a minute" to answer with a refusal). Time is Redis's
clock, so hosts with skewed clocks still share one window.

The limits come from ``data_source_registry`` (synced from the config's
``rate_limit``): ``requests`` per ``per_seconds``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from redis import Redis

from consumers.bus.keys import source_requests_key
from consumers.market.sources.base import RateLimited

ACQUIRE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local n = redis.call('ZCARD', KEYS[1])
if n < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return {1, 0, now, n + 1}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, tonumber(oldest[2]) + window - now, now, n}
"""


@dataclass(frozen=True, slots=True)
class Limit:
    requests: int
    per_seconds: int

    @property
    def window_ms(self) -> int:
        return self.per_seconds * 1000


@dataclass(frozen=True, slots=True)
class Grant:
    allowed: bool
    wait_ms: int  # until a request may be made (0 when allowed)
    at_ms: int  # Redis's time of the decision (ms)
    in_window: int  # requests in the window after this one


class SharedLimiter:
    """``acquire(source, limit)`` before every request a source makes."""

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        *,
        max_wait_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.max_wait_s = max_wait_s
        self.sleep = sleep
        self._script = redis.register_script(ACQUIRE_LUA)

    def key(self, source: str) -> str:
        return source_requests_key(self.prefix, source)

    def try_acquire(self, source: str, limit: Limit) -> Grant:
        allowed, wait, at, n = self._script(
            keys=[self.key(source)], args=[limit.requests, limit.window_ms, uuid.uuid4().hex]
        )
        return Grant(bool(allowed), max(0, int(wait)), int(at), int(n))

    def acquire(self, source: str, limit: Limit, max_wait_s: float | None = None) -> Grant:
        """Wait (sleeping) for a request of ``source``'s budget; RateLimited when none
        frees up within ``max_wait_s``."""
        budget = self.max_wait_s if max_wait_s is None else max_wait_s
        waited = 0.0
        while True:
            grant = self.try_acquire(source, limit)
            if grant.allowed:
                return grant
            delay = grant.wait_ms / 1000 + 0.001
            if waited + delay > budget:
                raise RateLimited(
                    f"{source}: {limit.requests} requests per {limit.per_seconds} s used up "
                    f"(shared limiter); next in {grant.wait_ms / 1000:.1f} s"
                )
            self.sleep(delay)
            waited += delay

    def in_window(self, source: str, limit: Limit) -> int:
        """Requests counted in the current window (for ``riskgate sources status``)."""
        seconds, micros = self.redis.time()
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        return int(self.redis.zcount(self.key(source), now_ms - limit.window_ms + 1, "+inf"))
