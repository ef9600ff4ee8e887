"""``riskgate sync-config``: the YAML's classes, data sources and assets into PostgreSQL.

Upserts ``asset_class_config`` (6), ``data_source_registry`` (13), ``asset_registry``
(22) and ``asset_data_sources`` in one transaction. The data sources' usage counters
are never touched. Rows for names no longer in the file stay (history refers to
them) with ``in_config = false``. Runs at the start of every PostgreSQL consumer, so
the registries follow the config file the processes run with.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from consumers.db.connection import Connection, jsonb
from schemas.config import AssetsConfig

SYNC_LOCK_KEY = 0x73796E63  # one sync at a time per database

UPSERT_CLASS = """
INSERT INTO asset_class_config (asset_class, enabled, description, max_allocation, first_phase,
                                phases, in_config, config_hash, synced_at)
VALUES (%s, %s, %s, %s, %s, %s, true, %s, now())
ON CONFLICT (asset_class) DO UPDATE SET
    enabled = excluded.enabled, description = excluded.description,
    max_allocation = excluded.max_allocation, first_phase = excluded.first_phase,
    phases = excluded.phases, in_config = true, config_hash = excluded.config_hash,
    synced_at = excluded.synced_at
"""

UPSERT_SOURCE = """
INSERT INTO data_source_registry (name, description, status, asset_classes, monthly_cost_usd,
                                  rate_limit_requests, rate_limit_per_seconds, env_vars,
                                  in_config, config_hash, synced_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, true, %s, now())
ON CONFLICT (name) DO UPDATE SET
    description = excluded.description, status = excluded.status,
    asset_classes = excluded.asset_classes, monthly_cost_usd = excluded.monthly_cost_usd,
    rate_limit_requests = excluded.rate_limit_requests,
    rate_limit_per_seconds = excluded.rate_limit_per_seconds, env_vars = excluded.env_vars,
    in_config = true, config_hash = excluded.config_hash, synced_at = excluded.synced_at
"""

UPSERT_ASSET = """
INSERT INTO asset_registry (symbol, name, asset_class, enabled, volatility_score, reference_price,
                            phase, exchange, quote_currency, max_position_pct, leverage,
                            leading_indicators, risk, special_rules, trading, in_config,
                            config_hash, synced_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, true, %s, now())
ON CONFLICT (symbol) DO UPDATE SET
    name = excluded.name, asset_class = excluded.asset_class, enabled = excluded.enabled,
    volatility_score = excluded.volatility_score, reference_price = excluded.reference_price,
    phase = excluded.phase, exchange = excluded.exchange,
    quote_currency = excluded.quote_currency, max_position_pct = excluded.max_position_pct,
    leverage = excluded.leverage, leading_indicators = excluded.leading_indicators,
    risk = excluded.risk, special_rules = excluded.special_rules, trading = excluded.trading,
    in_config = true, config_hash = excluded.config_hash, synced_at = excluded.synced_at
"""


@dataclass(frozen=True, slots=True)
class Synced:
    classes: int
    sources: int
    assets: int
    retired: int  # rows no longer in the file, marked in_config = false


def _phase_of(config: AssetsConfig) -> dict[str, str]:
    return {sym: name for name, phase in config.phases.items() for sym in phase.assets}


def _class_phases(config: AssetsConfig, cls: str) -> list[str]:
    return [n for n, p in config.phases.items() if cls in {c.value for c in p.classes}]


def sync_config(conn: Connection, config: AssetsConfig) -> Synced:
    """Upsert the three registries from ``config`` in one transaction (sorted: no deadlock)."""
    h = config.config_hash
    phase_of = _phase_of(config)
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (SYNC_LOCK_KEY,))
        for cls, cc in sorted(config.asset_classes.items()):
            phases = _class_phases(config, cls.value)
            cur.execute(
                UPSERT_CLASS,
                (cls.value, cc.enabled, cc.description, cc.max_allocation,
                 phases[0] if phases else None, phases, h),
            )  # fmt: skip
        for name, src in sorted(config.data_sources.items()):
            cur.execute(
                UPSERT_SOURCE,
                (name, src.description, src.status, [c.value for c in src.asset_classes],
                 src.monthly_cost_usd, src.rate_limit.requests, src.rate_limit.per_seconds,
                 list(src.env_vars), h),
            )  # fmt: skip
        for sym, a in sorted(config.assets.items()):
            cur.execute(
                UPSERT_ASSET,
                (sym, a.name, a.asset_class.value, a.enabled, a.volatility_score,
                 a.reference_price, phase_of[sym], a.trading.exchange,
                 a.trading.quote_currency, a.risk.max_position_pct, a.risk.leverage,
                 list(a.leading_indicators), jsonb(a.risk.model_dump(mode="json")),
                 jsonb(a.special_rules.model_dump(mode="json")),
                 jsonb(a.trading.model_dump(mode="json")), h),
            )  # fmt: skip
        symbols = sorted(config.assets)
        links = [(s, src) for s in symbols for src in config.assets[s].data_sources]
        cur.execute(
            "DELETE FROM asset_data_sources WHERE NOT (symbol || '|' || source = ANY(%s))",
            ([f"{s}|{src}" for s, src in links],),
        )
        cur.executemany(
            "INSERT INTO asset_data_sources (symbol, source) VALUES (%s, %s) "
            "ON CONFLICT DO NOTHING",
            links,
        )
        retired = 0
        for table, key, names in (
            ("asset_registry", "symbol", symbols),
            ("data_source_registry", "name", sorted(config.data_sources)),
            ("asset_class_config", "asset_class", sorted(c.value for c in config.asset_classes)),
        ):
            cur.execute(
                sql.SQL(
                    "UPDATE {} SET in_config = false WHERE in_config AND NOT ({} = ANY(%s))"
                ).format(sql.Identifier(table), sql.Identifier(key)),
                (names,),
            )
            retired += cur.rowcount
    return Synced(len(config.asset_classes), len(config.data_sources), len(config.assets), retired)
