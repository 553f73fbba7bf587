-- Customers (a merchant's end users, who hold asset balances in the
-- ledger) and the trading venue: pairs, one order book per pair and mode,
-- the durable command log every book is rebuilt from, snapshots that bound
-- the replay, orders and fills. Amounts, prices and quantities are TEXT
-- decimal digits (u64 / u128), like the ledger's.

CREATE TABLE customers (
    id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    livemode BOOLEAN NOT NULL,
    name TEXT,
    email TEXT,
    phone TEXT,
    metadata TEXT NOT NULL,
    created BIGINT NOT NULL
);
CREATE INDEX customers_by_merchant ON customers (merchant_id, livemode, id);

-- A payment that credits its net amount to a customer's balance when it
-- succeeds (`customer_id` + `credit_customer: true`).
ALTER TABLE payments ADD COLUMN credit_customer_id TEXT;

-- Pairs are the operator's, shared by both modes; each mode has its own
-- book (test money never meets live money).
CREATE TABLE trading_pairs (
    id TEXT PRIMARY KEY,
    base TEXT NOT NULL,
    quote TEXT NOT NULL,
    tick_size TEXT NOT NULL,
    lot_size TEXT NOT NULL,
    min_notional TEXT NOT NULL,
    maker_fee_bps BIGINT NOT NULL,
    taker_fee_bps BIGINT NOT NULL,
    status TEXT NOT NULL,
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL
);

-- One row per (pair, mode): the serialization point of the book's commands
-- (locked FOR UPDATE on PostgreSQL; SQLite has one writer), the sequence of
-- the last logged command, and the next engine order number.
CREATE TABLE trading_books (
    id TEXT PRIMARY KEY,
    pair_id TEXT NOT NULL REFERENCES trading_pairs (id),
    livemode BOOLEAN NOT NULL,
    sequence BIGINT NOT NULL,
    next_order_number BIGINT NOT NULL
);

-- Every command a book accepted, in order, written in the transaction that
-- settles it and before it is acknowledged. Replaying it rebuilds the book.
CREATE TABLE trading_commands (
    book_id TEXT NOT NULL REFERENCES trading_books (id),
    sequence BIGINT NOT NULL,
    command TEXT NOT NULL,
    created BIGINT NOT NULL,
    PRIMARY KEY (book_id, sequence)
);

-- The serialized engine after command `sequence`.
CREATE TABLE trading_snapshots (
    book_id TEXT NOT NULL REFERENCES trading_books (id),
    sequence BIGINT NOT NULL,
    engine TEXT NOT NULL,
    created BIGINT NOT NULL,
    PRIMARY KEY (book_id, sequence)
);

CREATE TABLE trading_orders (
    id TEXT PRIMARY KEY,
    book_id TEXT NOT NULL REFERENCES trading_books (id),
    -- The engine's order id within the book.
    number BIGINT NOT NULL,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    livemode BOOLEAN NOT NULL,
    customer_id TEXT NOT NULL REFERENCES customers (id),
    pair_id TEXT NOT NULL,
    side TEXT NOT NULL,
    type TEXT NOT NULL,
    price TEXT,
    stop_price TEXT,
    quantity TEXT NOT NULL,
    filled_quantity TEXT NOT NULL,
    canceled_quantity TEXT NOT NULL,
    time_in_force TEXT NOT NULL,
    post_only BOOLEAN NOT NULL,
    status TEXT NOT NULL,
    -- What the ledger holds for the order's open part (`held` account).
    hold_asset TEXT NOT NULL,
    hold_remaining TEXT NOT NULL,
    quote_filled TEXT NOT NULL,
    fees_paid TEXT NOT NULL,
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL,
    UNIQUE (book_id, number)
);
CREATE INDEX trading_orders_by_merchant ON trading_orders (merchant_id, livemode, id);
CREATE INDEX trading_orders_open ON trading_orders (book_id, status);

-- One row per side of a trade, owned by that side's merchant.
CREATE TABLE trading_fills (
    id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    livemode BOOLEAN NOT NULL,
    pair_id TEXT NOT NULL,
    order_id TEXT NOT NULL REFERENCES trading_orders (id),
    customer_id TEXT NOT NULL,
    side TEXT NOT NULL,
    liquidity TEXT NOT NULL,
    price TEXT NOT NULL,
    quantity TEXT NOT NULL,
    notional TEXT NOT NULL,
    fee TEXT NOT NULL,
    sequence BIGINT NOT NULL,
    created BIGINT NOT NULL
);
CREATE INDEX trading_fills_by_merchant ON trading_fills (merchant_id, livemode, id);
