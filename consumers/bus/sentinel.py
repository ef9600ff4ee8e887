"""Redis Sentinel: ``redis+sentinel://`` URLs, and a client that follows the primary.

    redis+sentinel://[user:password@]host[:port][,host[:port]...]/service[/db][?options]
    rediss+sentinel://...        TLS to the sentinels and to the data nodes

The credentials are the data nodes' (the primary's and replicas'). The sentinels' own,
if they require any: ``sentinel_username``/``sentinel_password`` in the query, or
``RISKGATE_SENTINEL_USERNAME``/``RISKGATE_SENTINEL_PASSWORD``. A sentinel's port
defaults to 26379, the db to 0. TLS files as for ``rediss://`` (``ssl_ca_certs``,
``ssl_certfile``, ``ssl_keyfile``, ``ssl_cert_reqs`` in the query, or the
``RISKGATE_REDIS_*`` variables of consumers/bus/tls.py); they apply to both.

The client (``master_for``) asks the sentinels where the primary is when it opens a
connection, and, riskgate's addition, at most every ``RISKGATE_SENTINEL_CHECK_S``
seconds (default 1) when it takes one from its pool: redis-py alone keeps using open
connections to a demoted primary until it refuses a write, and Sentinel converts a
primary it failed over from into a replica only seconds later; meanwhile that old
primary accepts writes that its conversion then discards.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import parse_qsl, unquote, urlsplit

from redis import Redis
from redis.sentinel import MasterNotFoundError, Sentinel, SentinelConnectionPool

from consumers.bus.tls import ENV_OPTIONS
from consumers.errors import UsageError

SCHEMES = ("redis+sentinel", "rediss+sentinel")
CHECK_ENV = "RISKGATE_SENTINEL_CHECK_S"
DEFAULT_SENTINEL_PORT = 26379
TLS_QUERY = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs")
AUTH_QUERY = ("sentinel_username", "sentinel_password")
FORM = "redis+sentinel://[user:pass@]host:port[,host:port...]/service_name[/db]"


@dataclass(frozen=True, slots=True)
class SentinelTarget:
    sentinels: list[tuple[str, int]]
    service: str
    db: int = 0
    auth: dict[str, str] = field(default_factory=dict)  # the data nodes' username/password
    sentinel_auth: dict[str, str] = field(default_factory=dict)
    tls: dict[str, Any] = field(default_factory=dict)  # ssl=True and its files, or empty


def is_sentinel_url(url: str) -> bool:
    return url.split("://", 1)[0].lower() in SCHEMES


def _bad(url: str, problem: str) -> UsageError:
    shown = url.split("://", 1)[0] + "://" + url.split("://", 1)[-1].rsplit("@", 1)[-1]
    return UsageError(f"Redis URL {shown}: {problem}; expected {FORM}")


def _hosts(url: str, text: str) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for part in text.split(","):
        host, sep, port = part.strip().rpartition(":")
        if not sep:
            host, port = port, str(DEFAULT_SENTINEL_PORT)
        host = host.strip("[]")  # [::1]:26379
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise _bad(url, f"{part!r} is not host:port")
        out.append((host, int(port)))
    return out


def parse_sentinel_url(url: str, environ: Mapping[str, str] | None = None) -> SentinelTarget:
    """A :class:`SentinelTarget`, or UsageError naming what is wrong with ``url``."""
    env = os.environ if environ is None else environ
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if not hosts:
        raise _bad(url, "no sentinel host")
    path = [p for p in parts.path.split("/") if p]
    if not path or len(path) > 2:
        raise _bad(url, "the path must be /service_name or /service_name/db")
    if len(path) == 2 and not path[1].isdigit():
        raise _bad(url, f"db {path[1]!r} is not a number")
    auth: dict[str, str] = {}
    if at:
        user, colon, password = userinfo.partition(":")
        if user:
            auth["username"] = unquote(user)
        if colon:
            auth["password"] = unquote(password)
    query = dict(parse_qsl(parts.query))
    unknown = sorted(set(query) - set(TLS_QUERY) - set(AUTH_QUERY))
    if unknown:
        known = ", ".join((*TLS_QUERY, *AUTH_QUERY))
        raise _bad(url, f"unknown option {unknown[0]!r} (known: {known})")
    sentinel_auth = {
        "username": query.get("sentinel_username") or env.get("RISKGATE_SENTINEL_USERNAME"),
        "password": query.get("sentinel_password") or env.get("RISKGATE_SENTINEL_PASSWORD"),
    }
    tls: dict[str, Any] = {}
    if parts.scheme.lower() == "rediss+sentinel":
        tls = {"ssl": True}
        tls |= {opt: env[var] for var, opt in ENV_OPTIONS.items() if env.get(var)}
        tls |= {opt: query[opt] for opt in TLS_QUERY if opt in query}
    elif any(opt in query for opt in TLS_QUERY):
        raise _bad(url, "TLS options need rediss+sentinel://")
    return SentinelTarget(
        sentinels=_hosts(url, hosts),
        service=unquote(path[0]),
        db=int(path[1]) if len(path) == 2 else 0,
        auth=auth,
        sentinel_auth={k: v for k, v in sentinel_auth.items() if v},
        tls=tls,
    )


class FollowingPool(SentinelConnectionPool):
    """A Sentinel connection pool that asks where the primary is at most every
    ``check_every_s`` when a connection is taken: on a change, idle connections to the
    old primary are closed (redis-py's ``get_master_address`` does that) and busy ones
    are dropped when they come back (``owns_connection``)."""

    check_every_s = 1.0

    def __init__(self, service_name: str, sentinel_manager: Any, **kwargs: Any) -> None:
        super().__init__(service_name, sentinel_manager, **kwargs)  # type: ignore[no-untyped-call]
        self._next_check = time.monotonic() + self.check_every_s

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + self.check_every_s
            # no primary known: a new connection's connect() says so (a ConnectionError)
            with contextlib.suppress(MasterNotFoundError):
                self.get_master_address()  # type: ignore[no-untyped-call]
        return super().get_connection(*args, **kwargs)


def sentinel_client(
    target: SentinelTarget, socket_timeout: float | None, environ: Mapping[str, str] | None = None
) -> Redis:
    """The primary of ``target.service`` as the sentinels know it; lazy: the first
    command (and every reconnection) asks them where it is."""
    env = os.environ if environ is None else environ
    timeouts = {"socket_timeout": socket_timeout, "socket_connect_timeout": 5.0}
    sentinels: Any = Sentinel  # redis-py leaves Sentinel untyped
    sentinel = sentinels(
        target.sentinels,
        sentinel_kwargs={**timeouts, **target.tls, **target.sentinel_auth},
        **timeouts,
    )
    pool_class = type(
        "FollowingPool", (FollowingPool,), {"check_every_s": float(env.get(CHECK_ENV) or 1.0)}
    )
    client = sentinel.master_for(
        target.service,
        redis_class=Redis,
        connection_pool_class=pool_class,
        db=target.db,
        socket_keepalive=True,
        **target.tls,
        **target.auth,
    )
    return cast(Redis, client)
