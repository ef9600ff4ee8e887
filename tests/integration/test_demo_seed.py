"""``riskgate demo --seed N`` reproduces a run decision for decision: two runs of one seed
write the same ``decisions.jsonl`` (every decision's intent, agent, symbol, side, status,
quantities and reasons, in stream order; only the times quoted in messages are masked),
another seed does not; and the offenders get the reasons their offences earn."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from tests.builders import ROOT
from tests.integration.pg import temp_database


def _demo(report: Path, redis_url: str, database_url: str, seed: int) -> list[dict[str, Any]]:
    env = {**os.environ, "REDIS_URL": redis_url, "DATABASE_URL": database_url}
    done = subprocess.run(
        [sys.executable, "-m", "consumers.cli", "demo", "--duration", "8", "--rate", "40",
         "--seed", str(seed), "--report", str(report), "--plain"],
        check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = (report / "decisions.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_demo_when_run_twice_with_one_seed_then_the_same_decisions_in_the_same_order(
    tmp_path: Path, redis_url: str
) -> None:
    """Same seed: identical decisions; another seed: different ones. Offenders: the
    flooder's copies are duplicate orders and past its quota rate limited, a fat finger
    is outside the price collar, a bad stop invalid, a wrong-side sell refused by
    reduce_only, a disabled asset refused; traders' exits are approved reduce-only sells."""
    with temp_database("demo_seed") as url:  # its own price history: the feed's, seeded
        first = _demo(tmp_path / "a", redis_url, url, 7)
        second = _demo(tmp_path / "b", redis_url, url, 7)
        other = _demo(tmp_path / "c", redis_url, url, 8)
    assert len(first) > 150
    assert first == second
    assert first != other

    codes: dict[str, set[str]] = defaultdict(set)
    statuses: dict[str, set[str]] = defaultdict(set)
    for d in first + other:
        codes[d["agent_id"]].update(c for c, _ in d["reasons"])
        statuses[d["agent_id"]].add(d["status"])
    assert {"duplicate_order", "rate_limited"} <= codes["agent-flood"]
    expected = {"agent-fat-finger": "price_collar", "agent-bad-stop": "invalid_stop",
                "agent-wrong-side": "reduce_only", "agent-disabled": "asset_disabled"}  # fmt: skip
    for agent, code in expected.items():
        if agent in codes:  # offenders act now and then
            assert code in codes[agent] and statuses[agent] == {"rejected"}, agent
    assert len(set(expected) & set(codes)) >= 2
    exits = [d for d in first if d["side"] == "sell" and d["agent_id"][6:].isdigit()]
    assert exits and all(d["status"] == "approved" for d in exits)
