-- An optional source-address allow-list per API key: the addresses and
-- CIDR blocks (canonical text, e.g. `203.0.113.7,10.0.0.0/8`) a key is
-- accepted from, comma-separated; empty means any address.
ALTER TABLE api_keys ADD COLUMN allowed_ips TEXT NOT NULL DEFAULT '';
