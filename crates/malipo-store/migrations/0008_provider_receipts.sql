-- The provider's receipt for the money a payment received (an M-Pesa
-- receipt or C2B TransID, Airtel's airtel_money_id): what a reversal
-- names, and what makes a C2B confirmation count once. NULLs are distinct
-- in a unique index on both backends.
ALTER TABLE payments ADD COLUMN provider_receipt TEXT;
CREATE UNIQUE INDEX payments_by_provider_receipt ON payments (connector, provider_receipt);

-- A refund's result comes by callback naming the provider's reference
-- (an M-Pesa reversal's ConversationID).
CREATE INDEX refunds_by_provider_reference ON refunds (provider_reference);
