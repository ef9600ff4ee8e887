"""A throwaway Redis Cluster on this machine, from the system ``redis-server``.

For ``riskgate bench --cluster`` and the cluster tests: ``masters`` primaries and
``replicas`` replicas of each on free loopback ports, each in its own directory, joined
with ``redis-cli --cluster create``. Cluster mode needs no extra package: any Redis 7
``redis-server`` has it. Nothing here is used by a production process.

    with LocalCluster(tmp_dir) as cluster:             # 3 masters, a replica each: ok
        RedisCluster.from_url(cluster.url)              # any node's URL will do
        master = cluster.master_for_slot(slot)
        cluster.kill(master)                            # SIGKILL, as a crashed host
        cluster.wait_promoted(master)                   # its replica serves its slots
        cluster.restart(master)                         # it rejoins as a replica

Nodes run with ``--save "" --appendonly no``, a short ``cluster-node-timeout`` (1500 ms)
and ``cluster-replica-validity-factor 0``, so a killed master's replica is promoted
about two seconds later however long it was cut off. The cluster is ready when every
node says ``cluster_state:ok`` with all 16384 slots served AND every replica's link to
its master is up: a replica that never finished its first sync cannot be promoted.
"""

from __future__ import annotations

import random
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from redis import Redis
from redis.exceptions import RedisError

from consumers.errors import UsageError
from consumers.servers.binaries import system_binary
from consumers.servers.cluster_nodes import Node, parse_nodes

SLOTS = 16384


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A free port whose cluster bus port (+10000) is free too, both below the kernel's
    ephemeral range (32768 and up) so that no client socket takes them meanwhile."""
    for _ in range(1000):
        port = random.randint(10000, 22767)
        if _bindable(port) and _bindable(port + 10000):
            return port
    raise RuntimeError("no free port pair for a cluster node")


@dataclass
class Server:
    """One ``redis-server`` of the cluster; its port stays the same across restarts."""

    directory: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.directory / "redis.log"

    def kill(self) -> None:
        """SIGKILL: no goodbye to the cluster, as a crashed host (nothing is persisted)."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
            self.proc = None


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
        if masters < 3:
            raise UsageError("a Redis Cluster needs at least 3 masters")
        self.dir = directory
        self.masters = masters
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self.start_timeout = start_timeout
        self.extra_args = args  # more redis-server options for every node
        self.redis_server = system_binary("redis-server")
        self.redis_cli = system_binary("redis-cli")
        self.servers: list[Server] = []

    # -- life ----------------------------------------------------------------------------

    def start(self) -> LocalCluster:
        try:
            for i in range(self.masters * (1 + self.replicas)):
                server = Server(self.dir / f"n{i}")
                server.directory.mkdir(parents=True, exist_ok=True)
                self.servers.append(server)
                self._launch(server, attempts=5)
            self._create()
            self.wait_ok()
        except BaseException:
            self.stop()
            raise
        return self

    def _command(self, server: Server) -> list[str]:
        return [
            self.redis_server, "--port", str(server.port), "--bind", "127.0.0.1",
            "--dir", str(server.directory), "--logfile", str(server.log),
            "--daemonize", "no", "--protected-mode", "no", "--save", "", "--appendonly", "no",
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(self.node_timeout_ms),
            # a replica takes over however long it was cut off: tests kill masters
            "--cluster-replica-validity-factor", "0",
            "--repl-diskless-sync-delay", "0",  # a replica's first sync starts at once
            *self.extra_args,
        ]  # fmt: skip

    def _launch(self, server: Server, attempts: int = 1) -> None:
        """Start ``server`` and wait for its PING; on its first start, on new ports
        while another process took the ones chosen."""
        for _ in range(attempts):
            if not server.port or attempts > 1:
                server.port = free_port()
            offset = server.log.stat().st_size if server.log.exists() else 0
            server.proc = subprocess.Popen(
                self._command(server),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if self._answers(server):
                return
            server.kill()
            if "Address already in use" not in _read(server.log, offset):
                break
        raise RuntimeError(f"redis-server did not start:\n{_read(server.log, 0)[-2000:]}")

    def _answers(self, server: Server) -> bool:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if server.proc is None or server.proc.poll() is not None:
                return False
            try:
                with self.client(server.port) as c:
                    if c.ping():
                        return True
            except (RedisError, OSError):
                time.sleep(0.05)
        return False

    def _create(self) -> None:
        addresses = [f"127.0.0.1:{s.port}" for s in self.servers]
        cmd = [self.redis_cli, "--cluster", "create", *addresses]
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

    def running(self) -> list[Server]:
        return [s for s in self.servers if s.proc is not None and s.proc.poll() is None]

    def server(self, port: int) -> Server:
        return next(s for s in self.servers if s.port == port)

    @staticmethod
    def client(port: int) -> Redis:
        return Redis(host="127.0.0.1", port=port, socket_timeout=5, socket_connect_timeout=2)

    def nodes(self) -> list[Node]:
        """The topology as the first running node that answers sees it."""
        last: Exception | None = None
        for server in self.running():
            try:
                with self.client(server.port) as c:
                    return parse_nodes(c.execute_command("CLUSTER", "NODES"))
            except RedisError as exc:
                last = exc
        raise RuntimeError(f"no cluster node answers: {last}")

    def live_masters(self) -> list[Node]:
        """The running masters that serve slots, in their slots' order."""
        ports = {s.port for s in self.running()}
        serving = (n for n in self.nodes() if n.master and n.slots and n.port in ports)
        return sorted(serving, key=lambda n: n.slots[0])

    def master_for_slot(self, slot: int) -> Node:
        return next(n for n in self.nodes() if n.master and n.holds(slot))

    def replica_of(self, master: Node, timeout: float = 30) -> Node:
        """``master``'s replica, once the node asked has heard of it (gossip)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [n for n in self.nodes() if n.master_id == master.node_id]
            if found:
                return found[0]
            if time.monotonic() > deadline:
                raise RuntimeError(f"no replica of :{master.port} in the cluster's view")
            time.sleep(0.1)

    # -- health --------------------------------------------------------------------------

    def state_ok(self) -> bool:
        """Every running node says ``cluster_state:ok`` with every slot served, every
        replica's link to its master is up and every master serving slots is running."""
        for server in self.running():
            try:
                with self.client(server.port) as c:
                    info = c.cluster("INFO")
                    if info.get("cluster_state") != "ok":
                        return False
                    if int(info.get("cluster_slots_ok", 0)) != SLOTS:
                        return False
                    repl = c.info("replication")
                    if repl.get("role") == "slave" and repl.get("master_link_status") != "up":
                        return False
            except RedisError:
                return False
        ports = {s.port for s in self.running()}
        return all(n.port in ports for n in self.nodes() if n.master and n.slots)

    def wait_ok(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or self.start_timeout)
        while time.monotonic() < deadline:
            if self.state_ok():
                return
            time.sleep(0.1)
        raise RuntimeError(f"the local cluster did not become ok in time:\n{self.describe()}")

    def describe(self) -> str:
        try:
            return "\n".join(str(n) for n in self.nodes())
        except RuntimeError as exc:
            return str(exc)

    # -- faults --------------------------------------------------------------------------

    def kill(self, node: Node) -> None:
        """SIGKILL a node (its data is gone: no persistence)."""
        self.server(node.port).kill()

    def restart(self, node: Node) -> None:
        """Start a killed node again on its port; it rejoins (as a replica if it was
        replaced meanwhile) from its nodes.conf."""
        self._launch(self.server(node.port))

    def wait_promoted(self, old: Node, timeout: float = 30.0) -> Node:
        """Until another node serves ``old``'s slots as a master; that node."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for n in self.nodes():
                if n.master and n.port != old.port and old.slots and n.holds(old.slots[0][0]):
                    return n
            time.sleep(0.1)
        raise RuntimeError(f"no replica took over from {old.port}:\n{self.describe()}")


def _read(path: Path, offset: int) -> str:
    if not path.exists():
        return ""
    with path.open("rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")
