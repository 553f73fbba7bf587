-- Provider API credentials of a connector account, encrypted by the gateway
-- (AES-256-GCM under the master key) before they reach the database.
ALTER TABLE connector_accounts ADD COLUMN credentials_encrypted TEXT;
