"""PostgreSQL for the integration tests: the servers, throwaway databases, a failing proxy.

The PostgreSQL tier (tests marked ``pg``) runs once per server in :func:`servers`: the
machine's PostgreSQL (``RISKGATE_TEST_PG_ADMIN_URL``, default the local server's
``postgres`` database) and, when ``RISKGATE_TEST_TSDB_ADMIN_URL`` is set (tests/conftest.py
sets it when a TimescaleDB answers on 127.0.0.1:5433), TimescaleDB. The server a test
runs on is chosen with :func:`using` (the ``pg_server`` fixture does it). Databases are
created on it with a unique name and dropped (WITH FORCE) afterwards. A missing server
is a test failure, never a skip.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from consumers.db import connection as db
from consumers.db.migrate import discover, migrate
from consumers.db.registry import sync_config
from tests.builders import base_config

LOCAL_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
POSTGRESQL, TIMESCALEDB = "postgresql", "timescaledb"


@dataclass(frozen=True, slots=True)
class Server:
    name: str  # postgresql or timescaledb: the test id's suffix
    admin_url: str


def servers() -> list[Server]:
    """The servers the PostgreSQL tier runs on (read when used: tests/conftest.py may have
    started a PostgreSQL or found a TimescaleDB and set the variables)."""
    found = [Server(POSTGRESQL, os.environ.get("RISKGATE_TEST_PG_ADMIN_URL", LOCAL_ADMIN_URL))]
    if tsdb := os.environ.get("RISKGATE_TEST_TSDB_ADMIN_URL"):
        found.append(Server(TIMESCALEDB, tsdb))
    return found


_using: list[Server] = []


@contextlib.contextmanager
def using(server: Server) -> Iterator[Server]:
    """Databases made inside the block are made on ``server``."""
    _using.append(server)
    try:
        yield server
    finally:
        _using.remove(server)


def current() -> Server:
    """The server tests are using now (the machine's PostgreSQL outside ``using``)."""
    return _using[-1] if _using else servers()[0]


def admin_url() -> str:
    return current().admin_url


def admin() -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(admin_url(), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:  # the environment's fault, said plainly
        pytest.fail(f"integration tests need PostgreSQL at {admin_url()}: {exc}")


def url_for(name: str) -> str:
    return make_conninfo(admin_url(), dbname=name)


def drop_database(name: str) -> None:
    with admin() as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@contextlib.contextmanager
def temp_database(tag: str, *, prepared: bool = True) -> Iterator[str]:
    """A fresh database (migrated and synced when ``prepared``); dropped afterwards."""
    name = f"rg_test_{tag}_{uuid.uuid4().hex[:10]}"
    with admin() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = url_for(name)
    try:
        if prepared:
            with db.connect(url) as conn:
                migrate(conn, discover())
                sync_config(conn, base_config())
        yield url
    finally:
        drop_database(name)


def query(url: str, text: str, params: Any = None) -> list[tuple[Any, ...]]:
    with db.connect(url) as conn:
        return conn.execute(text, params).fetchall()  # type: ignore[arg-type]


def scalar(url: str, text: str, params: Any = None) -> Any:
    rows = query(url, text, params)
    return rows[0][0] if rows else None


class PgProxy:
    """A TCP proxy in front of PostgreSQL that can be taken down and brought back.

    ``down()`` closes every open connection and refuses new ones (accepts and closes
    at once); ``up()`` forwards again. Runs one selector thread; ``close()`` stops it.
    """

    def __init__(
        self, target_url: str | None = None, *, tcp: tuple[str, int] | None = None
    ) -> None:
        """In front of ``target_url``'s server, or of any TCP server at ``tcp``."""
        info = conninfo_to_dict(target_url or admin_url())
        host, port = str(info.get("host") or "127.0.0.1"), int(info.get("port") or 5432)
        # a host that is a directory is PostgreSQL's Unix socket (the embedded server's)
        self.target: str | tuple[str, int] = (
            f"{host}/.s.PGSQL.{port}" if host.startswith("/") else (host, port)
        )
        if tcp is not None:
            self.target = tcp
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self.accepting = True
        self.refused = 0
        self._peers: dict[socket.socket, socket.socket] = {}
        self._cut = threading.Event()
        self._cut_done = threading.Event()
        self._stop = threading.Event()
        self._sel = selectors.DefaultSelector()
        self._sel.register(self.listener, selectors.EVENT_READ)
        self._thread = threading.Thread(target=self._loop, name="pg-proxy", daemon=True)
        self._thread.start()

    def url(self, dbname_url: str) -> str:
        """``dbname_url`` rewritten to go through the proxy."""
        return make_conninfo(dbname_url, host="127.0.0.1", port=str(self.port))

    def _dial(self) -> socket.socket:
        if isinstance(self.target, str):
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.settimeout(5)
            upstream.connect(self.target)
            return upstream
        return socket.create_connection(self.target, timeout=5)

    def down(self) -> None:
        self.accepting = False
        self._cut_done.clear()
        self._cut.set()
        self._cut_done.wait(5)

    def up(self) -> None:
        self.accepting = True

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for s in list(self._peers):
            self._drop(s)
        self._sel.close()
        self.listener.close()

    def _drop(self, s: socket.socket) -> None:
        other = self._peers.pop(s, None)
        for sock in (s, other):
            if sock is None:
                continue
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(sock)
            self._peers.pop(sock, None)
            sock.close()

    def _accept(self) -> None:
        client, _ = self.listener.accept()
        if not self.accepting:
            self.refused += 1
            client.close()
            return
        try:
            upstream = self._dial()
        except OSError:
            client.close()
            return
        for s in (client, upstream):
            s.setblocking(True)
        self._peers[client], self._peers[upstream] = upstream, client
        self._sel.register(client, selectors.EVENT_READ)
        self._sel.register(upstream, selectors.EVENT_READ)

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self._cut.is_set():
                for s in list(self._peers):
                    self._drop(s)
                self._cut.clear()
                self._cut_done.set()
            for key, _ in self._sel.select(timeout=0.05):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self.listener:
                    self._accept()
                    continue
                if sock not in self._peers:
                    continue
                try:
                    data = sock.recv(65536)
                    if data:
                        self._peers[sock].sendall(data)
                        continue
                except OSError:
                    pass
                self._drop(sock)
