-- Malipo core schema. One file serves SQLite and PostgreSQL: both accept
-- this SQL. A later migration that must differ per backend splits the folder
-- (migrations/{sqlite,postgres}) from that version on.
--
-- Amounts are TEXT holding decimal digits, so a column carries 128-bit
-- ledger amounts on both backends; times are Unix seconds (`created`,
-- `updated`) or milliseconds (`*_ms`) as BIGINT.

CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE operator_tokens (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    created BIGINT NOT NULL,
    revoked BIGINT
);

CREATE TABLE merchants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT,
    fee_schedules TEXT NOT NULL,
    created BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    livemode BOOLEAN NOT NULL,
    name TEXT,
    prefix TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    scopes TEXT NOT NULL,
    created BIGINT NOT NULL,
    revoked BIGINT
);
CREATE INDEX api_keys_by_merchant ON api_keys (merchant_id, livemode, id);

CREATE TABLE payments (
    id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    livemode BOOLEAN NOT NULL,
    amount TEXT NOT NULL,
    currency TEXT NOT NULL,
    method TEXT NOT NULL,
    connector TEXT NOT NULL,
    status TEXT NOT NULL,
    reference TEXT,
    description TEXT,
    customer TEXT NOT NULL,
    amount_refunded TEXT NOT NULL,
    fee TEXT NOT NULL,
    fee_refunded TEXT NOT NULL,
    next_action TEXT,
    failure_code TEXT,
    failure_message TEXT,
    metadata TEXT NOT NULL,
    provider_reference TEXT,
    -- Whether pending ledger transfers hold the payment's amount (set when
    -- it starts processing; posted on success, voided otherwise).
    funds_reserved BOOLEAN NOT NULL,
    started_ms BIGINT,
    next_poll_ms BIGINT,
    expires_at BIGINT NOT NULL,
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL
);
CREATE INDEX payments_by_merchant ON payments (merchant_id, livemode, id);
CREATE INDEX payments_by_reference ON payments (merchant_id, livemode, reference);
CREATE INDEX payments_to_poll ON payments (next_poll_ms) WHERE next_poll_ms IS NOT NULL;
CREATE INDEX payments_to_expire ON payments (expires_at)
    WHERE status IN ('requires_confirmation', 'processing', 'requires_action');

CREATE TABLE refunds (
    id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    livemode BOOLEAN NOT NULL,
    payment_id TEXT NOT NULL REFERENCES payments (id),
    amount TEXT NOT NULL,
    currency TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    fee_refunded TEXT NOT NULL,
    failure_code TEXT,
    failure_message TEXT,
    metadata TEXT NOT NULL,
    provider_reference TEXT,
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL
);
CREATE INDEX refunds_by_merchant ON refunds (merchant_id, livemode, id);
CREATE INDEX refunds_by_payment ON refunds (payment_id, id);

CREATE TABLE balance_transactions (
    id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    livemode BOOLEAN NOT NULL,
    kind TEXT NOT NULL,
    amount BIGINT NOT NULL,
    fee BIGINT NOT NULL,
    net BIGINT NOT NULL,
    currency TEXT NOT NULL,
    source_id TEXT NOT NULL,
    created BIGINT NOT NULL
);
CREATE INDEX balance_transactions_by_merchant ON balance_transactions (merchant_id, livemode, id);

-- Idempotency-Key records: claimed before the work starts (so a concurrent
-- duplicate sees it in flight) and completed in the transaction of the work.
CREATE TABLE idempotency_keys (
    merchant_id TEXT NOT NULL,
    livemode BOOLEAN NOT NULL,
    idempotency_key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    locked_until_ms BIGINT NOT NULL,
    response_ok BOOLEAN,
    response_body TEXT,
    -- The object the request created before it finished (a recovery point):
    -- a retry after a crash resumes with it instead of creating another.
    object_id TEXT,
    created BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, livemode, idempotency_key)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created);

-- The outbox: every state change of a merchant's objects writes its event
-- here in the same transaction; webhook delivery reads from it.
CREATE TABLE events (
    id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL,
    livemode BOOLEAN NOT NULL,
    event_type TEXT NOT NULL,
    data TEXT NOT NULL,
    created BIGINT NOT NULL
);
CREATE INDEX events_by_merchant ON events (merchant_id, livemode, id);

-- The double-entry ledger (TigerBeetle's model).
CREATE TABLE ledger_accounts (
    id TEXT PRIMARY KEY,
    asset TEXT NOT NULL,
    debits_must_not_exceed_credits BOOLEAN NOT NULL,
    credits_must_not_exceed_debits BOOLEAN NOT NULL,
    debits_pending TEXT NOT NULL,
    debits_posted TEXT NOT NULL,
    credits_pending TEXT NOT NULL,
    credits_posted TEXT NOT NULL,
    created BIGINT NOT NULL
);

CREATE TABLE ledger_transfers (
    id TEXT PRIMARY KEY,
    debit_account_id TEXT NOT NULL REFERENCES ledger_accounts (id),
    credit_account_id TEXT NOT NULL REFERENCES ledger_accounts (id),
    amount TEXT NOT NULL,
    asset TEXT NOT NULL,
    kind TEXT NOT NULL,
    pending_id TEXT,
    pending_status TEXT,
    code TEXT NOT NULL,
    source_id TEXT,
    created_ms BIGINT NOT NULL
);
CREATE INDEX ledger_transfers_by_debit ON ledger_transfers (debit_account_id);
CREATE INDEX ledger_transfers_by_credit ON ledger_transfers (credit_account_id);
