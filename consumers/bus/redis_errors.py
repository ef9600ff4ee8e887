"""Which Redis errors are transient, what kind each is, and how the CLI says it.

Transient means "not now": the server is down, restarting or loading, a cluster is
failing over (CLUSTERDOWN, MASTERDOWN, TRYAGAIN, a slot nobody serves), a redirect
escaped the client (MOVED, ASK: the slot moved while we asked), or a promoted replica's
old primary refuses writes (READONLY). Workers retry these with backoff and never give
up; each is counted by kind (``riskgate_redis_errors_total{kind=...}``). Anything else
from Redis (WRONGTYPE, NOPERM, a script error) is not transient.
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from urllib.parse import urlsplit

from redis.exceptions import (
    AskError,
    AuthenticationError,
    BusyLoadingError,
    ClusterDownError,
    ClusterError,
    ConnectionError,
    MasterDownError,
    MovedError,
    NoPermissionError,
    ReadOnlyError,
    RedisClusterException,
    RedisError,
    SlotNotCoveredError,
    TimeoutError,
    TryAgainError,
)

_CONNECTING = re.compile(r"connecting to (\S+?:\d+)")


class ClusterUnreachable(ConnectionError):
    """No node of a Redis Cluster answered (the client could not learn the slots)."""


#: Redis errors that mean "not now": retry, never give up.
REDIS_TRANSIENT: tuple[type[Exception], ...] = (
    ConnectionError,  # refused, reset, DNS, auth (AuthenticationError), Sentinel's no-master
    TimeoutError,
    BusyLoadingError,
    ClusterDownError,  # CLUSTERDOWN, and MASTERDOWN (MasterDownError)
    ClusterError,  # the client's redirect budget ran out mid-failover
    TryAgainError,  # TRYAGAIN: a multi-key command during a slot migration
    AskError,  # ASK, and MOVED (MovedError): a redirect that escaped the client
    ReadOnlyError,  # READONLY: still talking to a primary that was demoted
    SlotNotCoveredError,  # the client's slot map has a hole: refreshed on the next try
)

#: kind label of each transient error, most specific first
_KINDS: tuple[tuple[type[BaseException], str], ...] = (
    (MasterDownError, "master_down"),
    (ClusterDownError, "cluster_down"),
    (MovedError, "moved"),
    (AskError, "ask"),
    (TryAgainError, "try_again"),
    (ReadOnlyError, "readonly"),
    (SlotNotCoveredError, "slot_not_covered"),
    (ClusterError, "cluster_retries_exhausted"),
    (BusyLoadingError, "loading"),
    (AuthenticationError, "auth"),
    (ClusterUnreachable, "cluster_unreachable"),
    (TimeoutError, "timeout"),
    (ConnectionError, "connection"),
)
KINDS: tuple[str, ...] = tuple(kind for _, kind in _KINDS)


def error_kind(exc: BaseException) -> str:
    """The kind of a transient Redis error (``other`` for anything else)."""
    for cls, kind in _KINDS:
        if isinstance(exc, cls):
            return kind
    return "other"


def count_redis_error(stats: MutableMapping[str, int], exc: BaseException) -> str:
    """Count a transient error in a worker's ``stats``: the total and its kind."""
    kind = error_kind(exc)
    stats["redis_errors"] = stats.get("redis_errors", 0) + 1
    stats["redis_errors:" + kind] = stats.get("redis_errors:" + kind, 0) + 1
    return kind


def by_kind(stats: MutableMapping[str, int] | dict[str, int]) -> dict[str, int]:
    """Transient errors per kind from ``stats``; a total no kind accounts for is ``other``."""
    kinds = {
        name.split(":", 1)[1]: int(n)
        for name, n in stats.items()
        if name.startswith("redis_errors:")
    }
    rest = int(stats.get("redis_errors", 0)) - sum(kinds.values())
    if rest > 0:
        kinds["other"] = kinds.get("other", 0) + rest
    return kinds


def is_redis_error(exc: BaseException) -> bool:
    """An error from Redis or the client talking to it (a cluster's too)."""
    return isinstance(exc, RedisError | RedisClusterException)


def server_of(url: str) -> str:
    """Where a Redis URL points, without credentials: ``host:port`` (a Sentinel URL:
    its sentinels and service)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1] or "localhost"
    if parts.scheme.endswith("+sentinel"):
        return f"sentinels {netloc}, service {parts.path.strip('/').split('/', 1)[0]}"
    if parts.scheme == "unix":
        return parts.path
    return netloc if ":" in netloc.rsplit("]", 1)[-1] else f"{netloc}:6379"


def _node_of(exc: BaseException) -> str | None:
    """The node that failed: redis-py's cluster client sets ``exc.connection``; a
    connection error names it (``connecting to host:port``)."""
    conn = getattr(exc, "connection", None)
    host, port = getattr(conn, "host", None), getattr(conn, "port", None)
    if host and port:
        return f"{host}:{port}"
    found = _CONNECTING.search(str(exc))
    return found.group(1) if found else None


def _message(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


def explain(exc: BaseException, url: str | None) -> tuple[str, int]:
    """One line for the CLI naming the server (``url``; None: the embedded one) and the
    problem, and the exit status: 3 when Redis is unreachable or unavailable (down,
    failing over, a slot unserved), 1 when it refused the command (permissions, wrong
    type, a script error)."""
    server = server_of(url) if url else None
    where = f"Redis at {server}" if server else "the embedded Redis"
    node = _node_of(exc)
    if node and node != server:  # a cluster node other than the one the URL names
        where = f"Redis node {node} (of the cluster at {server})" if server else where
    kind = error_kind(exc)
    if isinstance(exc, NoPermissionError):
        return f"{where} refused: {_message(exc)} (the user lacks a permission)", 1
    if isinstance(exc, AuthenticationError):
        return f"{where} refused the credentials: {_message(exc)}", 3
    if kind in ("cluster_down", "master_down", "slot_not_covered", "cluster_retries_exhausted"):
        return f"{where}: the cluster cannot serve this portfolio now ({_message(exc)})", 3
    if kind in ("moved", "ask", "try_again", "readonly"):
        return f"{where}: a failover or slot move is under way ({_message(exc)}); retry", 3
    if kind == "cluster_unreachable":
        return f"cannot reach {where}: {_message(exc)}", 3
    if kind in ("connection", "timeout", "loading"):
        return f"cannot reach {where}: {_message(exc)}", 3
    return f"{where}: {_message(exc)}", 1
