"""``riskgate phase status`` and ``phase activate``: each phase's requirements against
the track record, and manual activation (refused while unmet, unless forced with a
reason). Exit codes: 0 ok, 1 refused, 2 bad arguments, 3 PostgreSQL unreachable."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from consumers.bus.runtime import connect
from consumers.cli.options import writes
from consumers.cli.pg_options import config_of, guarded, keys_of, redis_options
from consumers.cli.status_text import print_phase_report
from consumers.db import connection as db
from consumers.errors import UsageError
from consumers.phase.admin import ActivationRefused, activate, phase_report
from gate.money import show

if TYPE_CHECKING:
    Sub = argparse._SubParsersAction[argparse.ArgumentParser]


@guarded
def cmd_phase_status(args: argparse.Namespace) -> int:
    redis = connect(args.redis_url)
    try:
        with db.connect(args.database_url) as conn:
            report = phase_report(
                conn, redis, keys_of(args), config_of(args), datetime.now(UTC).date()
            )
    finally:
        redis.close()
    print_phase_report(args.portfolio, report, as_json=args.json)
    return 0


@guarded
def cmd_phase_activate(args: argparse.Namespace) -> int:
    if args.force and not (args.reason or "").strip():
        raise UsageError("--force needs --reason TEXT (why the requirements are overridden)")
    config = config_of(args)
    if args.phase not in config.phases:
        raise UsageError(f"unknown phase {args.phase!r}; phases: {', '.join(config.phases)}")
    redis = connect(args.redis_url)
    try:
        with db.connect(args.database_url) as conn:
            done = activate(
                conn, redis, keys_of(args), config, args.phase,
                by=args.by, reason=args.reason, force=args.force, now=datetime.now(UTC),
            )  # fmt: skip
    except ActivationRefused as exc:
        print(f"riskgate: refusing to activate {exc.phase}; unmet requirements:", file=sys.stderr)
        for r in exc.unmet:
            print(
                f"  {r.name}: {show(r.value) or 'unknown'} (needs {r.requirement})", file=sys.stderr
            )
        print("use --force --reason TEXT to override", file=sys.stderr)
        return 1
    finally:
        redis.close()
    if done.already:
        print(f"{args.portfolio}: {done.phase} was already activated; nothing changed")
    else:
        unmet = ", ".join(r.name for r in done.unmet)
        forced = f" (forced; unmet: {unmet})" if done.forced else ""
        print(f"{args.portfolio}: {done.phase} activated by {args.by}{forced}")
    for stream_id in done.stream_ids:
        print(f"published {stream_id} on {keys_of(args).phases}")
    return 0


def register(sub: Sub) -> None:
    p = sub.add_parser("phase", help="phase requirements and manual activation")
    actions = p.add_subparsers(dest="phase_command", required=True, metavar="ACTION")
    s = actions.add_parser("status", help="each phase, its requirements, current values")
    redis_options(s)
    s.add_argument("--json", action="store_true")
    s.set_defaults(handler=cmd_phase_status)
    a = actions.add_parser("activate", help="activate a phase (refused while unmet)")
    redis_options(a)
    writes(a)
    a.add_argument("phase", metavar="NAME")
    a.add_argument("--force", action="store_true", help="activate although requirements fail")
    a.add_argument("--reason", help="why (required with --force; logged)")
    a.add_argument("--by", default=os.environ.get("USER") or getpass.getuser(), help="who")
    a.set_defaults(handler=cmd_phase_activate)
