-- Book ownership (docs/trading.md, "Several nodes"): the node that owns a
-- book runs its commands; the others forward them to `node_url`. A lease
-- is live while `expires_ms` (Unix ms) is in the future; its node renews
-- it, and any node may take an expired one. The book's row lock stays the
-- correctness guard: a lease only routes.
CREATE TABLE trading_book_leases (
    book_id TEXT PRIMARY KEY,
    node_id TEXT NOT NULL,
    node_url TEXT NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE INDEX trading_book_leases_by_node ON trading_book_leases (node_id);

-- The node that ran each command (NULL before this migration).
ALTER TABLE trading_commands ADD COLUMN node_id TEXT;
