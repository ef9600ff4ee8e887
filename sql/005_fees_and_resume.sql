-- riskgate 005: fill fees in the track record, and the resume event.
--
-- Fills may carry a fee (quote currency, like the price). The phase monitor charges it
-- to the fill's realized PnL, the round trip's PnL and the day's equity (every PnL
-- metric is net of fees) and keeps it here. Rows from before this migration had no
-- fee: 0 is what they were charged.
--
-- The events stream also carries `resume` (an operator clears the gate's latched
-- stops). The phase monitor records its id like any event's (applied once) and
-- otherwise ignores it: it moves no money.

ALTER TABLE trades
    ADD COLUMN fee numeric NOT NULL DEFAULT 0 CHECK (fee >= 0),                 -- quote currency
    ADD COLUMN fee_account numeric NOT NULL DEFAULT 0 CHECK (fee_account >= 0); -- account currency

COMMENT ON COLUMN trades.fee IS 'The fill''s fee as reported, in the symbol''s quote currency.';
COMMENT ON COLUMN trades.fee_account IS
    'The fee in the account currency, at the fx rate used for the fill''s price.';
COMMENT ON COLUMN trades.realized_pnl IS
    'Account currency: PnL of the part of the position this fill closed, minus its fee.';

ALTER TABLE round_trips
    ADD COLUMN fees numeric NOT NULL DEFAULT 0 CHECK (fees >= 0);               -- account currency

COMMENT ON COLUMN round_trips.fees IS
    'Fees of the trip''s fills, account currency (a flipping fill''s fee is shared by quantity).';
COMMENT ON COLUMN round_trips.realized_pnl IS
    'Net of fees: the sum of the trip''s realized PnL minus its fees. Win rate is over this.';

ALTER TABLE applied_events DROP CONSTRAINT applied_events_type_check;
ALTER TABLE applied_events ADD CONSTRAINT applied_events_type_check
    CHECK (type IN ('deposit', 'fill', 'cancel', 'mark', 'resume'));
