"""Integration fixtures: a real Redis (REDIS_URL or 127.0.0.1:6379), worker processes, and
the PostgreSQL server each test of the PostgreSQL tier runs on.

Tests never skip for want of a server: .ci/run starts Redis, PostgreSQL and TimescaleDB
first, and a missing server is a failure. Each test gets its own portfolio name and
wipes it. A test marked ``pg`` (``pg("postgresql")``: that server only) runs once per
server of :func:`tests.integration.pg.servers`, its id ending ``[postgresql]`` or
``[timescaledb]``; its module's tests run on one server, then on the next.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import pytest
from redis import Redis

from tests.builders import ROOT
from tests.harness import Harness, unique_portfolio, wipe
from tests.integration import pg
from tests.integration.redis_cluster import LocalCluster
from tests.integration.redis_server import free_port


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    mark = metafunc.definition.get_closest_marker("pg")
    if mark is None:
        return
    chosen = [s for s in pg.servers() if not mark.args or s.name in mark.args]
    ids = [s.name for s in chosen]
    metafunc.parametrize("pg_server", chosen, indirect=True, scope="module", ids=ids)


_checked: set[pg.Server] = set()


def _check_timescaledb(server: pg.Server) -> None:
    """What answers at the TimescaleDB URL must preload timescaledb (once per session)."""
    if server in _checked:
        return
    with pg.using(server), pg.admin() as conn:
        row = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()
    if not row or "timescaledb" not in str(row[0]):
        pytest.fail(f"{server.admin_url} (RISKGATE_TEST_TSDB_ADMIN_URL) is not a TimescaleDB: "
                    f"shared_preload_libraries = {row[0] if row else '?'!r}")  # fmt: skip
    _checked.add(server)


@pytest.fixture(scope="module", autouse=True)
def pg_server(request: pytest.FixtureRequest) -> Iterator[pg.Server]:
    """The PostgreSQL server of this test (parametrized for tests marked ``pg``; the
    machine's PostgreSQL for the rest). Fixtures making module-wide databases take it."""
    server: pg.Server | None = getattr(request, "param", None)
    if server is None:
        yield pg.current()
        return
    if server.name == pg.TIMESCALEDB:
        _check_timescaledb(server)
    with pg.using(server):
        yield server


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ["REDIS_URL"]  # set (or a server started) by tests/conftest.py
    client = Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except Exception as exc:  # pragma: no cover - the environment's fault, said plainly
        pytest.fail(f"integration tests need Redis at {url}: {exc}")
    finally:
        client.close()
    return url


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A private Redis Cluster for the session (3 masters, one replica each, from the
    system redis-server); tests that fail a node leave it whole again (``wait_ok``)."""
    with LocalCluster(tmp_path_factory.mktemp("cluster")) as cluster:
        yield cluster


@pytest.fixture
def redis(redis_url: str) -> Iterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def portfolio(redis: Redis) -> Iterator[str]:
    name = unique_portfolio("it")
    yield name
    wipe(redis, name)


@pytest.fixture
def h(redis: Redis, portfolio: str) -> Harness:
    harness = Harness(redis, portfolio)
    harness.fund()
    return harness


class Workers:
    """Gate worker processes started with ``python -m consumers.cli gate``."""

    def __init__(self, redis_url: str, portfolio: str, log_dir: Path) -> None:
        self.redis_url = redis_url
        self.portfolio = portfolio
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.files: list[IO[bytes]] = []
        self.count = 0

    def start(
        self, consumer: str | None = None, *args: str, fault: str | None = None, **env: str
    ) -> str:
        """Start a worker (``fault``: a ``tests.integration.faulty_worker`` mode)."""
        self.count += 1
        name = consumer or f"w{self.count}"
        log = open(self.log_dir / f"{name}-{self.count}.log", "wb")  # noqa: SIM115
        self.files.append(log)
        program = (
            ["-m", "tests.integration.faulty_worker", fault]
            if fault
            else ["-m", "consumers.cli", "gate"]
        )
        cmd = [
            sys.executable,
            *program,
            "--portfolio",
            self.portfolio,
            "--consumer",
            name,
            "--redis-url",
            self.redis_url,
            "--block-ms",
            "50",
            *args,
        ]
        full_env = {**os.environ, "RISKGATE_LOG_DECISIONS": "0", **env}
        handle = name if name not in self.procs else f"{name}#{self.count}"
        self.procs[handle] = subprocess.Popen(
            cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=full_env
        )
        return handle

    def kill(self, name: str, sig: int = signal.SIGKILL) -> int | None:
        proc = self.procs.pop(name)
        proc.send_signal(sig)
        return proc.wait(timeout=30)

    def stop_all(self) -> dict[str, int]:
        codes = {}
        for name in list(self.procs):
            codes[name] = self.kill(name, signal.SIGTERM) or 0
        return codes

    def close(self) -> None:
        for proc in self.procs.values():
            proc.kill()
            proc.wait()
        self.procs.clear()
        for f in self.files:
            f.close()

    def count_lines(self, text: str) -> int:
        """Log lines containing ``text`` across every worker started so far."""
        return sum(
            line.count(text)
            for p in self.log_dir.glob("*.log")
            for line in p.read_text(errors="replace").splitlines()
        )

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-4000:] for p in self.log_dir.glob("*.log"))


@pytest.fixture
def workers(redis_url: str, portfolio: str, tmp_path: Path) -> Iterator[Workers]:
    w = Workers(redis_url, portfolio, tmp_path)
    yield w
    w.close()


@pytest.fixture
def new_portfolio(redis: Redis) -> Iterator[str]:
    """A second portfolio for tests that need one, wiped afterwards."""
    name = unique_portfolio("it2")
    yield name
    wipe(redis, name)


@contextmanager
def honcho(log: Path, env: dict[str, str], *processes: str) -> Iterator[subprocess.Popen[bytes]]:
    """``honcho start [PROCESS ...]`` in the repo, the venv's scripts on PATH, a free base
    PORT for the metrics servers (PORT, PORT+100, ...); SIGTERM when the block ends."""
    bin_dir = str(Path(sys.executable).parent)
    full = {
        **os.environ,
        "PORT": str(free_port()),
        **env,
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [os.path.join(bin_dir, "honcho"), "start", *processes],
            cwd=ROOT, env=full, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
