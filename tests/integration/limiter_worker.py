"""A process that takes ``n`` requests of a source's shared budget and prints, as JSON,
Redis's time of each grant (tests/integration/test_market_limiter.py runs two)."""

from __future__ import annotations

import json
import sys

from redis import Redis

from consumers.market.sources.limiter import Limit, SharedLimiter

if __name__ == "__main__":
    url, prefix, source, n, requests, per = sys.argv[1:7]
    redis = Redis.from_url(url)
    limiter = SharedLimiter(redis, prefix, max_wait_s=60)
    grants = [limiter.acquire(source, Limit(int(requests), int(per))).at_ms for _ in range(int(n))]
    print(json.dumps(grants))
