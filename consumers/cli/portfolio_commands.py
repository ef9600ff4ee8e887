"""``riskgate portfolios add|remove|list``: the registry of portfolios that processes
started with ``--all-portfolios`` serve (``<prefix>:portfolios``), and who decides each."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from consumers.bus import portfolios as registry
from consumers.bus.keys import Keys, registry_key
from consumers.bus.lease import holder
from consumers.bus.runtime import connect
from consumers.cli.options import prefix, writes
from consumers.cli.owner_text import owner_json
from consumers.errors import UsageError

if TYPE_CHECKING:
    from consumers.cli.options import Sub


def cmd_portfolios(args: argparse.Namespace) -> int:
    key_prefix = prefix()
    if args.action in ("add", "remove") and not args.names:
        raise UsageError(f"portfolios {args.action} needs at least one NAME")
    if args.action == "list" and args.names:
        raise UsageError("portfolios list takes no NAME")
    redis = connect(args.redis_url)
    try:
        if args.action == "add":
            try:
                added = registry.add(redis, key_prefix, args.names)
            except ValueError as exc:
                raise UsageError(str(exc)) from None
            there = len(set(args.names)) - added
            print(f"{registry_key(key_prefix)}: {added} added, {there} already there")
            return 0
        if args.action == "remove":
            removed = registry.remove(redis, key_prefix, args.names)
            print(f"{registry_key(key_prefix)}: {removed} removed")
            return 0
        names, unreadable = registry.registered(redis, key_prefix)
        owners = {n: owner_json(holder(redis, Keys(n, key_prefix))) for n in names}
    finally:
        redis.close()
    if args.json:
        print(json.dumps({"portfolios": owners, "not_portfolio_names": unreadable}, indent=2))
        return 0
    if not names:
        print(f"{registry_key(key_prefix)}: no portfolio registered (riskgate portfolios add NAME)")
    for name, owner in owners.items():
        who = f"{owner['owner']} since {owner['since']}" if owner else "no owner"
        print(f"{name:24} {who}")
    for bad in unreadable:
        print(f"{bad!r}: not a portfolio name, ignored (riskgate portfolios remove it)")
    return 0


def register(sub: Sub) -> None:
    p = sub.add_parser(
        "portfolios", help="the portfolio registry (--all-portfolios) and who decides each"
    )
    p.add_argument("action", choices=("list", "add", "remove"), help="list, add or remove")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("--redis-url", default=None, help="default: $REDIS_URL, else the embedded")
    p.add_argument("--json", action="store_true")
    writes(p, when=lambda a: a.action != "list")
    p.set_defaults(handler=cmd_portfolios)
