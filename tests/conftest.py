"""Session set-up: which servers the suite runs against, and the ``integration`` mark.

The suite runs against ``REDIS_URL`` and PostgreSQL at ``RISKGATE_TEST_PG_ADMIN_URL``
(default: the local servers, which CI starts). On a machine where no URL is set and
nothing answers on the default ports, the session starts its own: a ``redis-server``
(the system's, >= 7, on a free port; the embedded one if there is none) and the
embedded PostgreSQL, in temporary directories, stopped at the end. Tests never skip for
want of a server.

The PostgreSQL tier also runs on TimescaleDB at ``RISKGATE_TEST_TSDB_ADMIN_URL`` (.ci/run
starts one with ../shared/timescaledb/start.sh and sets it); unset, a TimescaleDB answering
on 127.0.0.1:5433 is used; set empty, none. Under ``CI=true`` a TimescaleDB is required.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

INTEGRATION = Path(__file__).parent / "integration"
LOCAL_REDIS = "redis://127.0.0.1:6379/0"
LOCAL_PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCAL_PG = "postgresql://postgres@127.0.0.1:5432/riskgate"
LOCAL_TSDB_ADMIN = "postgresql://postgres@127.0.0.1:5433/postgres"
TSDB = "RISKGATE_TEST_TSDB_ADMIN_URL"

_stop: list[Callable[[], object]] = []


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def _own_redis() -> str:
    from consumers.servers import embedded
    from tests.integration.redis_server import REDIS_SERVER, RedisServer

    root = Path(tempfile.mkdtemp(prefix="riskgate-test-redis-"))
    _stop.append(lambda: shutil.rmtree(root, ignore_errors=True))
    if shutil.which(REDIS_SERVER):
        server = RedisServer(root).start()
        _stop.append(server.stop)
        return server.url
    layout = embedded.Layout(root)
    with embedded.locked(layout):
        embedded.start_redis(layout)
    _stop.append(lambda: embedded.stop_redis(layout))
    return embedded.redis_url_for(layout)


def _own_postgres() -> tuple[str, str]:
    from consumers.servers import embedded

    root = Path(tempfile.mkdtemp(prefix="riskgate-test-pg-"))
    layout = embedded.Layout(root)
    with embedded.locked(layout):
        embedded.start_postgres(layout)
    _stop.append(lambda: shutil.rmtree(root, ignore_errors=True))
    _stop.append(lambda: embedded.stop_postgres(layout))
    return embedded.database_url_for(layout, "postgres"), embedded.database_url_for(layout)


def pytest_configure(config: pytest.Config) -> None:
    env = os.environ
    if "REDIS_URL" not in env and not _answers(6379):
        env["REDIS_URL"] = _own_redis()
    if not ({"RISKGATE_TEST_PG_ADMIN_URL", "DATABASE_URL"} & set(env)) and not _answers(5432):
        env["RISKGATE_TEST_PG_ADMIN_URL"], env["DATABASE_URL"] = _own_postgres()
    # with a URL unset riskgate would start embedded servers: only their own tests want that
    env.setdefault("REDIS_URL", LOCAL_REDIS)
    env.setdefault("RISKGATE_TEST_PG_ADMIN_URL", LOCAL_PG_ADMIN)
    env.setdefault("DATABASE_URL", LOCAL_PG)
    if TSDB not in env and _answers(5433):
        env[TSDB] = LOCAL_TSDB_ADMIN
    if env.get("CI") == "true" and not env.get(TSDB):
        raise pytest.UsageError(
            f"CI=true: the PostgreSQL tier must run on TimescaleDB too, and {TSDB} is "
            + ("set empty" if TSDB in env else "unset and nothing answers on 127.0.0.1:5433")
            + " (.ci/run starts one with ../shared/timescaledb/start.sh)"
        )


def pytest_report_header(config: pytest.Config) -> str:
    tsdb = os.environ.get(TSDB) or f"none (set {TSDB}, or start one on 127.0.0.1:5433)"
    return (
        f"PostgreSQL tier on: postgresql {os.environ['RISKGATE_TEST_PG_ADMIN_URL']}, "
        f"timescaledb {tsdb}"
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    while _stop:
        _stop.pop()()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)
