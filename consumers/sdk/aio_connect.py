"""Which Redis deployment a URL names, for the asyncio SDK: the twin of
:mod:`consumers.bus.topology`, with ``redis.asyncio`` clients.

- ``redis+sentinel://`` (and ``rediss+sentinel://``): the primary the sentinels name,
  through ``redis.asyncio.sentinel.Sentinel(...).master_for``; a new connection, and
  one taken from the pool at most every ``RISKGATE_SENTINEL_CHECK_S``, asks them again,
  so after a failover the client reaches the new primary within about a second.
- ``redis://``/``rediss://`` naming any node of a Redis Cluster: a
  ``redis.asyncio.cluster.RedisCluster`` seeded from it; a standalone server: a plain
  ``redis.asyncio.Redis``.

``RISKGATE_REDIS_MODE`` decides as for the synchronous client: ``standalone`` and
``cluster`` connect lazily, without asking; ``auto`` (the default) asks the server once
(``CLUSTER INFO``). :func:`connect_async` is synchronous (a constructor may call it), so
in ``auto`` mode it asks with a short-lived synchronous connection, blocking the event
loop for that one round trip; :func:`open_async` asks with the asyncio client instead.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping
from typing import Any, cast

from redis import Redis as SyncRedis
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import MasterNotFoundError, Sentinel, SentinelConnectionPool
from redis.exceptions import NoPermissionError, ResponseError

from consumers.bus.runtime import redis_url as resolve_redis_url
from consumers.bus.sentinel import (
    CHECK_ENV,
    SentinelTarget,
    is_sentinel_url,
    parse_sentinel_url,
)
from consumers.bus.topology import client_options, is_cluster_node, redis_mode


def connect_async(url: str | None = None, *, socket_timeout: float | None = 10.0) -> Redis:
    """An asyncio client for ``url`` (else ``$REDIS_URL``, else the embedded server):
    a cluster, a Sentinel-managed primary or a standalone server (module doc)."""
    url = resolve_redis_url(url)
    if is_sentinel_url(url):
        return sentinel_async(parse_sentinel_url(url), socket_timeout)
    mode = redis_mode()
    opts = client_options(url, socket_timeout)
    if mode == "cluster":
        return cluster_async(url, opts)
    if mode == "auto":
        probe = SyncRedis.from_url(url, **opts)
        try:
            clustered = is_cluster_node(probe)
        finally:
            probe.close()
        if clustered:
            return cluster_async(url, opts)
    return Redis.from_url(url, **opts, health_check_interval=30)


async def open_async(url: str | None = None, *, socket_timeout: float | None = 10.0) -> Redis:
    """:func:`connect_async`, asking the server what it is on the event loop."""
    url = resolve_redis_url(url)
    if is_sentinel_url(url) or redis_mode() != "auto":
        return connect_async(url, socket_timeout=socket_timeout)
    opts = client_options(url, socket_timeout)
    plain = Redis.from_url(url, **opts, health_check_interval=30)
    try:
        await plain.execute_command("CLUSTER INFO")  # type: ignore[no-untyped-call]
    except (NoPermissionError, ResponseError):  # a standalone server, or not allowed to ask
        return plain
    except BaseException:
        await plain.aclose()
        raise
    await plain.aclose()
    return cluster_async(url, opts)


def cluster_async(url: str, opts: dict[str, Any]) -> Redis:
    """A cluster client seeded from ``url``'s node (typed as ``Redis``); a shard that
    fails leaves the others served (``require_full_coverage=False``)."""
    return cast(Redis, RedisCluster.from_url(url, require_full_coverage=False, **opts))


class FollowingPoolAsync(SentinelConnectionPool):
    """:class:`consumers.bus.sentinel.FollowingPool` on asyncio: at most every
    ``check_every_s`` a connection taken asks the sentinels where the primary is; on a
    change idle connections to the old one are closed and busy ones dropped when they
    come back, so the client does not keep writing to a demoted primary (which accepts
    writes until Sentinel converts it, then discards them)."""

    check_every_s = 1.0

    def __init__(self, service_name: str, sentinel_manager: Any, **kwargs: Any) -> None:
        super().__init__(service_name, sentinel_manager, **kwargs)  # type: ignore[no-untyped-call]
        self._next_check = time.monotonic() + self.check_every_s

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + self.check_every_s
            # no primary known: a new connection's connect() says so (a ConnectionError)
            with contextlib.suppress(MasterNotFoundError):
                await self.get_master_address()  # type: ignore[no-untyped-call]
        return await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]


def sentinel_async(
    target: SentinelTarget, socket_timeout: float | None, environ: Mapping[str, str] | None = None
) -> Redis:
    """The primary of ``target.service``: lazy; a new connection, and one taken at most
    every ``RISKGATE_SENTINEL_CHECK_S`` (1), asks the sentinels where it is."""
    env = os.environ if environ is None else environ
    timeouts = {"socket_timeout": socket_timeout, "socket_connect_timeout": 5.0}
    sentinels: Any = Sentinel  # redis-py leaves Sentinel untyped
    sentinel = sentinels(
        target.sentinels,
        sentinel_kwargs={**timeouts, **target.tls, **target.sentinel_auth},
        **timeouts,
    )
    return cast(
        Redis,
        sentinel.master_for(
            target.service,
            redis_class=Redis,
            connection_pool_class=type(
                "FollowingPool",
                (FollowingPoolAsync,),
                {"check_every_s": float(env.get(CHECK_ENV) or 1.0)},
            ),
            db=target.db,
            socket_keepalive=True,
            **target.tls,
            **target.auth,
        ),
    )


async def close_async(redis: Redis) -> None:
    """Close ``redis``'s connections, and a Sentinel client's connections to the
    sentinels (its own ``aclose`` leaves those open)."""
    await redis.aclose()
    manager = getattr(getattr(redis, "connection_pool", None), "sentinel_manager", None)
    for sentinel in getattr(manager, "sentinels", ()):
        await sentinel.aclose()


async def server_time_async(redis: Redis, key: str) -> tuple[int, int]:
    """Redis's ``TIME`` (seconds, microseconds) on the node holding ``key``: on a
    cluster the primary of the portfolio (the gate's clock), else the server."""
    if isinstance(redis, RedisCluster):
        cluster: Any = redis
        node = cluster.get_node_from_key(key)
        reply = await cluster.execute_command("TIME", target_nodes=node)
    else:
        reply = await redis.time()
    seconds, micros = reply
    return int(seconds), int(micros)
