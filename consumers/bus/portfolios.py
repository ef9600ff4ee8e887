"""The portfolio registry: one Redis set, ``<prefix>:portfolios`` (:func:`registry_key`).

``riskgate portfolios add/remove/list`` maintain it, ``riskgate deposit`` adds the
portfolio it funds, and the long-running processes started with ``--all-portfolios``
read it (SMEMBERS, one key: fine on a Redis Cluster) every few seconds, so a portfolio
added while they run is served without a restart, and one removed is let go.
"""

from __future__ import annotations

from collections.abc import Iterable

from redis import Redis

from consumers.bus.keys import PORTFOLIO_PATTERN, Keys, registry_key


def valid(name: str) -> bool:
    return bool(PORTFOLIO_PATTERN.match(name))


def check(names: Iterable[str]) -> list[str]:
    """The names, each checked like a ``Keys`` portfolio; ValueError naming a bad one."""
    out: list[str] = []
    for name in names:
        if not valid(name):
            raise ValueError(f"portfolio name {name!r} must be 1-64 chars of A-Za-z0-9_.-")
        if name not in out:
            out.append(name)
    return out


def registered(redis: Redis, prefix: str) -> tuple[list[str], list[str]]:
    """(the registered portfolios, sorted; members that are no portfolio name)."""
    members = redis.smembers(registry_key(prefix))
    names = sorted(m.decode(errors="replace") if isinstance(m, bytes) else str(m) for m in members)
    return [n for n in names if valid(n)], [n for n in names if not valid(n)]


def register(redis: Redis, keys: Keys) -> bool:
    """Add ``keys``' portfolio to the registry; True when it was not there."""
    return bool(redis.sadd(keys.registry, keys.portfolio))


def add(redis: Redis, prefix: str, names: Iterable[str]) -> int:
    names = check(names)
    return int(redis.sadd(registry_key(prefix), *names)) if names else 0


def remove(redis: Redis, prefix: str, names: Iterable[str]) -> int:
    """Remove members (any text: a bad one added by hand goes too)."""
    names = list(dict.fromkeys(names))
    return int(redis.srem(registry_key(prefix), *names)) if names else 0
