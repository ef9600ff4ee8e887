"""The cluster bench's arithmetic: the sizing projection, and the local cluster's parse of
``CLUSTER NODES`` (which node serves which slots)."""

from __future__ import annotations

import pytest

from consumers.bench.cluster import SHARD_BUDGET, project
from consumers.servers.cluster_nodes import parse_nodes

CELLS = [
    {"processes": 1, "portfolios": 1, "intents_per_s": 9000, "server_us_per_intent": 30.0},
    {"processes": 1, "portfolios": 64, "intents_per_s": 8000, "server_us_per_intent": 40.0},
    {"processes": 4, "portfolios": 64, "intents_per_s": 20000, "server_us_per_intent": 50.0},
]


def test_project_when_cells_measured_then_sized_from_the_many_portfolio_rows() -> None:
    """The projection takes the worst Redis cost and best per-process rate of the widest row."""
    p = project(CELLS)
    assert p["server_us_per_intent"] == 50.0
    assert p["per_process_per_s"] == 8000
    assert p["per_shard_per_s"] == round(SHARD_BUDGET * 1e6 / 50.0)
    assert p["targets"]["10000"] == {"shards": 3, "processes": 2, "portfolios_at_least": 2}
    # 1M/s at 10k/s per shard and 8k/s per process
    assert p["targets"]["1000000"]["shards"] == 100
    assert p["targets"]["1000000"]["processes"] == 125


NODES = (
    "aaa 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460 9000 [9001->-bbb]\n"
    "bbb 127.0.0.1:7001@17001,host-b master - 0 0 2 connected 5461-8999 9001-16383\n"
    "ccc 127.0.0.1:7002@17002 slave aaa 0 0 1 connected\n"
    "ddd 127.0.0.1:7003@17003 master,fail - 0 0 3 disconnected\n"
)


@pytest.mark.parametrize(
    ("slot", "owner"),
    [(0, 7000), (5460, 7000), (5461, 7001), (9000, 7000), (9001, 7001), (16383, 7001)],
)
def test_parse_nodes_when_ranges_single_slots_and_migrations_then_each_slot_has_one_owner(
    slot: int, owner: int
) -> None:
    """Single slots and ranges both parse; a slot being migrated stays its owner's only."""
    holders = [n.port for n in parse_nodes(NODES.encode()) if n.holds(slot)]
    assert holders == [owner]


def test_parse_nodes_when_replica_and_failed_master_then_roles_follow_the_flags() -> None:
    """A replica names its master; a master marked failed is no master; ports parse
    with and without a hostname after the bus port."""
    nodes = {n.node_id: n for n in parse_nodes(NODES)}
    assert [(n.port, n.master, n.master_id) for n in nodes.values()] == [
        (7000, True, None),
        (7001, True, None),
        (7002, False, "aaa"),
        (7003, False, None),
    ]
    assert nodes["ccc"].slots == () and nodes["ddd"].slots == ()
