-- The buy/sell desk (docs/trading.md, "Desk"): locked quotes and the
-- trades made with them. A quote is used at most once: the trade claims it
--   UPDATE desk_quotes SET trade_id = $trade
--   WHERE id = $id AND trade_id IS NULL AND expires_at > $now
-- and rows_affected decides. `body` is the object as the API shows it
-- (JSON); the columns beside it are what lookups and claims need.

CREATE TABLE desk_quotes (
    id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    livemode BOOLEAN NOT NULL,
    customer_id TEXT NOT NULL REFERENCES customers (id),
    expires_at BIGINT NOT NULL,
    trade_id TEXT,
    body TEXT NOT NULL,
    created BIGINT NOT NULL
);

CREATE TABLE desk_trades (
    id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    livemode BOOLEAN NOT NULL,
    customer_id TEXT NOT NULL REFERENCES customers (id),
    status TEXT NOT NULL,
    -- The payment that pays for a buy, if any.
    payment_id TEXT,
    body TEXT NOT NULL,
    created BIGINT NOT NULL
);
CREATE INDEX desk_trades_by_merchant ON desk_trades (merchant_id, livemode, id);
CREATE INDEX desk_trades_by_payment ON desk_trades (payment_id);
