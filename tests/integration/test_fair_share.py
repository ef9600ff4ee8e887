"""Gate processes serving the same portfolios share them fairly (consumers/bus/members.py):
a process joining takes its share over, one dying leaves its share to the others."""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from redis import Redis

from consumers.bus.keys import Keys
from consumers.bus.lease import holder
from tests.harness import Harness, unique_portfolio, wipe
from tests.integration.conftest import Workers

pytestmark = pytest.mark.slow

OPTS = ("--lease-ttl-ms", "1500", "--lease-renew-ms", "300")


@pytest.fixture
def others(redis: Redis) -> Iterator[list[str]]:
    names = [unique_portfolio(f"fs{i}") for i in range(5)]
    yield names
    for name in names:
        wipe(redis, name)


def _owners(redis: Redis, names: list[str]) -> Counter[str]:
    found = (holder(redis, Keys(n)) for n in names)
    return Counter(h.owner for h in found if h is not None)


def _wait(predicate: Callable[[], Any], workers: Workers, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}\n{workers.logs()}")


def test_processes_when_second_joins_and_dies_then_portfolios_shared_then_all_taken_back(
    h: Harness, others: list[str], workers: Workers
) -> None:
    """Six portfolios: one process owns all six; a second joins and ends up with three of
    them (the first hands them over); kill -9 of the second: the first owns all six."""
    names = [h.portfolio, *others]
    more = [arg for n in others for arg in ("--portfolio", n)]
    workers.start("p1", *more, *OPTS)
    _wait(lambda: _owners(h.redis, names) == {"p1": 6}, workers, 30, "p1 owning all six")
    workers.start("p2", *more, *OPTS)
    _wait(lambda: _owners(h.redis, names) == {"p1": 3, "p2": 3}, workers, 30, "three each")
    assert workers.count_lines("over the fair share; handing the portfolio over") == 3
    workers.kill("p2", signal.SIGKILL)
    _wait(lambda: _owners(h.redis, names) == {"p1": 6}, workers, 30, "p1 taking all back")
