"""Which Redis errors are transient and what kind, how the CLI says them, which client a
URL gets (RISKGATE_REDIS_MODE, redis+sentinel://), and the gate's loop treating a MOVED
or CLUSTERDOWN as "not now" (counted by kind), not as a failed batch."""

from __future__ import annotations

import threading
from typing import Any

import fakeredis
import pytest
from prometheus_client import CollectorRegistry
from redis import Redis
from redis.exceptions import (
    AskError,
    BusyLoadingError,
    ClusterDownError,
    ClusterError,
    ConnectionError,
    MasterDownError,
    MovedError,
    NoPermissionError,
    ReadOnlyError,
    ResponseError,
    SlotNotCoveredError,
    TimeoutError,
    TryAgainError,
)
from redis.sentinel import SentinelManagedSSLConnection

from consumers.bus.nodes import every_node, node_client, server_time, serving_node
from consumers.bus.redis_errors import (
    REDIS_TRANSIENT,
    ClusterUnreachable,
    by_kind,
    count_redis_error,
    error_kind,
    explain,
    server_of,
)
from consumers.bus.runtime import Shutdown
from consumers.bus.sentinel import FollowingPool, parse_sentinel_url, sentinel_client
from consumers.bus.topology import MODE_ENV, StreamsCluster, describe, open_client, redis_mode
from consumers.errors import UsageError
from consumers.ops.telemetry import GateTelemetry
from tests.harness import Harness
from tests.integration.redis_server import free_port

TRANSIENT_KINDS = [
    (MovedError("3999 127.0.0.1:6381"), "moved"),
    (AskError("3999 127.0.0.1:6381"), "ask"),
    (ClusterDownError("The cluster is down"), "cluster_down"),
    (MasterDownError("Link with MASTER is down"), "master_down"),
    (TryAgainError("Multiple keys request during rehashing of slot"), "try_again"),
    (ReadOnlyError("You can't write against a read only replica."), "readonly"),
    (SlotNotCoveredError('Slot "12" is not covered by the cluster.'), "slot_not_covered"),
    (ClusterError("TTL exhausted."), "cluster_retries_exhausted"),
    (ClusterUnreachable("no node of the cluster answered"), "cluster_unreachable"),
    (BusyLoadingError("Redis is loading the dataset in memory"), "loading"),
    (TimeoutError("Timeout reading from socket"), "timeout"),
    (ConnectionError("Error 111 connecting to 127.0.0.1:6379."), "connection"),
]


@pytest.mark.parametrize(("exc", "kind"), TRANSIENT_KINDS, ids=[k for _, k in TRANSIENT_KINDS])
def test_error_kind_when_cluster_or_failover_error_then_transient_with_its_kind(
    exc: Exception, kind: str
) -> None:
    """Every cluster and failover error is transient, and named distinctly."""
    assert isinstance(exc, REDIS_TRANSIENT)
    assert error_kind(exc) == kind


@pytest.mark.parametrize(
    "exc", [ResponseError("WRONGTYPE Operation"), NoPermissionError("NOPERM user"), ValueError()]
)
def test_error_kind_when_a_refusal_then_not_transient(exc: Exception) -> None:
    """A refusal is not retried: WRONGTYPE, NOPERM and non-Redis errors are not transient."""
    assert not isinstance(exc, REDIS_TRANSIENT)
    assert error_kind(exc) == "other"


def test_count_redis_error_when_counted_then_total_and_kind_and_rest_is_other() -> None:
    """The total and each kind are kept; a total no kind explains is ``other``."""
    stats: dict[str, int] = {"redis_errors": 1}  # one from before kinds were counted
    assert count_redis_error(stats, MovedError("1 h:1")) == "moved"
    count_redis_error(stats, ConnectionError("x"))
    count_redis_error(stats, ConnectionError("y"))
    assert stats["redis_errors"] == 4
    assert by_kind(stats) == {"moved": 1, "connection": 2, "other": 1}


@pytest.mark.parametrize(
    ("exc", "status", "words"),
    [
        (ConnectionError("Error 111 connecting to 10.0.0.9:7001. Connection refused."), 3,
         "cannot reach Redis node 10.0.0.9:7001 (of the cluster at h1:7000)"),
        (ConnectionError("Error 111 connecting to h1:7000. Connection refused."), 3,
         "cannot reach Redis at h1:7000"),
        (ClusterDownError("The cluster is down"), 3, "the cluster cannot serve this portfolio"),
        (SlotNotCoveredError("Slot 5 is not covered"), 3, "cannot serve this portfolio"),
        (MovedError("12 h2:7001"), 3, "a failover or slot move is under way"),
        (ReadOnlyError("You can't write against a read only replica."), 3, "failover"),
        (NoPermissionError("this user has no permissions to run the 'xadd' command"), 1,
         "the user lacks a permission"),
        (ResponseError("WRONGTYPE Operation against a key"), 1, "Redis at h1:7000: WRONGTYPE"),
    ],
)  # fmt: skip
def test_explain_when_redis_error_then_one_line_naming_server_and_problem(
    exc: Exception, status: int, words: str
) -> None:
    """The CLI's line: which server, what is wrong; 3 unavailable, 1 refused."""
    line, code = explain(exc, "redis://user:s3cret@h1:7000/0")
    assert code == status
    assert words in line and "\n" not in line and "s3cret" not in line


def test_server_of_when_urls_then_host_port_without_credentials() -> None:
    """Secrets never reach the message; Sentinel URLs name sentinels and service."""
    assert server_of("redis://u:pw@h:7000/0") == "h:7000"
    assert server_of("rediss://h/0") == "h:6379"
    assert server_of("redis+sentinel://u:pw@s1:26379,s2:26380/rg/2") == (
        "sentinels s1:26379,s2:26380, service rg"
    )
    line, _ = explain(ConnectionError("x"), None)
    assert line.startswith("cannot reach the embedded Redis")


# -- which client ------------------------------------------------------------------------


def test_redis_mode_when_unknown_then_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """RISKGATE_REDIS_MODE is auto, standalone or cluster; anything else: exit 2."""
    monkeypatch.setenv(MODE_ENV, "Cluster ")
    assert redis_mode() == "cluster"
    monkeypatch.setenv(MODE_ENV, "sharded")
    with pytest.raises(UsageError, match="auto, standalone, cluster"):
        redis_mode()


def test_open_client_when_standalone_mode_then_no_probe_and_lazy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """standalone: no round trip at connect (a server down fails at the first command)."""
    monkeypatch.setenv(MODE_ENV, "standalone")
    client = open_client(f"redis://127.0.0.1:{free_port()}/0")
    assert type(client) is Redis and describe(client) == "standalone"
    with pytest.raises(ConnectionError):
        client.ping()


def test_open_client_when_auto_and_nothing_answers_then_connection_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """auto asks the server what it is: nobody there is a (transient) ConnectionError."""
    monkeypatch.delenv(MODE_ENV, raising=False)
    with pytest.raises(ConnectionError):
        open_client(f"redis://127.0.0.1:{free_port()}/0")


def test_parse_sentinel_url_when_full_form_then_every_part() -> None:
    """Hosts (default port 26379), service, db, the data nodes' and sentinels' auth."""
    t = parse_sentinel_url(
        "redis+sentinel://app:p%40ss@s1:26380,s2,[::1]:26381/rg/3?sentinel_password=sp",
        environ={},
    )
    assert t.sentinels == [("s1", 26380), ("s2", 26379), ("::1", 26381)]
    assert (t.service, t.db) == ("rg", 3)
    assert t.auth == {"username": "app", "password": "p@ss"}
    assert t.sentinel_auth == {"password": "sp"} and t.tls == {}


def test_parse_sentinel_url_when_rediss_then_tls_from_env_and_query() -> None:
    """rediss+sentinel: TLS, with the RISKGATE_REDIS_* files; the URL's own win."""
    env = {"RISKGATE_REDIS_CA_CERTS": "/env/ca.pem", "RISKGATE_REDIS_CERTFILE": "/env/c.pem"}
    t = parse_sentinel_url("rediss+sentinel://s1/rg?ssl_certfile=/url/c.pem", environ=env)
    assert t.tls == {"ssl": True, "ssl_ca_certs": "/env/ca.pem", "ssl_certfile": "/url/c.pem"}


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis+sentinel://s1:26379", "the path must be /service_name"),
        ("redis+sentinel://s1/rg/x", "db 'x' is not a number"),
        ("redis+sentinel://s1:port/rg", "is not host:port"),
        ("redis+sentinel://s1/rg?timeout=3", "unknown option 'timeout'"),
        ("redis+sentinel://s1/rg?ssl_ca_certs=/ca.pem", "TLS options need rediss+sentinel"),
    ],
)
def test_parse_sentinel_url_when_malformed_then_usage_error_naming_it(
    url: str, problem: str
) -> None:
    """A bad Sentinel URL is one line naming the problem and the expected form."""
    with pytest.raises(UsageError, match="expected redis\\+sentinel://") as err:
        parse_sentinel_url(url, environ={})
    assert problem in str(err.value)


def test_sentinel_client_when_rediss_then_tls_connections_and_a_following_pool() -> None:
    """The client is lazy, uses TLS connections with the CA given, and re-asks the
    sentinels every RISKGATE_SENTINEL_CHECK_S seconds."""
    target = parse_sentinel_url("rediss+sentinel://s1/rg?ssl_ca_certs=/ca.pem", environ={})
    client = sentinel_client(target, 5.0, environ={"RISKGATE_SENTINEL_CHECK_S": "0.25"})
    pool: Any = client.connection_pool
    assert isinstance(pool, FollowingPool) and pool.check_every_s == 0.25
    assert pool.connection_class is SentinelManagedSSLConnection
    assert pool.connection_kwargs["ssl_ca_certs"] == "/ca.pem"
    assert describe(client) == "sentinel (service rg)"


def test_nodes_when_standalone_client_then_everything_goes_to_it() -> None:
    """Off a cluster the node-aware helpers are the client itself."""
    redis = fakeredis.FakeRedis()
    assert node_client(redis, "k") is redis and every_node(redis) == [redis]
    assert serving_node(redis, "k") is None
    seconds, micros = server_time(redis, "k")
    assert seconds > 1_700_000_000 and 0 <= micros < 1_000_000


# -- the gate's loop ---------------------------------------------------------------------


@pytest.mark.parametrize("exc", [MovedError("9 127.0.0.1:7002"), ClusterDownError("down")])
def test_gate_loop_when_cluster_error_then_retried_as_transient_and_counted_by_kind(
    exc: Exception,
) -> None:
    """MOVED and CLUSTERDOWN are ResponseErrors, but "not now": backoff and count, not
    a failed batch; the metric names the kind."""
    h = Harness(fakeredis.FakeRedis())
    shutdown = Shutdown()
    calls = {"n": 0}

    def step(block_ms: int | None = None) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            raise exc
        shutdown.request()
        return 0

    h.worker.step = step  # type: ignore[method-assign]
    loop = threading.Thread(target=h.worker.run, args=(shutdown,), daemon=True)
    loop.start()
    loop.join(30)
    shutdown.request()  # (should it have failed to stop)
    loop.join(5)
    kind = error_kind(exc)
    assert h.worker.stats["redis_errors"] == 1 and h.worker.stats["errors"] == 0
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GateTelemetry(h.worker))
    samples = {
        s.labels.get("kind"): s.value
        for fam in registry.collect()
        for s in fam.samples
        if s.name == "riskgate_redis_errors_total"
    }
    assert samples == {kind: 1.0}


def test_streams_cluster_when_xreadgroup_then_keys_found_without_asking_the_server() -> None:
    """XREAD/XREADGROUP keys are the first half after STREAMS: no COMMAND GETKEYS trip."""
    cluster: Any = object.__new__(StreamsCluster)  # no server needed for this path
    args = ("XREADGROUP", "GROUP", "g", "c", "COUNT", 5, "BLOCK", 10, "STREAMS", "a", "b", ">", ">")
    assert cluster._get_command_keys(*args) == ["a", "b"]
    assert cluster._get_command_keys("XREAD", b"STREAMS", b"k", b"0") == [b"k"]
