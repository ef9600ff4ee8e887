"""Security against real servers: ACL users per role, signed orders, TLS, no leaked secrets.

ACL and TLS tests run their own ``redis-server`` (tests/integration/redis_server.py);
the signed-order tests use the shared Redis like the rest of the suite.

Tests that need the Signer wired into the gate (``order_json``) and the client
(``GateClient.orders()``), or the TLS env options wired into ``connect()``, say so in
their docstring ("after wiring").
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from redis import Redis
from redis.exceptions import AuthenticationError, NoPermissionError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError

from consumers.bus import portfolios
from consumers.bus.keys import DATA, Keys
from consumers.bus.lease import Lease
from consumers.bus.runtime import connect
from consumers.bus.signing import ENV_KEYS, order_signer, unsigned
from consumers.bus.tls import tls_options
from consumers.gate_worker.seat import Seat
from consumers.gate_worker.worker import GateSettings, GateWorker
from consumers.ops.acl import ROLES, AclPlan, env_var, read_secrets, write_acl
from consumers.sdk.client import GateClient
from consumers.state import control
from schemas.messages import Status
from tests.builders import base_config, market_prices
from tests.harness import Harness
from tests.integration.conftest import Workers
from tests.integration.redis_server import RedisServer, TlsFiles, make_tls_certs

P, Q = "sec-p", "sec-q"  # portfolios on the private ACL server
PHASE = "phase_5_commodities"
SECRET_NEW, SECRET_OLD = os.urandom(32), os.urandom(32)
ORDER_KEYS = (
    f"k2:{base64.b64encode(SECRET_NEW).decode()},k1:{base64.b64encode(SECRET_OLD).decode()}"
)
ORDER_FIELDS = {
    "intent_id", "agent_id", "symbol", "side", "quantity", "price", "stop_price",
    "take_profit", "reduce_only", "status", "decided_at", "expires_at", "config_hash",
    "good_till",
}  # fmt: skip


def secret_forms(secret: bytes) -> list[bytes]:
    """Every spelling of a key that could leak: raw, hex, base64 and URL-safe base64."""
    b64 = base64.b64encode(secret)
    return [secret, secret.hex().encode(), b64, base64.urlsafe_b64encode(secret).rstrip(b"=")]


def assert_no_secret(blob: bytes | str, needles: list[bytes], where: str) -> None:
    data = blob.encode() if isinstance(blob, str) else blob
    for needle in needles:
        assert needle not in data, f"a secret appears in {where}"


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# -- a private server with the generated ACL file ----------------------------------------


@dataclass
class AclServer:
    server: RedisServer
    passwords: dict[str, str] = field(repr=False)
    opened: list[Redis] = field(repr=False)

    def url(self, user: str) -> str:
        return self.server.url_for(user, self.passwords[user])

    def redis(self, user: str) -> Redis:
        client = Redis.from_url(self.url(user))
        self.opened.append(client)
        return client

    def client(self, user: str, portfolio: str) -> GateClient:
        client = GateClient(self.url(user), portfolio)
        self.opened.append(client.redis)
        return client

    def dryrun(self, user: str, *command: str) -> bool:
        """ACL DRYRUN as the admin: would ``user`` be allowed to run ``command``?"""
        reply = self.redis("admin").execute_command("ACL", "DRYRUN", user, *command)  # type: ignore[no-untyped-call]
        return bool(reply in (b"OK", "OK"))


@pytest.fixture(scope="module")
def acl_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    d = tmp_path_factory.mktemp("acl")
    plan = AclPlan((Keys(P), Keys(Q)), ROLES, "admin")
    write_acl(plan, d / "users.acl", d / "users.secrets", environ={})
    stored = read_secrets(d / "users.secrets")
    return d / "users.acl", {u: stored[env_var(u)] for u in plan.users()}


@pytest.fixture(scope="module")
def acl_redis(
    tmp_path_factory: pytest.TempPathFactory, acl_files: tuple[Path, dict[str, str]]
) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("acl-redis"), aclfile=acl_files[0]) as server:
        yield server


@pytest.fixture
def acl(acl_redis: RedisServer, acl_files: tuple[Path, dict[str, str]]) -> Iterator[AclServer]:
    found = AclServer(acl_redis, acl_files[1], [])
    yield found
    admin = Redis.from_url(found.url("admin"))
    admin.flushall()
    admin.close()
    for client in found.opened:
        client.close()


def gate_harness(acl: AclServer, portfolio: str = P) -> Harness:
    """A Harness whose worker (and helper client) connect as the gate user."""
    return Harness(acl.redis(f"gate-{portfolio}"), portfolio, block_ms=5)


def test_default_user_when_no_or_wrong_credentials_then_refused(acl: AclServer) -> None:
    """The default user is off: no anonymous access; a wrong password is refused too."""
    anonymous = Redis.from_url(acl.server.url)
    acl.opened.append(anonymous)
    with pytest.raises(AuthenticationError):
        anonymous.ping()
    wrong = Redis.from_url(acl.server.url_for(f"agent-{P}", "not-the-password-123"))
    acl.opened.append(wrong)
    with pytest.raises(AuthenticationError):
        wrong.ping()


def test_agent_when_xadd_to_orders_or_decisions_then_no_permission(acl: AclServer) -> None:
    """An agent cannot publish orders or decisions, nor touch state, control or events."""
    agent, k = acl.redis(f"agent-{P}"), Keys(P)
    for stream in (k.orders, k.decisions, k.events, k.phases, k.deadletter):
        with pytest.raises(NoPermissionError):
            agent.xadd(stream, {DATA: "{}"})
    with pytest.raises(NoPermissionError):
        agent.hset(k.state, "version", "999")
    with pytest.raises(NoPermissionError):
        agent.hset(k.control, "halted", "0")
    with pytest.raises(NoPermissionError):
        agent.set(k.decided("someone-else"), "1-0")


def test_agent_when_reading_other_portfolio_or_other_streams_then_no_permission(
    acl: AclServer,
) -> None:
    """An agent of P reads nothing of Q, and of P only decisions and decided markers."""
    agent, own, other = acl.redis(f"agent-{P}"), Keys(P), Keys(Q)
    with pytest.raises(NoPermissionError):
        agent.xrange(other.decisions)
    with pytest.raises(NoPermissionError):
        agent.get(other.decided("x"))
    with pytest.raises(NoPermissionError):
        agent.xadd(other.intents, {DATA: "{}"})
    for stream in (own.intents, own.orders, own.events):
        with pytest.raises(NoPermissionError):
            agent.xrange(stream)
    with pytest.raises(NoPermissionError):
        agent.hgetall(own.state)
    with pytest.raises(NoPermissionError):
        agent.xreadgroup("gate", "thief", {own.intents: ">"})
    for forbidden in (lambda: agent.keys("*"), lambda: agent.scan(0), agent.flushall):
        with pytest.raises(NoPermissionError):
            forbidden()


def test_roles_when_each_user_runs_its_loop_then_intent_decided_and_order_executed(
    acl: AclServer,
) -> None:
    """Gate user runs the full loop; agent submits and reads; executor reads, acks, fills."""
    h = gate_harness(acl)
    agent, executor = acl.client(f"agent-{P}", P), acl.client(f"executor-{P}", P)
    executor.deposit("100000", reference="sec-1")
    executor.mark(market_prices())
    h.pump()
    intent_id = agent.submit("BTC/USDT", "buy", "0.01", price="100000", agent_id="momo")
    h.pump()
    decision = agent.wait_decision(intent_id, timeout=5)
    assert decision is not None and decision.status is Status.APPROVED

    got = []
    calls = iter(range(6))
    for delivery in executor.orders(
        "binance", "e1", start="0", block_ms=10, stop=lambda: next(calls, 9) >= 5
    ):
        got.append(delivery.order.intent_id)
        delivery.ack()
    assert got == [intent_id]
    assert acl.redis("admin").xpending(Keys(P).orders, "binance")["pending"] == 0
    executor.fill(intent_id, "BTC/USDT", "buy", "0.01", "100000", fill_id="x1")
    h.pump()
    assert h.state().snapshot.positions["BTC/USDT"].quantity == Decimal("0.01")


def test_gate_user_when_maintenance_and_phase_events_then_all_commands_allowed(
    acl: AclServer,
) -> None:
    """Reclaim, trim, drain and live phase enables all run under the gate user's rights."""
    h = gate_harness(acl)
    acl.client(f"executor-{P}", P).deposit("100000", reference="sec-2")
    acl.client(f"executor-{P}", P).mark(market_prices())
    h.pump()
    h.worker.drain_pending()
    h.worker.reclaim_idle()
    h.worker.trim()
    phase = acl.redis(f"phase-{P}")
    phase.xadd(Keys(P).phases, {DATA: json.dumps({"type": "phase_activated", "phase": PHASE})})
    h.pump()
    assert h.worker.stats["errors"] == 0
    assert h.state().config.assets["XAG/USD"].enabled
    assert acl.redis("admin").xpending(Keys(P).phases, "gate")["pending"] == 0


def test_gate_user_when_owning_by_lease_then_takes_renews_fences_hands_over_and_releases(
    acl: AclServer,
) -> None:
    """The gate user may run a lease-owning seat: take the lease, claim pending entries
    (min idle 0), renew, commit fenced, hand entries over and release."""
    h = gate_harness(acl)
    acl.client(f"executor-{P}", P).deposit("100000", reference="sec-lease")
    acl.client(f"executor-{P}", P).mark(market_prices())
    h.pump()
    gate = acl.redis(f"gate-{P}")
    lease = Lease(gate, h.keys, "leased", 3000)
    seat = Seat(GateWorker(gate, h.keys, h.config, GateSettings(consumer="leased", block_ms=5),
                           lease=lease), lease, renew_ms=1000)  # fmt: skip
    iid = acl.client(f"agent-{P}", P).submit("BTC/USDT", "buy", "0.01", price="100000")
    for _ in range(8):
        seat.turn(0)
    assert h.client.decision(iid) is not None and seat.owner
    seat.next_lease = 0.0
    seat.turn(0)  # a renewal
    assert seat.owner and seat.worker.stats["errors"] == 0
    assert seat.worker.hand_over("someone") == 0  # XPENDING for our entries: allowed
    seat.close()
    assert acl.redis("admin").exists(h.keys.lease) == 0
    operator = acl.redis(f"operator-{P}")  # `riskgate deposit` registers the portfolio
    assert portfolios.register(operator, h.keys)
    assert portfolios.registered(operator, "riskgate") == ([P], [])


def test_gate_user_when_durable_then_waits_holds_and_publishes_under_its_rights(
    acl: AclServer,
) -> None:
    """--replicas under the gate user: WAIT (no replica here: held), then a gate that is
    not durable publishes the outbox (XRANGE, XDEL in the move script), no NOPERM."""
    held = Harness(acl.redis(f"gate-{P}"), P, block_ms=5, replicas=1, wait_timeout_ms=10)
    executor = acl.client(f"executor-{P}", P)
    executor.deposit("100000", reference="sec-3")
    executor.mark(market_prices())
    held.pump()
    intent_id = acl.client(f"agent-{P}", P).submit("BTC/USDT", "buy", "0.01", price="100000")
    held.pump()
    assert held.worker.stats["outbox_wait_failures"] >= 1
    assert held.worker.stats["errors"] == 0
    assert acl.redis("admin").xlen(Keys(P).outbox) == 2

    plain = gate_harness(acl)
    plain.worker.publish()
    assert plain.worker.stats["outbox_published"] == 2
    decision = plain.client.decision(intent_id)
    assert decision is not None and decision.status is Status.APPROVED


def test_gate_user_when_other_portfolio_or_admin_commands_then_no_permission(
    acl: AclServer,
) -> None:
    """The gate of P cannot read Q's state nor run admin or dangerous commands."""
    gate, other = acl.redis(f"gate-{P}"), Keys(Q)
    with pytest.raises(NoPermissionError):
        gate.hgetall(other.state)
    with pytest.raises(NoPermissionError):
        gate.xadd(other.orders, {DATA: "{}"})
    for forbidden in (gate.flushall, lambda: gate.config_get("*"), lambda: gate.keys("*")):
        with pytest.raises(NoPermissionError):
            forbidden()
    with pytest.raises(NoPermissionError):
        gate.eval("return 1", 0)


def test_executor_when_writing_intents_or_orders_then_no_permission(acl: AclServer) -> None:
    """An executor cannot submit intents, publish orders, or read decisions or Q's orders."""
    executor, own, other = acl.redis(f"executor-{P}"), Keys(P), Keys(Q)
    for stream in (own.intents, own.orders, own.decisions, other.events):
        with pytest.raises(NoPermissionError):
            executor.xadd(stream, {DATA: "{}"})
    with pytest.raises(NoPermissionError):
        executor.xrange(own.decisions)
    with pytest.raises(NoPermissionError):
        executor.xgroup_create(other.orders, "binance", id="0", mkstream=True)
    with pytest.raises(NoPermissionError):
        executor.xtrim(own.orders, maxlen=0)


@pytest.mark.parametrize(
    ("user", "command", "allowed"),
    [
        ("audit-P", ("XREADGROUP", "GROUP", "audit", "a1", "STREAMS", "{decisions}", ">"), True),
        ("audit-P", ("XACK", "{decisions}", "audit", "1-0"), True),
        ("audit-P", ("XADD", "{decisions}", "*", "data", "x"), False),
        ("audit-P", ("XRANGE", "{orders}", "-", "+"), False),
        ("phase-P", ("XREADGROUP", "GROUP", "phase", "m", "STREAMS", "{events}", ">"), True),
        ("phase-P", ("XADD", "{phases}", "*", "data", "x"), True),
        ("phase-P", ("HGETALL", "{control}"), True),
        ("phase-P", ("HSET", "{control}", "asset:NVDA", "1"), True),
        ("phase-P", ("HINCRBY", "{state}", "version", "1"), True),
        ("phase-P", ("HSET", "{state}", "account", "{}"), False),
        ("phase-P", ("XADD", "{orders}", "*", "data", "x"), False),
        ("phase-P", ("XADD", "{events}", "*", "data", "x"), False),
        ("operator-P", ("HSET", "{control}", "halted", "1"), True),
        ("operator-P", ("XADD", "{events}", "*", "data", "x"), True),
        ("operator-P", ("SET", "{correlations}", "{}"), True),
        ("operator-P", ("XINFO", "GROUPS", "{intents}"), True),
        ("operator-P", ("GET", "{other}"), False),
        ("operator-P", ("SCAN", "0"), False),
        ("operator-P", ("CONFIG", "GET", "*"), False),
        ("operator-P", ("FLUSHALL",), False),
        ("operator-P", ("EVAL", "return 1", "0"), False),
        ("operator-P", ("CLIENT", "KILL", "ID", "1"), False),
        ("agent-P", ("XREAD", "STREAMS", "{decisions}", "0"), True),
        ("agent-P", ("XREAD", "STREAMS", "{intents}", "0"), False),
        ("executor-P", ("XAUTOCLAIM", "{orders}", "x", "e1", "1000", "0"), True),
        ("executor-P", ("XDEL", "{orders}", "1-0"), False),
    ],
)
def test_permissions_when_dry_run_then_each_role_gets_exactly_its_commands(
    acl: AclServer, user: str, command: tuple[str, ...], allowed: bool
) -> None:
    """ACL DRYRUN matrix for the roles the end-to-end tests do not drive."""
    p, q = Keys(P), Keys(Q)
    names = {
        "{decisions}": p.decisions, "{orders}": p.orders, "{events}": p.events,
        "{phases}": p.phases, "{control}": p.control, "{state}": p.state,
        "{intents}": p.intents, "{correlations}": p.correlations, "{other}": q.correlations,
    }  # fmt: skip
    args = [names.get(a, a) for a in command]
    assert acl.dryrun(user.replace("-P", f"-{P}"), *args) is allowed


def test_operator_when_status_and_halt_then_allowed_on_own_portfolio_only(acl: AclServer) -> None:
    """Operators run the controls and status report for their portfolio, not another's."""
    operator = acl.redis(f"operator-{P}")
    control.halt(operator, Keys(P))
    report = control.status(operator, Keys(P), base_config())
    assert report["halted"] is True
    with pytest.raises(NoPermissionError):
        control.halt(operator, Keys(Q))


# -- signed orders (shared Redis) --------------------------------------------------------


@pytest.fixture
def signed(redis: Redis, portfolio: str, monkeypatch: pytest.MonkeyPatch) -> Harness:
    """A funded harness built with order keys in the environment (k2 current, k1 old)."""
    monkeypatch.setenv(ENV_KEYS, ORDER_KEYS)
    h = Harness(redis, portfolio)
    h.fund()
    return h


def test_approve_when_order_keys_set_then_order_signed_with_current_key(signed: Harness) -> None:
    """After wiring: an approved order carries key_id k2 and a valid HMAC signature."""
    intent_id = signed.intent(quantity="0.01")
    signed.pump()
    (order,) = signed.orders()
    assert order["intent_id"] == intent_id
    assert set(order) == ORDER_FIELDS | {"key_id", "signature"}
    assert order["key_id"] == "k2" and re.fullmatch(r"[0-9a-f]{64}", order["signature"])
    order_signer(signed.keys, {ENV_KEYS: ORDER_KEYS}).verify(order)


def test_orders_when_forged_altered_or_unsigned_entries_then_only_genuine_yielded(
    signed: Harness,
) -> None:
    """After wiring: GateClient.orders() refuses altered, unsigned, forged, unknown-key orders."""
    genuine_id = signed.intent(quantity="0.01")
    signed.pump()
    (genuine,) = signed.orders()
    body = unsigned(genuine)
    stream = signed.keys.orders
    forger = order_signer(
        signed.keys, {ENV_KEYS: f"k1:{base64.b64encode(os.urandom(32)).decode()}"}
    )
    other_portfolio = order_signer(Keys("elsewhere"), {ENV_KEYS: ORDER_KEYS})
    bad = [
        genuine | {"quantity": "100"},  # altered after signing
        body | {"intent_id": "unsigned-1"},  # no signature at all
        forger.sign(body | {"intent_id": "forged-1"}),  # right key id, wrong secret
        genuine | {"key_id": "k0"},  # a retired / unknown key id
        other_portfolio.sign(body),  # replayed from another portfolio's stream
    ]
    for fields in bad:
        signed.redis.xadd(stream, {DATA: json.dumps(fields)})
    again = signed.intent(quantity="0.02")  # not a repeat of the first: duplicate_order
    signed.pump()

    client = GateClient(redis=signed.redis, portfolio=signed.portfolio)
    calls = iter(range(10))
    got = [
        d.order.intent_id
        for d in client.orders(
            "exec", "e1", start="0", block_ms=10, stop=lambda: next(calls, 99) >= 8
        )
    ]
    assert got == [genuine_id, again]


def test_no_secret_when_worker_process_decides_then_absent_from_logs_and_outputs(
    acl: AclServer, tmp_path: Path
) -> None:
    """A gate process with order keys and a password URL leaks neither, even on errors.

    Logs (decision lines, dead letters, Redis outage), decisions, orders (key id and
    signature only) and the status report are all searched for every form of the secrets.
    """
    workers = Workers(acl.url(f"gate-{P}"), P, tmp_path)
    try:
        workers.start("w1", RISKGATE_ORDER_KEYS=ORDER_KEYS, RISKGATE_LOG_DECISIONS="1")
        agent, executor = acl.client(f"agent-{P}", P), acl.client(f"executor-{P}", P)
        executor.deposit("100000", reference="sec-3")
        executor.mark(market_prices())
        good = agent.submit("BTC/USDT", "buy", "0.01", price="100000")
        agent.redis.xadd(Keys(P).intents, {DATA: '{"intent_id": "broken-0", "quantity": ['})
        agent.redis.xadd(Keys(P).intents, {DATA: json.dumps({"intent_id": "broken-1"})})
        decision = agent.wait_decision(good, timeout=20)
        assert decision is not None and decision.status is Status.APPROVED
        assert agent.wait_decision("broken-1", timeout=20) is not None
        acl.server.stop()  # the worker logs connection errors while Redis is away
        wait_for(lambda: workers.count_lines("redis unavailable"), "the outage logged")
        acl.server.start()
        assert workers.stop_all() == {"w1": 0}
    finally:
        workers.close()
    needles = secret_forms(SECRET_NEW) + secret_forms(SECRET_OLD)
    needles += [pw.encode() for pw in acl.passwords.values()]
    logs = b"".join(p.read_bytes() for p in tmp_path.glob("*.log"))
    assert b"decision" in logs and b"redis unavailable" in logs
    assert_no_secret(logs, needles, "the worker's logs")


def test_no_secret_when_decided_with_keys_then_absent_from_decision_order_and_status(
    signed: Harness,
) -> None:
    """After wiring: decisions and status never hold a key; orders only key_id + signature."""
    intent_id = signed.intent(quantity="0.01")
    signed.pump()
    needles = secret_forms(SECRET_NEW) + secret_forms(SECRET_OLD)
    for stream, what in ((signed.keys.decisions, "a decision"), (signed.keys.orders, "an order")):
        for _, fields in signed.redis.xrange(stream) or []:
            assert_no_secret((fields or {})[DATA], needles, what)
    status = control.status(signed.redis, signed.keys, base_config())
    assert_no_secret(json.dumps(status, default=str), needles, "the status report")
    (order,) = signed.orders()
    assert order["intent_id"] == intent_id
    assert set(order) - ORDER_FIELDS == {"key_id", "signature"}


# -- TLS ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_certs(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory, certs: TlsFiles) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("tls-redis"), tls=certs) as server:
        yield server


def test_gate_when_rediss_url_then_intent_decided_over_tls(
    tls_redis: RedisServer, certs: TlsFiles
) -> None:
    """connect("rediss://...?ssl_ca_certs=...") works end to end: submit, decide, read."""
    url = tls_redis.url + certs.query()
    redis = connect(url)
    client = GateClient(url, "tls")
    try:
        h = Harness(redis, "tls")
        h.fund()
        intent_id = client.submit("BTC/USDT", "buy", "0.01", price="100000")
        h.pump()
        decision = client.wait_decision(intent_id, timeout=5)
        assert decision is not None and decision.status is Status.APPROVED
        assert redis.connection_pool.connection_class.__name__ == "SSLConnection"
    finally:
        redis.flushall()
        redis.close()
        client.redis.close()


def test_tls_when_server_cert_from_unknown_ca_then_connection_refused(
    tls_redis: RedisServer, certs: TlsFiles, tmp_path: Path
) -> None:
    """Verification is on: a server whose CA we do not trust is refused, not used
    (connect() asks the server whether it is a cluster node: refused right there)."""
    stranger = make_tls_certs(tmp_path / "other")
    query = certs.query().replace(str(certs.ca_cert), str(stranger.ca_cert))
    with pytest.raises(RedisConnectionError):
        connect(tls_redis.url + query).ping()


def test_tls_when_no_client_cert_then_server_refuses(
    tls_redis: RedisServer, certs: TlsFiles
) -> None:
    """The test server requires client certificates (mutual TLS): without one, no access."""
    with pytest.raises((RedisConnectionError, ResponseError)):
        connect(tls_redis.url + certs.query(client_cert=False)).ping()


def test_tls_options_when_ca_and_client_cert_in_env_then_connects(
    tls_redis: RedisServer, certs: TlsFiles
) -> None:
    """RISKGATE_REDIS_CA_CERTS/CERTFILE/KEYFILE give a bare rediss:// URL what it needs."""
    env = {
        "RISKGATE_REDIS_CA_CERTS": str(certs.ca_cert),
        "RISKGATE_REDIS_CERTFILE": str(certs.client_cert),
        "RISKGATE_REDIS_KEYFILE": str(certs.client_key),
    }
    redis = Redis.from_url(tls_redis.url, **tls_options(tls_redis.url, env))
    try:
        assert redis.ping() is True
    finally:
        redis.close()


def test_connect_when_rediss_url_and_tls_env_then_connects(
    tls_redis: RedisServer, certs: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After wiring connect(): the env TLS options apply to every riskgate process."""
    monkeypatch.setenv("RISKGATE_REDIS_CA_CERTS", str(certs.ca_cert))
    monkeypatch.setenv("RISKGATE_REDIS_CERTFILE", str(certs.client_cert))
    monkeypatch.setenv("RISKGATE_REDIS_KEYFILE", str(certs.client_key))
    redis = connect(tls_redis.url)
    try:
        assert redis.ping() is True
    finally:
        redis.close()
