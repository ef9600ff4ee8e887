"""The CLI against a cluster that is failing: a node that is down, a slot nobody serves.
One line naming the server and the problem, no traceback, exit status 3 (Redis
unavailable); portfolios on the healthy nodes keep working."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.cluster_kit import cli, until
from tests.integration.redis_cluster import LocalCluster, Node

pytestmark = pytest.mark.timeout(300)


@dataclass(frozen=True)
class Failing:
    cluster: LocalCluster
    dead: Node  # a master killed, with no replica to take over
    lost: str  # a portfolio on its slots
    alive: str  # a portfolio on a live master
    live_url: str


@pytest.fixture(scope="module")
def failing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Failing]:
    """3 masters, no replicas, ``cluster-require-full-coverage no``; one master killed
    and marked failed by the others."""
    directory: Path = tmp_path_factory.mktemp("failing-cluster")
    args = ("--cluster-require-full-coverage", "no")
    with LocalCluster(directory, replicas=0, args=args) as cluster:
        lost, alive, _ = cluster.portfolios("down")
        dead = cluster.master_of(lost)
        live_url = cluster.url_of(cluster.master_of(alive).port)
        cluster.kill(dead)
        until(lambda: dead.port not in {n.port for n in cluster.nodes() if n.master}, what="fail")
        yield Failing(cluster, dead, lost, alive, live_url)


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


def test_cli_when_the_named_node_is_down_then_one_line_naming_it_and_exit_3(
    failing: Failing,
) -> None:
    """REDIS_URL names the dead node: the CLI says it cannot reach it, exit 3."""
    url = failing.cluster.url_of(failing.dead.port)
    done = cli("status", "--portfolio", failing.alive, url=url)
    line = one_line(done.stderr)
    assert done.returncode == 3
    assert line.startswith(f"riskgate: cannot reach Redis at 127.0.0.1:{failing.dead.port}")


@pytest.mark.parametrize(
    "command",
    [
        ("status",),
        ("submit", "BTC/USDT", "buy", "0.01", "--price", "100000", "--wait", "--timeout", "5"),
        ("halt",),
    ],
)
def test_cli_when_the_portfolios_slot_is_not_served_then_one_line_and_exit_3(
    failing: Failing, command: tuple[str, ...]
) -> None:
    """A live node named, the portfolio's master dead with no replica: one line naming
    the node that is down and the problem, exit 3."""
    done = cli(*command, "--portfolio", failing.lost, url=failing.live_url)
    line = one_line(done.stderr)
    assert done.returncode == 3, done.stderr
    dead, live = f"127.0.0.1:{failing.dead.port}", failing.live_url.split("//")[1].split("/")[0]
    assert line.startswith(f"riskgate: cannot reach Redis node {dead} (of the cluster at {live})")


def test_cli_when_another_shard_failed_then_portfolios_on_live_masters_work(
    failing: Failing,
) -> None:
    """The failed shard does not stop the others (the client needs no full coverage)."""
    # an event first: status of a portfolio that never saw one exits 1 (issue 15)
    funded = cli("deposit", "100", "--reference", "r1", "--portfolio", failing.alive,
                 url=failing.live_url)  # fmt: skip
    assert funded.returncode == 0, funded.stderr
    done = cli("status", "--json", "--portfolio", failing.alive, url=failing.live_url)
    assert done.returncode == 0, done.stderr
