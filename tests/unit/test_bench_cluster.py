"""The cluster bench's arithmetic: the sizing projection and the slot ownership parse."""

from __future__ import annotations

import pytest

from consumers.bench.cluster import SHARD_BUDGET, project
from consumers.servers.local_cluster import _owns

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


@pytest.mark.parametrize(
    ("slot", "owned"),
    [(0, True), (5460, True), (5461, False), (9000, True), (9001, False), (12000, False)],
)
def test_owns_when_myself_line_lists_ranges_then_slot_membership_follows(
    slot: int, owned: bool
) -> None:
    """Only the ``myself`` line counts; single slots and ranges both parse; migrations skip."""
    reply = (
        "aaa 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460 9000 [9001->-bbb]\n"
        "bbb 127.0.0.1:7001@17001 master - 0 0 2 connected 5461-8999 9001-16383\n"
    )
    assert _owns(reply, slot) is owned
