"""Which Redis deployment a URL names, and the client for it.

- ``redis://`` / ``rediss://`` naming **any node of a Redis Cluster**: detected (one
  ``CLUSTER INFO`` when connecting: a cluster node answers it, a standalone server
  says cluster support is disabled) and served by ``redis.cluster.RedisCluster``,
  which learns the slots from that node and follows MOVED/ASK and failovers. Every
  portfolio's keys share one hash slot (``riskgate:{P}:``), so one portfolio is one
  node's business and every script and MULTI of ours stays in one slot.
- the same URL naming a **standalone** server: a plain ``Redis`` client, as before.
- ``redis+sentinel://[user:pass@]host:port[,host:port...]/service[/db]`` (and
  ``rediss+sentinel://`` for TLS): a **Sentinel**-managed primary, through
  ``redis.sentinel.Sentinel(...).master_for(service)``; after a failover the next
  connection asks the sentinels for the new primary.

``RISKGATE_REDIS_MODE`` (``auto``, the default; ``standalone``; ``cluster``) overrides
the detection for ``redis://``/``rediss://`` URLs: ``standalone`` connects lazily
without the probe (as riskgate always did), ``cluster`` insists on a cluster.

What ``connect`` returns is typed ``Redis`` for the whole codebase: a ``RedisCluster``
speaks the same commands on keys. The commands that are not about a key (TIME, WAIT,
WAITAOF, SCAN, ACL, CONFIG) go through :mod:`consumers.bus.nodes`, which sends them to
the right node.
"""

from __future__ import annotations

import os
from typing import Any, cast

from redis import Redis
from redis.cluster import RedisCluster
from redis.exceptions import NoPermissionError, RedisClusterException, ResponseError

from consumers.bus.redis_errors import ClusterUnreachable, server_of
from consumers.bus.sentinel import is_sentinel_url, parse_sentinel_url, sentinel_client
from consumers.bus.tls import tls_options
from consumers.errors import UsageError

MODE_ENV = "RISKGATE_REDIS_MODE"
MODES = ("auto", "standalone", "cluster")


def redis_mode(environ: dict[str, str] | None = None) -> str:
    """``RISKGATE_REDIS_MODE``: auto (default), standalone or cluster."""
    env = os.environ if environ is None else environ
    mode = (env.get(MODE_ENV) or "auto").strip().lower()
    if mode not in MODES:
        raise UsageError(f"{MODE_ENV} is {mode!r}: it must be one of {', '.join(MODES)}")
    return mode


def client_options(url: str, socket_timeout: float | None) -> dict[str, Any]:
    """What every riskgate client sets: timeouts above any BLOCK we use, keepalive."""
    return {
        **tls_options(url),
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": 5.0,
        "socket_keepalive": True,
    }


def open_client(url: str, *, socket_timeout: float | None = 10.0) -> Redis:
    """The client for ``url`` (see the module doc). Connects at once to learn what the
    URL names, except in standalone mode and for Sentinel URLs: a server that does not
    answer raises a ConnectionError (transient: workers retry it)."""
    if is_sentinel_url(url):
        return sentinel_client(parse_sentinel_url(url), socket_timeout)
    mode = redis_mode()
    opts = client_options(url, socket_timeout)
    if mode == "cluster":
        return cluster_client(url, opts)
    plain = Redis.from_url(url, **opts, health_check_interval=30)
    if mode == "standalone":
        return plain
    try:
        clustered = is_cluster_node(plain)
    except BaseException:
        plain.close()
        raise
    if not clustered:
        return plain
    plain.close()
    return cluster_client(url, opts)


def is_cluster_node(client: Redis) -> bool:
    """Whether ``client``'s server is a cluster node (``CLUSTER INFO`` answers). A user
    not allowed to ask is taken to be on a standalone server (riskgate's ACL roles may
    ask: ``riskgate acl``)."""
    try:
        client.execute_command("CLUSTER INFO")  # type: ignore[no-untyped-call]
    except NoPermissionError:
        return False
    except ResponseError:  # "cluster support disabled", or no CLUSTER command at all
        return False
    return True


class StreamsCluster(RedisCluster):
    """``RedisCluster`` that finds the keys of XREAD/XREADGROUP itself (after
    ``STREAMS``: the first half) instead of asking the server (``COMMAND GETKEYS``, one
    round trip per read: these commands' keys move with their options)."""

    def _get_command_keys(self, *args: Any) -> Any:
        name = args[0].decode() if args and isinstance(args[0], bytes) else str(args[0])
        if name.upper() in ("XREAD", "XREADGROUP"):
            words = [a.decode() if isinstance(a, bytes) else str(a) for a in args]
            marks = [i for i, w in enumerate(words) if w.upper() == "STREAMS"]
            if marks:
                rest = args[marks[0] + 1 :]
                if rest and len(rest) % 2 == 0:
                    return list(rest[: len(rest) // 2])
        return super()._get_command_keys(*args)  # type: ignore[no-untyped-call]


def cluster_client(url: str, opts: dict[str, Any]) -> Redis:
    """A ``RedisCluster`` seeded from the node ``url`` names (typed as ``Redis``).

    ``require_full_coverage=False``: a cluster with a failing shard still serves the
    portfolios on the others (those on the failing one get CLUSTERDOWN or an uncovered
    slot: transient, retried)."""
    try:
        client = StreamsCluster.from_url(url, require_full_coverage=False, **opts)
    except RedisClusterException as exc:
        text = str(exc)
        if "cannot be connected" in text or "reachable node" in text:
            raise ClusterUnreachable(f"no node of the cluster answered: {text}") from exc
        if "not enabled" in text:
            raise UsageError(
                f"{MODE_ENV}=cluster, but Redis at {server_of(url)} is not a cluster node"
            ) from exc
        raise UsageError(f"Redis Cluster at {server_of(url)}: {text}") from exc
    return cast(Redis, client)


def is_cluster(redis: Redis | Any) -> bool:
    return isinstance(redis, RedisCluster)


def describe(redis: Redis | Any) -> str:
    """What a client talks to, for logs: ``cluster (3 primaries)``, ``sentinel``, ``standalone``."""
    if isinstance(redis, RedisCluster):
        cluster: Any = redis
        return f"cluster ({len(cluster.get_primaries())} primaries)"
    pool = getattr(redis, "connection_pool", None)
    if pool is not None and hasattr(pool, "service_name"):
        return f"sentinel (service {pool.service_name})"
    return "standalone"
