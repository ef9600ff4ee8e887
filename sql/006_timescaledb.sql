-- riskgate 006: what TimescaleDB offers, where this server has it; the same names everywhere.
--
-- Every database gets price_data_daily (symbol, day, close, close_at): the close of each
-- symbol's last bar of each UTC day (any interval), `day` the UTC midnight it belongs to,
-- `close_at` that bar's time. Which object it is depends on the server:
--
--   * TimescaleDB, community edition (timescaledb.license = 'timescale'):
--       - price_data_daily is a continuous aggregate, real time (materialized_only =
--         false: buckets past its watermark are aggregated from price_data at query
--         time), refreshed hourly over its whole history (only changed ranges are
--         recomputed) by a policy;
--       - price_data is compressed after 7 days (segmented by symbol and interval,
--         ordered by time): bars stay writable, old chunks take a fraction of the space;
--       - retention (whole chunks dropped by a policy) where the data is raw or derived
--         and loses its use with age: asset_correlations (recomputable from price_data),
--         options_flow and social_sentiment, after 1 year. Never on the audit and the
--         track record (trading_decisions, trades, ...) nor on price_data (the daily
--         aggregate would lose its source, and correlations and regimes read its history).
--   * TimescaleDB, apache edition (the license says 'apache'; no compression, continuous
--     aggregates or policies exist there), and plain PostgreSQL: price_data_daily is a
--     plain view with the same columns and rows; nothing is compressed or dropped.
--
-- riskgate_use_timescaledb() does this and may be run again at any time (it adds what
-- is missing, e.g. after the server moved to the community edition); `riskgate migrate`
-- reports what exists. On TimescaleDB it also gives each hypertable's primary key the
-- name it has on PostgreSQL (<table>_pkey: riskgate_unpartition left it <table>_pkey1).

CREATE FUNCTION riskgate_timescale_edition() RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN 'none'
        ELSE coalesce(current_setting('timescaledb.license', true), 'apache')
    END;
$$;

COMMENT ON FUNCTION riskgate_timescale_edition() IS
    'none (no timescaledb extension in this database), apache, or timescale (the community '
    'edition: compression, continuous aggregates, policies).';

CREATE FUNCTION riskgate_use_timescaledb() RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
    edition text := riskgate_timescale_edition();
    hypertables text[] := '{}';
    done text[] := '{}';
    t text;
    compressed boolean;
BEGIN
    IF edition <> 'none' THEN
        EXECUTE 'SELECT coalesce(array_agg(hypertable_name::text), ''{}'') '
                'FROM timescaledb_information.hypertables WHERE hypertable_schema = current_schema()'
           INTO hypertables;
    END IF;
    FOREACH t IN ARRAY hypertables LOOP
        IF EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = t::regclass
                                                 AND conname = t || '_pkey1' AND contype = 'p')
           AND NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = t || '_pkey'
                                                        AND connamespace = current_schema()::regnamespace) THEN
            EXECUTE format('ALTER TABLE %I RENAME CONSTRAINT %I TO %I', t, t || '_pkey1', t || '_pkey');
            done := done || format('%s: primary key renamed %s_pkey', t, t);
        END IF;
    END LOOP;

    IF edition <> 'timescale' OR NOT 'price_data' = ANY (hypertables) THEN
        IF to_regclass('price_data_daily') IS NULL THEN
            CREATE VIEW price_data_daily (symbol, day, close, close_at) AS
            SELECT DISTINCT ON (symbol, date_trunc('day', time, 'UTC'))
                   symbol, date_trunc('day', time, 'UTC'), close, time
              FROM price_data
             ORDER BY symbol, date_trunc('day', time, 'UTC'), time DESC;
            COMMENT ON VIEW price_data_daily IS
                'Daily closes: each symbol''s last bar of each UTC day (a plain view here; a '
                'continuous aggregate on TimescaleDB''s community edition).';
            done := done || 'price_data_daily: plain view'::text;
        END IF;
        RETURN done;
    END IF;

    -- the community edition from here on
    EXECUTE 'SELECT compression_enabled FROM timescaledb_information.hypertables '
            'WHERE hypertable_schema = current_schema() AND hypertable_name = ''price_data'''
       INTO compressed;
    IF NOT compressed THEN
        ALTER TABLE price_data SET (timescaledb.compress,
                                    timescaledb.compress_segmentby = 'symbol, interval',
                                    timescaledb.compress_orderby = 'time DESC');
        done := done || 'price_data: compression enabled'::text;
    END IF;
    IF add_compression_policy('price_data', compress_after => interval '7 days',
                              if_not_exists => true) > 0 THEN
        done := done || 'price_data: compression policy (after 7 days)'::text;
    END IF;

    IF NOT EXISTS (SELECT 1 FROM timescaledb_information.continuous_aggregates
                    WHERE view_schema = current_schema() AND view_name = 'price_data_daily') THEN
        DROP VIEW IF EXISTS price_data_daily;  -- the plain one, made before the edition allowed this
        CREATE MATERIALIZED VIEW price_data_daily (symbol, day, close, close_at)
            WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
        SELECT symbol, time_bucket(interval '1 day', time), last(close, time), max(time)
          FROM price_data
         GROUP BY symbol, time_bucket(interval '1 day', time)
          WITH NO DATA;
        COMMENT ON VIEW price_data_daily IS
            'Daily closes: each symbol''s last bar of each UTC day (a real-time continuous '
            'aggregate of price_data).';
        done := done || 'price_data_daily: continuous aggregate'::text;
    END IF;
    IF add_continuous_aggregate_policy('price_data_daily', start_offset => NULL,
                                       end_offset => interval '1 hour',
                                       schedule_interval => interval '1 hour',
                                       if_not_exists => true) > 0 THEN
        done := done || 'price_data_daily: refresh policy (hourly, whole history)'::text;
    END IF;

    FOREACH t IN ARRAY ARRAY['asset_correlations', 'options_flow', 'social_sentiment'] LOOP
        IF t = ANY (hypertables)
           AND add_retention_policy(t, drop_after => interval '1 year',
                                    if_not_exists => true) > 0 THEN
            done := done || format('%s: retention policy (1 year)', t);
        END IF;
    END LOOP;
    RETURN done;
END;
$$;

COMMENT ON FUNCTION riskgate_use_timescaledb() IS
    'Make price_data_daily, and on TimescaleDB''s community edition compress price_data, '
    'refresh the daily aggregate and drop old raw rows by policy. Safe to run again; '
    'returns what it changed.';

SELECT riskgate_use_timescaledb();
