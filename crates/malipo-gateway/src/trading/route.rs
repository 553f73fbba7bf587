//! Order books as router venues (the router itself is `pools.rs`'s
//! `quote_route` / `execute_route` over `malipo-amm`).
//!
//! A book joins the router as a [`malipo_amm::Book`]: a snapshot of its
//! best resting orders (at most [`BOOK_ORDERS_PER_SIDE_MAX`] per side) from
//! this node's engine after catching up with the log. A quote reads it
//! without locking anything; an execution holds the book for the whole
//! route:
//!
//! 1. [`Gateway::lock_route_books`]: every active book of the mode, locked on
//!    this node in id order, before the transaction begins (as a single
//!    command does: a node lock is never awaited while holding the SQLite
//!    writer).
//! 2. [`Gateway::open_route_books`]: in the route's transaction, each book's
//!    row `FOR UPDATE` in id order (then the pools', in id order: books
//!    before pools, so routes never deadlock on PostgreSQL), each engine
//!    caught up and copied.
//! 3. [`RouteBook::take`]: a book leg is the customer's market IOC order of
//!    the quantity the snapshot quoted, run on the copy and settled in the
//!    ledger like any order (hold, fills, release, order and fill rows,
//!    events), so its fills are exactly the quote's.
//! 4. [`RouteBook::log`] appends the order to the book's command log in the
//!    same transaction; [`RouteBook::keep`] keeps the new engine only after
//!    the commit. A route refused at any point (its minimum, a balance)
//!    rolls everything back and the engines stay as they were.
//!
//! The snapshot an execution quotes stops before the customer's own first
//! resting order on each side: self-trade prevention (cancel-taker) would
//! stop the order there.

use super::{BookState, NewOrderRequest, Settlement, catch_up, internal, owner_of, reject_error};
use crate::{ApiError, ErrorKind, Gateway, GatewayError, GatewayResult};
use malipo_amm::{BOOK_ORDERS_PER_SIDE_MAX, Book, NewBook, RestingOrder, Venue, VenueId};
use malipo_core::Asset;
use malipo_core::trading::{Order, OrderSide, OrderType, PairStatus, TimeInForce, TradingPair};
use malipo_matching::{Command, Engine, OwnerId, Side};
use malipo_store::{BookHead, Conn, OrderRecord};
use std::sync::Arc;

/// A book locked on this node for a route, before its transaction.
pub(crate) struct LockedBook {
    pair: TradingPair,
    livemode: bool,
    book_id: String,
    state: tokio::sync::OwnedMutexGuard<BookState>,
}

/// A book a route holds: its node lock, its row's head (locked in the
/// route's transaction) and a copy of its engine that the route's order
/// changes.
pub(crate) struct RouteBook {
    pair: TradingPair,
    book_id: String,
    state: tokio::sync::OwnedMutexGuard<BookState>,
    head: BookHead,
    engine: Engine,
    /// The order the route placed here (a route uses a venue once).
    command: Option<Command>,
}

/// What a book leg did.
pub(crate) struct BookLeg {
    pub(crate) order: Order,
    /// Of the input offered: spent on fills and fees.
    pub(crate) spent: u128,
    pub(crate) got: u128,
}

fn asset(pair: &TradingPair, code: &str) -> GatewayResult<Asset> {
    Asset::parse(code)
        .map_err(|_| internal(format!("pair {} has an unknown asset {code}", pair.id)))
}

/// The router's venue of a book: its best resting orders per side, up to
/// (not including) the first one of `excluded`.
fn snapshot(pair: &TradingPair, engine: &Engine, excluded: Option<OwnerId>) -> GatewayResult<Book> {
    let side = |side| -> Vec<RestingOrder> {
        engine
            .resting_in_priority(side)
            .take_while(|order| Some(order.owner) != excluded)
            .take(BOOK_ORDERS_PER_SIDE_MAX)
            .filter_map(|order| {
                Some(RestingOrder {
                    price: order.price?,
                    quantity: order.quantity,
                })
            })
            .collect()
    };
    Book::new(NewBook {
        id: VenueId(pair.id.clone()),
        base: asset(pair, &pair.base)?,
        quote: asset(pair, &pair.quote)?,
        tick_size: pair.tick_size,
        lot_size: pair.lot_size,
        taker_fee_bps: pair.taker_fee_bps,
        bids: side(Side::Buy),
        asks: side(Side::Sell),
    })
    .map_err(|error| internal(format!("book of {} as a venue: {error}", pair.id)))
}

/// A refusal of a route's order as the route answers it: the customer's
/// balance is about the route's input, not an order quantity.
fn as_route_error(error: GatewayError) -> GatewayError {
    match error {
        GatewayError::Api(mut api) if api.code == "balance_insufficient" => {
            api.message = "the customer's available balance cannot pay for this route".into();
            api.param = Some("amount_in".into());
            GatewayError::Api(api)
        }
        other => other,
    }
}

impl Gateway {
    async fn active_pairs(&self) -> GatewayResult<Vec<TradingPair>> {
        let mut reader = self.store().reader().await?;
        let mut pairs = reader.conn().trading_pairs().await?;
        pairs.retain(|pair| pair.status == PairStatus::Active);
        Ok(pairs)
    }

    /// The mode's active books as router venues, from this node's engines
    /// caught up with the log; locks no row (a quote moves nothing).
    pub(crate) async fn book_venues(&self, livemode: bool) -> GatewayResult<Vec<Venue>> {
        let mut venues = Vec::new();
        for pair in self.active_pairs().await? {
            let book_id = super::book_id(&pair.id, livemode);
            let book = self.venue().book(&book_id);
            let mut state = book.lock().await;
            let mut reader = self.store().reader().await?;
            let mut conn = reader.conn();
            let sequence = conn.trading_book_sequence(&book_id).await?;
            catch_up(&mut conn, &mut state, &book_id, &pair, sequence).await?;
            let engine = state.engine.as_ref().ok_or_else(|| internal("no engine"))?;
            venues.push(Venue::Book(snapshot(&pair, engine, None)?));
        }
        Ok(venues)
    }

    /// Step 1 (see the module docs): every active book of the mode, locked
    /// on this node in id order.
    pub(crate) async fn lock_route_books(&self, livemode: bool) -> GatewayResult<Vec<LockedBook>> {
        let mut pairs = self.active_pairs().await?;
        pairs.sort_by(|a, b| a.id.cmp(&b.id));
        let mut locked = Vec::with_capacity(pairs.len());
        for pair in pairs {
            let book_id = super::book_id(&pair.id, livemode);
            let book: Arc<_> = self.venue().book(&book_id);
            let state = book.lock_owned().await;
            locked.push(LockedBook {
                pair,
                livemode,
                book_id,
                state,
            });
        }
        Ok(locked)
    }

    /// Step 2: the books' rows in the route's transaction, in id order,
    /// each engine caught up and copied.
    pub(crate) async fn open_route_books(
        &self,
        conn: &mut Conn<'_>,
        locked: Vec<LockedBook>,
    ) -> GatewayResult<Vec<RouteBook>> {
        let mut books = Vec::with_capacity(locked.len());
        for LockedBook {
            pair,
            livemode,
            book_id,
            mut state,
        } in locked
        {
            conn.ensure_trading_book(&book_id, &pair.id, livemode)
                .await?;
            let head = conn
                .trading_book_for_update(&book_id)
                .await?
                .ok_or_else(|| internal(format!("book {book_id} vanished")))?;
            catch_up(conn, &mut state, &book_id, &pair, head.sequence).await?;
            let engine = state.engine.clone().ok_or_else(|| internal("no engine"))?;
            books.push(RouteBook {
                pair,
                book_id,
                state,
                head,
                engine,
                command: None,
            });
        }
        Ok(books)
    }
}

impl RouteBook {
    pub(crate) fn pair_id(&self) -> &str {
        &self.pair.id
    }

    /// The venue the route quotes for `customer`: up to its own first
    /// resting order on each side.
    pub(crate) fn venue_for(&self, customer: &str) -> GatewayResult<Venue> {
        Ok(Venue::Book(snapshot(
            &self.pair,
            &self.engine,
            Some(owner_of(customer)),
        )?))
    }

    /// Step 3: offers `amount` of `asset_in` as the customer's market IOC
    /// order of the quantity the snapshot quotes, settled in the caller's
    /// transaction.
    pub(crate) async fn take(
        &mut self,
        conn: &mut Conn<'_>,
        merchant_id: &str,
        livemode: bool,
        customer: &str,
        asset_in: Asset,
        amount: u128,
    ) -> GatewayResult<BookLeg> {
        if self.command.is_some() {
            return Err(internal("a route used one book twice"));
        }
        let trade = snapshot(&self.pair, &self.engine, Some(owner_of(customer)))?
            .quote_exact_in(asset_in, amount)
            .map_err(|error| {
                ApiError::new(
                    ErrorKind::InvalidRequest,
                    "insufficient_liquidity",
                    format!("the book of {} cannot take this: {error}", self.pair.id),
                )
                .with_param("amount_in")
            })?;
        let side = if asset_in.code() == self.pair.base {
            OrderSide::Sell
        } else {
            OrderSide::Buy
        };
        let request = NewOrderRequest {
            customer: customer.to_owned(),
            pair: self.pair.id.clone(),
            side,
            kind: OrderType::Market,
            price: None,
            stop_price: None,
            quantity: trade.quantity,
            time_in_force: TimeInForce::Ioc,
            post_only: false,
        };
        let number = self.head.next_order_number;
        let command = Command::Place(request.engine_order(number));
        let events = self.engine.apply(&command).map_err(reject_error)?;
        let record = OrderRecord {
            merchant_id: merchant_id.to_owned(),
            book_id: self.book_id.clone(),
            number,
            order: request.order(&self.pair, livemode, customer)?,
        };
        conn.insert_trading_order(&record).await?;
        let mut settlement =
            Settlement::new(&self.pair, livemode, &self.book_id, self.head.sequence + 1);
        settlement.hold(&record.order);
        settlement.orders.insert(number, record);
        settlement.apply(conn, &events).await?;
        settlement.write(conn).await.map_err(as_route_error)?;
        let order = settlement
            .orders
            .get(&number)
            .map(|record| record.order.clone())
            .ok_or_else(|| internal("the route's order vanished"))?;
        let (spent, got) = match side {
            OrderSide::Buy => (
                order.quote_filled + order.fees_paid,
                u128::from(order.filled_quantity),
            ),
            OrderSide::Sell => (
                u128::from(order.filled_quantity),
                order
                    .quote_filled
                    .checked_sub(order.fees_paid)
                    .ok_or_else(|| internal("a sell paid more fees than it sold"))?,
            ),
        };
        self.command = Some(command);
        Ok(BookLeg { order, spent, got })
    }

    /// Step 4: logs the route's order, if it placed one, in the route's
    /// transaction; answers the command's sequence.
    pub(crate) async fn log(
        &self,
        gateway: &Gateway,
        conn: &mut Conn<'_>,
    ) -> GatewayResult<Option<u64>> {
        let Some(command) = &self.command else {
            return Ok(None);
        };
        let sequence = gateway
            .log_command(
                conn,
                &self.book_id,
                &self.head,
                command,
                &self.engine,
                self.head.next_order_number + 1,
            )
            .await?;
        Ok(Some(sequence))
    }

    /// After the commit: this node keeps the engine the route changed.
    pub(crate) fn keep(self, gateway: &Gateway, sequence: Option<u64>) {
        let RouteBook {
            mut state,
            engine,
            book_id,
            ..
        } = self;
        if let Some(sequence) = sequence {
            gateway.keep_engine(&mut state, engine, sequence, &book_id);
        }
    }
}
