"""Gate settings are checked at start-up: one clear message per bad setting, no worker."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import fakeredis
import pytest

from consumers.bus.keys import Keys
from consumers.cli.main import main
from consumers.gate_worker.commit import Committer
from consumers.gate_worker.worker import GateSettings, GateWorker, SettingsError
from schemas.config import AssetsConfig
from tests.builders import base_config

GOOD = GateSettings(consumer="w1")
NAN, INF = float("nan"), float("inf")

# (setting, bad value, what its message starts with); max_intent_age_seconds 300 and
# max_clock_skew_seconds 5 in the test config: the marker TTL must be at least 305
BAD: list[tuple[str, Any, str]] = [
    (
        "marker_ttl_s",
        0,
        "marker_ttl_s (--dedupe-ttl, RISKGATE_DEDUPE_TTL_S) is 0: it must be a whole number",
    ),
    ("marker_ttl_s", -1, "marker_ttl_s (--dedupe-ttl, RISKGATE_DEDUPE_TTL_S) is -1:"),
    ("marker_ttl_s", 304, "marker_ttl_s (--dedupe-ttl, RISKGATE_DEDUPE_TTL_S) is 304:"),
    (
        "marker_ttl_s",
        10**9 + 1,
        "marker_ttl_s (--dedupe-ttl, RISKGATE_DEDUPE_TTL_S) is 1000000001:",
    ),
    ("marker_ttl_s", 3600.5, "marker_ttl_s (--dedupe-ttl, RISKGATE_DEDUPE_TTL_S) is 3600.5:"),
    ("marker_ttl_s", True, "marker_ttl_s (--dedupe-ttl, RISKGATE_DEDUPE_TTL_S) is True:"),
    ("retention_s", 0, "retention_s (RISKGATE_RETENTION_S) is 0: it must be a positive number"),
    ("retention_s", -86400, "retention_s (RISKGATE_RETENTION_S) is -86400:"),
    ("retention_s", NAN, "retention_s (RISKGATE_RETENTION_S) is nan:"),
    ("retention_s", INF, "retention_s (RISKGATE_RETENTION_S) is inf:"),
    ("batch", 0, "batch (--batch, RISKGATE_BATCH) is 0: it must be a whole number from 1"),
    ("batch", 100_001, "batch (--batch, RISKGATE_BATCH) is 100001:"),
    ("batch", "256", "batch (--batch, RISKGATE_BATCH) is '256':"),
    ("block_ms", 0, "block_ms (--block-ms, RISKGATE_BLOCK_MS) is 0: it must be a whole number"),
    ("block_ms", 600_001, "block_ms (--block-ms, RISKGATE_BLOCK_MS) is 600001:"),
    ("min_idle_ms", 0, "min_idle_ms (--min-idle-ms, RISKGATE_MIN_IDLE_MS) is 0:"),
    ("min_idle_ms", -5, "min_idle_ms (--min-idle-ms, RISKGATE_MIN_IDLE_MS) is -5:"),
    ("reclaim_every_s", 0, "reclaim_every_s (--reclaim-every, RISKGATE_RECLAIM_EVERY_S) is 0:"),
    ("reclaim_every_s", NAN, "reclaim_every_s (--reclaim-every, RISKGATE_RECLAIM_EVERY_S) is nan"),
    ("max_deliveries", 0, "max_deliveries (--max-deliveries, RISKGATE_MAX_DELIVERIES) is 0:"),
    ("intents_keep_s", -1.0, "intents_keep_s (--inputs-keep, RISKGATE_INPUTS_KEEP_S) is -1.0:"),
    ("decisions_keep_s", NAN, "decisions_keep_s (--decisions-keep, RISKGATE_DECISIONS_KEEP_S) is"),
    ("trim_every_s", -1.0, "trim_every_s (--trim-every, RISKGATE_TRIM_EVERY_S) is -1.0:"),
    ("trim_limit", 999, "trim_limit (--trim-limit, RISKGATE_TRIM_LIMIT) is 999: it must be"),
    ("unconsumed_keep_s", 0, "unconsumed_keep_s (--unconsumed-keep, RISKGATE_UNCONSUMED_KEEP_S)"),
    ("idle_group_s", INF, "idle_group_s (--idle-group, RISKGATE_IDLE_GROUP_S) is inf:"),
    ("deadletter_max", 0, "deadletter_max (RISKGATE_DEADLETTER_MAX) is 0:"),
    ("event_marker_ttl_s", 0, "event_marker_ttl_s (--event-dedupe-ttl, RISKGATE_EVENT_DEDUPE"),
    (
        "event_marker_ttl_s",
        10,
        "event_marker_ttl_s (--event-dedupe-ttl, RISKGATE_EVENT_DEDUPE_TTL_S",
    ),
    ("max_batch_bytes", 0, "max_batch_bytes is 0:"),
    ("flood_read_factor", 0, "flood_read_factor is 0:"),
    (
        "lease_ttl_ms",
        199,
        "lease_ttl_ms (--lease-ttl-ms, RISKGATE_LEASE_TTL_MS) is 199: it must "
        "be a whole number from 200 to 600000",
    ),
    ("lease_ttl_ms", 600_001, "lease_ttl_ms (--lease-ttl-ms, RISKGATE_LEASE_TTL_MS) is 600001:"),
    (
        "lease_renew_ms",
        1501,
        "lease_renew_ms (--lease-renew-ms, RISKGATE_LEASE_RENEW_MS) is "
        "1501: it must be a whole number from 1 to 1500 (at most half of lease_ttl_ms 3000",
    ),
    ("lease_renew_ms", 0, "lease_renew_ms (--lease-renew-ms, RISKGATE_LEASE_RENEW_MS) is 0:"),
    ("idle_ms", 0, "idle_ms (--idle-ms, RISKGATE_IDLE_MS) is 0: it must be a whole number"),
    ("registry_every_s", 0, "registry_every_s (--registry-every, RISKGATE_REGISTRY_EVERY_S) is 0:"),
    ("consumer", "", "consumer is '': it must name this worker"),
    ("consumer", "  ", "consumer is '  ':"),
]


def _aged(seconds: int) -> AssetsConfig:
    cfg = base_config()
    rm = cfg.risk_management.model_copy(update={"max_intent_age_seconds": seconds})
    return cfg.model_copy(update={"risk_management": rm})


@pytest.mark.parametrize(("setting", "value", "message"), BAD)
def test_settings_when_one_is_bad_then_one_message_naming_it(
    setting: str, value: Any, message: str
) -> None:
    """Each bad setting gives exactly one problem, which names it, its value and its knob."""
    problems = replace(GOOD, **{setting: value}).problems(base_config())
    assert len(problems) == 1, problems
    assert problems[0].startswith(message), problems[0]


@pytest.mark.parametrize(("setting", "value", "message"), BAD)
def test_worker_when_a_setting_is_bad_then_refused_at_start_up(
    setting: str, value: Any, message: str
) -> None:
    """GateWorker (what library users construct) refuses the same settings, before any I/O."""
    with pytest.raises(SettingsError, match="^" + message[:20].replace("(", r"\(")) as err:
        GateWorker(
            fakeredis.FakeRedis(), Keys("s"), base_config(), replace(GOOD, **{setting: value})
        )
    assert err.value.problems[0].startswith(message)


def test_settings_when_defaults_or_at_the_limits_then_no_problem() -> None:
    """The defaults pass, and so does each bound itself."""
    assert GOOD.problems(base_config()) == []
    edge = replace(GOOD, marker_ttl_s=305, batch=100_000, block_ms=1, min_idle_ms=1)
    assert edge.problems(base_config()) == []


def test_marker_ttl_when_config_allows_older_intents_then_the_floor_follows_it() -> None:
    """The floor is the config's intent age limit plus its clock skew, not a constant."""
    day = replace(GOOD, marker_ttl_s=3000)
    assert day.problems(base_config()) == []
    (problem,) = day.problems(_aged(3600))
    assert "from 3605 to" in problem and "max_intent_age_seconds 3600" in problem
    assert replace(GOOD, marker_ttl_s=3605).problems(_aged(3600)) == []


def test_settings_when_several_are_bad_then_each_is_said() -> None:
    """Every bad setting is reported at once, in one line."""
    bad = replace(GOOD, marker_ttl_s=0, retention_s=0, batch=0)
    with pytest.raises(SettingsError) as err:
        bad.validate(base_config())
    assert len(err.value.problems) == 3
    assert "\n" not in str(err.value)
    assert str(err.value) == "; ".join(err.value.problems)


def test_committer_when_marker_ttl_not_positive_then_refused() -> None:
    """The committer refuses a marker TTL SET EX would reject, for library users too."""
    for ttl in (0, -1):
        with pytest.raises(ValueError, match="marker_ttl_s must be a positive whole number"):
            Committer(fakeredis.FakeRedis(), Keys("s"), "gate", ttl)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"RISKGATE_DEDUPE_TTL_S": "0"},
            "riskgate: gate settings: marker_ttl_s (--dedupe-ttl, RISKGATE_DEDUPE_TTL_S) is 0: "
            "it must be a whole number of seconds from 305 to 1000000000",
        ),
        (
            {"RISKGATE_DEDUPE_TTL_S": "60"},
            "riskgate: gate settings: marker_ttl_s (--dedupe-ttl, RISKGATE_DEDUPE_TTL_S) is 60:",
        ),
        (
            {"RISKGATE_DEDUPE_TTL_S": "a week"},
            "riskgate: RISKGATE_DEDUPE_TTL_S is 'a week': it must be a whole number",
        ),
        (
            {"RISKGATE_RETENTION_S": "0"},
            "riskgate: gate settings: retention_s (RISKGATE_RETENTION_S) is 0:",
        ),
        (
            {"RISKGATE_BATCH": "0"},
            "riskgate: gate settings: batch (--batch, RISKGATE_BATCH) is 0:",
        ),
        (
            {"RISKGATE_BLOCK_MS": "0"},
            "riskgate: gate settings: block_ms (--block-ms, RISKGATE_BLOCK_MS) is 0:",
        ),
        (
            {"RISKGATE_MIN_IDLE_MS": "0"},
            "riskgate: gate settings: min_idle_ms (--min-idle-ms, RISKGATE_MIN_IDLE_MS) is 0:",
        ),
        (
            {"RISKGATE_MAX_DELIVERIES": "0"},
            "riskgate: gate settings: max_deliveries (--max-deliveries, "
            "RISKGATE_MAX_DELIVERIES) is 0:",
        ),
        (
            {"RISKGATE_LEASE_TTL_MS": "100"},
            "riskgate: gate settings: lease_ttl_ms (--lease-ttl-ms, RISKGATE_LEASE_TTL_MS) is "
            "100: it must be a whole number from 200 to 600000",
        ),
        (
            {"RISKGATE_LEASE_TTL_MS": "1000", "RISKGATE_LEASE_RENEW_MS": "800"},
            "riskgate: gate settings: lease_renew_ms (--lease-renew-ms, RISKGATE_LEASE_RENEW_MS) "
            "is 800: it must be a whole number from 1 to 500",
        ),
        (
            {"RISKGATE_RECLAIM_EVERY_S": "nan"},
            "riskgate: gate settings: reclaim_every_s (--reclaim-every, "
            "RISKGATE_RECLAIM_EVERY_S) is nan:",
        ),
    ],
)
def test_cli_gate_when_a_setting_is_bad_then_one_line_and_exit_2(
    env: dict[str, str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`riskgate gate` refuses a bad setting in one line, exit 2, before it connects."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # nothing listens here: a worker that got as far as connecting would fail otherwise
    assert main(["gate", "--redis-url", "redis://127.0.0.1:9/0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message), err
    assert err.count("\n") == 1


def test_cli_gate_when_an_integer_variable_is_not_a_number_then_argparse_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A non-numeric RISKGATE_BATCH is reported like a bad --batch, exit 2, no traceback."""
    monkeypatch.setenv("RISKGATE_BATCH", "many")
    with pytest.raises(SystemExit) as exit_:
        main(["gate"])
    assert exit_.value.code == 2
    assert "argument --batch: invalid int value: 'many'" in capsys.readouterr().err
