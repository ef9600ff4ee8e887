"""Operator controls: ``halt``, ``resume``, ``release``, ``enable``/``disable``,
``flag`` and ``status`` (with how status is printed for people)."""

from __future__ import annotations

import argparse
import json
import os
from datetime import date
from typing import TYPE_CHECKING, Any

import structlog

from consumers.bus.lease import holder
from consumers.bus.runtime import connect
from consumers.bus.signing import order_signer
from consumers.cli.options import add_redis_options, config_of, keys_of
from consumers.cli.owner_text import owner_json, owner_text
from consumers.errors import UsageError
from consumers.sdk.client import GateClient, resume_reference
from consumers.state import control

if TYPE_CHECKING:
    from consumers.cli.options import Sub


def cmd_halt(args: argparse.Namespace) -> int:
    redis, keys = connect(args.redis_url), keys_of(args)
    version = control.halt(redis, keys)
    print(f"{args.portfolio}: trading halted (reduce-only intents still pass); version {version}")
    log = structlog.get_logger("riskgate.control")
    log.warning("halted", portfolio=args.portfolio, reason=args.reason)
    if args.cancel_open:
        signer = order_signer(keys)  # executors verify cancel requests like orders
        if not signer.enabled:
            print(
                "note: RISKGATE_ORDER_KEYS is not set here, so the cancel requests are "
                "unsigned; executors that verify orders will refuse them"
            )
        asked = control.cancel_open(
            redis,
            keys,
            config_of(args),
            signer,
            operator=args.operator,
            reason=args.reason or "kill switch",
        )
        print(
            f"{args.portfolio}: cancel requested for {len(asked)} open orders; their "
            "reservations are released as executors confirm (riskgate status shows what "
            "is left)"
        )
        log.warning("cancel requested", portfolio=args.portfolio, orders=len(asked))
    return 0


def cmd_release(args: argparse.Namespace) -> int:
    """An operator releases one reservation: its order is known to be dead."""
    redis, keys = connect(args.redis_url), keys_of(args)
    s = control.status(redis, keys, config_of(args))
    r = s["reservations"].get(args.intent_id)
    if r is None:
        raise UsageError(f"{args.intent_id}: no open reservation in portfolio {args.portfolio}")
    event_id = GateClient(redis=redis, portfolio=args.portfolio).release(
        args.intent_id, args.operator, args.reason
    )
    print(
        f"{args.portfolio}: releasing {args.intent_id} ({r['side']} {r['quantity']} "
        f"{r['symbol']}, good till {r['good_till']}); event {event_id} (applied by the gate)"
    )
    structlog.get_logger("riskgate.control").warning(
        "released",
        portfolio=args.portfolio,
        intent_id=args.intent_id,
        operator=args.operator,
        reason=args.reason,
    )
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    """Kill switch off, and the latched stops cleared by a signed operator event."""
    redis, keys = connect(args.redis_url), keys_of(args)
    s = control.status(redis, keys, config_of(args))
    latched = [
        f"{name} latched {latch['latched_at']} at {latch['at_value']}"
        for name, latch in (
            ("emergency stop", s["emergency_stop"]),
            ("daily loss limit", s["daily_loss_stop"]),
        )
        if latch is not None
    ]
    halt = s["halted_by"]
    if halt is not None:
        latched.append(f"halt by event {halt['event_id']} at {halt['at']} ({halt['reason']})")
    if latched and not args.reason:
        raise UsageError(f"{'; '.join(latched)}: clearing a latched stop needs --reason")
    log = structlog.get_logger("riskgate.control")
    if s["halted"]:
        version = control.resume(redis, keys)
        print(f"{args.portfolio}: kill switch off; version {version}")
    if latched:
        client = GateClient(redis=redis, portfolio=args.portfolio)
        # one resume per set of latches: run twice, it is applied once
        event_id = client.resume(args.operator, args.reason, reference=resume_reference(latched))
        print(
            f"{args.portfolio}: clearing {'; '.join(latched)}; the drawdown's reference peak "
            f"restarts from nav {s['nav']} (was {s['peak_nav']}), equity {s['equity']}; "
            f"event {event_id} (applied by the gate)"
        )
    if not s["halted"] and not latched:
        print(f"{args.portfolio}: nothing to resume (not halted, no stop latched)")
    log.warning(
        "resumed",
        portfolio=args.portfolio,
        operator=args.operator,
        reason=args.reason,
        halted=s["halted"],
        latched=latched,
    )
    return 0


def cmd_enable(args: argparse.Namespace, on: bool = True) -> int:
    try:
        fields = control.enable(
            connect(args.redis_url), keys_of(args), config_of(args), args.targets, on
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    word = "enabled" if on else "disabled"
    print(f"{args.portfolio}: {word} " + ", ".join(f.split(":", 1)[1] for f in fields))
    return 0


def cmd_flag(args: argparse.Namespace) -> int:
    redis, keys = connect(args.redis_url), keys_of(args)
    if args.symbol not in config_of(args).assets:
        raise UsageError(f"{args.symbol!r} is not a configured symbol")
    value = None if args.value.lower() == "none" else args.value
    try:
        if args.flag == "earnings":
            control.set_earnings(
                redis, keys, args.symbol, None if value is None else date.fromisoformat(value)
            )
        else:
            control.set_regime(redis, keys, args.symbol, value)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    print(f"{args.portfolio}: {args.flag} {args.symbol} = {value or '(cleared)'}")
    return 0


def _print_status(s: dict[str, Any]) -> None:
    print(
        f"portfolio {s['portfolio']}  version {s['version']}  config {s['config_hash']}"
        f"  halted {'YES' if s['halted'] else 'no'}"
    )
    print(owner_text(s["gate_owner"]))
    print(
        f"equity {s['equity']}  cash {s['cash']}  peak {s['peak_equity']}"
        f"  drawdown {s['drawdown']}  daily pnl {s['daily_pnl']}"
    )
    for name, key in (("EMERGENCY STOP", "emergency_stop"), ("DAILY LOSS STOP", "daily_loss_stop")):
        latch = s[key]
        if latch is not None:
            print(
                f"{name} latched {latch['latched_at']} at {latch['at_value']}: reduce-only "
                "until riskgate resume --reason ..."
            )
    if s.get("halted_by") is not None:
        h = s["halted_by"]
        print(
            f"HALTED by event {h['event_id']} at {h['at']}: {h['reason']}; reduce-only "
            "until riskgate resume --reason ..."
        )
    print(f"heat {s['heat']} (limit {s['heat_limit']})  class shares {s['class_shares']}")
    print(f"active phases {', '.join(s['active_phases'])}")
    print(f"positions ({len(s['positions'])}):")
    for sym, p in s["positions"].items():
        print(f"  {sym:12} {p['quantity']:>16} @ {p['avg_price']}  mark {p['mark']}")
    print(f"reservations ({len(s['reservations'])}):")
    for iid, r in list(s["reservations"].items())[:20]:
        late = "  OVERDUE" if r["overdue"] else ""
        print(
            f"  {iid:40} {r['side']:4} {r['quantity']:>14} {r['symbol']:10} "
            f"good till {r['good_till']}{late}"
        )
    late = s["overdue_reservations"]
    if late["count"]:
        print(
            f"OVERDUE: {late['count']} reservations past their order's good_till (oldest "
            f"{late['oldest_good_till']}) still count: no executor has confirmed how the "
            "order ended (fill, cancel or expired); riskgate release INTENT_ID --reason ... "
            "once an order is known to be dead"
        )
    held = s["held"]
    if held["entries"]:
        print(
            f"HELD: {held['entries']} decisions and orders (oldest {held['oldest_age_seconds']} s) "
            "wait for replicas to confirm their commit (riskgate gate --replicas); their "
            "reservations count. Check the replicas (INFO replication)"
        )
    print("streams:")
    for name, info in s["streams"].items():
        groups = "  ".join(
            f"{g['group']}: pending {g['pending']} lag {g['lag']}" for g in info["groups"]
        )
        print(f"  {name:11} length {info['length']:>8}  {groups}")


def cmd_status(args: argparse.Namespace) -> int:
    redis, keys = connect(args.redis_url), keys_of(args)
    s = control.status(redis, keys, config_of(args))
    s["gate_owner"] = owner_json(holder(redis, keys))
    if args.json:
        print(json.dumps(s, indent=2))
    else:
        _print_status(s)
    return 0


def register(sub: Sub) -> None:
    operator = os.environ.get("RISKGATE_OPERATOR") or os.environ.get("USER") or "operator"
    p = sub.add_parser("halt", help="kill switch on: only reduce-only intents pass")
    add_redis_options(p)
    p.add_argument("--reason", default="", help="recorded in the log")
    p.add_argument(
        "--cancel-open",
        action="store_true",
        help="also ask executors to cancel every open order (action: cancel)",
    )
    p.add_argument("--operator", default=operator, help="who (default: $RISKGATE_OPERATOR)")
    p.set_defaults(handler=cmd_halt)
    p = sub.add_parser("release", help="release the reservation of an order known to be dead")
    add_redis_options(p)
    p.add_argument("intent_id")
    p.add_argument("--reason", required=True, help="why the order is known to be dead")
    p.add_argument("--operator", default=operator, help="who (default: $RISKGATE_OPERATOR)")
    p.set_defaults(handler=cmd_release)
    p = sub.add_parser(
        "resume",
        help="kill switch off, and clear a latched emergency stop or daily-loss stop",
    )
    add_redis_options(p)
    p.add_argument("--reason", default="", help="why (required to clear a latched stop)")
    p.add_argument(
        "--operator",
        default=os.environ.get("RISKGATE_OPERATOR") or os.environ.get("USER") or "operator",
        help="who (default: $RISKGATE_OPERATOR, else $USER)",
    )
    p.set_defaults(handler=cmd_resume)

    for name, on in (("enable", True), ("disable", False)):
        p = sub.add_parser(name, help=f"{name} symbols, asset classes or phases, live")
        add_redis_options(p)
        p.add_argument("targets", nargs="+", metavar="SYMBOL|CLASS|PHASE")
        p.set_defaults(handler=lambda a, on=on: cmd_enable(a, on))

    p = sub.add_parser("flag", help="set an earnings date or market regime for a symbol")
    add_redis_options(p)
    p.add_argument("flag", choices=("earnings", "regime"))
    p.add_argument("symbol")
    p.add_argument("value", help="YYYY-MM-DD | trending | sideways | none")
    p.set_defaults(handler=cmd_flag)

    p = sub.add_parser("status", help="portfolio, limits, streams and consumer groups")
    add_redis_options(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_status)
