"""The SDK from the shell: ``submit`` an intent (and wait for its decision), and the
portfolio events ``deposit``, ``fill`` and ``mark``, validated with the gate's models
(exit 2 naming the field)."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from redis.exceptions import NoPermissionError

from consumers.bus import portfolios
from consumers.bus.signing import KeyConfigError
from consumers.cli import render
from consumers.cli.options import (
    add_redis_options,
    config_of,
    configured_symbol,
    decimal_arg,
    seconds_arg,
    writes,
)
from consumers.errors import UsageError
from consumers.gate_worker.intake import describe
from consumers.sdk.client import GateClient, fill_event_id, token
from schemas.messages import Deposit, Fill, Mark

if TYPE_CHECKING:
    from consumers.cli.options import Sub


def cmd_submit(args: argparse.Namespace) -> int:
    config = config_of(args)
    symbol = args.symbol
    if symbol not in config.assets:  # the gate would reject it unknown_symbol: say so now
        configured_symbol(config, symbol)
    try:  # signs with RISKGATE_AGENT_KEY (or RISKGATE_AGENT_KEY_FILE) when set
        client = GateClient(args.redis_url, args.portfolio)
    except KeyConfigError as exc:
        raise UsageError(str(exc)) from exc
    agent = args.agent or os.environ.get("RISKGATE_AGENT") or client.agent.agent_id or "cli"
    try:
        intent_id = client.submit(
            args.symbol,
            args.side,
            args.quantity,
            price=args.price,
            stop_price=args.stop,
            take_profit=args.take_profit,
            reduce_only=args.reduce_only,
            agent_id=agent,
            intent_id=args.intent_id,
        )
    except ValidationError as exc:
        raise UsageError(f"invalid intent: {describe(exc)}") from exc
    except ValueError as exc:  # a key of another agent: the gate would reject it
        raise UsageError(str(exc)) from exc
    if not args.wait:
        print(intent_id)
        return 0
    decision = client.wait_decision(intent_id, args.timeout)
    if decision is None:
        print(
            f"{intent_id}: no decision within {args.timeout:g}s (is a gate worker running?)",
            file=sys.stderr,
        )
        return 3
    if args.json:
        print(decision.model_dump_json(indent=2))
    else:
        print(render.decision_line(decision, config))
    return 0 if decision.status.value != "rejected" else 1


def cmd_event(args: argparse.Namespace) -> int:
    """deposit and mark, validated with the models the gate uses (exit 2 naming the field)."""
    if args.event == "deposit":
        return _deposit(args)
    client = GateClient(args.redis_url, args.portfolio)
    try:
        prices = {}
        for pair in args.prices:
            symbol, _, price = pair.rpartition("=")
            if not symbol:
                raise UsageError(f"expected SYMBOL=PRICE, got {pair!r}")
            prices[symbol] = decimal_arg(price)
        config = config_of(args)
        for symbol in prices:
            configured_symbol(config, symbol, "mark:")
        Mark.model_validate(
            {"type": "mark", "event_id": "cli", "prices": prices, "at": datetime.now(UTC)}
        )
    except ValidationError as exc:
        raise UsageError(f"invalid {args.event}: {describe(exc)}") from exc
    print(client.mark(prices))
    return 0


def _deposit(args: argparse.Namespace) -> int:
    """``riskgate deposit AMOUNT --reference REF``: the event id is ``deposit:REF``."""
    if not args.reference:
        raise UsageError(
            "deposit needs --reference REF: the transfer's id (the event id is "
            "deposit:REF, so sending it twice deposits once)"
        )
    try:
        token("reference", args.reference)
        Deposit.model_validate({"type": "deposit", "event_id": "cli", "amount": args.amount})
    except ValidationError as exc:
        raise UsageError(f"invalid deposit: {describe(exc)}") from exc
    except ValueError as exc:  # an unusable reference, named
        raise UsageError(f"--reference: {exc}") from exc
    client = GateClient(args.redis_url, args.portfolio)
    print(client.deposit(args.amount, reference=args.reference))
    try:  # a funded portfolio is served by processes started with --all-portfolios
        if portfolios.register(client.redis, client.keys):
            print(f"registered {args.portfolio} in {client.keys.registry}", file=sys.stderr)
    except NoPermissionError:
        print(
            f"note: not allowed to register {args.portfolio} in {client.keys.registry}; "
            "processes started with --all-portfolios will not serve it until someone runs "
            f"riskgate portfolios add {args.portfolio}",
            file=sys.stderr,
        )
    return 0


def cmd_fill(args: argparse.Namespace) -> int:
    """An executor's manual fill, validated with the gate's model (exit 2 naming the field).

    The gate still judges it: an unconfigured symbol, a price outside the class's
    fill band or a fill dated before the position's last one is refused (a dead letter);
    a fill for no known approval is applied and halts trading (docs/PROTOCOL.md)."""
    if not args.fill_id and not args.event_id:
        raise UsageError(
            "fill needs --fill-id ID: the venue's id of this execution (the event id is "
            "fill:INTENT_ID:ID, so reporting it twice applies it once)"
        )
    payload: dict[str, Any] = {
        "type": "fill",
        "event_id": args.event_id or "cli",
        "intent_id": args.intent_id,
        "symbol": args.symbol,
        "side": args.side,
        "quantity": args.quantity,
        "price": args.price,
    }
    if args.fee is not None:
        payload["fee"] = args.fee
    if args.at is not None:
        payload["at"] = args.at
    try:
        f = Fill.model_validate(payload)
    except ValidationError as exc:
        raise UsageError(f"invalid fill: {describe(exc)}") from exc
    configured_symbol(config_of(args), f.symbol, "symbol:")
    try:
        event_id = args.event_id or fill_event_id(f.intent_id, args.fill_id)
    except ValueError as exc:  # an unusable --fill-id, named
        raise UsageError(f"--fill-id: {exc}") from exc
    client = GateClient(args.redis_url, args.portfolio)
    print(
        client.fill(
            f.intent_id,
            f.symbol,
            f.side.value,
            f.quantity,
            f.price,
            event_id=event_id,
            at=f.at,
            fee=f.fee,
        )
    )
    return 0


def register(sub: Sub) -> None:
    p = sub.add_parser("submit", help="publish a trade intent (and wait for its decision)")
    add_redis_options(p)
    writes(p)
    p.add_argument("symbol")
    p.add_argument("side", choices=("buy", "sell"))
    p.add_argument("quantity", type=decimal_arg)
    p.add_argument("--price", type=decimal_arg, required=True)
    p.add_argument("--stop", type=decimal_arg)
    p.add_argument("--take-profit", type=decimal_arg)
    p.add_argument("--reduce-only", action="store_true")
    p.add_argument(
        "--agent", help="agent id (default: $RISKGATE_AGENT, else the key's agent, else cli)"
    )
    p.add_argument("--intent-id")
    p.add_argument(
        "--wait",
        action="store_true",
        help="print the decision in one line (exit 1 if rejected, 3 if none in time)",
    )
    p.add_argument(
        "--timeout",
        type=seconds_arg(),
        default=10.0,
        metavar="SECONDS",
        help="how long --wait waits (default 10)",
    )
    p.add_argument("--json", action="store_true", help="with --wait: the whole decision as JSON")
    p.set_defaults(handler=cmd_submit)

    p = sub.add_parser(
        "deposit", help="publish a deposit (negative: withdrawal), an operator event"
    )
    add_redis_options(p)
    writes(p)
    p.add_argument("amount", type=decimal_arg)
    p.add_argument(
        "--reference",
        metavar="REF",
        help="required: the transfer's id; event id deposit:REF, so a re-send deposits once",
    )
    p.set_defaults(handler=cmd_event, event="deposit")
    p = sub.add_parser("fill", help="publish an executor's fill (a manual fill)")
    add_redis_options(p)
    writes(p)
    p.add_argument("intent_id", help="the approved intent it fills")
    p.add_argument("symbol")
    p.add_argument("side", help="buy | sell")
    p.add_argument("quantity", type=decimal_arg)
    p.add_argument("price", type=decimal_arg)
    p.add_argument("--fee", type=decimal_arg, help="in the symbol's quote currency")
    p.add_argument("--at", help="ISO-8601 time of the fill (default: now)")
    p.add_argument(
        "--fill-id",
        metavar="ID",
        help="required: the venue's execution id; event id fill:INTENT_ID:ID, applied once",
    )
    p.add_argument("--event-id", help="an explicit event id instead (then --fill-id is not needed)")
    p.set_defaults(handler=cmd_fill)
    p = sub.add_parser("mark", help="publish a mark-to-market event")
    add_redis_options(p)
    writes(p)
    p.add_argument("prices", nargs="+", metavar="SYMBOL=PRICE")
    p.set_defaults(handler=cmd_event, event="mark")
