-- Vouchers: prepaid codes an operator issues in batches and customers
-- redeem as a payment method (`method: "voucher"`).
--
-- Codes are never stored: only their keyed hash (HMAC-SHA256 under the
-- server's key-hashing secret, like API keys). Value columns are BIGINT
-- minor units (like balance_transactions), so a redemption is one
-- conditional UPDATE whose arithmetic and comparison the database does:
--   UPDATE vouchers SET remaining = remaining - $amount
--   WHERE id = $id AND remaining >= $amount AND status = 'active' AND expires_at > $now
-- Face values are therefore capped at the largest BIGINT (and at the
-- currency's per-payment maximum).

CREATE TABLE voucher_batches (
    id TEXT PRIMARY KEY,
    livemode BOOLEAN NOT NULL,
    -- The merchant the vouchers are redeemable at; NULL: at every merchant.
    merchant_id TEXT REFERENCES merchants (id),
    currency TEXT NOT NULL,
    face_value BIGINT NOT NULL,
    voucher_count BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    description TEXT,
    created BIGINT NOT NULL
);

CREATE TABLE vouchers (
    id TEXT PRIMARY KEY,
    batch_id TEXT NOT NULL REFERENCES voucher_batches (id),
    livemode BOOLEAN NOT NULL,
    merchant_id TEXT REFERENCES merchants (id),
    code_hash TEXT NOT NULL UNIQUE,
    currency TEXT NOT NULL,
    face_value BIGINT NOT NULL,
    remaining BIGINT NOT NULL,
    -- active | used (nothing remains) | expired (the rest was released)
    status TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL
);
CREATE INDEX vouchers_by_batch ON vouchers (batch_id, id);
CREATE INDEX vouchers_to_expire ON vouchers (expires_at) WHERE status = 'active';

-- Every redemption: which payment took how much of which voucher.
CREATE TABLE voucher_redemptions (
    payment_id TEXT PRIMARY KEY REFERENCES payments (id),
    voucher_id TEXT NOT NULL REFERENCES vouchers (id),
    amount BIGINT NOT NULL,
    created BIGINT NOT NULL
);
CREATE INDEX voucher_redemptions_by_voucher ON voucher_redemptions (voucher_id, payment_id);
