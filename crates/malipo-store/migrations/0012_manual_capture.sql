-- Manual capture (`capture_method: "manual"`): the provider authorises a
-- payment (status `requires_capture`) and the merchant captures all or
-- part of it later, or cancels it.
--   capture_method     `automatic` (every payment before this migration) or `manual`
--   amount_capturable  what an authorisation may still capture (minor units, decimal text)
--   amount_received    what a succeeded payment received: its amount, or what a capture took
--   pending_operation  a capture (`capture:<amount>:<fee>:<at_ms>`) or cancel (`cancel:<at_ms>`)
--                      sent to the provider and not yet recorded: the recovery poll finishes it
ALTER TABLE payments ADD COLUMN capture_method TEXT NOT NULL DEFAULT 'automatic';
ALTER TABLE payments ADD COLUMN amount_capturable TEXT NOT NULL DEFAULT '0';
ALTER TABLE payments ADD COLUMN amount_received TEXT NOT NULL DEFAULT '0';
ALTER TABLE payments ADD COLUMN pending_operation TEXT;
UPDATE payments SET amount_received = amount WHERE status = 'succeeded';

-- An authorisation expires like any unfinished payment.
DROP INDEX payments_to_expire;
CREATE INDEX payments_to_expire ON payments (expires_at)
    WHERE status IN ('requires_confirmation', 'processing', 'requires_action', 'requires_capture');
