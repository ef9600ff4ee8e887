"""Operator controls and the status report.

Every control change bumps the portfolio version in the same transaction, so a batch
decided before the change conflicts at commit and is decided again under it: a halt
or an enable takes effect from the very next commit, on every worker.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any

from redis import Redis
from redis.exceptions import ResponseError

from consumers.bus import keys as k
from consumers.bus.keys import Keys
from consumers.bus.nodes import server_time
from consumers.bus.signing import Signer, signed_order_json
from consumers.bus.streams import group_lag
from consumers.state.changelog import note_bump
from consumers.state.codec import encode_regime
from consumers.state.outbox import held as outbox_held
from consumers.state.store import Store
from gate.exposure import Exposure
from gate.ledger import overdue
from gate.money import plain, ratio, show
from gate.phases import active_phases
from gate.portfolio import Halt, Latch, Vitals
from schemas.config import AssetClass, AssetsConfig

REGIMES = ("trending", "sideways")
OVERDUE_SHOWN = 50  # overdue intent ids listed by status (all are counted)


def set_control(
    redis: Redis, keys: Keys, fields: Mapping[str, str], delete: Iterable[str] = ()
) -> int:
    """Write control fields and bump the version atomically; returns the new version."""
    pipe = redis.pipeline(transaction=True)
    if fields:
        mapping: dict[Any, Any] = dict(fields)
        pipe.hset(keys.control, mapping=mapping)
    gone = list(delete)
    if gone:
        pipe.hdel(keys.control, *gone)
    pipe.hincrby(keys.state, k.F_VERSION, 1)
    note_bump(pipe, keys)
    return int(pipe.execute()[-2])


def halt(redis: Redis, keys: Keys) -> int:
    return set_control(redis, keys, {k.F_HALTED: "1"})


def resume(redis: Redis, keys: Keys) -> int:
    return set_control(redis, keys, {k.F_HALTED: "0"})


def resolve_targets(config: AssetsConfig, targets: Iterable[str]) -> dict[str, str]:
    """Control fields for symbols, classes and phase names (a phase: its classes and assets)."""
    fields: dict[str, str] = {}
    for target in targets:
        if target in config.assets:
            fields[k.P_ASSET_ENABLED + target] = ""
        elif target in {c.value for c in AssetClass}:
            fields[k.P_CLASS_ENABLED + target] = ""
        elif target in config.phases:
            phase = config.phases[target]
            fields |= {k.P_ASSET_ENABLED + s: "" for s in phase.assets}
            fields |= {k.P_CLASS_ENABLED + c.value: "" for c in phase.classes}
        else:
            raise ValueError(
                f"{target!r} is not a configured symbol, asset class or phase "
                f"(classes: {', '.join(c.value for c in AssetClass)})"
            )
    return fields


def enable(
    redis: Redis, keys: Keys, config: AssetsConfig, targets: Iterable[str], on: bool
) -> list[str]:
    fields = resolve_targets(config, targets)
    set_control(redis, keys, dict.fromkeys(fields, "1" if on else "0"))
    return sorted(fields)


def set_earnings(redis: Redis, keys: Keys, symbol: str, when: date | None) -> None:
    field = k.P_EARNINGS + symbol
    if when is None:
        set_control(redis, keys, {}, [field])
    else:
        set_control(redis, keys, {field: when.isoformat()})


def redis_now(redis: Redis, keys: Keys | None = None) -> datetime:
    """Redis's clock (``TIME``): the one the gate decides by. With ``keys``, that of
    the node holding the portfolio (on a cluster; the same clock elsewhere)."""
    seconds, micros = server_time(redis, keys.state) if keys is not None else redis.time()
    return datetime.fromtimestamp(int(seconds), UTC).replace(microsecond=int(micros))


def set_regime(
    redis: Redis, keys: Keys, symbol: str, regime: str | None, as_of: datetime | None = None
) -> None:
    """Set a regime assessed ``as_of`` (default: now on Redis's clock); it expires after
    ``regime_max_age_hours``."""
    field = k.P_REGIME + symbol
    if regime is None:
        set_control(redis, keys, {}, [field])
    elif regime in REGIMES:
        set_control(redis, keys, {field: encode_regime(regime, as_of or redis_now(redis, keys))})
    else:
        raise ValueError(f"regime must be one of {', '.join(REGIMES)} or none")


def _group_rows(redis: Redis, stream: str) -> list[dict[str, Any]]:
    try:
        groups = redis.xinfo_groups(stream)
    except ResponseError:
        return []
    return [
        {
            "group": g["name"].decode() if isinstance(g["name"], bytes) else g["name"],
            "pending": g["pending"],
            "lag": group_lag(redis, stream, g),
            "consumers": g["consumers"],
        }
        for g in groups
    ]


def _latch(latch: Latch | None) -> dict[str, str | None] | None:
    if latch is None:
        return None
    return {"latched_at": latch.at.isoformat(), "at_value": show(latch.value)}


def cancel_open(
    redis: Redis, keys: Keys, base: AssetsConfig, signer: Signer, *, operator: str, reason: str
) -> list[str]:
    """The kill switch's second half (MiFID II RTS 6 art. 12): a signed ``action:
    cancel`` request on the orders stream for every open order, i.e. every reservation
    in the state (halt first, so no new one appears). Reservations are released as
    executors confirm (``cancel``, or ``fill`` for what filled first). Returns the
    intent ids asked for."""
    snap = Store(redis, keys, base).load().snapshot
    at = redis_now(redis, keys).isoformat()
    pipe = redis.pipeline(transaction=False)
    for r in snap.reservations.values():
        request = {
            "action": "cancel",
            "intent_id": r.intent_id,
            "symbol": r.symbol,
            "side": r.side.value,
            "reason": reason,
            "operator": operator,
            "requested_at": at,
        }
        pipe.xadd(keys.orders, {k.DATA: signed_order_json(signer, request)})
    pipe.execute()
    return list(snap.reservations)


def _halted_by(halt: Halt | None) -> dict[str, str] | None:
    if halt is None:
        return None
    return {"at": halt.at.isoformat(), "event_id": halt.event_id, "reason": halt.reason}


def status(
    redis: Redis, keys: Keys, base: AssetsConfig, now: datetime | None = None
) -> dict[str, Any]:
    """Everything an operator asks first, as plain data (printed as text or JSON)."""
    now = now or redis_now(redis, keys)
    loaded = Store(redis, keys, base).load()
    snap, cfg = loaded.snapshot, loaded.config
    exposure = Exposure.of(snap, cfg)
    v = Vitals.of(snap, exposure.equity, now.date())
    eq = v.equity
    late = overdue(snap, now)
    box = outbox_held(redis, keys)
    streams = {}
    for name in keys.streams():
        streams[name.rsplit(":", 1)[1]] = {
            "length": redis.xlen(name),
            "groups": _group_rows(redis, name),
        }
    return {
        "portfolio": keys.portfolio,
        # never seen an event: no state written, nothing on any stream (a wrong server,
        # prefix or portfolio name looks exactly like this; `riskgate status` exits 1)
        "empty": snap.version == 0 and not any(s["length"] for s in streams.values()),
        "version": snap.version,
        "config_hash": cfg.config_hash,
        "halted": snap.flags.halted,
        "equity": plain(eq),
        "cash": plain(v.cash),
        "peak_equity": plain(v.peak_equity),
        "drawdown": show(v.drawdown),
        "nav": show(v.nav),
        "peak_nav": show(v.peak_nav),
        "emergency_stop": _latch(v.stopped),
        "daily_loss_stop": _latch(v.day_stopped),
        "halted_by": _halted_by(snap.account.halted_by),
        "daily_pnl": plain(v.daily_pnl),
        "daily_loss": show(v.daily_loss),
        "fees": plain(snap.account.fees),
        "heat": show(ratio(exposure.heat, eq)),
        "heat_limit": plain(cfg.risk_management.max_portfolio_heat),
        "class_shares": {
            c: show(ratio(exposure.class_notional(c), eq))
            for c in sorted(
                set(exposure.positions.class_notional) | set(exposure.reserved.class_notional)
            )
        },
        "marks": {
            s: {"price": plain(q.price), "at": q.at.isoformat()}
            for s, q in sorted(snap.marks.items())
        },
        "positions": {
            s: {
                "quantity": plain(p.quantity),
                "avg_price": plain(p.avg_price),
                "mark": plain(p.mark_price),
                "marked_at": p.marked_at.isoformat(),
                "opened_at": p.opened_at.isoformat(),
            }
            for s, p in sorted(snap.positions.items())
        },
        "reservations": {
            i: {
                "symbol": r.symbol,
                "side": r.side.value,
                "quantity": plain(r.quantity),
                "reduce_only": r.reduce_only,
                "good_till": r.expires_at.isoformat(),
                "overdue": r.expires_at <= now,
            }
            for i, r in sorted(snap.reservations.items())
        },
        # past good_till, still counted: no executor has said how the order ended
        "overdue_reservations": {
            "count": len(late),
            "oldest_good_till": late[0].expires_at.isoformat() if late else None,
            "intents": [r.intent_id for r in late[:OVERDUE_SHOWN]],
        },
        # a durable gate's decisions and orders that replicas have not confirmed yet
        "held": {"entries": box.entries, "oldest_age_seconds": round(box.oldest_age_s, 3)},
        "active_phases": active_phases(cfg),
        "enabled_assets": [
            s
            for s, a in cfg.assets.items()
            if a.enabled and cfg.asset_classes[a.asset_class].enabled
        ],
        "correlations_as_of": (
            snap.correlations.as_of.isoformat() if snap.correlations.as_of else None
        ),
        "streams": streams,
    }
