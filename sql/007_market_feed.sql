-- riskgate 007: the market data feed (riskgate feed) and its sources.
--
-- * data_source_registry gains what the feed writes back besides the usage counters of
--   001: errors, rate-limit refusals, the last success, and the source's state as the
--   feed last saw it (ok, failing, rate_limited, not_configured) with the reason.
-- * economic_calendar gains the symbol an event belongs to (earnings) and its kind, so
--   the feed can keep the gate's earnings flags current from it.
-- * feed_coverage: for each symbol and kind of data, who served it last, when, and why
--   not when nobody could (riskgate sources status shows it).
-- * the `sim` source (riskgate feed --source sim, the demo): a registry row, because the
--   tables the feed fills refer to their source. Not in the config file (in_config false).
-- Plain PostgreSQL; nothing here assumes TimescaleDB.

ALTER TABLE data_source_registry
    ADD COLUMN errors_total bigint NOT NULL DEFAULT 0 CHECK (errors_total >= 0),
    ADD COLUMN errors_this_month bigint NOT NULL DEFAULT 0 CHECK (errors_this_month >= 0),
    ADD COLUMN rate_limited_total bigint NOT NULL DEFAULT 0 CHECK (rate_limited_total >= 0),
    ADD COLUMN last_success_at timestamptz,
    ADD COLUMN feed_state text
        CHECK (feed_state IN ('ok', 'failing', 'rate_limited', 'not_configured')),
    ADD COLUMN feed_reason text,
    ADD COLUMN feed_state_at timestamptz;

COMMENT ON COLUMN data_source_registry.cost_to_date_usd IS
    'Estimated month-to-date cost: monthly_cost_usd prorated by the days of the month '
    'elapsed, once the source made a request this month (a subscription accrues daily).';

ALTER TABLE economic_calendar
    ADD COLUMN symbol text REFERENCES asset_registry (symbol),
    ADD COLUMN kind text NOT NULL DEFAULT 'macro' CHECK (kind IN ('earnings', 'macro', 'energy')),
    ADD CHECK (kind <> 'earnings' OR symbol IS NOT NULL);

CREATE INDEX economic_calendar_symbol_idx ON economic_calendar (symbol, event_time)
    WHERE symbol IS NOT NULL;

CREATE TABLE feed_coverage (
    symbol           text NOT NULL REFERENCES asset_registry (symbol),
    kind             text NOT NULL CHECK (kind IN ('bars', 'latest', 'earnings', 'calendar',
                                                   'sentiment', 'options_flow', 'indicators')),
    source           text REFERENCES data_source_registry (name),  -- who served it last
    ok               boolean NOT NULL,          -- the last attempt served it
    last_success_at  timestamptz,
    last_attempt_at  timestamptz NOT NULL,
    reason           text,                      -- why not, when not ok
    PRIMARY KEY (symbol, kind)
);

COMMENT ON TABLE feed_coverage IS
    'Per symbol and kind of data: the source that served it last and why none could '
    '(riskgate feed writes it every cycle; riskgate sources status reads it).';

INSERT INTO data_source_registry (name, description, status, asset_classes, monthly_cost_usd,
                                  rate_limit_requests, rate_limit_per_seconds, env_vars,
                                  in_config, config_hash)
VALUES ('sim', 'Simulated market (riskgate demo and tests; never for live trading)', 'ready',
        '{crypto,stocks,leveraged_etfs,forex,commodities,meme_stocks}', 0, 1000000, 1, '{}',
        false, 'builtin')
ON CONFLICT (name) DO NOTHING;
