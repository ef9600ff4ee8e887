"""How Redis-side reports read for people: money to its precision (account-currency
amounts to the cent, quantities to the asset's lot, prices to its pip or cent), a
decision in one line, the portfolio status. ``--json`` prints the exact values instead.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from consumers.cli.owner_text import owner_text
from gate.money import money_text
from schemas.config import AssetConfig, AssetsConfig
from schemas.messages import Decision


def _dec(value: object) -> Decimal | None:
    if value is None:
        return None
    try:
        d = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


def _step_places(step: Decimal) -> int:
    exponent = step.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def money(value: object, currency: str = "") -> str:
    """An account-currency amount: 2 decimals, thousands separated (``100,000.00 USD``)."""
    d = _dec(value)
    return str(value) if d is None else money_text(d, currency)


def quantity(value: object, asset: AssetConfig | None) -> str:
    """Asset units to the lot size's decimals (a quantity is never rounded up)."""
    d = _dec(value)
    if d is None:
        return str(value)
    if asset is None:
        return format(d.normalize(), "f") if d else "0"
    step = Decimal(1).scaleb(-_step_places(asset.risk.lot_size))
    return f"{d.quantize(step, rounding=ROUND_DOWN):f}"


def price(value: object, asset: AssetConfig | None) -> str:
    """A price in the quote currency: to the pip where the asset has one, else to the
    cent (more places only for prices under 1, so a cheap one never shows as 0.00)."""
    d = _dec(value)
    if d is None:
        return str(value)
    places = 2
    if asset is not None and asset.trading.pip_size is not None:
        places = _step_places(asset.trading.pip_size)
    elif 0 < abs(d) < 1:
        places = max(2, 3 - d.adjusted())
    return f"{d.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN):,.{places}f}"


def percent(fraction: object) -> str:
    d = _dec(fraction)
    return str(fraction) if d is None else f"{d * 100:.2f}%"


def decision_line(d: Decision, config: AssetsConfig) -> str:
    """One line: ``<intent>: approved buy 0.01000 BTC/USDT @ 100,000.00 stop 94,000.00``;
    resized shows what was asked, rejected and resized the reasons (code: message)."""
    asset = config.assets.get(d.symbol)
    side = d.side.value if d.side is not None else "?"
    qty = quantity(d.approved_quantity, asset)
    if d.status.value != "approved":
        qty += f" of {quantity(d.requested_quantity, asset)}"
    parts = [f"{d.intent_id}: {d.status.value} {side} {qty} {d.symbol}"]
    if d.price is not None:
        parts.append(f"@ {price(d.price, asset)}")
    if d.stop_price is not None and d.status.value != "rejected":
        parts.append(f"stop {price(d.stop_price, asset)}")
    line = " ".join(parts)
    if d.reasons:
        line += " - " + "; ".join(f"{r.code.value}: {r.message}" for r in d.reasons)
    return line


def status_summary(s: dict[str, Any], currency: str) -> str:
    """The status report's first line: the portfolio at a glance."""
    flags = [
        flag
        for flag, on in (
            ("HALTED", s["halted"] or s.get("halted_by") is not None),
            ("EMERGENCY STOP", s["emergency_stop"] is not None),
            ("DAILY LOSS STOP", s["daily_loss_stop"] is not None),
        )
        if on
    ]
    return (
        f"portfolio {s['portfolio']}: equity {money(s['equity'], currency)}, "
        f"{len(s['positions'])} positions, {len(s['reservations'])} open orders, heat "
        f"{percent(s['heat'])} of {percent(s['heat_limit'])}, drawdown {percent(s['drawdown'])}"
        f", {', '.join(flags) if flags else 'trading'}"
    )


def status_lines(s: dict[str, Any], config: AssetsConfig) -> list[str]:
    """The whole status report for people (``status --json`` has every exact value)."""
    ccy = config.risk_management.account_currency
    out = [
        status_summary(s, ccy),
        f"version {s['version']}  config {s['config_hash']}  active phases "
        f"{', '.join(s['active_phases'])}",
        *([owner_text(s["gate_owner"])] if "gate_owner" in s else []),
        f"equity {money(s['equity'], ccy)}  cash {money(s['cash'], ccy)}  peak "
        f"{money(s['peak_equity'], ccy)}  daily pnl {money(s['daily_pnl'], ccy)}  fees "
        f"{money(s['fees'], ccy)}",
    ]
    for name, key in (("EMERGENCY STOP", "emergency_stop"), ("DAILY LOSS STOP", "daily_loss_stop")):
        latch = s[key]
        if latch is not None:
            out.append(
                f"{name} latched {latch['latched_at']} at {latch['at_value']}: reduce-only "
                "until riskgate resume --reason ..."
            )
    if s.get("halted_by") is not None:
        h = s["halted_by"]
        out.append(
            f"HALTED by event {h['event_id']} at {h['at']}: {h['reason']}; reduce-only "
            "until riskgate resume --reason ..."
        )
    shares = ", ".join(f"{c} {percent(v)}" for c, v in s["class_shares"].items()) or "none"
    out.append(
        f"heat {percent(s['heat'])} (limit {percent(s['heat_limit'])})  class shares {shares}"
    )
    out.append(f"positions ({len(s['positions'])}):")
    for sym, p in s["positions"].items():
        a = config.assets.get(sym)
        out.append(
            f"  {sym:12} {quantity(p['quantity'], a):>16} @ {price(p['avg_price'], a)}"
            f"  mark {price(p['mark'], a)}"
        )
    out.append(f"reservations ({len(s['reservations'])}):")
    for iid, r in list(s["reservations"].items())[:20]:
        late = "  OVERDUE" if r["overdue"] else ""
        q = quantity(r["quantity"], config.assets.get(r["symbol"]))
        out.append(
            f"  {iid:40} {r['side']:4} {q:>14} {r['symbol']:10} good till {r['good_till']}{late}"
        )
    out.extend(_warnings(s))
    out.append("streams:")
    for name, info in s["streams"].items():
        groups = "  ".join(
            f"{g['group']}: pending {g['pending']} lag {g['lag']}" for g in info["groups"]
        )
        out.append(f"  {name:11} length {info['length']:>8}  {groups}".rstrip())
    return out


def _warnings(s: dict[str, Any]) -> list[str]:
    out = []
    late = s["overdue_reservations"]
    if late["count"]:
        out.append(
            f"OVERDUE: {late['count']} reservations past their order's good_till (oldest "
            f"{late['oldest_good_till']}) still count: no executor has confirmed how the "
            "order ended (fill, cancel or expired); riskgate release INTENT_ID --reason ... "
            "once an order is known to be dead"
        )
    held = s["held"]
    if held["entries"]:
        out.append(
            f"HELD: {held['entries']} decisions and orders (oldest {held['oldest_age_seconds']} s) "
            "wait for replicas to confirm their commit (riskgate gate --replicas); their "
            "reservations count. Check the replicas (INFO replication)"
        )
    return out
