"""riskgate's least-privilege ACL users on a Redis Cluster: ``riskgate acl --apply`` with
a URL naming one node creates them on every node (ACL users are per server), and the
roles carry what a cluster client needs (CLUSTER INFO/SLOTS, COMMAND, ASKING)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from consumers.bus.runtime import connect
from consumers.bus.topology import is_cluster
from consumers.cli.main import main
from consumers.ops.acl import env_var
from consumers.sdk.client import GateClient
from tests.harness import Harness, wipe
from tests.integration.redis_cluster import LocalCluster

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def portfolio(redis_cluster: LocalCluster) -> Iterator[str]:
    redis_cluster.wait_ok()
    name = redis_cluster.portfolios("acl")[0]
    yield name
    admin = connect(redis_cluster.url)
    wipe(admin, name)
    for server in redis_cluster.running():
        with redis_cluster.client(server.port) as node:
            for role in ("agent", "executor", "gate", "audit", "phase", "operator", "admin"):
                node.acl_deluser(f"{role}-{name}")


def test_acl_when_applied_through_one_cluster_node_then_every_node_has_the_users_and_roles_work(
    redis_cluster: LocalCluster,
    portfolio: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Users on all six nodes; a gate and an agent with their own users, through a
    replica's URL, decide an intent; the agent may not read the portfolio's state: the
    CLI says so in one line, exit 1."""
    words = {role: secrets.token_urlsafe(24) for role in ("gate", "agent")}
    for role, password in words.items():
        monkeypatch.setenv(env_var(f"{role}-{portfolio}"), password)
    out = tmp_path / "users.acl"
    admin_name = f"admin-{portfolio}"
    args = ["acl", "--portfolio", portfolio, "--out", str(out), "--admin-user", admin_name]
    assert main([*args, "--apply", "--redis-url", redis_cluster.url]) == 0
    report = capsys.readouterr().out
    assert "applied 7 users (default user unchanged) on 6 server(s)" in report
    for server in redis_cluster.running():
        with redis_cluster.client(server.port) as node:
            assert node.acl_getuser(f"gate-{portfolio}") is not None, server.port

    master = redis_cluster.master_of(portfolio)
    replica = redis_cluster.replica_of(master).port  # any node will do: not the owner
    gate = connect(f"redis://gate-{portfolio}:{words['gate']}@127.0.0.1:{replica}/0")
    agent_url = f"redis://agent-{portfolio}:{words['agent']}@127.0.0.1:{replica}/0"
    assert is_cluster(gate)
    h = Harness(gate, portfolio)  # the worker, funding and marks: all as the gate user
    h.fund()
    agent = GateClient(agent_url, portfolio=portfolio)
    intent_id = agent.submit("BTC/USDT", "buy", "0.01", price="100000", agent_id="a1")
    h.pump()
    decision = agent.decision(intent_id)
    assert decision is not None and decision.status.value == "approved"

    capsys.readouterr()  # the in-process worker's decision log lines
    assert main(["status", "--portfolio", portfolio, "--redis-url", agent_url]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(f"riskgate: Redis at 127.0.0.1:{replica}") and "permission" in err
