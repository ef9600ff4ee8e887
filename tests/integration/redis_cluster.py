"""A private Redis Cluster from the system ``redis-server``: 3 masters and, by default,
one replica each, on free ports, created with ``redis-cli --cluster create``.

    with LocalCluster(tmp_path) as cluster:            # 6 processes, cluster_state:ok
        cluster.url                                     # redis://127.0.0.1:PORT/0 (one node)
        names = cluster.portfolios("it")                # a portfolio on each master
        cluster.kill(cluster.master_of(names[0]))       # SIGKILL; its replica takes over

Nodes run with ``--save "" --appendonly no`` and a short ``cluster-node-timeout``
(1500 ms), so a killed master's replica is promoted about two seconds later. Never
touches the shared server on 6379.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from redis import Redis
from redis.cluster import key_slot
from redis.exceptions import RedisError

from tests.integration.redis_server import REDIS_SERVER, RedisServer, free_port

REDIS_CLI = str(Path(REDIS_SERVER).with_name("redis-cli"))


@dataclass(frozen=True, slots=True)
class Node:
    """One line of ``CLUSTER NODES`` that matters here."""

    port: int
    node_id: str
    master: bool
    master_id: str | None  # a replica's master
    slots: tuple[tuple[int, int], ...]

    def holds(self, slot: int) -> bool:
        return any(lo <= slot <= hi for lo, hi in self.slots)


def slot_of(portfolio: str) -> int:
    """The hash slot of a portfolio's keys (the ``{portfolio}`` hash tag)."""
    return int(key_slot(portfolio.encode()))


class LocalCluster:
    def __init__(
        self,
        directory: Path,
        *,
        masters: int = 3,
        replicas: int = 1,
        node_timeout_ms: int = 1500,
        start_timeout: float = 60.0,
        args: tuple[str, ...] = (),
    ) -> None:
        self.dir = directory
        self.masters = masters
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self.start_timeout = start_timeout
        self.extra_args = args  # more redis-server options for every node
        self.servers: list[RedisServer] = []

    # -- life ----------------------------------------------------------------------------

    def _args(self) -> tuple[str, ...]:
        return (
            "--cluster-enabled", "yes",
            # the bus port, free too (the default, port + 10000, may be taken or > 65535)
            "--cluster-port", str(free_port()),
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(self.node_timeout_ms),
            # a replica takes over however long it was cut off: tests kill masters
            "--cluster-replica-validity-factor", "0",
            *self.extra_args,
        )  # fmt: skip

    def start(self) -> LocalCluster:
        count = self.masters * (1 + self.replicas)
        try:
            for i in range(count):
                self.servers.append(RedisServer(self.dir / f"n{i}", args=self._args()).start())
            self._create()
            self.wait_ok()
        except BaseException:
            self.stop()
            raise
        return self

    def _create(self) -> None:
        addresses = [f"127.0.0.1:{s.port}" for s in self.servers]
        cmd = [REDIS_CLI, "--cluster", "create", *addresses]
        cmd += ["--cluster-replicas", str(self.replicas), "--cluster-yes"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed:\n{done.stdout}{done.stderr}")

    def stop(self) -> None:
        for server in self.servers:
            server.kill()  # nothing to keep: no persistence
        self.servers.clear()

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what it looks like --------------------------------------------------------------

    @property
    def url(self) -> str:
        """A URL naming one node (the first one that is running)."""
        return self.url_of(self.running()[0].port)

    @staticmethod
    def url_of(port: int) -> str:
        return f"redis://127.0.0.1:{port}/0"

    def running(self) -> list[RedisServer]:
        return [s for s in self.servers if s.proc is not None]

    def server(self, port: int) -> RedisServer:
        return next(s for s in self.servers if s.port == port)

    def client(self, port: int) -> Redis:
        return Redis(host="127.0.0.1", port=port, socket_timeout=5, socket_connect_timeout=2)

    def nodes(self) -> list[Node]:
        """The topology as a running node sees it."""
        last: Exception | None = None
        for server in self.running():
            try:
                with self.client(server.port) as r:
                    parsed = r.cluster("NODES")
            except RedisError as exc:
                last = exc
                continue
            return [_node(address, row) for address, row in parsed.items()]
        raise AssertionError(f"no cluster node answers: {last}")

    def live_masters(self) -> list[Node]:
        ports = {s.port for s in self.running()}
        return sorted(
            (n for n in self.nodes() if n.master and n.slots and n.port in ports),
            key=lambda n: n.slots[0],
        )

    def master_of(self, portfolio: str) -> Node:
        slot = slot_of(portfolio)
        return next(n for n in self.nodes() if n.master and n.holds(slot))

    def replica_of(self, master: Node) -> Node:
        return next(n for n in self.nodes() if n.master_id == master.node_id)

    def portfolios(self, tag: str) -> list[str]:
        """One new portfolio name per master, in the masters' slot order."""
        names: list[str] = []
        for master in self.live_masters():
            while True:
                name = f"{tag}-{uuid.uuid4().hex[:10]}"
                if master.holds(slot_of(name)):
                    names.append(name)
                    break
        return names

    # -- health --------------------------------------------------------------------------

    def state_ok(self) -> bool:
        """Every running node says ``cluster_state:ok``, every slot is served and every
        replica's link to its master is up."""
        for server in self.running():
            try:
                with self.client(server.port) as r:
                    info = r.cluster("INFO")
                    if info.get("cluster_state") != "ok":
                        return False
                    if int(info.get("cluster_slots_ok", 0)) != 16384:
                        return False
                    repl = r.info("replication")
                    if repl.get("role") == "slave" and repl.get("master_link_status") != "up":
                        return False
            except RedisError:
                return False
        nodes = self.nodes()
        ports = {s.port for s in self.running()}
        return all(n.port in ports for n in nodes if n.master and n.slots)

    def wait_ok(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or self.start_timeout)
        while time.monotonic() < deadline:
            if self.state_ok():
                return
            time.sleep(0.1)
        raise AssertionError(f"the cluster did not come up:\n{self.describe()}")

    def describe(self) -> str:
        try:
            return "\n".join(str(n) for n in self.nodes())
        except AssertionError as exc:
            return str(exc)

    # -- faults --------------------------------------------------------------------------

    def kill(self, node: Node) -> None:
        """SIGKILL a node (its data is gone: no persistence)."""
        self.server(node.port).kill()

    def restart(self, node: Node) -> None:
        """Start a killed node again on its port; it rejoins (as a replica if it was
        replaced meanwhile) from its nodes.conf."""
        self.server(node.port).start()

    def wait_promoted(self, old: Node, timeout: float = 30.0) -> Node:
        """Until another node serves ``old``'s slots as a master; that node."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for n in self.nodes():
                if n.master and n.port != old.port and old.slots and n.holds(old.slots[0][0]):
                    return n
            time.sleep(0.1)
        raise AssertionError(f"no replica took over from {old.port}:\n{self.describe()}")


def _node(address: str, row: dict[str, Any]) -> Node:
    """A node from redis-py's parsed ``CLUSTER NODES`` (address -> fields)."""
    flags = str(row["flags"]).split(",")
    slots = tuple((int(r[0]), int(r[-1])) for r in row.get("slots") or [])
    master_id = str(row["master_id"])
    return Node(
        int(address.rsplit(":", 1)[1]),
        str(row["node_id"]),
        "master" in flags and "fail" not in flags,
        None if master_id == "-" else master_id,
        slots,
    )
