-- riskgate 004: what the phase monitor derives from portfolio events (fills, round trips,
-- daily equity, per-asset PnL, asset performance) and the phase activation log.
--
-- The monitor applies each event once: applied_events is its idempotency key (plain
-- table: unique over all time). Every derived row, the applied ids and the monitor's
-- own ledger snapshot (phase_monitor_state) are written in one transaction per batch.

CREATE TABLE applied_events (
    portfolio   text NOT NULL,
    event_id    text NOT NULL,
    type        text NOT NULL CHECK (type IN ('deposit', 'fill', 'cancel', 'mark')),
    event_at    timestamptz NOT NULL,    -- the event's at (else its stream entry's time)
    stream_id   text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (portfolio, event_id)
);

COMMENT ON TABLE applied_events IS
    'Portfolio events the phase monitor has applied: a redelivered event is skipped.';

CREATE TABLE phase_monitor_state (
    portfolio       text PRIMARY KEY,
    state           jsonb NOT NULL,       -- ledger snapshot and per-symbol PnL (decimals as strings)
    events_applied  bigint NOT NULL DEFAULT 0 CHECK (events_applied >= 0),
    last_stream_id  text,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE phase_monitor_state IS
    'The phase monitor''s ledger (same average-cost accounting as the gate), updated in the '
    'same transaction as the rows derived from it.';

CREATE TABLE trades (
    executed_at     timestamptz NOT NULL,
    portfolio       text NOT NULL,
    event_id        text NOT NULL,
    intent_id       text NOT NULL,
    symbol          text NOT NULL,
    asset_class     text,                 -- NULL for a fill of an unconfigured symbol
    side            text NOT NULL CHECK (side IN ('buy', 'sell')),
    quantity        numeric NOT NULL CHECK (quantity > 0),
    price           numeric NOT NULL CHECK (price > 0),
    position_before numeric NOT NULL,     -- signed: long > 0, short < 0
    position_after  numeric NOT NULL,
    avg_price_after numeric,              -- NULL when flat after the fill
    realized_pnl    numeric NOT NULL,     -- account currency, from the part that closed
    closes_trip     boolean NOT NULL DEFAULT false,
    PRIMARY KEY (portfolio, event_id, executed_at)
) PARTITION BY RANGE (executed_at);

SELECT riskgate_timeseries('trades', 'executed_at');

ALTER TABLE trades
    ADD FOREIGN KEY (portfolio, event_id) REFERENCES applied_events (portfolio, event_id),
    ADD FOREIGN KEY (asset_class) REFERENCES asset_class_config (asset_class);

CREATE INDEX trades_symbol_idx ON trades (portfolio, symbol, executed_at DESC);
CREATE INDEX trades_intent_idx ON trades (portfolio, intent_id);

COMMENT ON TABLE trades IS
    'Every fill, with the realized PnL of the part that closed (average cost, as the gate).';

CREATE TABLE round_trips (
    portfolio       text NOT NULL,
    close_event_id  text NOT NULL,        -- the fill that brought the position to flat (or flipped it)
    symbol          text NOT NULL,
    asset_class     text,
    direction       text NOT NULL CHECK (direction IN ('long', 'short')),
    opened_at       timestamptz NOT NULL,
    closed_at       timestamptz NOT NULL,
    max_quantity    numeric NOT NULL CHECK (max_quantity > 0),
    fills           integer NOT NULL CHECK (fills >= 2),
    realized_pnl    numeric NOT NULL,     -- sum over the trip's closing fills
    PRIMARY KEY (portfolio, close_event_id),
    FOREIGN KEY (portfolio, close_event_id) REFERENCES applied_events (portfolio, event_id),
    FOREIGN KEY (asset_class) REFERENCES asset_class_config (asset_class),
    CHECK (closed_at >= opened_at)
);

CREATE INDEX round_trips_symbol_idx ON round_trips (portfolio, symbol, closed_at);
CREATE INDEX round_trips_closed_idx ON round_trips (portfolio, closed_at);

COMMENT ON TABLE round_trips IS
    'Closed round trips: a position from flat back to flat (a flip closes one and opens the '
    'next). Win rate and trade counts are over these.';

CREATE TABLE daily_equity (
    portfolio     text NOT NULL,
    day           date NOT NULL,          -- UTC day of the mark's at
    close_equity  numeric NOT NULL,       -- equity right after the day's latest mark
    net_deposits  numeric NOT NULL,       -- cumulative deposits minus withdrawals at that point
    close_at      timestamptz NOT NULL,   -- at of that mark
    marks         integer NOT NULL DEFAULT 1 CHECK (marks > 0),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (portfolio, day),
    CHECK ((close_at AT TIME ZONE 'UTC')::date = day)
);

COMMENT ON TABLE daily_equity IS
    'Daily close equity per UTC day, from mark events (a late mark never replaces a later close). '
    'Daily PnL = change in (close_equity - net_deposits) from the previous close.';

CREATE TABLE daily_asset_pnl (
    portfolio       text NOT NULL,
    day             date NOT NULL,
    symbol          text NOT NULL,
    asset_class     text,
    cumulative_pnl  numeric NOT NULL,     -- realized to date + unrealized at the close
    close_at        timestamptz NOT NULL,
    PRIMARY KEY (portfolio, day, symbol),
    FOREIGN KEY (portfolio, day) REFERENCES daily_equity (portfolio, day),
    FOREIGN KEY (asset_class) REFERENCES asset_class_config (asset_class)
);

COMMENT ON TABLE daily_asset_pnl IS
    'Per-asset cumulative PnL at each daily close: daily PnL per asset and per class.';

CREATE TABLE asset_performance (
    portfolio       text NOT NULL,
    scope           text NOT NULL CHECK (scope IN ('asset', 'class')),
    name            text NOT NULL,        -- the symbol, or the asset class
    asset_class     text,
    trades          integer NOT NULL CHECK (trades >= 0),
    wins            integer NOT NULL CHECK (wins >= 0),
    losses          integer NOT NULL CHECK (losses >= 0),
    win_rate        numeric CHECK (win_rate BETWEEN 0 AND 1),
    gross_profit    numeric NOT NULL CHECK (gross_profit >= 0),
    gross_loss      numeric NOT NULL CHECK (gross_loss >= 0),
    profit_factor   numeric CHECK (profit_factor >= 0),   -- NULL when there is no loss
    realized_pnl    numeric NOT NULL,
    sharpe_ratio    numeric,                              -- NULL with < 2 days or no variation
    sharpe_days     integer NOT NULL CHECK (sharpe_days >= 0),
    window_days     integer NOT NULL CHECK (window_days > 0),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (portfolio, scope, name),
    FOREIGN KEY (asset_class) REFERENCES asset_class_config (asset_class),
    CHECK (wins + losses <= trades)
);

COMMENT ON TABLE asset_performance IS
    'Win rate, profit factor and Sharpe per asset and per class (phase monitor, recomputed '
    'after each batch that changed them). Definitions: docs/DATABASE.md.';

CREATE TABLE phase_activation_log (
    portfolio             text NOT NULL,
    phase                 text NOT NULL,
    activation            text NOT NULL CHECK (activation IN ('automatic', 'manual')),
    assets                text[] NOT NULL,
    classes               text[] NOT NULL,
    -- phase_ready: when the monitor found every requirement met, and on what numbers
    ready_at              timestamptz,
    ready_snapshot        jsonb,          -- {metrics, requirements: [{name, requirement, value, met}]}
    ready_stream_id       text,           -- set once the event is on the phases stream
    -- phase_activated: automatically with phase_ready, or by an operator (who, why)
    activated_at          timestamptz,
    activated_by          text,           -- 'phase-monitor' or the operator
    reason                text,
    forced                boolean NOT NULL DEFAULT false,
    activation_snapshot   jsonb,
    activated_stream_id   text,
    logged_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (portfolio, phase),       -- a phase is emitted once per portfolio, ever
    CHECK (ready_at IS NOT NULL OR activated_at IS NOT NULL),
    CHECK ((ready_at IS NULL) = (ready_snapshot IS NULL)),
    CHECK (ready_stream_id IS NULL OR ready_at IS NOT NULL),
    CHECK ((activated_at IS NULL) = (activated_by IS NULL)),
    CHECK ((activated_at IS NULL) = (activation_snapshot IS NULL)),
    CHECK (activated_stream_id IS NULL OR activated_at IS NOT NULL),
    CHECK (NOT forced OR (activated_at IS NOT NULL AND reason IS NOT NULL))
);

-- logged but not yet on the stream: published (again) by the phase monitor
CREATE INDEX phase_activation_log_unsent_idx ON phase_activation_log (portfolio)
    WHERE (ready_at IS NOT NULL AND ready_stream_id IS NULL)
       OR (activated_at IS NOT NULL AND activated_stream_id IS NULL);

COMMENT ON TABLE phase_activation_log IS
    'One row per portfolio and phase: its phase_ready and phase_activated events with the '
    'metrics they were decided on, who activated it and why. A NULL stream id next to a '
    'set time: logged, not yet published.';
