"""The shared rate limiter on a real Redis: one budget per source for every process."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from redis import Redis

from consumers.market.sources.base import RateLimited
from consumers.market.sources.limiter import Limit, SharedLimiter
from tests.builders import ROOT


@pytest.fixture
def prefix(redis: Redis) -> Iterator[str]:
    name = f"lim{uuid.uuid4().hex[:8]}"
    yield name
    for key in redis.scan_iter(match=f"{name}:*"):
        redis.delete(key)


def test_acquire_when_budget_used_then_refused_with_the_wait(redis: Redis, prefix: str) -> None:
    """3 per 60 s: three grants, the fourth is refused with the time until the first
    leaves the window; without waiting allowed, acquire raises RateLimited."""
    limiter = SharedLimiter(redis, prefix, max_wait_s=0)
    limit = Limit(3, 60)
    grants = [limiter.try_acquire("alpha_vantage", limit) for _ in range(4)]
    assert [g.allowed for g in grants] == [True, True, True, False]
    assert 55_000 < grants[3].wait_ms <= 60_000
    assert limiter.in_window("alpha_vantage", limit) == 3
    with pytest.raises(RateLimited, match="3 requests per 60 s used up"):
        limiter.acquire("alpha_vantage", limit)
    assert limiter.try_acquire("polygon_io", limit).allowed  # another source, its own budget


def test_acquire_when_two_processes_share_a_source_then_no_window_exceeds_the_limit(
    redis_url: str, prefix: str
) -> None:
    """Two processes take 8 requests each of a 5-per-2-s budget: all 16 are granted,
    and no 2-second span (by Redis's clock) holds more than 5 of them, which two
    per-process limiters (10 in the first window) would break."""
    args = [redis_url, prefix, "alpha_vantage", "8", "5", "2"]
    procs = [
        subprocess.Popen([sys.executable, "-m", "tests.integration.limiter_worker", *args],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]  # fmt: skip
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
    each = [json.loads(out) for out, _ in outs]
    assert [len(g) for g in each] == [8, 8]
    times = sorted(t for g in each for t in g)
    assert all(times[i + 5] - times[i] >= 2000 for i in range(len(times) - 5)), times
    first_window = [t for t in times if t < times[0] + 2000]
    assert len(first_window) == 5
