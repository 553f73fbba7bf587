-- Withdrawals: a payout funded from a customer's available balance instead
-- of the merchant's (POST /v1/customers/{id}/withdrawals). NULL for the
-- merchant's own payouts.
ALTER TABLE payouts ADD COLUMN customer_id TEXT;
CREATE INDEX payouts_by_customer ON payouts (merchant_id, livemode, customer_id, id);
