-- A merchant has at most one sandbox connector account per mode: it is
-- created on first use, possibly by concurrent first payments.
CREATE UNIQUE INDEX connector_accounts_one_sandbox ON connector_accounts (merchant_id, livemode)
    WHERE provider = 'sandbox';
