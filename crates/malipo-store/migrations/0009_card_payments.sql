-- Card payments: where a provider's hosted page sends the customer back to
-- (the merchant's `return_url`), and the provider's token for the card when
-- the merchant collected it with the provider's own library (Stripe's
-- `pm_…`; never a card number). Kept so a payment confirmed later has them.
ALTER TABLE payments ADD COLUMN return_url TEXT;
ALTER TABLE payments ADD COLUMN payment_method TEXT;
