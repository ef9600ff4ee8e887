"""``riskgate correlations``: correlation of daily returns between the configured assets.

For each configured symbol with bars in ``price_data``: its daily close is the close
of its last bar of each UTC day (read by :mod:`consumers.db.daily_closes`: TimescaleDB's
continuous aggregate ``price_data_daily`` where there is one, else a plain query).
A pair's returns are taken over the pair's **common close days** only (the days
both symbols have a close): each return runs from one common close day to the next,
the same interval for both. So a stock's Friday-to-
Monday return is paired with the coin's Friday-to-Monday return, not with its
Sunday-to-Monday one (which understated cross-class correlation: a review measured
a true 0.80 as 0.68 on average), and a holiday on one side drops that day for the
pair, not a return.
The window is the ``window`` UTC days ending on the day of the newest bar; a pair's
correlation is Pearson's r over those common-interval returns, and is only computed
with at least ``min_observations`` of them (otherwise the pair stays unknown, and
the gate's fail-closed rule applies to it).

``as_of`` is the time of the newest bar used, not the time of the run: when prices
stop arriving the correlations age, and after ``correlation_max_age_hours`` the gate
treats them as unknown. Values are rounded half-even to 6 places. The result goes to
``asset_correlations`` (one row per pair, window and as_of) and, for the gate, to the
portfolio's correlations key with a state-version bump in one MULTI.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from itertools import combinations, pairwise

from redis import Redis

from consumers.bus import keys as k
from consumers.bus.keys import Keys
from consumers.db.connection import Connection, ensure_partitions
from consumers.db.daily_closes import daily_closes
from consumers.state.changelog import note_bump
from consumers.state.snapshot_codec import encode_correlations
from gate.portfolio import Correlations
from gate.stats import correlation
from schemas.config import AssetsConfig

PLACES = Decimal("0.000001")


@dataclass(frozen=True, slots=True)
class Pair:
    a: str
    b: str
    value: Decimal
    observations: int


@dataclass(frozen=True, slots=True)
class Result:
    as_of: datetime | None
    window_days: int
    pairs: tuple[Pair, ...]
    symbols: tuple[str, ...]  # symbols that had prices in the window
    skipped: int  # pairs with too few common days


def common_returns(
    a: Mapping[date, Decimal], b: Mapping[date, Decimal]
) -> tuple[list[Decimal], list[Decimal]]:
    """Both series' returns between consecutive days on which both have a close."""
    days = sorted(set(a) & set(b))
    ra = [a[d2] / a[d1] - 1 for d1, d2 in pairwise(days)]
    rb = [b[d2] / b[d1] - 1 for d1, d2 in pairwise(days)]
    return ra, rb


def pair_correlations(
    closes: Mapping[str, Mapping[date, Decimal]], min_observations: int
) -> tuple[list[Pair], int]:
    """Pearson's r of every pair's common-interval returns (see the module docstring)."""
    pairs, skipped = [], 0
    for a, b in combinations(sorted(closes), 2):
        ra, rb = common_returns(closes[a], closes[b])
        value = correlation(ra, rb) if len(ra) >= min_observations else None
        if value is None:
            skipped += 1
            continue
        pairs.append(Pair(a, b, value.quantize(PLACES, ROUND_HALF_EVEN), len(ra)))
    return pairs, skipped


def compute(
    conn: Connection, config: AssetsConfig, window_days: int, min_observations: int
) -> Result:
    symbols = sorted(config.assets)
    row = conn.execute(
        "SELECT max(time) FROM price_data WHERE symbol = ANY(%s)", (symbols,)
    ).fetchone()
    newest: datetime | None = row[0] if row else None
    if newest is None:
        return Result(None, window_days, (), (), 0)
    newest = newest.astimezone(UTC)
    first_day = newest.date() - timedelta(days=window_days)
    closes: dict[str, dict[date, Decimal]] = defaultdict(dict)
    for symbol, day, close, _at in daily_closes(conn, symbols, first_day, newest.date()):
        closes[symbol][day] = close
    pairs, skipped = pair_correlations(
        {s: c for s, c in closes.items() if len(c) > 1}, min_observations
    )
    return Result(newest, window_days, tuple(pairs), tuple(sorted(closes)), skipped)


def store(conn: Connection, result: Result) -> int:
    if result.as_of is None or not result.pairs:
        return 0
    ensure_partitions(conn, "asset_correlations", [result.as_of])
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO asset_correlations (as_of, window_days, symbol_a, symbol_b, "
            "correlation, observations) VALUES (%s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (symbol_a, symbol_b, window_days, as_of) DO UPDATE SET "
            "correlation = excluded.correlation, observations = excluded.observations, "
            "computed_at = now()",
            [(result.as_of, result.window_days, p.a, p.b, p.value, p.observations)
             for p in result.pairs],
        )  # fmt: skip
    return len(result.pairs)


def publish(redis: Redis, keys: Keys, pairs: Sequence[Pair], as_of: datetime) -> None:
    """The gate's copy: the key and a version bump in one MULTI (workers re-read)."""
    corr = Correlations({Correlations.key(p.a, p.b): p.value for p in pairs}, as_of)
    pipe = redis.pipeline(transaction=True)
    pipe.set(keys.correlations, encode_correlations(corr))
    pipe.hincrby(keys.state, k.F_VERSION, 1)
    note_bump(pipe, keys)
    pipe.execute()


def run_once(
    conn: Connection,
    redis: Redis,
    keys: Keys,
    config: AssetsConfig,
    *,
    window_days: int,
    min_observations: int,
) -> Result:
    """Compute, store, and publish for the gate (nothing published without prices)."""
    result = compute(conn, config, window_days, min_observations)
    store(conn, result)
    if result.as_of is not None:
        publish(redis, keys, result.pairs, result.as_of)
    return result
