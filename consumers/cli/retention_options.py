"""``riskgate gate``'s retention and dedupe options: a flag each, else its environment
variable, else the default (docs/OPERATIONS.md, "Retention"). The values are checked by
``GateSettings.validate`` like every other gate setting."""

from __future__ import annotations

import argparse
import os
from typing import Any

from consumers.errors import UsageError
from consumers.gate_worker.settings import GateSettings

_DEFAULTS = GateSettings(consumer="-")

# (setting, flag or None, environment variable, whole number?, help)
OPTIONS: list[tuple[str, str | None, str, bool, str]] = [
    (
        "marker_ttl_s",
        "--dedupe-ttl",
        "RISKGATE_DEDUPE_TTL_S",
        True,
        "seconds a decided marker lives: the dedupe window (at least the intent age limit "
        "plus the clock skew; intents older than it less skew and margin are not decided)",
    ),
    (
        "event_marker_ttl_s",
        "--event-dedupe-ttl",
        "RISKGATE_EVENT_DEDUPE_TTL_S",
        True,
        "seconds an applied marker lives; events older than it less a margin are refused",
    ),
    ("retention_s", None, "RISKGATE_RETENTION_S", False, "seconds dead letters are kept"),
    ("deadletter_max", None, "RISKGATE_DEADLETTER_MAX", True, "dead letters kept at most"),
    (
        "intents_keep_s",
        "--inputs-keep",
        "RISKGATE_INPUTS_KEEP_S",
        False,
        "seconds intents and events stay after every group acked them",
    ),
    (
        "decisions_keep_s",
        "--decisions-keep",
        "RISKGATE_DECISIONS_KEEP_S",
        False,
        "seconds a decision stays readable (GateClient.decision) even once audited",
    ),
    (
        "unconsumed_keep_s",
        "--unconsumed-keep",
        "RISKGATE_UNCONSUMED_KEEP_S",
        False,
        "seconds a consumer group nobody runs may hold entries back; older ones are "
        "trimmed unconsumed (counted, logged)",
    ),
    (
        "idle_group_s",
        "--idle-group",
        "RISKGATE_IDLE_GROUP_S",
        False,
        "a group whose consumers have all been idle this long counts as run by nobody",
    ),
    ("trim_every_s", "--trim-every", "RISKGATE_TRIM_EVERY_S", False, "seconds between trims"),
    ("trim_limit", "--trim-limit", "RISKGATE_TRIM_LIMIT", True, "entries one XTRIM may remove"),
]


def add_retention_options(p: argparse.ArgumentParser) -> None:
    for field, flag, env, whole, text in OPTIONS:
        if flag is None:
            continue
        default = getattr(_DEFAULTS, field)
        p.add_argument(
            flag,
            dest=field,
            type=int if whole else float,
            default=None,
            help=f"{text} (default: ${env} or {default:g})",
        )


def retention_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The GateSettings fields: each flag given, else its variable, else the default."""
    out: dict[str, Any] = {}
    for field, _, env, whole, _ in OPTIONS:
        given = getattr(args, field, None)
        out[field] = given if given is not None else _env(env, whole, getattr(_DEFAULTS, field))
    return out


def _env(name: str, whole: bool, default: float) -> float:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        if not whole:
            try:
                return float(value)  # the settings check judges it (nan, inf, < 0)
            except ValueError:
                pass
    kind = "a whole number" if whole else "a number of seconds"
    raise UsageError(f"{name} is {value!r}: it must be {kind}")
