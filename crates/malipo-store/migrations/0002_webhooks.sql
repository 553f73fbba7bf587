-- Outgoing webhooks: endpoints, one delivery per (event, endpoint), and every
-- attempt. Events are fanned out to deliveries by the worker, which claims
-- undispatched events (so the payment path writes only the event itself).

ALTER TABLE events ADD COLUMN dispatched BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX events_to_dispatch ON events (id) WHERE dispatched = FALSE;
CREATE INDEX events_by_type ON events (merchant_id, livemode, event_type, id);

CREATE TABLE webhook_endpoints (
    id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    livemode BOOLEAN NOT NULL,
    url TEXT NOT NULL,
    description TEXT,
    -- JSON array of event types; ["*"] means all.
    enabled_events TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    secret TEXT NOT NULL,
    -- After a roll, the old secret keeps signing until it expires.
    previous_secret TEXT,
    previous_secret_expires_at BIGINT,
    -- Set at the first failure after a success; cleared by a success.
    failing_since BIGINT,
    disabled_reason TEXT,
    deleted BOOLEAN NOT NULL,
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL
);
CREATE INDEX webhook_endpoints_by_merchant ON webhook_endpoints (merchant_id, livemode, id);

CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    event_id TEXT NOT NULL REFERENCES events (id),
    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints (id),
    merchant_id TEXT NOT NULL,
    livemode BOOLEAN NOT NULL,
    -- pending | succeeded | failed
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_ms BIGINT,
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_ms) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_by_event ON webhook_deliveries (event_id);

CREATE TABLE webhook_attempts (
    id TEXT PRIMARY KEY,
    delivery_id TEXT NOT NULL REFERENCES webhook_deliveries (id),
    event_id TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    merchant_id TEXT NOT NULL,
    livemode BOOLEAN NOT NULL,
    url TEXT NOT NULL,
    http_status BIGINT,
    latency_ms BIGINT NOT NULL,
    -- The first bytes of the response body.
    response_excerpt TEXT,
    error TEXT,
    created BIGINT NOT NULL
);
CREATE INDEX webhook_attempts_by_endpoint ON webhook_attempts (endpoint_id, id);
CREATE INDEX webhook_attempts_by_event ON webhook_attempts (event_id, id);
