-- AMM liquidity pools (constant product, `malipo-amm`). The operator lists
-- a pool (two assets, a fee); each mode has its own row, so test money
-- never meets live money. The row holds the pool's state (reserves, shares
-- outstanding) and is the serialization point of its operations (locked
-- FOR UPDATE on PostgreSQL; SQLite has one writer). The ledger holds the
-- same numbers in the pool's accounts; `malipo trading check` proves they
-- agree. Amounts are TEXT decimal digits (u128), like the ledger's.
CREATE TABLE trading_pools (
    id TEXT NOT NULL,
    livemode BOOLEAN NOT NULL,
    -- The two assets in canonical order (by code).
    asset_a TEXT NOT NULL,
    asset_b TEXT NOT NULL,
    fee_bps BIGINT NOT NULL,
    status TEXT NOT NULL,
    reserve_a TEXT NOT NULL,
    reserve_b TEXT NOT NULL,
    -- Shares outstanding, the locked minimum included (0: no liquidity yet).
    shares_total TEXT NOT NULL,
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL,
    PRIMARY KEY (id, livemode)
);
