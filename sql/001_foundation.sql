-- riskgate 001: time-series helpers, and the registries synced from assets_config.yaml.
--
-- Time-series tables are declared with PARTITION BY RANGE (<time column>) and then
-- handed to riskgate_timeseries(), which
--   * on plain PostgreSQL keeps them as declarative partitions: monthly partitions
--     (UTC months, named <table>_pYYYYMM) plus a DEFAULT partition that catches rows
--     for a month nobody prepared, so an insert never fails for want of a partition;
--   * where the timescaledb extension is available (and preloaded), rebuilds the
--     table as a plain one and makes it a hypertable (TimescaleDB chunks it itself).
-- Writers call riskgate_ensure_partitions() for the months they are about to write
-- (a no-op on hypertables). LIKE ... INCLUDING ALL does not copy foreign keys, so
-- time-series tables get theirs with ALTER TABLE after riskgate_timeseries().
-- Every unique key of a time-series table includes its time column (PostgreSQL and
-- TimescaleDB both require it); where a key must be unique over all time, a small
-- plain table holds it (see trading_decision_ids and applied_events).

CREATE FUNCTION riskgate_has_timescaledb() RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')
        OR (EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
            AND current_setting('shared_preload_libraries', true) LIKE '%timescaledb%');
$$;

COMMENT ON FUNCTION riskgate_has_timescaledb() IS
    'True when hypertables can be used: timescaledb installed, or available and preloaded.';

CREATE FUNCTION riskgate_ensure_partitions(p_parent regclass, p_from timestamptz, p_to timestamptz)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    nsp text;
    rel text;
    month timestamptz;
    part text;
    default_part regclass;
    key_column text;
    busy boolean;
    created integer := 0;
BEGIN
    SELECT n.nspname, c.relname INTO nsp, rel
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = p_parent AND c.relkind = 'p';
    IF rel IS NULL OR p_from IS NULL OR p_to IS NULL THEN
        RETURN 0;  -- not partitioned (a hypertable, or a plain table): nothing to do
    END IF;
    -- one creator per parent at a time; concurrent writers wait here briefly
    PERFORM pg_advisory_xact_lock(hashtext('riskgate_partitions:' || p_parent::text));
    SELECT a.attname INTO key_column
      FROM pg_partitioned_table pt
      JOIN pg_attribute a ON a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[0]
     WHERE pt.partrelid = p_parent;
    SELECT i.inhrelid::regclass INTO default_part
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = p_parent AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT';
    month := date_trunc('month', p_from AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    WHILE month <= p_to LOOP
        part := format('%s_p%s', rel, to_char(month AT TIME ZONE 'UTC', 'YYYYMM'));
        IF to_regclass(format('%I.%I', nsp, part)) IS NULL THEN
            busy := false;
            IF default_part IS NOT NULL THEN
                -- rows for this month already sit in the default partition: leave them
                -- there (still correct, only less pruning) rather than fail the insert
                EXECUTE format(
                    'SELECT EXISTS (SELECT 1 FROM %s WHERE %I >= $1 AND %I < $2)',
                    default_part, key_column, key_column)
                  INTO busy USING month, month + interval '1 month';
            END IF;
            IF busy THEN
                RAISE NOTICE 'riskgate: % has rows for % in its default partition; '
                             'partition % not created', rel, month, part;
            ELSE
                EXECUTE format(
                    'CREATE TABLE %I.%I PARTITION OF %I.%I FOR VALUES FROM (%L) TO (%L)',
                    nsp, part, nsp, rel, month, month + interval '1 month');
                created := created + 1;
            END IF;
        END IF;
        month := month + interval '1 month';
    END LOOP;
    RETURN created;
END;
$$;

COMMENT ON FUNCTION riskgate_ensure_partitions(regclass, timestamptz, timestamptz) IS
    'Create the monthly (UTC) partitions of a partitioned table covering [from, to]; '
    'returns how many were created. No-op for hypertables and plain tables.';

CREATE FUNCTION riskgate_unpartition(p_table regclass) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    nsp text;
    rel text;
    staged text;
BEGIN
    SELECT n.nspname, c.relname INTO nsp, rel
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = p_table AND c.relkind = 'p';
    IF rel IS NULL THEN
        RAISE EXCEPTION 'riskgate: % is not a partitioned table', p_table;
    END IF;
    -- same columns, defaults, CHECKs, identity, indexes and comments; no partitions
    staged := rel || '__partitioned';
    EXECUTE format('ALTER TABLE %I.%I RENAME TO %I', nsp, rel, staged);
    EXECUTE format('CREATE TABLE %I.%I (LIKE %I.%I INCLUDING ALL)', nsp, rel, nsp, staged);
    EXECUTE format('DROP TABLE %I.%I', nsp, staged);
END;
$$;

COMMENT ON FUNCTION riskgate_unpartition(regclass) IS
    'Rebuild an empty partitioned table as a plain one (the first step to a hypertable).';

CREATE FUNCTION riskgate_timeseries(p_table regclass, p_time_column text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    nsp text;
    rel text;
BEGIN
    SELECT n.nspname, c.relname INTO nsp, rel
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = p_table;
    IF NOT riskgate_has_timescaledb() THEN
        EXECUTE format('CREATE TABLE %I.%I PARTITION OF %I.%I DEFAULT',
                       nsp, rel || '_default', nsp, rel);
        PERFORM riskgate_ensure_partitions(
            p_table, now() - interval '1 month', now() + interval '2 months');
        RETURN 'partitioned';
    END IF;
    CREATE EXTENSION IF NOT EXISTS timescaledb;
    PERFORM riskgate_unpartition(p_table);  -- a hypertable is made from a plain table
    PERFORM create_hypertable(format('%I.%I', nsp, rel)::regclass, p_time_column::name);
    RETURN 'hypertable';
END;
$$;

COMMENT ON FUNCTION riskgate_timeseries(regclass, text) IS
    'Make a PARTITION BY RANGE table a hypertable where TimescaleDB exists, else give it '
    'a default partition and monthly partitions around now.';

-- --- registries (riskgate sync-config upserts them from the YAML) ---------------------

CREATE TABLE asset_class_config (
    asset_class     text PRIMARY KEY
                    CHECK (asset_class IN ('crypto', 'stocks', 'leveraged_etfs', 'forex',
                                           'commodities', 'meme_stocks')),
    enabled         boolean NOT NULL,
    description     text NOT NULL,
    max_allocation  numeric NOT NULL CHECK (max_allocation > 0 AND max_allocation <= 1),
    first_phase     text,          -- the first phase that unlocks the class
    phases          text[] NOT NULL DEFAULT '{}',
    in_config       boolean NOT NULL DEFAULT true,
    config_hash     text NOT NULL,
    synced_at       timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE asset_class_config IS
    'The six asset classes as configured (the file''s enabled flag; live overrides are in Redis). '
    'Phase activations per portfolio are in phase_activation_log.';

CREATE TABLE data_source_registry (
    name                    text PRIMARY KEY,
    description             text NOT NULL,
    status                  text NOT NULL CHECK (status IN ('active', 'ready', 'disabled')),
    asset_classes           text[] NOT NULL CHECK (cardinality(asset_classes) > 0),
    monthly_cost_usd        numeric NOT NULL CHECK (monthly_cost_usd >= 0),
    rate_limit_requests     integer NOT NULL CHECK (rate_limit_requests > 0),
    rate_limit_per_seconds  integer NOT NULL CHECK (rate_limit_per_seconds > 0),
    env_vars                text[] NOT NULL DEFAULT '{}',
    -- usage counters: written by the data adapters, never by sync-config
    requests_total          bigint NOT NULL DEFAULT 0 CHECK (requests_total >= 0),
    requests_this_window    integer NOT NULL DEFAULT 0 CHECK (requests_this_window >= 0),
    window_started_at       timestamptz,
    requests_this_month     bigint NOT NULL DEFAULT 0 CHECK (requests_this_month >= 0),
    month_started_on        date,
    cost_to_date_usd        numeric NOT NULL DEFAULT 0 CHECK (cost_to_date_usd >= 0),
    last_request_at         timestamptz,
    last_error_at           timestamptz,
    last_error              text,
    in_config               boolean NOT NULL DEFAULT true,
    config_hash             text NOT NULL,
    synced_at               timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE data_source_registry IS
    'API connections: configured rate limits and cost, plus usage counters the adapters keep.';

CREATE TABLE asset_registry (
    symbol              text PRIMARY KEY,
    name                text NOT NULL,
    asset_class         text NOT NULL REFERENCES asset_class_config (asset_class),
    enabled             boolean NOT NULL,
    volatility_score    smallint NOT NULL CHECK (volatility_score BETWEEN 1 AND 10),
    reference_price     numeric NOT NULL CHECK (reference_price > 0),
    phase               text NOT NULL,
    exchange            text NOT NULL,
    quote_currency      text NOT NULL CHECK (quote_currency ~ '^[A-Z]{3,5}$'),
    max_position_pct    numeric NOT NULL CHECK (max_position_pct > 0 AND max_position_pct <= 1),
    leverage            numeric NOT NULL CHECK (leverage >= 1),
    leading_indicators  text[] NOT NULL,
    risk                jsonb NOT NULL,
    special_rules       jsonb NOT NULL,
    trading             jsonb NOT NULL,
    in_config           boolean NOT NULL DEFAULT true,
    config_hash         text NOT NULL,
    synced_at           timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX asset_registry_class_idx ON asset_registry (asset_class);

COMMENT ON TABLE asset_registry IS
    'Every tradable asset as configured in assets_config.yaml (the file''s enabled flag; '
    'live enable/disable is in Redis). Rows dropped from the file keep in_config = false.';

CREATE TABLE asset_data_sources (
    symbol  text NOT NULL REFERENCES asset_registry (symbol) ON DELETE CASCADE,
    source  text NOT NULL REFERENCES data_source_registry (name),
    PRIMARY KEY (symbol, source)
);

CREATE INDEX asset_data_sources_source_idx ON asset_data_sources (source);

COMMENT ON TABLE asset_data_sources IS 'Which data sources each asset needs.';
