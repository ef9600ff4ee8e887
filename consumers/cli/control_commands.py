"""Operator controls: ``halt``, ``resume``, ``release``, ``enable``/``disable``,
``flag`` and ``status`` (with how status is printed for people)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING

import structlog

from consumers.bus.lease import holder
from consumers.bus.runtime import connect
from consumers.bus.signing import order_signer
from consumers.cli import render
from consumers.cli.options import (
    add_redis_options,
    config_of,
    configured_symbol,
    control_target,
    date_arg,
    keys_of,
    writes,
)
from consumers.cli.owner_text import owner_json
from consumers.cli.parser import did_you_mean
from consumers.cli.which_server import describe_redis
from consumers.errors import UsageError
from consumers.sdk.client import GateClient, resume_reference
from consumers.state import control

if TYPE_CHECKING:
    from consumers.cli.options import Sub


def cmd_halt(args: argparse.Namespace) -> int:
    redis, keys = connect(args.redis_url), keys_of(args)
    version = control.halt(redis, keys)
    why = f" ({args.reason})" if args.reason else ""
    print(
        f"{args.portfolio}: trading halted by {args.operator}{why}; reduce-only intents still "
        f"pass; version {version}"
    )
    log = structlog.get_logger("riskgate.control")
    log.warning("halted", portfolio=args.portfolio, operator=args.operator, reason=args.reason)
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
    redis, keys, config = connect(args.redis_url), keys_of(args), config_of(args)
    s = control.status(redis, keys, config)
    r = s["reservations"].get(args.intent_id)
    if r is None:
        raise UsageError(f"{args.intent_id}: no open reservation in portfolio {args.portfolio}")
    event_id = GateClient(redis=redis, portfolio=args.portfolio).release(
        args.intent_id, args.operator, args.reason
    )
    print(
        f"{args.portfolio}: releasing {args.intent_id} ({r['side']} "
        f"{render.quantity(r['quantity'], config.assets.get(r['symbol']))} "
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
            f"restarts from nav {s['nav']} (was {s['peak_nav']}), equity "
            f"{render.money(s['equity'], config_of(args).risk_management.account_currency)}; "
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
    config = config_of(args)
    targets = [control_target(config, t) for t in args.targets]  # before connecting
    try:
        fields = control.enable(connect(args.redis_url), keys_of(args), config, targets, on)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    word = "enabled" if on else "disabled"
    print(f"{args.portfolio}: {word} " + ", ".join(f.split(":", 1)[1] for f in fields))
    return 0


def cmd_flag(args: argparse.Namespace) -> int:
    symbol = configured_symbol(config_of(args), args.symbol)
    value = None if args.value.lower() == "none" else args.value
    when = None
    if args.flag == "earnings" and value is not None:
        try:
            when = date_arg(value)
        except argparse.ArgumentTypeError as exc:
            raise UsageError(f"flag earnings {symbol}: {exc}, or none to clear") from None
    if args.flag == "regime" and value is not None and value not in control.REGIMES:
        guess = did_you_mean(value, control.REGIMES)
        raise UsageError(
            f"flag regime {symbol}: {value!r} is not a regime (expected "
            f"{' | '.join(control.REGIMES)} | none)" + (f"; did you mean {guess}?" if guess else "")
        )
    redis, keys = connect(args.redis_url), keys_of(args)
    if args.flag == "earnings":
        control.set_earnings(redis, keys, symbol, when)
    else:
        control.set_regime(redis, keys, symbol, value)
    print(f"{args.portfolio}: {args.flag} {symbol} = {value or '(cleared)'}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """The portfolio's status; exit 1 when it has never seen an event (no state, nothing
    on any stream): most likely the wrong server, prefix or portfolio name."""
    config = config_of(args)
    redis, keys = connect(args.redis_url), keys_of(args)
    s = control.status(redis, keys, config)
    s["gate_owner"] = owner_json(holder(redis, keys))
    if args.json:
        print(json.dumps(s, indent=2))
    elif not s["empty"]:
        print("\n".join(render.status_lines(s, config)))
    if s["empty"]:
        print(
            f"riskgate: portfolio {args.portfolio} has never seen an event on "
            f"{describe_redis(args)}: no state, nothing on any stream (is this the server "
            "and portfolio you mean? REDIS_URL, --portfolio, RISKGATE_PREFIX)",
            file=sys.stderr,
        )
        return 1
    return 0


def register(sub: Sub) -> None:
    operator = os.environ.get("RISKGATE_OPERATOR") or os.environ.get("USER") or "operator"
    p = sub.add_parser("halt", help="kill switch on: only reduce-only intents pass")
    add_redis_options(p)
    writes(p)
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
    writes(p)
    p.add_argument("intent_id")
    p.add_argument("--reason", required=True, help="why the order is known to be dead")
    p.add_argument("--operator", default=operator, help="who (default: $RISKGATE_OPERATOR)")
    p.set_defaults(handler=cmd_release)
    p = sub.add_parser(
        "resume",
        help="kill switch off, and clear a latched emergency stop or daily-loss stop",
    )
    add_redis_options(p)
    writes(p)
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
        writes(p)
        p.add_argument("targets", nargs="+", metavar="SYMBOL|CLASS|PHASE")
        p.set_defaults(handler=lambda a, on=on: cmd_enable(a, on))

    p = sub.add_parser("flag", help="set an earnings date or market regime for a symbol")
    add_redis_options(p)
    writes(p)
    p.add_argument("flag", choices=("earnings", "regime"))
    p.add_argument("symbol")
    p.add_argument("value", help="YYYY-MM-DD | trending | sideways | none")
    p.set_defaults(handler=cmd_flag)

    p = sub.add_parser("status", help="portfolio, limits, streams and consumer groups")
    add_redis_options(p)
    p.add_argument("--json", action="store_true", help="every exact value, as JSON")
    p.set_defaults(handler=cmd_status)
