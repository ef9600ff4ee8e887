"""Ownership of a portfolio by lease: one gate process decides a portfolio at a time.

The lease is one key in the portfolio's hash tag (:attr:`Keys.lease`), a string with a
PX TTL on Redis's clock. Its value names the holder: JSON ``{"owner": <consumer name>,
"since": <ISO time of the acquisition, Redis's clock>, "token": <random>}``. The token
makes every acquisition's value unique, so two processes started under one consumer
name never both hold it, and an owner that lost it cannot renew it by accident.

- :meth:`Lease.acquire`: ``SET key value NX PX ttl``: only when nobody holds it.
- :meth:`Lease.renew`: compare-and-renew (Lua): ``PEXPIRE`` only while the value is ours.
- :meth:`Lease.release`: compare-and-delete (Lua): a graceful shutdown hands over at once.
- The commit script refuses a batch when the lease is not the committer's (fencing:
  consumers/gate_worker/commit_lua.py), so an owner that stalled past its TTL commits
  nothing once another took over.

A lease that is not renewed expires after its TTL; a standby polling every
``renew_ms`` takes it over within TTL + one poll of the owner's death.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from redis import Redis

from consumers.bus.keys import Keys
from consumers.bus.nodes import server_time

RENEW_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class LeaseLost(RuntimeError):
    """This process no longer holds the portfolio's lease: stand by, commit nothing.
    ``holder``: the lease's value when it was found another's (None: unknown or free)."""

    def __init__(self, message: str, holder: str | None = None) -> None:
        super().__init__(message)
        self.holder = holder


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a portfolio's lease, since when, and for how much longer."""

    owner: str
    since: datetime | None
    expires_in_ms: int  # -1: no TTL (set by hand); the key is gone once 0

    @classmethod
    def parse(cls, raw: bytes | str, pttl: int) -> Holder:
        text = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
        try:
            data = json.loads(text)
            owner, since = str(data["owner"]), datetime.fromisoformat(str(data["since"]))
        except (ValueError, TypeError, KeyError):
            return cls(text[:200], None, pttl)  # not ours: shown as it is
        return cls(owner, since, pttl)


def holder(redis: Redis, keys: Keys) -> Holder | None:
    """The lease's holder, or None when nobody holds it."""
    pipe = redis.pipeline(transaction=False)
    pipe.get(keys.lease)
    pipe.pttl(keys.lease)
    raw, pttl = pipe.execute()
    if raw is None:
        return None
    return Holder.parse(raw, int(pttl))


def redis_time(redis: Redis, key: str | None = None) -> datetime:
    """Redis's clock (with ``key``: on a cluster, that of the node holding it)."""
    seconds, micros = server_time(redis, key) if key is not None else redis.time()
    return datetime.fromtimestamp(int(seconds), UTC).replace(microsecond=int(micros))


class Lease:
    """One process's hold on one portfolio's lease (``owner``: its consumer name)."""

    def __init__(self, redis: Redis, keys: Keys, owner: str, ttl_ms: int) -> None:
        self.redis = redis
        self.keys = keys
        self.owner = owner
        self.ttl_ms = ttl_ms
        self.value: str | None = None  # ours while we hold it
        self._renew = redis.register_script(RENEW_LUA)
        self._release = redis.register_script(RELEASE_LUA)

    @property
    def held(self) -> bool:
        """Whether we believe we hold it (the commit's fence is the proof)."""
        return self.value is not None

    def acquire(self) -> bool:
        """Take the lease if nobody holds it; True when it is ours now."""
        since = redis_time(self.redis, self.keys.lease).isoformat()
        value = json.dumps(
            {"owner": self.owner, "since": since, "token": secrets.token_hex(8)},
            separators=(",", ":"),
        )
        if self.redis.set(self.keys.lease, value, nx=True, px=self.ttl_ms):
            self.value = value
            return True
        return False

    def renew(self) -> bool:
        """Extend our lease by its TTL; False (and no longer ours) when we lost it."""
        if self.value is None:
            return False
        if int(self._renew(keys=[self.keys.lease], args=[self.value, self.ttl_ms])):
            return True
        self.value = None
        return False

    def release(self) -> bool:
        """Give the lease up (only if it is still ours); True when it was deleted."""
        value, self.value = self.value, None
        if value is None:
            return False
        return bool(int(self._release(keys=[self.keys.lease], args=[value])))

    def forget(self) -> None:
        """We no longer hold it (the commit was fenced): stop claiming it."""
        self.value = None
