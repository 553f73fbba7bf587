//! Customers and the trading venue: pairs, books (the per-book
//! serialization point and log head), the command log, snapshots, orders
//! and fills.

use crate::list::{Filter, Page};
use crate::payments::json_from_db;
use crate::payments::json_to_db;
use crate::{Conn, StoreError, corrupt, run};
use malipo_core::trading::{
    Customer, Fill, Liquidity, Order, OrderSide, OrderStatus, OrderType, PairStatus, TimeInForce,
    TradingPair,
};
use sqlx::Row;

fn number<T: std::str::FromStr>(id: &str, column: &str, text: &str) -> Result<T, StoreError> {
    text.parse()
        .map_err(|_| corrupt(format!("{id}.{column} = {text:?} is not a number")))
}

fn unsigned(id: &str, column: &str, value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| corrupt(format!("{id}.{column} is negative")))
}

fn signed(value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| corrupt(format!("{value} does not fit a BIGINT")))
}

/// A customer with its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerRecord {
    pub merchant_id: String,
    pub customer: Customer,
}

#[derive(sqlx::FromRow)]
struct CustomerRow {
    id: String,
    merchant_id: String,
    livemode: bool,
    name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    metadata: String,
    created: i64,
}

impl TryFrom<CustomerRow> for CustomerRecord {
    type Error = StoreError;
    fn try_from(row: CustomerRow) -> Result<Self, StoreError> {
        Ok(CustomerRecord {
            merchant_id: row.merchant_id,
            customer: Customer {
                object: "customer",
                livemode: row.livemode,
                name: row.name,
                email: row.email,
                phone: row.phone,
                metadata: json_from_db(&row.id, "metadata", &row.metadata)?,
                created: row.created,
                id: row.id,
            },
        })
    }
}

#[derive(sqlx::FromRow)]
struct PairRow {
    id: String,
    base: String,
    quote: String,
    tick_size: String,
    lot_size: String,
    min_notional: String,
    maker_fee_bps: i64,
    taker_fee_bps: i64,
    status: String,
    created: i64,
    updated: i64,
}

impl TryFrom<PairRow> for TradingPair {
    type Error = StoreError;
    fn try_from(row: PairRow) -> Result<Self, StoreError> {
        let id = row.id.as_str();
        Ok(TradingPair {
            object: "trading_pair",
            base: row.base,
            quote: row.quote,
            tick_size: number(id, "tick_size", &row.tick_size)?,
            lot_size: number(id, "lot_size", &row.lot_size)?,
            min_notional: number(id, "min_notional", &row.min_notional)?,
            maker_fee_bps: u16::try_from(row.maker_fee_bps)
                .map_err(|_| corrupt(format!("{id}.maker_fee_bps")))?,
            taker_fee_bps: u16::try_from(row.taker_fee_bps)
                .map_err(|_| corrupt(format!("{id}.taker_fee_bps")))?,
            status: PairStatus::parse(&row.status)
                .ok_or_else(|| corrupt(format!("{id}.status")))?,
            created: row.created,
            updated: row.updated,
            id: row.id,
        })
    }
}

/// A book's head: the last logged command and the next order number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookHead {
    pub sequence: u64,
    pub next_order_number: u64,
}

/// A book as listed (for the consistency check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookRecord {
    pub id: String,
    pub pair_id: String,
    pub livemode: bool,
    pub sequence: u64,
}

/// An order with what only the gateway sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRecord {
    pub merchant_id: String,
    pub book_id: String,
    /// The engine's order id within the book.
    pub number: u64,
    pub order: Order,
}

#[derive(sqlx::FromRow)]
struct OrderRow {
    id: String,
    book_id: String,
    number: i64,
    merchant_id: String,
    livemode: bool,
    customer_id: String,
    pair_id: String,
    side: String,
    #[sqlx(rename = "type")]
    kind: String,
    price: Option<String>,
    stop_price: Option<String>,
    quantity: String,
    filled_quantity: String,
    canceled_quantity: String,
    time_in_force: String,
    post_only: bool,
    status: String,
    hold_asset: String,
    hold_remaining: String,
    quote_filled: String,
    fees_paid: String,
    created: i64,
    updated: i64,
}

impl TryFrom<OrderRow> for OrderRecord {
    type Error = StoreError;
    fn try_from(row: OrderRow) -> Result<Self, StoreError> {
        let id = row.id.as_str();
        let order = Order {
            object: "order",
            livemode: row.livemode,
            customer: row.customer_id,
            pair: row.pair_id,
            side: OrderSide::parse(&row.side).ok_or_else(|| corrupt(format!("{id}.side")))?,
            kind: OrderType::parse(&row.kind).ok_or_else(|| corrupt(format!("{id}.type")))?,
            price: row
                .price
                .as_deref()
                .map(|text| number(id, "price", text))
                .transpose()?,
            stop_price: row
                .stop_price
                .as_deref()
                .map(|text| number(id, "stop_price", text))
                .transpose()?,
            quantity: number(id, "quantity", &row.quantity)?,
            filled_quantity: number(id, "filled_quantity", &row.filled_quantity)?,
            canceled_quantity: number(id, "canceled_quantity", &row.canceled_quantity)?,
            time_in_force: TimeInForce::parse(&row.time_in_force)
                .ok_or_else(|| corrupt(format!("{id}.time_in_force")))?,
            post_only: row.post_only,
            status: OrderStatus::parse(&row.status)
                .ok_or_else(|| corrupt(format!("{id}.status")))?,
            hold_asset: row.hold_asset,
            hold_remaining: number(id, "hold_remaining", &row.hold_remaining)?,
            quote_filled: number(id, "quote_filled", &row.quote_filled)?,
            fees_paid: number(id, "fees_paid", &row.fees_paid)?,
            created: row.created,
            updated: row.updated,
            id: row.id.clone(),
        };
        Ok(OrderRecord {
            merchant_id: row.merchant_id,
            book_id: row.book_id,
            number: unsigned(&row.id, "number", row.number)?,
            order,
        })
    }
}

/// A fill with its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FillRecord {
    pub merchant_id: String,
    pub fill: Fill,
}

#[derive(sqlx::FromRow)]
struct FillRow {
    id: String,
    merchant_id: String,
    livemode: bool,
    pair_id: String,
    order_id: String,
    customer_id: String,
    side: String,
    liquidity: String,
    price: String,
    quantity: String,
    notional: String,
    fee: String,
    sequence: i64,
    created: i64,
}

impl TryFrom<FillRow> for FillRecord {
    type Error = StoreError;
    fn try_from(row: FillRow) -> Result<Self, StoreError> {
        let id = row.id.as_str();
        let fill = Fill {
            object: "fill",
            livemode: row.livemode,
            pair: row.pair_id,
            order: row.order_id,
            customer: row.customer_id,
            side: OrderSide::parse(&row.side).ok_or_else(|| corrupt(format!("{id}.side")))?,
            liquidity: Liquidity::parse(&row.liquidity)
                .ok_or_else(|| corrupt(format!("{id}.liquidity")))?,
            price: number(id, "price", &row.price)?,
            quantity: number(id, "quantity", &row.quantity)?,
            notional: number(id, "notional", &row.notional)?,
            fee: number(id, "fee", &row.fee)?,
            sequence: unsigned(id, "sequence", row.sequence)?,
            created: row.created,
            id: row.id.clone(),
        };
        Ok(FillRecord {
            merchant_id: row.merchant_id,
            fill,
        })
    }
}

impl Conn<'_> {
    pub async fn insert_customer(&mut self, record: &CustomerRecord) -> Result<(), StoreError> {
        let customer = &record.customer;
        let metadata = json_to_db(&customer.metadata)?;
        run!(self, |c| {
            sqlx::query(
                "INSERT INTO customers (id, merchant_id, livemode, name, email, phone, metadata, created)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&customer.id)
            .bind(&record.merchant_id)
            .bind(customer.livemode)
            .bind(&customer.name)
            .bind(&customer.email)
            .bind(&customer.phone)
            .bind(&metadata)
            .bind(customer.created)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    pub async fn customers(
        &mut self,
        filters: &[Filter],
        page: &Page,
    ) -> Result<(Vec<CustomerRecord>, bool), StoreError> {
        self.list_records::<CustomerRow, _>("customers", filters, page)
            .await
    }

    /// A merchant's customer in one mode.
    pub async fn customer(
        &mut self,
        merchant_id: &str,
        livemode: bool,
        id: &str,
    ) -> Result<Option<CustomerRecord>, StoreError> {
        let row: Option<CustomerRow> = run!(self, |c| {
            sqlx::query_as(
                "SELECT * FROM customers WHERE id = $1 AND merchant_id = $2 AND livemode = $3",
            )
            .bind(id)
            .bind(merchant_id)
            .bind(livemode)
            .fetch_optional(&mut **c)
            .await
        })?;
        row.map(CustomerRecord::try_from).transpose()
    }

    /// Inserts a pair; answers false when one with this id exists.
    pub async fn insert_trading_pair(&mut self, pair: &TradingPair) -> Result<bool, StoreError> {
        let inserted = run!(self, |c| {
            sqlx::query(
                "INSERT INTO trading_pairs (id, base, quote, tick_size, lot_size, min_notional,
                     maker_fee_bps, taker_fee_bps, status, created, updated)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (id) DO NOTHING",
            )
            .bind(&pair.id)
            .bind(&pair.base)
            .bind(&pair.quote)
            .bind(pair.tick_size.to_string())
            .bind(pair.lot_size.to_string())
            .bind(pair.min_notional.to_string())
            .bind(i64::from(pair.maker_fee_bps))
            .bind(i64::from(pair.taker_fee_bps))
            .bind(pair.status.as_str())
            .bind(pair.created)
            .bind(pair.updated)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(inserted == 1)
    }

    pub async fn set_trading_pair_status(
        &mut self,
        id: &str,
        status: PairStatus,
        updated: i64,
    ) -> Result<bool, StoreError> {
        let changed = run!(self, |c| {
            sqlx::query("UPDATE trading_pairs SET status = $1, updated = $2 WHERE id = $3")
                .bind(status.as_str())
                .bind(updated)
                .bind(id)
                .execute(&mut **c)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(changed == 1)
    }

    pub async fn trading_pair(&mut self, id: &str) -> Result<Option<TradingPair>, StoreError> {
        let row: Option<PairRow> = run!(self, |c| {
            sqlx::query_as("SELECT * FROM trading_pairs WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut **c)
                .await
        })?;
        row.map(TradingPair::try_from).transpose()
    }

    /// Every pair, by id (an operator lists a handful).
    pub async fn trading_pairs(&mut self) -> Result<Vec<TradingPair>, StoreError> {
        let rows: Vec<PairRow> = run!(self, |c| {
            sqlx::query_as("SELECT * FROM trading_pairs ORDER BY id")
                .fetch_all(&mut **c)
                .await
        })?;
        rows.into_iter().map(TradingPair::try_from).collect()
    }

    /// Creates the book's row if it is missing (a no-op otherwise).
    pub async fn ensure_trading_book(
        &mut self,
        id: &str,
        pair_id: &str,
        livemode: bool,
    ) -> Result<(), StoreError> {
        run!(self, |c| {
            sqlx::query(
                "INSERT INTO trading_books (id, pair_id, livemode, sequence, next_order_number)
                 VALUES ($1, $2, $3, 0, 1) ON CONFLICT (id) DO NOTHING",
            )
            .bind(id)
            .bind(pair_id)
            .bind(livemode)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    /// The book's head, locked until commit on PostgreSQL (every command of
    /// a book is serialized on this row; SQLite has one writer).
    pub async fn trading_book_for_update(
        &mut self,
        id: &str,
    ) -> Result<Option<BookHead>, StoreError> {
        let row = run!(self, |c, postgres| {
            let sql = if postgres {
                "SELECT sequence, next_order_number FROM trading_books WHERE id = $1 FOR UPDATE"
            } else {
                "SELECT sequence, next_order_number FROM trading_books WHERE id = $1"
            };
            sqlx::query(sql)
                .bind(id)
                .fetch_optional(&mut **c)
                .await?
                .map(|row| {
                    Ok::<_, sqlx::Error>((
                        row.try_get::<i64, _>("sequence")?,
                        row.try_get::<i64, _>("next_order_number")?,
                    ))
                })
                .transpose()
        })?;
        row.map(|(sequence, next)| {
            Ok(BookHead {
                sequence: unsigned(id, "sequence", sequence)?,
                next_order_number: unsigned(id, "next_order_number", next)?,
            })
        })
        .transpose()
    }

    /// The sequence of the book's last logged command (0: none, or no book).
    pub async fn trading_book_sequence(&mut self, id: &str) -> Result<u64, StoreError> {
        let sequence = run!(self, |c| {
            sqlx::query("SELECT sequence FROM trading_books WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut **c)
                .await?
                .map(|row| row.try_get::<i64, _>("sequence"))
                .transpose()
        })?;
        unsigned(id, "sequence", sequence.unwrap_or(0))
    }

    pub async fn set_trading_book_head(
        &mut self,
        id: &str,
        head: BookHead,
    ) -> Result<(), StoreError> {
        let sequence = signed(head.sequence)?;
        let next = signed(head.next_order_number)?;
        run!(self, |c| {
            sqlx::query(
                "UPDATE trading_books SET sequence = $1, next_order_number = $2 WHERE id = $3",
            )
            .bind(sequence)
            .bind(next)
            .bind(id)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    pub async fn trading_books(&mut self) -> Result<Vec<BookRecord>, StoreError> {
        let rows = run!(self, |c| {
            sqlx::query("SELECT id, pair_id, livemode, sequence FROM trading_books ORDER BY id")
                .fetch_all(&mut **c)
                .await?
                .iter()
                .map(|row| {
                    Ok::<_, sqlx::Error>((
                        row.try_get::<String, _>("id")?,
                        row.try_get::<String, _>("pair_id")?,
                        row.try_get::<bool, _>("livemode")?,
                        row.try_get::<i64, _>("sequence")?,
                    ))
                })
                .collect::<Result<Vec<_>, _>>()
        })?;
        rows.into_iter()
            .map(|(id, pair_id, livemode, sequence)| {
                Ok(BookRecord {
                    sequence: unsigned(&id, "sequence", sequence)?,
                    id,
                    pair_id,
                    livemode,
                })
            })
            .collect()
    }

    /// Appends a command to the book's log; `node_id` names the node that
    /// ran it.
    pub async fn insert_trading_command(
        &mut self,
        book_id: &str,
        sequence: u64,
        command: &str,
        created: i64,
        node_id: &str,
    ) -> Result<(), StoreError> {
        let sequence = signed(sequence)?;
        run!(self, |c| {
            sqlx::query(
                "INSERT INTO trading_commands (book_id, sequence, command, created, node_id) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(book_id)
            .bind(sequence)
            .bind(command)
            .bind(created)
            .bind(node_id)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    /// The commands after `after` up to `up_to` (inclusive), in order.
    pub async fn trading_commands(
        &mut self,
        book_id: &str,
        after: u64,
        up_to: u64,
    ) -> Result<Vec<(u64, String)>, StoreError> {
        let after = signed(after)?;
        let up_to = signed(up_to)?;
        let rows = run!(self, |c| {
            sqlx::query(
                "SELECT sequence, command FROM trading_commands
                 WHERE book_id = $1 AND sequence > $2 AND sequence <= $3 ORDER BY sequence",
            )
            .bind(book_id)
            .bind(after)
            .bind(up_to)
            .fetch_all(&mut **c)
            .await?
            .iter()
            .map(|row| {
                Ok::<_, sqlx::Error>((
                    row.try_get::<i64, _>("sequence")?,
                    row.try_get::<String, _>("command")?,
                ))
            })
            .collect::<Result<Vec<_>, _>>()
        })?;
        rows.into_iter()
            .map(|(sequence, command)| Ok((unsigned(book_id, "sequence", sequence)?, command)))
            .collect()
    }

    /// At most `limit` commands after `after` up to `up_to` (inclusive), in
    /// order, with the Unix second each was logged: what the live feeds read.
    pub async fn trading_log(
        &mut self,
        book_id: &str,
        after: u64,
        up_to: u64,
        limit: u32,
    ) -> Result<Vec<(u64, String, i64)>, StoreError> {
        let after = signed(after)?;
        let up_to = signed(up_to)?;
        let limit = i64::from(limit);
        let rows = run!(self, |c| {
            sqlx::query(
                "SELECT sequence, command, created FROM trading_commands
                 WHERE book_id = $1 AND sequence > $2 AND sequence <= $3 ORDER BY sequence LIMIT $4",
            )
            .bind(book_id)
            .bind(after)
            .bind(up_to)
            .bind(limit)
            .fetch_all(&mut **c)
            .await?
            .iter()
            .map(|row| {
                Ok::<_, sqlx::Error>((
                    row.try_get::<i64, _>("sequence")?,
                    row.try_get::<String, _>("command")?,
                    row.try_get::<i64, _>("created")?,
                ))
            })
            .collect::<Result<Vec<_>, _>>()
        })?;
        rows.into_iter()
            .map(|(sequence, command, created)| {
                Ok((unsigned(book_id, "sequence", sequence)?, command, created))
            })
            .collect()
    }

    pub async fn insert_trading_snapshot(
        &mut self,
        book_id: &str,
        sequence: u64,
        engine: &str,
        created: i64,
    ) -> Result<(), StoreError> {
        let sequence = signed(sequence)?;
        run!(self, |c| {
            sqlx::query(
                "INSERT INTO trading_snapshots (book_id, sequence, engine, created) VALUES ($1, $2, $3, $4)",
            )
            .bind(book_id)
            .bind(sequence)
            .bind(engine)
            .bind(created)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    /// The newest snapshot at or before `at_most`, if any.
    pub async fn trading_snapshot(
        &mut self,
        book_id: &str,
        at_most: u64,
    ) -> Result<Option<(u64, String)>, StoreError> {
        let at_most = signed(at_most)?;
        let row = run!(self, |c| {
            sqlx::query(
                "SELECT sequence, engine FROM trading_snapshots
                 WHERE book_id = $1 AND sequence <= $2 ORDER BY sequence DESC LIMIT 1",
            )
            .bind(book_id)
            .bind(at_most)
            .fetch_optional(&mut **c)
            .await?
            .map(|row| {
                Ok::<_, sqlx::Error>((
                    row.try_get::<i64, _>("sequence")?,
                    row.try_get::<String, _>("engine")?,
                ))
            })
            .transpose()
        })?;
        row.map(|(sequence, engine)| Ok((unsigned(book_id, "sequence", sequence)?, engine)))
            .transpose()
    }

    /// One bounded step of the book's log retention (the worker's prune
    /// job). With `N` the newest snapshot and `S` the one before it, keeps
    /// every command after `min(N - retain_commands, S)`: all those after
    /// the newest snapshot (recovery), the last `retain_commands` before it
    /// (feed resumes), and at least all those after `S`, so that the log
    /// replayed from `S` can still be checked against `N`. Deletes at most
    /// `limit` of the older commands, oldest first (the log stays
    /// contiguous if a step is cut short), and at most `limit` snapshots
    /// older than `S`. A book with fewer than two snapshots keeps its whole
    /// log. Answers how many rows it deleted.
    pub async fn prune_trading_log(
        &mut self,
        book_id: &str,
        retain_commands: u64,
        limit: i64,
    ) -> Result<u64, StoreError> {
        // Pure DELETE statements (the bounds in subqueries, NULL while the
        // book has fewer than two snapshots): a transaction that read first
        // could not take SQLite's write lock while another node writes.
        let retain = i64::try_from(retain_commands).unwrap_or(i64::MAX);
        let commands = run!(self, |c| {
            sqlx::query(
                "DELETE FROM trading_commands WHERE book_id = $1 AND sequence IN
                 (SELECT sequence FROM trading_commands WHERE book_id = $1
                  AND sequence <= (SELECT sequence FROM trading_snapshots WHERE book_id = $1
                                   ORDER BY sequence DESC LIMIT 1 OFFSET 1)
                  AND sequence <= (SELECT MAX(sequence) FROM trading_snapshots
                                   WHERE book_id = $1) - $2
                  ORDER BY sequence LIMIT $3)",
            )
            .bind(book_id)
            .bind(retain)
            .bind(limit)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        let snapshots = run!(self, |c| {
            sqlx::query(
                "DELETE FROM trading_snapshots WHERE book_id = $1 AND sequence IN
                 (SELECT sequence FROM trading_snapshots WHERE book_id = $1
                  AND sequence < (SELECT sequence FROM trading_snapshots WHERE book_id = $1
                                  ORDER BY sequence DESC LIMIT 1 OFFSET 1)
                  ORDER BY sequence LIMIT $2)",
            )
            .bind(book_id)
            .bind(limit)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(commands + snapshots)
    }

    /// The sequence of the oldest command the book's log still holds.
    pub async fn trading_log_start(&mut self, book_id: &str) -> Result<Option<u64>, StoreError> {
        let first: Option<i64> = run!(self, |c| {
            sqlx::query_scalar("SELECT MIN(sequence) FROM trading_commands WHERE book_id = $1")
                .bind(book_id)
                .fetch_one(&mut **c)
                .await
        })?;
        first
            .map(|sequence| unsigned(book_id, "sequence", sequence))
            .transpose()
    }

    /// The oldest snapshot at or after `at_least`, if any.
    pub async fn trading_snapshot_from(
        &mut self,
        book_id: &str,
        at_least: u64,
    ) -> Result<Option<(u64, String)>, StoreError> {
        let at_least = signed(at_least)?;
        let row: Option<(i64, String)> = run!(self, |c| {
            sqlx::query_as(
                "SELECT sequence, engine FROM trading_snapshots
                 WHERE book_id = $1 AND sequence >= $2 ORDER BY sequence LIMIT 1",
            )
            .bind(book_id)
            .bind(at_least)
            .fetch_optional(&mut **c)
            .await
        })?;
        row.map(|(sequence, engine)| Ok((unsigned(book_id, "sequence", sequence)?, engine)))
            .transpose()
    }

    pub async fn insert_trading_order(&mut self, record: &OrderRecord) -> Result<(), StoreError> {
        let order = &record.order;
        let number = signed(record.number)?;
        run!(self, |c| {
            sqlx::query(
                "INSERT INTO trading_orders (id, book_id, number, merchant_id, livemode, customer_id, pair_id,
                     side, type, price, stop_price, quantity, filled_quantity, canceled_quantity,
                     time_in_force, post_only, status, hold_asset, hold_remaining, quote_filled, fees_paid,
                     created, updated)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
                     $19, $20, $21, $22, $23)",
            )
            .bind(&order.id)
            .bind(&record.book_id)
            .bind(number)
            .bind(&record.merchant_id)
            .bind(order.livemode)
            .bind(&order.customer)
            .bind(&order.pair)
            .bind(order.side.as_str())
            .bind(order.kind.as_str())
            .bind(order.price.map(|price| price.to_string()))
            .bind(order.stop_price.map(|price| price.to_string()))
            .bind(order.quantity.to_string())
            .bind(order.filled_quantity.to_string())
            .bind(order.canceled_quantity.to_string())
            .bind(order.time_in_force.as_str())
            .bind(order.post_only)
            .bind(order.status.as_str())
            .bind(&order.hold_asset)
            .bind(order.hold_remaining.to_string())
            .bind(order.quote_filled.to_string())
            .bind(order.fees_paid.to_string())
            .bind(order.created)
            .bind(order.updated)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    /// Writes back what fills and cancels change.
    pub async fn update_trading_order(&mut self, record: &OrderRecord) -> Result<(), StoreError> {
        let order = &record.order;
        run!(self, |c| {
            sqlx::query(
                "UPDATE trading_orders SET filled_quantity = $1, canceled_quantity = $2, status = $3,
                     hold_remaining = $4, quote_filled = $5, fees_paid = $6, updated = $7
                 WHERE id = $8",
            )
            .bind(order.filled_quantity.to_string())
            .bind(order.canceled_quantity.to_string())
            .bind(order.status.as_str())
            .bind(order.hold_remaining.to_string())
            .bind(order.quote_filled.to_string())
            .bind(order.fees_paid.to_string())
            .bind(order.updated)
            .bind(&order.id)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    /// The order a book knows by `number`.
    pub async fn trading_order_by_number(
        &mut self,
        book_id: &str,
        number: u64,
    ) -> Result<Option<OrderRecord>, StoreError> {
        let number = signed(number)?;
        let row: Option<OrderRow> = run!(self, |c| {
            sqlx::query_as("SELECT * FROM trading_orders WHERE book_id = $1 AND number = $2")
                .bind(book_id)
                .bind(number)
                .fetch_optional(&mut **c)
                .await
        })?;
        row.map(OrderRecord::try_from).transpose()
    }

    /// Every open order of a book (for the consistency check).
    pub async fn open_trading_orders(
        &mut self,
        book_id: &str,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        let rows: Vec<OrderRow> = run!(self, |c| {
            sqlx::query_as(
                "SELECT * FROM trading_orders WHERE book_id = $1 AND status = 'open' ORDER BY number",
            )
            .bind(book_id)
            .fetch_all(&mut **c)
            .await
        })?;
        rows.into_iter().map(OrderRecord::try_from).collect()
    }

    pub async fn trading_orders(
        &mut self,
        filters: &[Filter],
        page: &Page,
    ) -> Result<(Vec<OrderRecord>, bool), StoreError> {
        self.list_records::<OrderRow, _>("trading_orders", filters, page)
            .await
    }

    pub async fn insert_trading_fill(&mut self, record: &FillRecord) -> Result<(), StoreError> {
        let fill = &record.fill;
        let sequence = signed(fill.sequence)?;
        run!(self, |c| {
            sqlx::query(
                "INSERT INTO trading_fills (id, merchant_id, livemode, pair_id, order_id, customer_id, side,
                     liquidity, price, quantity, notional, fee, sequence, created)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            )
            .bind(&fill.id)
            .bind(&record.merchant_id)
            .bind(fill.livemode)
            .bind(&fill.pair)
            .bind(&fill.order)
            .bind(&fill.customer)
            .bind(fill.side.as_str())
            .bind(fill.liquidity.as_str())
            .bind(fill.price.to_string())
            .bind(fill.quantity.to_string())
            .bind(fill.notional.to_string())
            .bind(fill.fee.to_string())
            .bind(sequence)
            .bind(fill.created)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    pub async fn trading_fills(
        &mut self,
        filters: &[Filter],
        page: &Page,
    ) -> Result<(Vec<FillRecord>, bool), StoreError> {
        self.list_records::<FillRow, _>("trading_fills", filters, page)
            .await
    }
}
