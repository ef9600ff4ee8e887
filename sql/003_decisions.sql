-- riskgate 003: the decision audit, and what agents publish (signals, predictions).
--
-- trading_decisions is partitioned by decided_at, so its primary key must include
-- decided_at. "One decision per intent, ever" is a key WITHOUT the time column, so it
-- lives in the small plain table trading_decision_ids: the audit writer inserts there
-- first (ON CONFLICT DO NOTHING) and writes the decision row only for the ids that
-- were new, in the same transaction. A redelivered decision is then a no-op, even
-- one whose decided_at differs (a gate that re-decided an intent after its markers
-- expired): the first decision recorded stands. Old partitions of trading_decisions
-- can be dropped for retention; the id rows (a few dozen bytes each) stay and keep
-- guarding uniqueness.

CREATE TABLE trading_decision_ids (
    portfolio    text NOT NULL,
    intent_id    text NOT NULL,
    decided_at   timestamptz NOT NULL,
    stream_id    text NOT NULL,        -- the decisions stream entry it was read from
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (portfolio, intent_id)
);

COMMENT ON TABLE trading_decision_ids IS
    'One row per (portfolio, intent_id) ever decided: the uniqueness guard of trading_decisions.';

CREATE TABLE trading_decisions (
    decided_at          timestamptz NOT NULL,
    portfolio           text NOT NULL,
    intent_id           text NOT NULL,
    agent_id            text NOT NULL,
    symbol              text NOT NULL,     -- as sent: unknown symbols are decided too
    asset_class         text,              -- NULL when the symbol is not configured
    side                text CHECK (side IN ('buy', 'sell')),
    status              text NOT NULL CHECK (status IN ('approved', 'resized', 'rejected')),
    requested_quantity  numeric NOT NULL CHECK (requested_quantity >= 0),
    approved_quantity   numeric NOT NULL CHECK (approved_quantity >= 0),
    price               numeric,
    stop_price          numeric,
    take_profit         numeric,
    reduce_only         boolean NOT NULL DEFAULT false,
    reason_codes        text[] NOT NULL DEFAULT '{}',
    reasons             jsonb NOT NULL DEFAULT '[]',   -- [{code, message, value, limit}]
    checks              jsonb NOT NULL DEFAULT '{}',   -- every number the gate looked at
    config_hash         text NOT NULL,
    stream_id           text NOT NULL,
    recorded_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (portfolio, intent_id, decided_at),
    CHECK (status <> 'rejected' OR approved_quantity = 0),
    CHECK (status = 'rejected' OR approved_quantity > 0),
    CHECK (approved_quantity <= requested_quantity OR status = 'rejected')
) PARTITION BY RANGE (decided_at);

SELECT riskgate_timeseries('trading_decisions', 'decided_at');

ALTER TABLE trading_decisions
    ADD FOREIGN KEY (portfolio, intent_id) REFERENCES trading_decision_ids (portfolio, intent_id),
    ADD FOREIGN KEY (asset_class) REFERENCES asset_class_config (asset_class);

CREATE INDEX trading_decisions_time_idx ON trading_decisions (portfolio, decided_at DESC);
CREATE INDEX trading_decisions_symbol_idx ON trading_decisions (portfolio, symbol, decided_at DESC);
CREATE INDEX trading_decisions_agent_idx ON trading_decisions (portfolio, agent_id, decided_at DESC);
-- "which decisions were rejected for portfolio_heat?": reason_codes @> '{portfolio_heat}'
CREATE INDEX trading_decisions_reasons_idx ON trading_decisions USING gin (reason_codes);

COMMENT ON TABLE trading_decisions IS
    'Every gate decision (riskgate audit), with its reasons and checks as JSONB. One row per '
    'intent (see trading_decision_ids). Query reason codes with reason_codes @> ARRAY[...].';

CREATE TABLE consumer_rejects (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    portfolio    text NOT NULL,
    consumer     text NOT NULL,          -- consumer group: audit, phase
    stream       text NOT NULL,
    stream_id    text NOT NULL,
    raw          text,                   -- the entry's data field (NULL if it had none)
    error        text NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (portfolio, consumer, stream, stream_id)
);

COMMENT ON TABLE consumer_rejects IS
    'Stream entries a PostgreSQL consumer could not use (unreadable, or refused by a '
    'constraint), kept with the error and acked so they never block the stream.';

CREATE TABLE agent_signals (
    time         timestamptz NOT NULL,
    agent_id     text NOT NULL,
    symbol       text NOT NULL,
    asset_class  text NOT NULL,
    signal       text NOT NULL CHECK (signal IN ('buy', 'sell', 'hold', 'close')),
    strength     numeric CHECK (strength BETWEEN 0 AND 1),
    confidence   numeric CHECK (confidence BETWEEN 0 AND 1),
    horizon      interval,
    metadata     jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (agent_id, symbol, time)
) PARTITION BY RANGE (time);

SELECT riskgate_timeseries('agent_signals', 'time');

ALTER TABLE agent_signals
    ADD FOREIGN KEY (symbol) REFERENCES asset_registry (symbol),
    ADD FOREIGN KEY (asset_class) REFERENCES asset_class_config (asset_class);

CREATE INDEX agent_signals_symbol_idx ON agent_signals (symbol, time DESC);

COMMENT ON TABLE agent_signals IS 'What each agent thought, per asset and time (class-aware).';

CREATE TABLE predictions (
    time              timestamptz NOT NULL,     -- when the prediction was made
    model             text NOT NULL,
    symbol            text NOT NULL,
    asset_class       text NOT NULL,
    target_time       timestamptz NOT NULL,     -- the time it predicts
    predicted_price   numeric CHECK (predicted_price > 0),
    predicted_return  numeric,
    direction         text CHECK (direction IN ('up', 'down', 'flat')),
    confidence        numeric CHECK (confidence BETWEEN 0 AND 1),
    actual_price      numeric CHECK (actual_price > 0),   -- filled in once target_time passed
    metadata          jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (model, symbol, target_time, time),
    CHECK (target_time > time),
    CHECK (predicted_price IS NOT NULL OR predicted_return IS NOT NULL OR direction IS NOT NULL)
) PARTITION BY RANGE (time);

SELECT riskgate_timeseries('predictions', 'time');

ALTER TABLE predictions
    ADD FOREIGN KEY (symbol) REFERENCES asset_registry (symbol),
    ADD FOREIGN KEY (asset_class) REFERENCES asset_class_config (asset_class);

CREATE INDEX predictions_symbol_idx ON predictions (symbol, target_time DESC);

COMMENT ON TABLE predictions IS 'Model predictions per asset, scored against actual_price later.';
