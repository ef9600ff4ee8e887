"""Redis Sentinel processes from the system ``redis-server --sentinel``, watching a
primary started by the test (tests/integration/redis_server.py), on free ports.

    with Sentinels(tmp_path, "rg", primary.port, count=2) as sentinels:
        sentinels.url                  # redis+sentinel://127.0.0.1:P1,127.0.0.1:P2/rg
        sentinels.wait_replicas(1)     # they know the replica: a failover can pick it
        sentinels.failover()           # SENTINEL FAILOVER rg
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from redis import Redis
from redis.exceptions import RedisError

from tests.integration.redis_server import REDIS_SERVER, free_port


class Sentinels:
    def __init__(self, directory: Path, service: str, primary_port: int, *, count: int = 2) -> None:
        self.dir = directory
        self.service = service
        self.primary_port = primary_port
        self.count = count
        self.ports: list[int] = []
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.ports)
        return f"redis+sentinel://{hosts}/{self.service}"

    def _config(self, port: int, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        conf = directory / "sentinel.conf"  # sentinels rewrite their config: one each
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndaemonize no\nprotected-mode no\n"
            f"dir {directory}\nlogfile {directory / 'sentinel.log'}\n"
            f"sentinel monitor {self.service} 127.0.0.1 {self.primary_port} 1\n"
            f"sentinel down-after-milliseconds {self.service} 1000\n"
            f"sentinel failover-timeout {self.service} 10000\n"
            f"sentinel parallel-syncs {self.service} 1\n"
        )
        return conf

    def start(self) -> Sentinels:
        try:
            for i in range(self.count):
                port = free_port()
                conf = self._config(port, self.dir / f"s{i}")
                self.procs.append(
                    subprocess.Popen(
                        [REDIS_SERVER, str(conf), "--sentinel"],
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
                self.ports.append(port)
            self._until(lambda: all(self._master(p) for p in self.ports), "sentinels up")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)
        self.procs.clear()

    def __enter__(self) -> Sentinels:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def client(self, port: int | None = None) -> Redis:
        return Redis(host="127.0.0.1", port=port or self.ports[0], socket_timeout=5)

    def _master(self, port: int) -> tuple[str, int] | None:
        try:
            with self.client(port) as s:
                addr = s.sentinel_get_master_addr_by_name(self.service)
        except RedisError:
            return None
        return (str(addr[0]), int(addr[1])) if addr else None

    def master_port(self) -> int | None:
        found = self._master(self.ports[0])
        return found[1] if found else None

    def _replicas(self) -> list[dict[str, Any]]:
        with self.client() as s:
            return list(s.sentinel_slaves(self.service))

    def wait_replicas(self, n: int, timeout: float = 60.0) -> None:
        """Until the sentinels know ``n`` healthy replicas of the primary."""

        def ready() -> bool:
            ok = [
                r for r in self._replicas()
                if not r.get("is_sdown") and r.get("master-link-status") == "ok"
            ]  # fmt: skip
            return len(ok) >= n

        self._until(ready, f"{n} replica(s) known to the sentinels", timeout)

    def failover(self) -> None:
        with self.client() as s:
            s.execute_command("SENTINEL", "FAILOVER", self.service)  # type: ignore[no-untyped-call]

    def wait_master(self, port: int, timeout: float = 60.0) -> None:
        """Until every sentinel names ``port`` as the primary."""

        def named() -> bool:
            return all((self._master(p) or ("", 0))[1] == port for p in self.ports)

        self._until(named, f"the sentinels to name :{port}", timeout)

    @staticmethod
    def _until(check: Any, what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except RedisError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}")
