-- Bank transfers with manual verification (`method: "bank_transfer"`).
--
-- bank_accounts: where a merchant receives bank transfers (non-secret
-- instructions shown to payers), one or more per merchant, mode and
-- currency; the newest active one is used. `configured_by` is the actor id
-- (operator token or API key) that configured it, for the four-eyes rule.
CREATE TABLE bank_accounts (
    id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    livemode BOOLEAN NOT NULL,
    currency TEXT NOT NULL,
    bank_name TEXT NOT NULL,
    account_name TEXT NOT NULL,
    account_number TEXT NOT NULL,
    branch TEXT,
    swift TEXT,
    configured_by_type TEXT NOT NULL,
    configured_by TEXT,
    created BIGINT NOT NULL
);
CREATE INDEX bank_accounts_by_merchant ON bank_accounts (merchant_id, livemode, currency, id);

-- One deposit per bank transfer payment: the reference the payer quotes
-- (unique), and once an operator confirms it, the bank's own reference
-- (unique: one bank transaction confirms at most one deposit).
-- status: pending | confirmed | expired.
CREATE TABLE bank_deposits (
    id TEXT PRIMARY KEY,
    payment_id TEXT NOT NULL UNIQUE REFERENCES payments (id),
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    livemode BOOLEAN NOT NULL,
    bank_account_id TEXT NOT NULL REFERENCES bank_accounts (id),
    reference TEXT NOT NULL UNIQUE,
    amount BIGINT NOT NULL,
    currency TEXT NOT NULL,
    status TEXT NOT NULL,
    amount_received BIGINT,
    bank_reference TEXT UNIQUE,
    confirmed_by TEXT,
    confirmed_at BIGINT,
    statement_id TEXT,
    expires_at BIGINT NOT NULL,
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL
);
CREATE INDEX bank_deposits_by_status ON bank_deposits (status, id);

-- Uploaded bank statements with their matching result (JSON, the object
-- as answered), confirmed at most once.
CREATE TABLE bank_statements (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    body TEXT NOT NULL,
    uploaded_by TEXT,
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL
);
