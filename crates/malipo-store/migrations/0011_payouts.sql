-- Payouts: money sent from a merchant's available balance to a mobile
-- money wallet (M-Pesa B2C, MTN MoMo Disbursement, Relworx send-payment).
-- The amount is TEXT decimal digits like payments'; the ledger holds the
-- money (available -> payouts_in_transit -> the connector's clearing, or
-- back to available when it fails).
CREATE TABLE payouts (
    id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    livemode BOOLEAN NOT NULL,
    amount TEXT NOT NULL,
    currency TEXT NOT NULL,
    method TEXT NOT NULL,
    connector TEXT NOT NULL,
    -- The merchant's connector account the payout went through: its
    -- callbacks must come on it, and polls ask with it.
    account_id TEXT NOT NULL,
    status TEXT NOT NULL,
    destination TEXT NOT NULL,
    description TEXT,
    receipt TEXT,
    failure_code TEXT,
    failure_message TEXT,
    metadata TEXT NOT NULL,
    -- The provider's id for it (Daraja's ConversationID, MTN's
    -- X-Reference-Id, Relworx's internal_reference).
    provider_reference TEXT,
    started_ms BIGINT,
    next_poll_ms BIGINT,
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL
);
CREATE INDEX payouts_by_merchant ON payouts (merchant_id, livemode, id);
-- Callbacks name a payout by the provider's id, on the account it went through.
CREATE INDEX payouts_by_provider_reference ON payouts (account_id, provider_reference);
CREATE INDEX payouts_to_poll ON payouts (next_poll_ms) WHERE next_poll_ms IS NOT NULL;
