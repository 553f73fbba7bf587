-- The audit log: every operator and key-management action and every
-- configuration change, written in the transaction of the change itself.
-- Append-only: the store has statements to insert and read rows, none to
-- update or delete them.
CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    -- e.g. merchant.create, api_key.revoke, webhook_endpoint.roll_secret
    action TEXT NOT NULL,
    -- operator | api_key | system (the CLI, `serve --demo`)
    actor_type TEXT NOT NULL,
    -- The operator token's or API key's id, and the first characters of its
    -- secret as listings show them; never the secret.
    actor_id TEXT,
    actor_prefix TEXT,
    source_ip TEXT,
    request_id TEXT,
    merchant_id TEXT,
    livemode BOOLEAN,
    object_type TEXT NOT NULL,
    object_id TEXT NOT NULL,
    -- The object before and after, as JSON, with secrets removed.
    before_json TEXT,
    after_json TEXT,
    created BIGINT NOT NULL
);
CREATE INDEX audit_log_by_action ON audit_log (action, id);
CREATE INDEX audit_log_by_object ON audit_log (object_id, id);
