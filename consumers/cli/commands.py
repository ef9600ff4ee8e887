"""CLI commands that talk to Redis: the gate worker, operator controls, the SDK's submit."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from pydantic import ValidationError

from consumers.bench.run import Bench, Plan, table, write_json
from consumers.bus.keys import Keys
from consumers.bus.runtime import (
    Shutdown,
    configure_logging,
    connect,
    default_consumer_name,
    redis_url,
)
from consumers.bus.signing import KeyConfigError, order_signer
from consumers.errors import UsageError
from consumers.gate_worker.intake import describe
from consumers.gate_worker.worker import GateSettings, GateWorker, SettingsError
from consumers.sdk.client import GateClient, fill_event_id, resume_reference, token
from consumers.state import control
from consumers.state.outbox import DurabilityError
from gate.assets import AssetManager
from schemas.config import AssetsConfig
from schemas.messages import Deposit, Fill, Mark

if TYPE_CHECKING:  # subscriptable for the type checker only
    Sub = argparse._SubParsersAction[argparse.ArgumentParser]


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def _env_text(name: str, default: str) -> str:
    return os.environ.get(name) or default


def add_redis_options(p: argparse.ArgumentParser) -> None:
    """--portfolio and --redis-url, for every command that talks to Redis."""
    p.add_argument(
        "--portfolio",
        default=os.environ.get("RISKGATE_PORTFOLIO", "main"),
        help="portfolio name (default: $RISKGATE_PORTFOLIO or main)",
    )
    p.add_argument(
        "--redis-url",
        default=None,
        help="default: $REDIS_URL, else the data directory's embedded Redis",
    )


def _config(args: argparse.Namespace) -> AssetsConfig:
    return AssetManager(args.config).config


def _keys(args: argparse.Namespace) -> Keys:
    return Keys.from_env(args.portfolio)


def _decimal(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value.is_finite():
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


# --- gate ------------------------------------------------------------------------------


def cmd_gate(args: argparse.Namespace) -> int:
    config = _config(args)
    settings = GateSettings(
        consumer=args.consumer or default_consumer_name(),
        batch=args.batch,
        block_ms=args.block_ms,
        min_idle_ms=args.min_idle_ms,
        max_deliveries=args.max_deliveries,
        reclaim_every_s=args.reclaim_every,
        marker_ttl_s=_env_whole("RISKGATE_DEDUPE_TTL_S", 7 * 86400),
        retention_s=_env_whole("RISKGATE_RETENTION_S", 7 * 86400),
        log_decisions=os.environ.get("RISKGATE_LOG_DECISIONS", "1") != "0",
        replicas=args.replicas,
        aof=args.aof,
        wait_timeout_ms=args.wait_timeout_ms,
    )
    try:  # before connecting: bad settings are a one-line refusal, not a worker
        settings.validate(config)
    except SettingsError as exc:
        raise UsageError(f"gate settings: {exc}") from exc
    configure_logging()
    redis = connect(args.redis_url, socket_timeout=args.block_ms / 1000 + 10)
    worker = GateWorker(redis, _keys(args), config, settings)
    shutdown = Shutdown().install()
    try:
        worker.run(shutdown)
    except DurabilityError as exc:  # --aof on a server that cannot confirm it
        raise UsageError(str(exc)) from exc
    finally:
        redis.close()
    return 0


def _env_whole(name: str, default: int) -> int:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"{name} is {value!r}: it must be a whole number") from None


# --- operator controls -----------------------------------------------------------------


def cmd_halt(args: argparse.Namespace) -> int:
    redis, keys = connect(args.redis_url), _keys(args)
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
            _config(args),
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
    redis, keys = connect(args.redis_url), _keys(args)
    s = control.status(redis, keys, _config(args))
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
    redis, keys = connect(args.redis_url), _keys(args)
    s = control.status(redis, keys, _config(args))
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
            connect(args.redis_url), _keys(args), _config(args), args.targets, on
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    word = "enabled" if on else "disabled"
    print(f"{args.portfolio}: {word} " + ", ".join(f.split(":", 1)[1] for f in fields))
    return 0


def cmd_flag(args: argparse.Namespace) -> int:
    redis, keys = connect(args.redis_url), _keys(args)
    if args.symbol not in _config(args).assets:
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
    s = control.status(connect(args.redis_url), _keys(args), _config(args))
    if args.json:
        print(json.dumps(s, indent=2))
    else:
        _print_status(s)
    return 0


# --- SDK from the shell ----------------------------------------------------------------


def cmd_submit(args: argparse.Namespace) -> int:
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
            f"{intent_id}: no decision within {args.timeout}s (is a gate worker running?)",
            file=sys.stderr,
        )
        return 3
    print(decision.model_dump_json(indent=2))
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
            prices[symbol] = _decimal(price)
        unknown = sorted(set(prices) - set(_config(args).assets))
        if unknown:
            raise UsageError(
                f"not configured symbols: {', '.join(unknown)} (the gate ignores them)"
            )
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
    if f.symbol not in _config(args).assets:
        raise UsageError(f"symbol: {f.symbol!r} is not configured (the gate would refuse it)")
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


def cmd_bench(args: argparse.Namespace) -> int:
    configure_logging(level="WARNING")
    url = redis_url(args.redis_url)
    bench = Bench(
        connect(url, socket_timeout=60),
        url,
        _config(args),
        Plan.make(args.quick),
        say=lambda msg: print(msg, file=sys.stderr, flush=True),
    )
    result = bench.run()
    print(table(result))
    if args.json:
        write_json(result, Path(args.json))
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


def register(sub: Sub) -> None:
    _register_worker(sub)
    _register_controls(sub)
    _register_sdk(sub)


def _register_worker(sub: Sub) -> None:
    p = sub.add_parser("gate", help="run a gate worker")
    add_redis_options(p)
    p.add_argument("--consumer", help="consumer name (default: host-pid)")
    # string defaults: argparse converts them, so a bad variable is reported like a flag
    p.add_argument("--batch", type=int, default=_env_text("RISKGATE_BATCH", "256"))
    p.add_argument("--block-ms", type=int, default=_env_text("RISKGATE_BLOCK_MS", "1000"))
    p.add_argument(
        "--min-idle-ms",
        type=int,
        default=_env_text("RISKGATE_MIN_IDLE_MS", "10000"),
        help="reclaim entries pending this long on other consumers",
    )
    p.add_argument(
        "--reclaim-every",
        type=float,
        default=_env_text("RISKGATE_RECLAIM_EVERY_S", "2"),
        help="seconds between XAUTOCLAIM sweeps",
    )
    p.add_argument(
        "--max-deliveries",
        type=int,
        default=_env_text("RISKGATE_MAX_DELIVERIES", "5"),
        help="dead-letter an entry delivered more often than this",
    )
    p.add_argument(
        "--replicas",
        type=int,
        default=_env_text("RISKGATE_REPLICAS", "0"),
        help="publish decisions and orders only once this many replicas hold the commit "
        "(WAIT); 0: at once (a failover can lose them: docs/OPERATIONS.md)",
    )
    p.add_argument(
        "--aof",
        action="store_true",
        default=os.environ.get("RISKGATE_AOF", "0") not in ("", "0"),
        help="also wait for the append-only files (WAITAOF, Redis 7.2 or later)",
    )
    p.add_argument(
        "--wait-timeout-ms",
        type=int,
        default=_env_text("RISKGATE_WAIT_TIMEOUT_MS", "500"),
        help="how long one wait for replicas may take; short of them, orders stay held",
    )
    p.set_defaults(handler=cmd_gate)

    p = sub.add_parser("bench", help="measure throughput, latency and scaling")
    p.add_argument("--redis-url", default=None)
    p.add_argument("--quick", action="store_true", help="the short run CI does (< 60 s)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.set_defaults(handler=cmd_bench)


def _register_controls(sub: Sub) -> None:
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


def _register_sdk(sub: Sub) -> None:
    p = sub.add_parser("submit", help="publish a trade intent (and wait for its decision)")
    add_redis_options(p)
    p.add_argument("symbol")
    p.add_argument("side", choices=("buy", "sell"))
    p.add_argument("quantity", type=_decimal)
    p.add_argument("--price", type=_decimal, required=True)
    p.add_argument("--stop", type=_decimal)
    p.add_argument("--take-profit", type=_decimal)
    p.add_argument("--reduce-only", action="store_true")
    p.add_argument(
        "--agent", help="agent id (default: $RISKGATE_AGENT, else the key's agent, else cli)"
    )
    p.add_argument("--intent-id")
    p.add_argument("--wait", action="store_true", help="print the decision (exit 1 if rejected)")
    p.add_argument("--timeout", type=float, default=10.0)
    p.set_defaults(handler=cmd_submit)

    p = sub.add_parser(
        "deposit", help="publish a deposit (negative: withdrawal), an operator event"
    )
    add_redis_options(p)
    p.add_argument("amount", type=_decimal)
    p.add_argument(
        "--reference",
        metavar="REF",
        help="required: the transfer's id; event id deposit:REF, so a re-send deposits once",
    )
    p.set_defaults(handler=cmd_event, event="deposit")
    p = sub.add_parser("fill", help="publish an executor's fill (a manual fill)")
    add_redis_options(p)
    p.add_argument("intent_id", help="the approved intent it fills")
    p.add_argument("symbol")
    p.add_argument("side", help="buy | sell")
    p.add_argument("quantity", type=_decimal)
    p.add_argument("price", type=_decimal)
    p.add_argument("--fee", type=_decimal, help="in the symbol's quote currency")
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
    p.add_argument("prices", nargs="+", metavar="SYMBOL=PRICE")
    p.set_defaults(handler=cmd_event, event="mark")
