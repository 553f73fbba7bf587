-- Incoming provider callbacks: the merchant's connector accounts (each with
-- its own callback URL and secret), every inbound request kept for audit,
-- and the event keys already processed (replay protection).

CREATE TABLE connector_accounts (
    id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    livemode BOOLEAN NOT NULL,
    provider TEXT NOT NULL,
    name TEXT,
    -- The secret the provider signs callbacks with (or sends as a header).
    webhook_secret TEXT,
    -- Comma-separated addresses and CIDR blocks; empty allows any source.
    ip_allowlist TEXT NOT NULL,
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL
);
CREATE INDEX connector_accounts_by_merchant ON connector_accounts (merchant_id, livemode, id);

CREATE TABLE inbound_webhooks (
    id TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    account_id TEXT,
    merchant_id TEXT,
    livemode BOOLEAN,
    source_ip TEXT NOT NULL,
    method TEXT NOT NULL,
    -- JSON array of [name, value] with secrets redacted.
    headers TEXT NOT NULL,
    body TEXT NOT NULL,
    -- verified | unsigned | bad_signature | … | rate_limited | ip_refused | unknown_provider | unknown_account | replayed
    verdict TEXT NOT NULL,
    -- The check that decided: provider, source_ip, rate_limit, signature, timestamp, replay.
    decided_by TEXT NOT NULL,
    event_key TEXT,
    -- processed | duplicate | unmatched | ignored | rejected | error
    outcome TEXT NOT NULL,
    outcome_detail TEXT,
    latency_ms BIGINT NOT NULL,
    created BIGINT NOT NULL
);
CREATE INDEX inbound_webhooks_by_provider ON inbound_webhooks (provider, id);
CREATE INDEX inbound_webhooks_by_created ON inbound_webhooks (created);

CREATE TABLE inbound_event_keys (
    provider TEXT NOT NULL,
    account_id TEXT NOT NULL,
    event_key TEXT NOT NULL,
    inbound_id TEXT NOT NULL,
    created BIGINT NOT NULL,
    PRIMARY KEY (provider, account_id, event_key)
);
