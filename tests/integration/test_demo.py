"""`riskgate demo --quick` on a machine with no URLs set: embedded servers, exit 0, a
summary that matches the streams and the audit table, and the market (marks, earnings
dates, regimes) from the feed's simulated source."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from psycopg.conninfo import make_conninfo
from redis import Redis

from consumers.bus.keys import DATA, Keys
from consumers.db import connection as db
from consumers.servers import embedded
from tests.builders import ROOT


def test_demo_quick_when_no_urls_set_then_exits_0_and_summary_matches_streams(
    tmp_path: Path,
) -> None:
    """Embedded Redis and PostgreSQL in a fresh data dir; the decisions by status in the
    summary equal XRANGE of the decisions stream, and trading_decisions holds each one."""
    data, report = tmp_path / "data", tmp_path / "report"
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    done = subprocess.run(
        [sys.executable, "-m", "consumers.cli", "--data-dir", str(data), "demo", "--quick",
         "--report", str(report)],
        check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "consistent        yes" in done.stdout
    assert "sent=" in done.stdout  # plain progress lines when not on a terminal
    summary = json.loads((report / "summary.json").read_text())
    for name in ("index.html", "decisions.jsonl"):
        assert (report / name).stat().st_size > 1000
    assert "equity=100,000.00 USD" in done.stdout  # money to the cent, not 7 decimals
    assert embedded.status(data)["redis"] == {
        "running": False, "url": embedded.redis_url_for(embedded.Layout(data)), "users": []
    }  # fmt: skip  # the last process out stopped the servers

    embedded.pin(data)  # the same data again, from a new start
    try:
        layout = embedded.Layout(data)
        keys = Keys(summary["portfolio"])
        redis = Redis.from_url(embedded.redis_url_for(layout))
        try:
            rows = redis.xrange(keys.decisions)
            dead = redis.xlen(keys.deadletter)
        finally:
            redis.close()
        statuses = Counter(json.loads(f[DATA])["status"] for _, f in rows)
        url = make_conninfo(embedded.database_url_for(layout))
        with db.connect(url) as conn:
            audited = conn.execute(
                "SELECT count(*) FROM trading_decisions WHERE portfolio = %s", (keys.portfolio,)
            ).fetchone()
    finally:
        embedded.stop_all(data)
    assert summary["decided"] == len(rows) == summary["intents_to_decide"] > 100
    assert summary["decisions"] == {s: statuses.get(s, 0) for s in summary["decisions"]}
    assert audited is not None and audited[0] == len(rows) == summary["audit_rows"]
    assert summary["dead_letters"] == dead > 0
    assert summary["fills"] > 0 and summary["mix"]["resent"] > 0
    # no flag set by hand: the feed's sim source dates earnings and classifies regimes
    assert summary["traded"]["NVDA"] > 0 and summary["traded"]["TQQQ"] > 0
    assert "AMD" not in summary["traded"] and "SOXL" not in summary["traded"]
    assert summary["reasons"]["earnings_blackout"] > 0 and summary["reasons"]["sideways_market"] > 0
    # every enabled class is approved when its rules allow: mostly (crypto holds the
    # flooder's refused copies), and the traders' intents over 80 %
    for cls in ("crypto", "stocks", "leveraged_etfs"):
        n = summary["by_class"][cls]
        assert n["approved"] + n["resized"] > (n["rejected"] if cls != "crypto" else 0)
    traders = [summary["by_kind"][k] for k in ("sized", "take_profit", "cut_loss", "close")
               if k in summary["by_kind"]]  # fmt: skip
    passed = sum(n["approved"] + n["resized"] for n in traders)
    assert passed > 0.8 * sum(sum(n.values()) for n in traders)
