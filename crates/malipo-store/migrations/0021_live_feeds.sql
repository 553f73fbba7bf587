-- Live feeds at GET /v1/ws (docs/trading.md, "Live feeds").

-- Short-lived credentials a merchant hands to one of its customers, so that
-- the customer's own app can open a feed of public channels and of that
-- customer's own objects. Stored like API keys: a keyed hash, never the
-- secret; the prefix recognises a token in logs.
CREATE TABLE customer_tokens (
    id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL,
    livemode BOOLEAN NOT NULL,
    customer_id TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    created BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX customer_tokens_by_expiry ON customer_tokens (expires_at);

-- The feeds' order of the event outbox: the worker numbers events when it
-- fans them out to webhook deliveries, holding the one row of
-- event_feed_head until it commits. Numbers are therefore committed in
-- order and without holes, so a feed reading "after N" never skips one
-- (event ids, made before their transaction commits, could). NULL: not
-- fanned out yet (or fanned out before this migration).
ALTER TABLE events ADD COLUMN feed_sequence BIGINT;
CREATE INDEX events_by_feed_sequence ON events (feed_sequence);
CREATE INDEX events_by_owner_feed_sequence ON events (merchant_id, livemode, feed_sequence);
CREATE TABLE event_feed_head (
    id INTEGER PRIMARY KEY,
    sequence BIGINT NOT NULL
);
INSERT INTO event_feed_head (id, sequence) VALUES (1, 0);
