"""The embedded Redis: a ``redis-server`` on 127.0.0.1, a free port and a random
password (both in ``<data>/redis/address``, mode 0600), AOF on; stopped by ``SHUTDOWN``."""

from __future__ import annotations

import secrets
import subprocess
import time

from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.retry import Retry

from consumers.servers.binaries import redis_server_binary
from consumers.servers.layout import START_TIMEOUT_S, EmbeddedError, Layout, _redis_address
from consumers.servers.processes import _alive, _free_port, _pid_from, _tail, _terminate, _wait_gone


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
