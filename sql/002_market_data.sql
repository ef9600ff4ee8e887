-- riskgate 002: market data. Prices, indicators, sentiment, options flow (time series),
-- the economic calendar and asset correlations.
-- amended after release (migrate.py, AMENDMENTS): the four DROP INDEX IF EXISTS lines. On
-- amended TimescaleDB, create_hypertable makes <table>_time_idx itself; on PostgreSQL they do nothing.

CREATE TABLE price_data (
    time         timestamptz NOT NULL,   -- bar open time (UTC); a 1d bar's day is time's UTC date
    symbol       text NOT NULL,
    asset_class  text NOT NULL,
    interval     text NOT NULL DEFAULT '1d'
                 CHECK (interval IN ('1m', '5m', '15m', '30m', '1h', '4h', '1d')),
    open         numeric CHECK (open > 0),
    high         numeric CHECK (high > 0),
    low          numeric CHECK (low > 0),
    close        numeric NOT NULL CHECK (close > 0),
    volume       numeric CHECK (volume >= 0),
    source       text,
    loaded_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, interval, time),
    CHECK (high IS NULL OR low IS NULL OR high >= low),
    CHECK (high IS NULL OR (high >= close AND (open IS NULL OR high >= open))),
    CHECK (low IS NULL OR (low <= close AND (open IS NULL OR low <= open)))
) PARTITION BY RANGE (time);

SELECT riskgate_timeseries('price_data', 'time');

ALTER TABLE price_data
    ADD FOREIGN KEY (symbol) REFERENCES asset_registry (symbol),
    ADD FOREIGN KEY (asset_class) REFERENCES asset_class_config (asset_class);

-- the correlation job: last bar of each UTC day per symbol over a window
DROP INDEX IF EXISTS price_data_time_idx;  -- amended: create_hypertable's own
CREATE INDEX price_data_time_idx ON price_data (time DESC, symbol);

COMMENT ON TABLE price_data IS
    'OHLCV bars for every asset class (riskgate prices load). Decimals exact (numeric).';

CREATE TABLE leading_indicators (
    time         timestamptz NOT NULL,
    symbol       text NOT NULL,
    asset_class  text NOT NULL,
    indicator    text NOT NULL,            -- e.g. 'funding rates', 'semiconductor index (SOX)'
    value        numeric,
    text_value   text,
    source       text,
    metadata     jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (symbol, indicator, time),
    CHECK (value IS NOT NULL OR text_value IS NOT NULL)
) PARTITION BY RANGE (time);

SELECT riskgate_timeseries('leading_indicators', 'time');

ALTER TABLE leading_indicators
    ADD FOREIGN KEY (symbol) REFERENCES asset_registry (symbol),
    ADD FOREIGN KEY (asset_class) REFERENCES asset_class_config (asset_class),
    ADD FOREIGN KEY (source) REFERENCES data_source_registry (name);

DROP INDEX IF EXISTS leading_indicators_time_idx;  -- amended: create_hypertable's own
CREATE INDEX leading_indicators_time_idx ON leading_indicators (time DESC);

COMMENT ON TABLE leading_indicators IS
    'Asset-specific indicators (options flow summaries, on-chain, macro), one value per time.';

CREATE TABLE social_sentiment (
    time             timestamptz NOT NULL,
    symbol           text NOT NULL,
    asset_class      text NOT NULL,
    platform         text NOT NULL
                     CHECK (platform IN ('reddit', 'twitter', 'stocktwits', 'news', 'other')),
    mentions         integer NOT NULL CHECK (mentions >= 0),
    sentiment_score  numeric CHECK (sentiment_score BETWEEN -1 AND 1),
    bullish_ratio    numeric CHECK (bullish_ratio BETWEEN 0 AND 1),
    source           text,
    metadata         jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (symbol, platform, time)
) PARTITION BY RANGE (time);

SELECT riskgate_timeseries('social_sentiment', 'time');

ALTER TABLE social_sentiment
    ADD FOREIGN KEY (symbol) REFERENCES asset_registry (symbol),
    ADD FOREIGN KEY (asset_class) REFERENCES asset_class_config (asset_class),
    ADD FOREIGN KEY (source) REFERENCES data_source_registry (name);

DROP INDEX IF EXISTS social_sentiment_time_idx;  -- amended: create_hypertable's own
CREATE INDEX social_sentiment_time_idx ON social_sentiment (time DESC);

COMMENT ON TABLE social_sentiment IS
    'Mention counts and sentiment per platform (Reddit, Twitter, StockTwits): meme stocks.';

CREATE TABLE options_flow (
    time               timestamptz NOT NULL,
    symbol             text NOT NULL,
    asset_class        text NOT NULL,
    trade_id           text NOT NULL,          -- the provider's id of the print
    option_type        text NOT NULL CHECK (option_type IN ('call', 'put')),
    strike             numeric NOT NULL CHECK (strike > 0),
    expiry             date NOT NULL,
    side               text CHECK (side IN ('buy', 'sell', 'unknown')),
    contracts          integer NOT NULL CHECK (contracts > 0),
    premium            numeric NOT NULL CHECK (premium >= 0),
    trade_type         text NOT NULL CHECK (trade_type IN ('sweep', 'block', 'split', 'single')),
    underlying_price   numeric CHECK (underlying_price > 0),
    implied_volatility numeric CHECK (implied_volatility >= 0),
    open_interest      integer CHECK (open_interest >= 0),
    sentiment          text CHECK (sentiment IN ('bullish', 'bearish', 'neutral')),
    unusual            boolean NOT NULL DEFAULT false,
    source             text,
    PRIMARY KEY (symbol, trade_id, time)
) PARTITION BY RANGE (time);

SELECT riskgate_timeseries('options_flow', 'time');

ALTER TABLE options_flow
    ADD FOREIGN KEY (symbol) REFERENCES asset_registry (symbol),
    ADD FOREIGN KEY (asset_class) REFERENCES asset_class_config (asset_class),
    ADD FOREIGN KEY (source) REFERENCES data_source_registry (name);

DROP INDEX IF EXISTS options_flow_time_idx;  -- amended: create_hypertable's own
CREATE INDEX options_flow_time_idx ON options_flow (time DESC);
CREATE INDEX options_flow_unusual_idx ON options_flow (symbol, time DESC) WHERE unusual;

COMMENT ON TABLE options_flow IS 'Options prints: unusual activity, sweeps, blocks, large trades.';

CREATE TABLE economic_calendar (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_time          timestamptz NOT NULL,
    country             text NOT NULL CHECK (country ~ '^[A-Z]{2,3}$'),
    event_name          text NOT NULL,
    impact              text NOT NULL CHECK (impact IN ('low', 'medium', 'high')),
    forecast            numeric,
    previous            numeric,
    actual              numeric,
    unit                text,
    affected_classes    text[] NOT NULL DEFAULT '{}',
    volatility_warning  boolean NOT NULL DEFAULT false,
    source              text REFERENCES data_source_registry (name),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (country, event_name, event_time)
);

CREATE INDEX economic_calendar_time_idx ON economic_calendar (event_time);

COMMENT ON TABLE economic_calendar IS
    'Scheduled economic events with impact, forecasts and volatility warnings. A plain '
    'table: a few thousand rows a year, queried by time range.';

CREATE TABLE asset_correlations (
    as_of          timestamptz NOT NULL,   -- time of the newest bar the value was computed from
    window_days    integer NOT NULL CHECK (window_days >= 2),
    symbol_a       text NOT NULL,
    symbol_b       text NOT NULL,
    correlation    numeric NOT NULL CHECK (correlation BETWEEN -1 AND 1),
    observations   integer NOT NULL CHECK (observations >= 2),
    computed_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol_a, symbol_b, window_days, as_of),
    CHECK (symbol_a < symbol_b)
) PARTITION BY RANGE (as_of);

SELECT riskgate_timeseries('asset_correlations', 'as_of');

ALTER TABLE asset_correlations
    ADD FOREIGN KEY (symbol_a) REFERENCES asset_registry (symbol),
    ADD FOREIGN KEY (symbol_b) REFERENCES asset_registry (symbol);

-- "the latest matrix for a window"
CREATE INDEX asset_correlations_latest_idx ON asset_correlations (window_days, as_of DESC);

COMMENT ON TABLE asset_correlations IS
    'Pearson correlation of daily close-to-close returns between two assets over a window '
    '(riskgate correlations). Pairs are stored once, symbol_a < symbol_b.';
