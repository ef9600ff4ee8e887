"""Commands that are about a node, not a key, sent to the right node.

On a standalone server or a Sentinel-managed primary there is one node: the client
itself. On a Redis Cluster:

- ``TIME`` of a portfolio is the clock of the primary holding its slot (the one its
  commits run on): :func:`server_time`;
- ``WAIT``/``WAITAOF`` count the replicas of the connection's own primary and cover the
  writes made on that connection, so a durable gate writes and waits on the primary
  that owns the portfolio's slot, on one connection: :func:`on_node`;
- ``SCAN``, ``ACL SETUSER``, ``CONFIG SET`` and the like concern every primary (and
  replica): :func:`every_node`.

A node's own client does not follow MOVED or failovers; when one of these calls fails
that way the cluster client's slot map is refreshed before the error goes up (it is
transient: the caller retries and reaches the new owner).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, cast

from redis import Redis
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError, ResponseError

from consumers.bus.redis_errors import REDIS_TRANSIENT


def node_client(redis: Redis, key: str) -> Redis:
    """A client of the primary that serves ``key``'s slot (``redis`` itself unless it
    is a cluster client)."""
    if not isinstance(redis, RedisCluster):
        return redis
    cluster: Any = redis
    return cast(Redis, cluster.get_redis_connection(cluster.get_node_from_key(key)))


def refresh(redis: Redis) -> None:
    """Re-learn a cluster's slots and nodes (nothing for other clients); never raises."""
    if isinstance(redis, RedisCluster):
        cluster: Any = redis
        with contextlib.suppress(RedisError, RedisClusterException, OSError):
            cluster.nodes_manager.initialize()


class Sent:
    """Commands sent on a connection of their own to the primary serving ``key``, their
    replies read later (:meth:`replies`) while the caller does other work. Exactly one
    of :meth:`replies` and :meth:`abandon` is called, once; a connection that failed or
    was given up is closed, never reused (a reply may be half read)."""

    def __init__(self, redis: Redis, key: str, commands: Sequence[tuple[Any, ...]]) -> None:
        self.redis = redis
        self.client = node_client(redis, key)
        conn: Any = self.client.connection_pool.get_connection()
        self.conn = conn
        self.count = len(commands)
        try:
            for command in commands:
                conn.send_command(*command)
        except BaseException:
            self._failed()
            raise

    def replies(self) -> list[Any]:
        """Every command's reply, in order; an error reply as the ResponseError it is
        (that command failed, the connection is fine)."""
        try:
            out = [self._reply() for _ in range(self.count)]
        except BaseException:
            self._failed()
            raise
        self.client.connection_pool.release(self.conn)
        return out

    def abandon(self) -> None:
        """Never read the replies: close the connection."""
        self.conn.disconnect()
        self.client.connection_pool.release(self.conn)

    def _reply(self) -> Any:
        try:
            return self.conn.read_response()
        except ResponseError as exc:
            return exc

    def _failed(self) -> None:
        self.abandon()
        if self.client is not self.redis:
            refresh(self.redis)


@contextlib.contextmanager
def on_node(redis: Redis, key: str) -> Iterator[Redis]:
    """The client of ``key``'s primary; a transient failure there refreshes the slot map."""
    client = node_client(redis, key)
    try:
        yield client
    except REDIS_TRANSIENT:
        if client is not redis:
            refresh(redis)
        raise


def server_time(redis: Redis, key: str) -> tuple[int, int]:
    """``TIME`` (seconds, microseconds) of the node that serves ``key``."""
    with on_node(redis, key) as node:
        seconds, micros = node.time()
    return int(seconds), int(micros)


def every_node(redis: Redis, *, replicas: bool = True) -> list[Redis]:
    """One client per node: the primaries (and with ``replicas`` every replica) of a
    cluster, else ``redis`` alone. Replicas come from ``CLUSTER NODES``: the client's
    slot map (``CLUSTER SLOTS``) leaves out replicas that have not reported an offset."""
    if not isinstance(redis, RedisCluster):
        return [redis]
    cluster: Any = redis
    clients = {n.name: cluster.get_redis_connection(n) for n in cluster.get_primaries()}
    if not replicas:
        return list(clients.values())
    manager = cluster.nodes_manager
    for address, row in cluster.cluster_nodes().items():
        flags = set(str(row.get("flags", "")).split(","))
        if address in clients or flags & {"fail", "noaddr", "handshake"}:
            continue
        known = cluster.get_node(node_name=address)
        if known is not None:
            clients[address] = cluster.get_redis_connection(known)
            continue
        host, _, port = address.rpartition(":")
        clients[address] = manager.create_redis_node(host, int(port), **manager.connection_kwargs)
    return list(clients.values())


def serving_node(redis: Redis, key: str) -> str | None:
    """Which server serves ``key`` now, as far as the client knows (no round trip):
    a cluster's primary for the slot, the primary a Sentinel client last learnt, None
    for a standalone server. A change means a failover happened under the client."""
    if isinstance(redis, RedisCluster):
        cluster: Any = redis
        try:
            return str(cluster.get_node_from_key(key).name)
        except RedisClusterException:  # a slot nobody serves right now
            return None
    address = getattr(getattr(redis, "connection_pool", None), "master_address", None)
    return f"{address[0]}:{address[1]}" if address else None
