"""Which gate processes are alive, so that they share the portfolios fairly.

One Redis hash, ``<prefix>:gates`` (:func:`members_key`): consumer name -> its last beat
(milliseconds on Redis's clock) and a digest of the portfolios it serves. Every gate
host beats once per lease renewal, drops the members whose beat is older than the
window, and counts the live ones serving the same portfolios as itself: its fair share
is those portfolios divided by that count, rounded up (consumers/gate_worker/host.py).
Processes serving different sets do not count each other (neither could take the
other's share). One key outside every portfolio's hash tag: fine on a Redis Cluster.

Balancing is a convenience, never a safety property: who decides a portfolio is the
lease's business alone. So any error here turns balancing off for that beat (every
process may then take every free lease, as without it), and a process that cannot
write the hash (an ACL without it) simply takes what it finds free.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable

from redis import Redis
from redis.exceptions import RedisError

from consumers.bus.keys import DEFAULT_PREFIX


def members_key(prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}:gates"


class Membership:
    def __init__(self, redis: Redis, prefix: str, consumer: str, window_ms: int) -> None:
        self.redis = redis
        self.key = members_key(prefix)
        self.consumer = consumer
        self.window_ms = window_ms

    def beat(self, serving: Iterable[str]) -> int | None:
        """Record our beat, forget the dead; how many live processes (us included) serve
        the same portfolios as we do (None: unknown)."""
        digest = hashlib.sha256("\n".join(sorted(serving)).encode()).hexdigest()[:16]
        try:
            seconds, micros = self.redis.time()
            now = int(seconds) * 1000 + int(micros) // 1000
            pipe = self.redis.pipeline(transaction=False)
            pipe.hset(self.key, self.consumer, f"{now} {digest}")
            pipe.hgetall(self.key)
            _, seen = pipe.execute()
            dead, alike = [], 0
            for name, value in seen.items():
                at, _, theirs = (value.decode() if isinstance(value, bytes) else value).partition(
                    " "
                )
                if now - int(at) > self.window_ms:
                    dead.append(name)
                elif theirs == digest:
                    alike += 1
            if dead:
                self.redis.hdel(self.key, *dead)
        except (RedisError, ValueError):
            return None
        return max(1, alike)

    def leave(self) -> None:
        """Say goodbye at shutdown, so the others' share grows at their next beat."""
        with contextlib.suppress(RedisError):  # else its beat ages out of the window
            self.redis.hdel(self.key, self.consumer)
