-- Currency conversion: locked quotes, and the conversion a payment settles
-- with (see docs/conversions.md).
--
-- A quote is used at most once: the payment that uses it claims it with
--   UPDATE conversion_quotes SET payment_id = $payment
--   WHERE id = $id AND payment_id IS NULL AND expires_at > $now
-- and rows_affected decides. Amounts are decimal TEXT (u64 minor units;
-- 18-decimal tokens exceed BIGINT), rates decimal TEXT (exact).

CREATE TABLE conversion_quotes (
    id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    livemode BOOLEAN NOT NULL,
    from_currency TEXT NOT NULL,
    to_currency TEXT NOT NULL,
    from_amount TEXT NOT NULL,
    to_amount TEXT NOT NULL,
    rate TEXT NOT NULL,
    mid_rate TEXT NOT NULL,
    spread_basis_points BIGINT NOT NULL,
    source TEXT NOT NULL,
    rate_as_of BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    created BIGINT NOT NULL,
    -- The payment that used it; NULL while unused.
    payment_id TEXT
);
CREATE INDEX conversion_quotes_by_merchant ON conversion_quotes (merchant_id, livemode, id);

-- A conversion payment's settlement (JSON: quote, to_currency, rate,
-- to_amount, fee, net); NULL for every other payment.
ALTER TABLE payments ADD COLUMN conversion TEXT;
