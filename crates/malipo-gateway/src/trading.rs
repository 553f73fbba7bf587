//! The trading venue over the ledger: pairs, orders, fills, the durable
//! command log and the consistency check.
//!
//! # One book per pair and mode
//!
//! Pairs are the operator's; each mode has its own book, so test money never
//! meets live money. A book is a [`malipo_matching::Engine`] in memory,
//! rebuilt from the `trading_commands` log (from the newest snapshot, taken
//! every `trading_snapshot_every_commands` commands, then the commands after
//! it).
//!
//! # A command, step by step
//!
//! 1. Lock the book in this process (a `tokio` mutex), then its row in
//!    `trading_books` (`FOR UPDATE` on PostgreSQL; SQLite has one writer).
//!    Every node runs each book's commands one at a time through that row.
//!    (Which node runs them is [`crate::ownership`]'s business: one owner
//!    per book, the others forward; the row lock is what keeps any node
//!    correct.)
//! 2. If this node's engine is behind the row's sequence (another node ran
//!    commands, or this node just started), replay the log up to it.
//! 3. Apply the command to a clone of the engine. A refusal changes nothing.
//! 4. Settle the events in the same transaction: the order's hold, every
//!    fill as transfers (base seller -> buyer, quote buyer -> seller, fees to
//!    the venue's fee account), releases of what cancelled and finished
//!    orders no longer need; order and fill rows.
//! 5. Append the command to the log (sequence + 1), with a snapshot every
//!    N commands, and commit. Only then does the node keep the new engine;
//!    a failure (e.g. the ledger refusing an unfunded market buy) rolls
//!    everything back and the engine is as before.
//!
//! # What an order holds
//!
//! A sell holds its open quantity of base. A limit (or stop-limit) buy holds
//! `notional(price, open) + fee(notional, max(maker, taker) bps)` of quote;
//! each fill pays its notional and fee out of the hold and releases what the
//! smaller open quantity no longer needs, so an open buy's hold is always
//! exactly that formula of its open quantity. Fees round up per fill, so a
//! fill may ask one minor unit more than the formula reserved: the venue
//! charges at most what the hold allows (never more than the pair's fee). A
//! market buy holds nothing: it never rests, and its fills are paid from the
//! available balance in the same transaction (an unfunded one is refused
//! and moves nothing). A buy `stop` (market when triggered) would have no
//! price to hold against, so it is refused: use `stop_limit`.

use crate::auth::{Actor, AuditChange, MerchantContext, audit_state};
use crate::customers::customer_of;
use crate::idempotency::{IdempotencyGuard, complete};
use crate::payments::{created_filters, emit, owner_filters};
use crate::{ApiError, ErrorKind, Gateway, GatewayError, GatewayResult, ledger_entries, now_ms};
use malipo_core::Asset;
use malipo_core::id::{IdKind, looks_like, new_id};
use malipo_core::objects::{List, Scope};
use malipo_core::trading::{
    BookLevel, Fill, Liquidity, Order, OrderBook, OrderSide, OrderStatus, OrderType, PairStatus,
    TimeInForce, TradingPair,
};
use malipo_ledger::{Account, TransferError, TransferKind, TransferRequest};
use malipo_matching::fee::{fee, notional};
use malipo_matching::{
    Command, Engine, Event, NewOrder, OrderId, OrderKind, OwnerId, PairConfig, RejectReason,
    SelfTradePrevention, Side,
};
use malipo_store::{BookHead, Conn, FillRecord, Filter, OrderRecord, Page, StoreError, Tx};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

mod route;

/// The most open orders (resting and stop) one book holds.
pub const OPEN_ORDERS_PER_BOOK_MAX: usize = 1_000_000;
/// Depth levels per side a book read answers by default, and at most.
pub const BOOK_DEPTH_DEFAULT: u32 = 20;
pub const BOOK_DEPTH_MAX: u32 = 100;
/// Default: a snapshot every this many commands bounds a replay.
pub const SNAPSHOT_EVERY_COMMANDS_DEFAULT: u64 = 1_000;

/// `POST /v1/admin/trading/pairs`
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"base": "btc", "quote": "usd", "tick_size": 1, "lot_size": 1000,
    "min_notional": 100, "maker_fee_bps": 10, "taker_fee_bps": 20}))]
pub struct CreatePair {
    /// The asset bought and sold, e.g. `btc`.
    pub base: Option<String>,
    /// The asset prices are in, e.g. `usd`.
    pub quote: Option<String>,
    /// Prices (quote minor units per lot) are multiples of it; > 0.
    pub tick_size: Option<u64>,
    /// Quantities (base minor units) are multiples of it; > 0.
    pub lot_size: Option<u64>,
    /// The smallest notional of a limit order (quote minor units); default 0.
    pub min_notional: Option<u64>,
    /// At most 10,000; default 0.
    pub maker_fee_bps: Option<u64>,
    /// At most 10,000; default 0.
    pub taker_fee_bps: Option<u64>,
    /// `active` (default) or `halted`.
    pub status: Option<String>,
}

/// `POST /v1/admin/trading/pairs/{id}`
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePair {
    /// `active` or `halted` (a halted pair refuses new orders, takes cancels).
    pub status: Option<String>,
}

/// `POST /v1/trading/orders`
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"customer": "cus_01J...", "pair": "btc_usd", "side": "buy", "type": "limit",
    "price": 5000000, "quantity": 100000, "time_in_force": "GTC"}))]
pub struct CreateOrder {
    /// The customer (`cus_…`) whose balance pays.
    pub customer: Option<String>,
    /// The pair's id, e.g. `btc_usd`.
    pub pair: Option<String>,
    /// `buy` or `sell`.
    pub side: Option<String>,
    /// `limit`, `market`, `stop` (sell only) or `stop_limit`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Limit price for `limit` and `stop_limit`: quote minor units per
    /// `lot_size` of base, a multiple of `tick_size`.
    pub price: Option<u64>,
    /// Trigger for `stop` and `stop_limit`: the last trade price at which
    /// the order enters the book.
    pub stop_price: Option<u64>,
    /// Base minor units, a multiple of `lot_size`.
    pub quantity: Option<u64>,
    /// `GTC` (default), `IOC` or `FOK`.
    pub time_in_force: Option<String>,
    /// Refused instead of trading on entry (GTC limit orders only).
    pub post_only: Option<bool>,
}

/// `GET /v1/trading/orders` filters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
pub struct OrderFilters {
    pub customer: Option<String>,
    pub pair: Option<String>,
    /// `open`, `filled`, `canceled` or `rejected`.
    pub status: Option<String>,
    /// `buy` or `sell`.
    pub side: Option<String>,
    /// Created at or after (Unix seconds).
    #[serde(rename = "created[gte]")]
    #[param(rename = "created[gte]")]
    pub created_gte: Option<i64>,
    /// Created at or before (Unix seconds).
    #[serde(rename = "created[lte]")]
    #[param(rename = "created[lte]")]
    pub created_lte: Option<i64>,
}

/// `GET /v1/trading/fills` filters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
pub struct FillFilters {
    pub order: Option<String>,
    pub customer: Option<String>,
    pub pair: Option<String>,
}

/// `GET /v1/trading/books/{pair}` parameters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
pub struct BookParams {
    /// Price levels per side, 1 to 100 (default 20).
    pub depth: Option<u32>,
}

/// What `malipo trading check` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TradingCheckReport {
    pub ok: bool,
    pub books: usize,
    pub open_orders: usize,
    pub customer_accounts: usize,
    /// Liquidity pool rows (one per pool and mode) proved equal to their
    /// ledger accounts.
    pub pools: usize,
    /// Pending desk buys, whose holds on the desk reserves were proved
    /// equal to the reserves' pending debits.
    pub desk_trades_pending: usize,
    /// Each disagreement, in words; empty when `ok`.
    pub problems: Vec<String>,
}

/// The books this node holds in memory, by book id.
#[derive(Debug, Default)]
pub(crate) struct Venue {
    books: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<BookState>>>>,
}

#[derive(Debug, Default)]
pub(crate) struct BookState {
    /// `None` until first used on this node.
    pub(crate) engine: Option<Engine>,
    /// The last command applied to `engine`.
    pub(crate) sequence: u64,
}

impl Venue {
    fn book(&self, id: &str) -> Arc<tokio::sync::Mutex<BookState>> {
        // A poisoned map only means another thread panicked while inserting.
        let mut books = self
            .books
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        books.entry(id.to_owned()).or_default().clone()
    }
}

pub(crate) fn book_id(pair_id: &str, livemode: bool) -> String {
    format!(
        "{pair_id}/{}",
        malipo_core::Mode::from_livemode(livemode).as_str()
    )
}

/// The engine's owner id of a customer: FNV-1a (64 bits) of its id. Owners
/// only matter to self-trade prevention; two customers colliding (about one
/// chance in 2^64 per pair of customers) would merely not trade together.
fn owner_of(customer_id: &str) -> OwnerId {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in customer_id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    OwnerId(hash)
}

fn engine_config(pair: &TradingPair) -> PairConfig {
    PairConfig {
        tick_size: pair.tick_size,
        lot_size: pair.lot_size,
        min_notional: pair.min_notional,
        maker_fee_bps: pair.maker_fee_bps,
        taker_fee_bps: pair.taker_fee_bps,
        // Halting is the gateway's check (the pair row), so the log holds
        // orders and cancels only.
        status: malipo_matching::PairStatus::Active,
        open_orders_max: OPEN_ORDERS_PER_BOOK_MAX,
    }
}

fn internal(message: impl Into<String>) -> GatewayError {
    GatewayError::internal(ApiError::new(
        ErrorKind::Conflict,
        "trading_inconsistent",
        message,
    ))
}

/// What a buy at `price` holds for `quantity`: the notional plus the larger
/// of the two fees.
fn buy_hold(pair: &TradingPair, price: u64, quantity: u64) -> Option<u128> {
    let amount = notional(price, quantity, pair.lot_size);
    amount.checked_add(fee(amount, pair.maker_fee_bps.max(pair.taker_fee_bps)))
}

fn open_quantity(order: &Order) -> u64 {
    order
        .quantity
        .saturating_sub(order.filled_quantity)
        .saturating_sub(order.canceled_quantity)
}

/// What the ledger must hold for an order with `open` left.
fn required_hold(pair: &TradingPair, order: &Order, open: u64) -> Option<u128> {
    match (order.side, order.price) {
        (OrderSide::Sell, _) => Some(u128::from(open)),
        (OrderSide::Buy, Some(price)) => buy_hold(pair, price, open),
        (OrderSide::Buy, None) => Some(0),
    }
}

fn reject_error(reason: RejectReason) -> GatewayError {
    let (kind, code, param) = match reason {
        RejectReason::PairHalted => (ErrorKind::Conflict, "pair_halted", "pair"),
        RejectReason::ZeroQuantity
        | RejectReason::QuantityNotMultipleOfLot
        | RejectReason::BelowMinNotional
        | RejectReason::Overflow => (ErrorKind::InvalidRequest, "parameter_invalid", "quantity"),
        RejectReason::ZeroPrice | RejectReason::PriceNotMultipleOfTick => {
            (ErrorKind::InvalidRequest, "parameter_invalid", "price")
        }
        RejectReason::PostOnlyWithoutPrice => {
            (ErrorKind::InvalidRequest, "parameter_invalid", "post_only")
        }
        RejectReason::PostOnlyWouldTake => {
            (ErrorKind::Conflict, "post_only_would_take", "post_only")
        }
        RejectReason::CannotFillCompletely => {
            (ErrorKind::Conflict, "order_not_fillable", "time_in_force")
        }
        RejectReason::TooManyOpenOrders => (ErrorKind::Conflict, "book_full", "pair"),
        RejectReason::UnknownOrder | RejectReason::NotOwner | RejectReason::NotAmendable => {
            (ErrorKind::Conflict, "order_not_open", "id")
        }
        RejectReason::DuplicateOrderId => {
            return internal(format!("the engine refused a fresh order id: {reason}"));
        }
    };
    ApiError::new(kind, code, reason.to_string())
        .with_param(param)
        .into()
}

fn parse_asset(param: &str, value: Option<String>) -> Result<&'static str, ApiError> {
    let code = value.ok_or_else(|| ApiError::missing(param))?;
    Asset::parse(&code.to_ascii_lowercase())
        .map(|asset| asset.code())
        .map_err(|error| ApiError::invalid(param, error.to_string()))
}

fn parse_status(value: &str) -> Result<PairStatus, ApiError> {
    PairStatus::parse(value).ok_or_else(|| {
        ApiError::invalid(
            "status",
            format!("unknown status `{value}`: use active or halted"),
        )
    })
}

fn fee_bps(param: &str, value: Option<u64>) -> Result<u16, ApiError> {
    let value = value.unwrap_or(0);
    u16::try_from(value)
        .ok()
        .filter(|bps| *bps <= malipo_matching::FEE_BPS_MAX)
        .ok_or_else(|| {
            ApiError::invalid(
                param,
                format!(
                    "{param} must be at most {} basis points",
                    malipo_matching::FEE_BPS_MAX
                ),
            )
        })
}

/// A [`CreateOrder`] that passed the checks that need no book.
struct NewOrderRequest {
    customer: String,
    pair: String,
    side: OrderSide,
    kind: OrderType,
    price: Option<u64>,
    stop_price: Option<u64>,
    quantity: u64,
    time_in_force: TimeInForce,
    post_only: bool,
}

impl NewOrderRequest {
    fn parse(request: CreateOrder) -> Result<NewOrderRequest, ApiError> {
        let customer = request
            .customer
            .ok_or_else(|| ApiError::missing("customer"))?;
        let pair = request.pair.ok_or_else(|| ApiError::missing("pair"))?;
        let side = request.side.ok_or_else(|| ApiError::missing("side"))?;
        let side = OrderSide::parse(&side)
            .ok_or_else(|| ApiError::invalid("side", "side must be `buy` or `sell`"))?;
        let kind = request.kind.ok_or_else(|| ApiError::missing("type"))?;
        let kind = OrderType::parse(&kind).ok_or_else(|| {
            ApiError::invalid("type", "type must be limit, market, stop or stop_limit")
        })?;
        let quantity = request
            .quantity
            .ok_or_else(|| ApiError::missing("quantity"))?;
        if quantity == 0 {
            return Err(ApiError::invalid("quantity", "quantity must be positive"));
        }
        let time_in_force = match request.time_in_force {
            None => TimeInForce::Gtc,
            Some(text) => TimeInForce::parse(&text).ok_or_else(|| {
                ApiError::invalid("time_in_force", "time_in_force must be GTC, IOC or FOK")
            })?,
        };
        let post_only = request.post_only.unwrap_or(false);
        let priced = matches!(kind, OrderType::Limit | OrderType::StopLimit);
        let stopped = matches!(kind, OrderType::Stop | OrderType::StopLimit);
        match (priced, request.price) {
            (true, None) => return Err(ApiError::missing("price")),
            (true, Some(0)) => return Err(ApiError::invalid("price", "price must be positive")),
            (false, Some(_)) => {
                return Err(ApiError::invalid(
                    "price",
                    "price is only for limit and stop_limit orders",
                ));
            }
            _ => {}
        }
        match (stopped, request.stop_price) {
            (true, None) => return Err(ApiError::missing("stop_price")),
            (true, Some(0)) => {
                return Err(ApiError::invalid(
                    "stop_price",
                    "stop_price must be positive",
                ));
            }
            (false, Some(_)) => {
                return Err(ApiError::invalid(
                    "stop_price",
                    "stop_price is only for stop and stop_limit orders",
                ));
            }
            _ => {}
        }
        if kind == OrderType::Stop && side == OrderSide::Buy {
            return Err(ApiError::invalid(
                "type",
                "a buy stop order has no price to hold funds against: use stop_limit",
            ));
        }
        if post_only && (kind != OrderType::Limit || time_in_force != TimeInForce::Gtc) {
            return Err(ApiError::invalid(
                "post_only",
                "post_only is only for GTC limit orders",
            ));
        }
        Ok(NewOrderRequest {
            customer,
            pair,
            side,
            kind,
            price: request.price,
            stop_price: request.stop_price,
            quantity,
            time_in_force,
            post_only,
        })
    }

    fn check_against(&self, pair: &TradingPair) -> Result<(), ApiError> {
        if !self.quantity.is_multiple_of(pair.lot_size) {
            return Err(ApiError::invalid(
                "quantity",
                format!(
                    "quantity must be a multiple of the pair's lot_size ({})",
                    pair.lot_size
                ),
            ));
        }
        for (param, value) in [("price", self.price), ("stop_price", self.stop_price)] {
            if let Some(value) = value
                && !value.is_multiple_of(pair.tick_size)
            {
                return Err(ApiError::invalid(
                    param,
                    format!(
                        "{param} must be a multiple of the pair's tick_size ({})",
                        pair.tick_size
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The order object as placed, holding what its open quantity needs.
    fn order(
        &self,
        pair: &TradingPair,
        livemode: bool,
        customer_id: &str,
    ) -> Result<Order, ApiError> {
        let now = now_ms() / 1000;
        let mut order = Order {
            id: new_id(IdKind::Order),
            object: "order",
            livemode,
            customer: customer_id.to_owned(),
            pair: pair.id.clone(),
            side: self.side,
            kind: self.kind,
            price: self.price,
            stop_price: self.stop_price,
            quantity: self.quantity,
            filled_quantity: 0,
            canceled_quantity: 0,
            time_in_force: self.time_in_force,
            post_only: self.post_only,
            status: OrderStatus::Open,
            hold_remaining: 0,
            hold_asset: match self.side {
                OrderSide::Buy => pair.quote.clone(),
                OrderSide::Sell => pair.base.clone(),
            },
            quote_filled: 0,
            fees_paid: 0,
            created: now,
            updated: now,
        };
        order.hold_remaining = required_hold(pair, &order, order.quantity).ok_or_else(|| {
            ApiError::invalid("quantity", "the order's value does not fit 128 bits")
        })?;
        Ok(order)
    }

    fn engine_order(&self, number: u64) -> NewOrder {
        let kind = match (self.kind, self.price, self.stop_price) {
            (OrderType::Limit, Some(price), _) => OrderKind::Limit { price },
            (OrderType::StopLimit, Some(price), Some(trigger)) => {
                OrderKind::StopLimit { trigger, price }
            }
            (OrderType::Stop, _, Some(trigger)) => OrderKind::Stop { trigger },
            // Checked in `parse`: every other combination is a market order.
            _ => OrderKind::Market,
        };
        NewOrder {
            id: OrderId(number),
            owner: owner_of(&self.customer),
            side: match self.side {
                OrderSide::Buy => Side::Buy,
                OrderSide::Sell => Side::Sell,
            },
            kind,
            quantity: self.quantity,
            time_in_force: match (self.post_only, self.time_in_force) {
                (true, _) => malipo_matching::TimeInForce::PostOnly,
                (false, TimeInForce::Gtc) => malipo_matching::TimeInForce::Gtc,
                (false, TimeInForce::Ioc) => malipo_matching::TimeInForce::Ioc,
                (false, TimeInForce::Fok) => malipo_matching::TimeInForce::Fok,
            },
            self_trade: SelfTradePrevention::CancelTaker,
        }
    }
}

/// Brings `state` to `target`: from the newest snapshot at or before it
/// (when the node has nothing, or is ahead), then the logged commands.
pub(crate) async fn catch_up(
    conn: &mut Conn<'_>,
    state: &mut BookState,
    book_id: &str,
    pair: &TradingPair,
    target: u64,
) -> GatewayResult<()> {
    if state.engine.is_some() && state.sequence == target {
        return Ok(());
    }
    // An engine so far behind that the retention deleted the commands it
    // needs (`crate::retention`) starts again from the newest snapshot.
    let pruned_past = state.engine.is_some()
        && state.sequence < target
        && conn
            .trading_log_start(book_id)
            .await?
            .is_some_and(|first| first > state.sequence + 1);
    if state.engine.is_none() || state.sequence > target || pruned_past {
        load_snapshot(conn, state, book_id, pair, target).await?;
    }
    replay(conn, state, book_id, target).await
}

/// Applies the logged commands after `state` up to `target`: a gap or a
/// command the engine refuses is an error.
async fn replay(
    conn: &mut Conn<'_>,
    state: &mut BookState,
    book_id: &str,
    target: u64,
) -> GatewayResult<()> {
    let commands = conn
        .trading_commands(book_id, state.sequence, target)
        .await?;
    let engine = state.engine.as_mut().ok_or_else(|| internal("no engine"))?;
    for (sequence, text) in commands {
        if sequence != state.sequence + 1 {
            return Err(internal(format!(
                "book {book_id}: the log jumps from {} to {sequence}",
                state.sequence
            )));
        }
        let command: Command = serde_json::from_str(&text).map_err(GatewayError::internal)?;
        engine.apply(&command).map_err(|reason| {
            internal(format!(
                "book {book_id}: replaying command {sequence} was refused: {reason}"
            ))
        })?;
        state.sequence = sequence;
    }
    if state.sequence != target {
        return Err(internal(format!(
            "book {book_id}: the log ends at {} but the book is at {target}",
            state.sequence
        )));
    }
    metrics::gauge!("malipo_trading_book_sequence", "book" => book_id.to_owned())
        .set(state.sequence as f64);
    Ok(())
}

/// Sets `state` to the newest snapshot at or before `target`, or to an
/// empty book when there is none.
async fn load_snapshot(
    conn: &mut Conn<'_>,
    state: &mut BookState,
    book_id: &str,
    pair: &TradingPair,
    target: u64,
) -> GatewayResult<()> {
    let (sequence, engine) = match conn.trading_snapshot(book_id, target).await? {
        Some((sequence, text)) => (
            sequence,
            serde_json::from_str::<Engine>(&text).map_err(GatewayError::internal)?,
        ),
        None => (0, empty_engine(pair)?),
    };
    state.engine = Some(engine);
    state.sequence = sequence;
    Ok(())
}

fn empty_engine(pair: &TradingPair) -> GatewayResult<Engine> {
    Engine::new(engine_config(pair))
        .map_err(|error| internal(format!("pair {} has an invalid config: {error}", pair.id)))
}

/// One command's open book: the node's lock, the transaction holding the
/// book's row, and a clone of the engine caught up to it.
struct BookTx {
    state: tokio::sync::OwnedMutexGuard<BookState>,
    tx: Tx,
    head: BookHead,
    engine: Engine,
    book_id: String,
}

/// The ledger and rows one command's events produce.
struct Settlement<'p> {
    pair: &'p TradingPair,
    livemode: bool,
    book_id: String,
    sequence: u64,
    now: i64,
    /// Every order the command touched, by engine number.
    orders: BTreeMap<u64, OrderRecord>,
    /// Orders finished with a rejection (a triggered stop that failed).
    rejected: Vec<u64>,
    /// Each touched order's status before the command (`None`: new).
    statuses_before: BTreeMap<u64, OrderStatus>,
    transfers: Vec<TransferRequest>,
    accounts: Vec<Account>,
    fills: Vec<FillRecord>,
}

impl<'p> Settlement<'p> {
    fn new(pair: &'p TradingPair, livemode: bool, book_id: &str, sequence: u64) -> Self {
        Settlement {
            pair,
            livemode,
            book_id: book_id.to_owned(),
            sequence,
            now: now_ms() / 1000,
            orders: BTreeMap::new(),
            rejected: Vec::new(),
            statuses_before: BTreeMap::new(),
            transfers: Vec::new(),
            accounts: Vec::new(),
            fills: Vec::new(),
        }
    }

    fn account(&mut self, customer: &str, asset: &str, held: bool) -> Account {
        let account = ledger_entries::customer_account(self.livemode, customer, asset, held);
        self.accounts.push(account.clone());
        account
    }

    fn transfer(&mut self, id: String, debit: Account, credit: Account, amount: u128, code: &str) {
        if amount == 0 {
            return;
        }
        self.transfers.push(TransferRequest {
            id,
            debit_account_id: debit.id,
            credit_account_id: credit.id,
            amount,
            asset: debit.asset,
            kind: TransferKind::Posted,
            pending_id: None,
            code: code.to_owned(),
            source_id: None,
        });
    }

    /// Moves `amount` of the order's hold asset from available to held.
    fn hold(&mut self, order: &Order) {
        let available = self.account(&order.customer, &order.hold_asset, false);
        let held = self.account(&order.customer, &order.hold_asset, true);
        self.transfer(
            format!("{}.hold", order.id),
            available,
            held,
            order.hold_remaining,
            "order_hold",
        );
    }

    /// Releases what the order holds beyond what `open` needs.
    fn release_to(&mut self, number: u64, open: u64, suffix: &str) -> GatewayResult<()> {
        let pair = self.pair;
        let record = self
            .orders
            .get_mut(&number)
            .ok_or_else(|| internal("order not loaded"))?;
        let required =
            required_hold(pair, &record.order, open).ok_or_else(|| internal("a hold overflows"))?;
        let release = record
            .order
            .hold_remaining
            .checked_sub(required)
            .ok_or_else(|| internal(format!("order {} holds too little", record.order.id)))?;
        record.order.hold_remaining = required;
        let (customer, asset, id) = (
            record.order.customer.clone(),
            record.order.hold_asset.clone(),
            format!("{}.{suffix}", record.order.id),
        );
        let held = self.account(&customer, &asset, true);
        let available = self.account(&customer, &asset, false);
        self.transfer(id, held, available, release, "order_release");
        Ok(())
    }

    async fn load(&mut self, conn: &mut Conn<'_>, number: u64) -> GatewayResult<()> {
        if !self.orders.contains_key(&number) {
            let record = conn
                .trading_order_by_number(&self.book_id, number)
                .await?
                .ok_or_else(|| internal(format!("book {}: no order {number}", self.book_id)))?;
            self.statuses_before.insert(number, record.order.status);
            self.orders.insert(number, record);
        }
        Ok(())
    }

    async fn apply(&mut self, conn: &mut Conn<'_>, events: &[Event]) -> GatewayResult<()> {
        for event in events {
            match event {
                Event::Fill(fill) => {
                    self.load(conn, fill.maker.0).await?;
                    self.load(conn, fill.taker.0).await?;
                    self.fill(fill)?;
                }
                Event::Cancelled { id, quantity, .. } => {
                    self.load(conn, id.0).await?;
                    let record = self
                        .orders
                        .get_mut(&id.0)
                        .ok_or_else(|| internal("order not loaded"))?;
                    record.order.canceled_quantity = record
                        .order
                        .canceled_quantity
                        .checked_add(*quantity)
                        .ok_or_else(|| internal("canceled quantity overflows"))?;
                    let open = open_quantity(&record.order);
                    self.release_to(id.0, open, "cancel")?;
                }
                Event::Rejected { id, .. } => {
                    self.load(conn, id.0).await?;
                    let record = self
                        .orders
                        .get_mut(&id.0)
                        .ok_or_else(|| internal("order not loaded"))?;
                    let open = open_quantity(&record.order);
                    record.order.canceled_quantity += open;
                    self.rejected.push(id.0);
                    self.release_to(id.0, 0, "reject")?;
                }
                Event::Done { id, .. } => {
                    self.load(conn, id.0).await?;
                    self.release_to(id.0, 0, "done")?;
                    let rejected = self.rejected.contains(&id.0);
                    let now = self.now;
                    let record = self
                        .orders
                        .get_mut(&id.0)
                        .ok_or_else(|| internal("order not loaded"))?;
                    record.order.status = if rejected {
                        OrderStatus::Rejected
                    } else if record.order.canceled_quantity > 0 {
                        OrderStatus::Canceled
                    } else {
                        OrderStatus::Filled
                    };
                    record.order.updated = now;
                }
                Event::Accepted { .. }
                | Event::Triggered { .. }
                | Event::Amended { .. }
                | Event::StatusChanged { .. } => {}
            }
        }
        Ok(())
    }

    fn fill(&mut self, fill: &malipo_matching::Fill) -> GatewayResult<()> {
        let taker_buys = fill.taker_side == Side::Buy;
        let (buyer, seller) = if taker_buys {
            (fill.taker.0, fill.maker.0)
        } else {
            (fill.maker.0, fill.taker.0)
        };
        let (buyer_fee, seller_fee) = if taker_buys {
            (fill.taker_fee, fill.maker_fee)
        } else {
            (fill.maker_fee, fill.taker_fee)
        };
        let pair = self.pair;
        let taker_fill_id = new_id(IdKind::Fill);
        let maker_fill_id = new_id(IdKind::Fill);
        let short = || internal("a fill does not fit its order");

        // The seller's base leaves its hold for the buyer.
        let seller_record = self.orders.get_mut(&seller).ok_or_else(short)?;
        seller_record.order.hold_remaining = seller_record
            .order
            .hold_remaining
            .checked_sub(u128::from(fill.quantity))
            .ok_or_else(short)?;
        seller_record.order.filled_quantity += fill.quantity;
        seller_record.order.quote_filled += fill.notional;
        seller_record.order.fees_paid += seller_fee;
        seller_record.order.updated = self.now;
        let seller_customer = seller_record.order.customer.clone();
        let seller_order = seller_record.order.clone();

        // The buyer pays the notional and its fee from its hold (or, for a
        // market buy, its available balance), keeping exactly what its
        // open quantity needs.
        let buyer_record = self.orders.get_mut(&buyer).ok_or_else(short)?;
        let open_after = open_quantity(&buyer_record.order)
            .checked_sub(fill.quantity)
            .ok_or_else(short)?;
        let from_hold = buyer_record.order.price.is_some();
        let (charged, release) = if from_hold {
            let required =
                required_hold(pair, &buyer_record.order, open_after).ok_or_else(short)?;
            let spare = buyer_record
                .order
                .hold_remaining
                .checked_sub(fill.notional)
                .and_then(|rest| rest.checked_sub(required))
                .ok_or_else(short)?;
            let charged = buyer_fee.min(spare);
            buyer_record.order.hold_remaining = required;
            (charged, spare - charged)
        } else {
            (buyer_fee, 0)
        };
        buyer_record.order.filled_quantity += fill.quantity;
        buyer_record.order.quote_filled += fill.notional;
        buyer_record.order.fees_paid += charged;
        buyer_record.order.updated = self.now;
        let buyer_customer = buyer_record.order.customer.clone();
        let buyer_order = buyer_record.order.clone();

        let base = pair.base.clone();
        let quote = pair.quote.clone();
        let seller_held_base = self.account(&seller_customer, &base, true);
        let buyer_available_base = self.account(&buyer_customer, &base, false);
        let buyer_source = self.account(&buyer_customer, &quote, from_hold);
        let buyer_held_quote = self.account(&buyer_customer, &quote, true);
        let buyer_available_quote = self.account(&buyer_customer, &quote, false);
        let seller_available_quote = self.account(&seller_customer, &quote, false);
        let fees = ledger_entries::trading_fees_account(self.livemode, &quote);
        self.accounts.push(fees.clone());
        let id = &taker_fill_id;
        self.transfer(
            format!("{id}.base"),
            seller_held_base,
            buyer_available_base,
            u128::from(fill.quantity),
            "trade",
        );
        let proceeds = fill.notional.checked_sub(seller_fee).ok_or_else(short)?;
        self.transfer(
            format!("{id}.quote"),
            buyer_source.clone(),
            seller_available_quote,
            proceeds,
            "trade",
        );
        self.transfer(
            format!("{id}.seller_fee"),
            buyer_source.clone(),
            fees.clone(),
            seller_fee,
            "trading_fee",
        );
        self.transfer(
            format!("{id}.buyer_fee"),
            buyer_source,
            fees,
            charged,
            "trading_fee",
        );
        self.transfer(
            format!("{id}.release"),
            buyer_held_quote,
            buyer_available_quote,
            release,
            "order_release",
        );

        for (fill_id, order, liquidity, fee_paid) in [
            (
                &taker_fill_id,
                if taker_buys {
                    &buyer_order
                } else {
                    &seller_order
                },
                Liquidity::Taker,
                if taker_buys { charged } else { seller_fee },
            ),
            (
                &maker_fill_id,
                if taker_buys {
                    &seller_order
                } else {
                    &buyer_order
                },
                Liquidity::Maker,
                if taker_buys { seller_fee } else { charged },
            ),
        ] {
            let merchant_id = self
                .orders
                .values()
                .find(|record| record.order.id == order.id)
                .map(|record| record.merchant_id.clone())
                .ok_or_else(short)?;
            self.fills.push(FillRecord {
                merchant_id,
                fill: Fill {
                    id: fill_id.clone(),
                    object: "fill",
                    livemode: self.livemode,
                    pair: pair.id.clone(),
                    order: order.id.clone(),
                    customer: order.customer.clone(),
                    side: order.side,
                    liquidity,
                    price: fill.price,
                    quantity: fill.quantity,
                    notional: fill.notional,
                    fee: fee_paid,
                    sequence: self.sequence,
                    created: self.now,
                },
            });
        }
        Ok(())
    }

    /// Posts the transfers (in batches the ledger takes, all in the
    /// caller's transaction) and writes the fill and order rows. An
    /// available balance that can't pay is a 400 naming `quantity`.
    async fn write(&self, conn: &mut Conn<'_>) -> GatewayResult<()> {
        let created = self.now;
        for batch in self
            .transfers
            .chunks(malipo_store::ledger::TRANSFERS_PER_BATCH_MAX)
        {
            let posted = conn
                .post_transfers_creating_accounts(&self.accounts, batch, created, now_ms())
                .await;
            match posted {
                Ok(outcome) => {
                    metrics::counter!("malipo_ledger_transfers_total")
                        .increment(outcome.created.len() as u64);
                }
                Err(StoreError::Ledger(error)) if error.error == TransferError::ExceedsCredits => {
                    return Err(ApiError::new(
                        ErrorKind::InvalidRequest,
                        "balance_insufficient",
                        "the customer's available balance cannot pay for this order",
                    )
                    .with_param("quantity")
                    .into());
                }
                Err(error) => return Err(error.into()),
            }
        }
        for fill in &self.fills {
            conn.insert_trading_fill(fill).await?;
        }
        for (number, record) in &self.orders {
            conn.update_trading_order(record).await?;
            let before = self.statuses_before.get(number).copied();
            let order = &record.order;
            if before.is_none() {
                emit(
                    conn,
                    &record.merchant_id,
                    self.livemode,
                    "order.created",
                    order,
                )
                .await?;
            }
            if Some(order.status) != before && order.status != OrderStatus::Open {
                let kind = match order.status {
                    OrderStatus::Filled => "order.filled",
                    OrderStatus::Canceled => "order.canceled",
                    OrderStatus::Rejected => "order.rejected",
                    OrderStatus::Open => continue,
                };
                emit(conn, &record.merchant_id, self.livemode, kind, order).await?;
            }
        }
        Ok(())
    }
}

impl Gateway {
    /// Operator: a new pair (its books start empty in both modes).
    pub async fn create_trading_pair(
        &self,
        actor: &Actor,
        request: CreatePair,
    ) -> GatewayResult<TradingPair> {
        let base = parse_asset("base", request.base)?;
        let quote = parse_asset("quote", request.quote)?;
        if base == quote {
            return Err(ApiError::invalid("quote", "quote must differ from base").into());
        }
        let tick_size = request
            .tick_size
            .ok_or_else(|| ApiError::missing("tick_size"))?;
        if tick_size == 0 {
            return Err(ApiError::invalid("tick_size", "tick_size must be positive").into());
        }
        let lot_size = request
            .lot_size
            .ok_or_else(|| ApiError::missing("lot_size"))?;
        if lot_size == 0 {
            return Err(ApiError::invalid("lot_size", "lot_size must be positive").into());
        }
        let status = match &request.status {
            None => PairStatus::Active,
            Some(text) => parse_status(text)?,
        };
        let now = now_ms() / 1000;
        let pair = TradingPair {
            id: format!("{base}_{quote}"),
            object: "trading_pair",
            base: base.to_owned(),
            quote: quote.to_owned(),
            tick_size,
            lot_size,
            min_notional: u128::from(request.min_notional.unwrap_or(0)),
            maker_fee_bps: fee_bps("maker_fee_bps", request.maker_fee_bps)?,
            taker_fee_bps: fee_bps("taker_fee_bps", request.taker_fee_bps)?,
            status,
            created: now,
            updated: now,
        };
        let mut tx = self.store().begin().await?;
        if !tx.conn().insert_trading_pair(&pair).await? {
            return Err(ApiError::new(
                ErrorKind::Conflict,
                "pair_exists",
                format!(
                    "pair `{}` exists; change its status with POST /v1/admin/trading/pairs/{}",
                    pair.id, pair.id
                ),
            )
            .with_param("base")
            .into());
        }
        actor
            .record(
                &mut tx,
                AuditChange {
                    action: "trading_pair.create",
                    object_type: "trading_pair",
                    object_id: &pair.id,
                    merchant_id: None,
                    livemode: None,
                    before: None,
                    after: Some(audit_state(&pair)?),
                },
            )
            .await?;
        tx.commit().await?;
        Ok(pair)
    }

    /// Operator: halts or resumes a pair.
    pub async fn update_trading_pair(
        &self,
        actor: &Actor,
        id: &str,
        request: UpdatePair,
    ) -> GatewayResult<TradingPair> {
        let status = parse_status(&request.status.ok_or_else(|| ApiError::missing("status"))?)?;
        let mut tx = self.store().begin().await?;
        let mut conn = tx.conn();
        let before = conn
            .trading_pair(id)
            .await?
            .ok_or_else(|| ApiError::not_found("trading pair", id))?;
        conn.set_trading_pair_status(id, status, now_ms() / 1000)
            .await?;
        let after = conn
            .trading_pair(id)
            .await?
            .ok_or_else(|| ApiError::not_found("trading pair", id))?;
        actor
            .record(
                &mut tx,
                AuditChange {
                    action: "trading_pair.update",
                    object_type: "trading_pair",
                    object_id: id,
                    merchant_id: None,
                    livemode: None,
                    before: Some(audit_state(&before)?),
                    after: Some(audit_state(&after)?),
                },
            )
            .await?;
        tx.commit().await?;
        Ok(after)
    }

    pub async fn trading_pairs(&self) -> GatewayResult<List<TradingPair>> {
        let mut reader = self.store().reader().await?;
        Ok(List::new(reader.conn().trading_pairs().await?, false))
    }

    /// The lot size of a pair (the desk turns book prices into rates).
    pub(crate) async fn trading_lot_size(&self, id: &str) -> GatewayResult<u64> {
        Ok(self.pair(id).await?.lot_size)
    }

    async fn pair(&self, id: &str) -> GatewayResult<TradingPair> {
        let mut reader = self.store().reader().await?;
        Ok(reader.conn().trading_pair(id).await?.ok_or_else(|| {
            ApiError::new(
                ErrorKind::InvalidRequest,
                "resource_missing",
                format!("no such trading pair: `{id}`"),
            )
            .with_param("pair")
        })?)
    }

    /// Locks the book (this node, then its row) and catches its engine up.
    async fn open_book(&self, pair: &TradingPair, livemode: bool) -> GatewayResult<BookTx> {
        let book_id = book_id(&pair.id, livemode);
        let mut state = self.venue().book(&book_id).lock_owned().await;
        let mut tx = self.store().begin().await?;
        let mut conn = tx.conn();
        conn.ensure_trading_book(&book_id, &pair.id, livemode)
            .await?;
        let head = conn
            .trading_book_for_update(&book_id)
            .await?
            .ok_or_else(|| internal(format!("book {book_id} vanished")))?;
        catch_up(&mut conn, &mut state, &book_id, pair, head.sequence).await?;
        let engine = state.engine.clone().ok_or_else(|| internal("no engine"))?;
        Ok(BookTx {
            state,
            tx,
            head,
            engine,
            book_id,
        })
    }

    /// Logs the command, writes the settlement and the book's head, stores
    /// the Idempotency-Key's response, commits, and only then keeps the new
    /// engine.
    async fn commit_command(
        &self,
        book: BookTx,
        command: &Command,
        settlement: &Settlement<'_>,
        next_order_number: u64,
        answer: &Order,
        guard: Option<&IdempotencyGuard>,
    ) -> GatewayResult<()> {
        let BookTx {
            mut state,
            mut tx,
            head,
            engine,
            book_id,
        } = book;
        let mut conn = tx.conn();
        settlement.write(&mut conn).await?;
        let sequence = self
            .log_command(
                &mut conn,
                &book_id,
                &head,
                command,
                &engine,
                next_order_number,
            )
            .await?;
        complete(&mut conn, guard, answer).await?;
        tx.commit().await?;
        self.keep_engine(&mut state, engine, sequence, &book_id);
        Ok(())
    }

    /// Appends `command` to the book's log after `head` (with a snapshot
    /// every N commands) and moves the head, in the caller's transaction.
    /// Answers the command's sequence.
    async fn log_command(
        &self,
        conn: &mut Conn<'_>,
        book_id: &str,
        head: &BookHead,
        command: &Command,
        engine: &Engine,
        next_order_number: u64,
    ) -> GatewayResult<u64> {
        let sequence = head.sequence + 1;
        let text = serde_json::to_string(command).map_err(GatewayError::internal)?;
        let created = now_ms() / 1000;
        conn.insert_trading_command(book_id, sequence, &text, created, self.node_id())
            .await?;
        let every = self.config().trading_snapshot_every_commands.max(1);
        if sequence.is_multiple_of(every) {
            let snapshot = serde_json::to_string(engine).map_err(GatewayError::internal)?;
            conn.insert_trading_snapshot(book_id, sequence, &snapshot, created)
                .await?;
        }
        conn.set_trading_book_head(
            book_id,
            BookHead {
                sequence,
                next_order_number,
            },
        )
        .await?;
        Ok(sequence)
    }

    /// After the commit that logged it: this node keeps the new engine.
    fn keep_engine(&self, state: &mut BookState, engine: Engine, sequence: u64, book_id: &str) {
        state.engine = Some(engine);
        state.sequence = sequence;
        metrics::counter!("malipo_trading_commands_total").increment(1);
        // This node's live feeds of the book need not wait for their poll.
        self.feeds().wake(book_id);
    }

    pub async fn create_order(
        &self,
        context: &MerchantContext,
        request: CreateOrder,
        guard: Option<IdempotencyGuard>,
    ) -> GatewayResult<Order> {
        context.require(Scope::Full)?;
        let request = NewOrderRequest::parse(request)?;
        let pair = self.pair(&request.pair).await?;
        request.check_against(&pair)?;
        if pair.status == PairStatus::Halted {
            return Err(reject_error(RejectReason::PairHalted));
        }
        let livemode = context.livemode();
        let mut book = self.open_book(&pair, livemode).await?;
        let mut conn = book.tx.conn();
        let customer = customer_of(&mut conn, context, &request.customer, "customer").await?;
        let number = book.head.next_order_number;
        let command = Command::Place(request.engine_order(number));
        let events = book.engine.apply(&command).map_err(reject_error)?;

        let order = request.order(&pair, livemode, &customer.customer.id)?;
        let record = OrderRecord {
            merchant_id: context.merchant_id.clone(),
            book_id: book.book_id.clone(),
            number,
            order,
        };
        conn.insert_trading_order(&record).await?;
        let mut settlement =
            Settlement::new(&pair, livemode, &book.book_id, book.head.sequence + 1);
        settlement.hold(&record.order);
        settlement.orders.insert(number, record);
        settlement.apply(&mut conn, &events).await?;
        let answer = settlement
            .orders
            .get(&number)
            .map(|record| record.order.clone())
            .ok_or_else(|| internal("the new order vanished"))?;
        self.commit_command(
            book,
            &command,
            &settlement,
            number + 1,
            &answer,
            guard.as_ref(),
        )
        .await?;
        Ok(answer)
    }

    pub async fn cancel_order(
        &self,
        context: &MerchantContext,
        id: &str,
        guard: Option<IdempotencyGuard>,
    ) -> GatewayResult<Order> {
        context.require(Scope::Full)?;
        let found = self.order(context, id).await?;
        let pair = self.pair(&found.pair).await?;
        let mut book = self.open_book(&pair, context.livemode()).await?;
        let mut conn = book.tx.conn();
        let number = self.order_record(&mut conn, context, id).await?.number;
        let record = conn
            .trading_order_by_number(&book.book_id, number)
            .await?
            .ok_or_else(|| ApiError::not_found("order", id))?;
        if record.order.status != OrderStatus::Open {
            return Err(ApiError::new(
                ErrorKind::Conflict,
                "order_not_open",
                format!("the order is {}", record.order.status.as_str()),
            )
            .with_param("id")
            .into());
        }
        let command = Command::Cancel {
            id: OrderId(number),
            owner: owner_of(&record.order.customer),
        };
        let events = book.engine.apply(&command).map_err(reject_error)?;
        let mut settlement = Settlement::new(
            &pair,
            context.livemode(),
            &book.book_id,
            book.head.sequence + 1,
        );
        settlement
            .statuses_before
            .insert(number, record.order.status);
        settlement.orders.insert(number, record);
        settlement.apply(&mut conn, &events).await?;
        let answer = settlement
            .orders
            .get(&number)
            .map(|record| record.order.clone())
            .ok_or_else(|| internal("the order vanished"))?;
        let next = book.head.next_order_number;
        self.commit_command(book, &command, &settlement, next, &answer, guard.as_ref())
            .await?;
        Ok(answer)
    }

    async fn order_record(
        &self,
        conn: &mut Conn<'_>,
        context: &MerchantContext,
        id: &str,
    ) -> GatewayResult<OrderRecord> {
        if !looks_like(IdKind::Order, id) {
            return Err(ApiError::not_found("order", id).into());
        }
        let mut filters = owner_filters(context);
        filters.push(Filter::TextEquals("id", id.to_owned()));
        let (mut records, _) = conn
            .trading_orders(
                &filters,
                &Page {
                    limit: 1,
                    cursor: malipo_store::Cursor::Newest,
                },
            )
            .await?;
        Ok(records
            .pop()
            .ok_or_else(|| ApiError::not_found("order", id))?)
    }

    pub async fn order(&self, context: &MerchantContext, id: &str) -> GatewayResult<Order> {
        context.require(Scope::ReadOnly)?;
        let mut reader = self.store().reader().await?;
        Ok(self
            .order_record(&mut reader.conn(), context, id)
            .await?
            .order)
    }

    pub async fn orders(
        &self,
        context: &MerchantContext,
        filters: &OrderFilters,
        page: &Page,
    ) -> GatewayResult<List<Order>> {
        context.require(Scope::ReadOnly)?;
        let mut conditions = owner_filters(context);
        if let Some(customer) = &filters.customer {
            conditions.push(Filter::TextEquals("customer_id", customer.clone()));
        }
        if let Some(pair) = &filters.pair {
            conditions.push(Filter::TextEquals("pair_id", pair.clone()));
        }
        if let Some(status) = &filters.status {
            let status = OrderStatus::parse(status)
                .ok_or_else(|| ApiError::invalid("status", format!("unknown status `{status}`")))?;
            conditions.push(Filter::TextEquals("status", status.as_str().to_owned()));
        }
        if let Some(side) = &filters.side {
            let side = OrderSide::parse(side)
                .ok_or_else(|| ApiError::invalid("side", "side must be `buy` or `sell`"))?;
            conditions.push(Filter::TextEquals("side", side.as_str().to_owned()));
        }
        created_filters(&mut conditions, filters.created_gte, filters.created_lte);
        let mut reader = self.store().reader().await?;
        let (records, has_more) = reader.conn().trading_orders(&conditions, page).await?;
        Ok(List::new(
            records.into_iter().map(|record| record.order).collect(),
            has_more,
        ))
    }

    pub async fn fills(
        &self,
        context: &MerchantContext,
        filters: &FillFilters,
        page: &Page,
    ) -> GatewayResult<List<Fill>> {
        context.require(Scope::ReadOnly)?;
        let mut conditions = owner_filters(context);
        if let Some(order) = &filters.order {
            conditions.push(Filter::TextEquals("order_id", order.clone()));
        }
        if let Some(customer) = &filters.customer {
            conditions.push(Filter::TextEquals("customer_id", customer.clone()));
        }
        if let Some(pair) = &filters.pair {
            conditions.push(Filter::TextEquals("pair_id", pair.clone()));
        }
        let mut reader = self.store().reader().await?;
        let (records, has_more) = reader.conn().trading_fills(&conditions, page).await?;
        Ok(List::new(
            records.into_iter().map(|record| record.fill).collect(),
            has_more,
        ))
    }

    /// The book's best levels in the key's mode, caught up to the log.
    pub async fn order_book(
        &self,
        context: &MerchantContext,
        pair_id: &str,
        params: &BookParams,
    ) -> GatewayResult<OrderBook> {
        context.require(Scope::ReadOnly)?;
        let depth = params.depth.unwrap_or(BOOK_DEPTH_DEFAULT);
        if !(1..=BOOK_DEPTH_MAX).contains(&depth) {
            return Err(
                ApiError::invalid("depth", format!("depth must be 1 to {BOOK_DEPTH_MAX}")).into(),
            );
        }
        let pair = self.pair(pair_id).await?;
        let book_id = book_id(&pair.id, context.livemode());
        let book = self.venue().book(&book_id);
        let mut state = book.lock().await;
        let mut reader = self.store().reader().await?;
        let mut conn = reader.conn();
        let sequence = conn.trading_book_sequence(&book_id).await?;
        catch_up(&mut conn, &mut state, &book_id, &pair, sequence).await?;
        let engine = state.engine.as_ref().ok_or_else(|| internal("no engine"))?;
        let depth = engine.depth(depth as usize);
        let level = |level: &malipo_matching::DepthLevel| BookLevel {
            price: level.price,
            quantity: level.quantity,
            orders: level.orders as u64,
        };
        Ok(OrderBook {
            object: "order_book",
            pair: pair.id.clone(),
            livemode: context.livemode(),
            sequence: state.sequence,
            bids: depth.bids.iter().map(level).collect(),
            asks: depth.asks.iter().map(level).collect(),
            last_price: engine.last_trade_price(),
        })
    }

    /// Proves that every book rebuilt from its log agrees with the order
    /// rows and the ledger: the newest snapshot plus the commands after it
    /// equals the whole log replayed from an empty book (from the oldest
    /// snapshot the log follows, once the retention pruned it), each open order is open in the engine with the
    /// same open quantity and holds exactly what that quantity needs, the
    /// engine has no other open order, each customer's held account equals
    /// the sum of its open orders' holds, no customer account is below
    /// zero, each desk reserve holds exactly its pending buys' asset, and
    /// the pools agree with their ledger accounts. Runs in one transaction
    /// holding every book's row.
    pub async fn trading_check(&self) -> GatewayResult<TradingCheckReport> {
        let mut report = TradingCheckReport::default();
        let mut tx = self.store().begin().await?;
        let mut conn = tx.conn();
        let books = conn.trading_books().await?;
        let mut held_expected: BTreeMap<String, u128> = BTreeMap::new();
        for book in &books {
            conn.trading_book_for_update(&book.id).await?;
            let pair = conn
                .trading_pair(&book.pair_id)
                .await?
                .ok_or_else(|| internal(format!("book {} has no pair", book.id)))?;
            let mut state = BookState::default();
            catch_up(&mut conn, &mut state, &book.id, &pair, book.sequence).await?;
            let engine = state.engine.as_ref().ok_or_else(|| internal("no engine"))?;
            // The snapshots must be faithful: the whole log, replayed from
            // an empty book, gives the same engine. Once the retention
            // (`crate::retention`) deleted the log's start, the log is
            // replayed from the oldest snapshot it still follows (the
            // retention keeps every command after the second newest).
            let from_scratch = match conn.trading_log_start(&book.id).await? {
                Some(first) if first > 1 => {
                    let (sequence, text) = conn
                        .trading_snapshot_from(&book.id, first - 1)
                        .await?
                        .ok_or_else(|| {
                        internal(format!(
                            "book {}: the log starts at {first} and no snapshot follows it",
                            book.id
                        ))
                    })?;
                    BookState {
                        engine: Some(
                            serde_json::from_str::<Engine>(&text)
                                .map_err(GatewayError::internal)?,
                        ),
                        sequence,
                    }
                }
                _ => BookState {
                    engine: Some(empty_engine(&pair)?),
                    sequence: 0,
                },
            };
            let mut from_scratch = from_scratch;
            replay(&mut conn, &mut from_scratch, &book.id, book.sequence).await?;
            if from_scratch.engine.as_ref() != Some(engine) {
                report.problems.push(format!(
                    "book {}: replaying the log differs from the snapshot and the log after it",
                    book.id
                ));
            }
            let open = conn.open_trading_orders(&book.id).await?;
            if open.len() != engine.open_orders() {
                report.problems.push(format!(
                    "book {}: {} open orders in the database, {} in the engine",
                    book.id,
                    open.len(),
                    engine.open_orders()
                ));
            }
            for record in &open {
                let order = &record.order;
                let remaining = open_quantity(order);
                match engine.order(OrderId(record.number)) {
                    None => report.problems.push(format!(
                        "order {} is open but not in book {}",
                        order.id, book.id
                    )),
                    Some(view) if view.quantity != remaining => report.problems.push(format!(
                        "order {}: {} open in the database, {} in the engine",
                        order.id, remaining, view.quantity
                    )),
                    Some(_) => {}
                }
                let expected = required_hold(&pair, order, remaining);
                if expected != Some(order.hold_remaining) {
                    report.problems.push(format!(
                        "order {}: holds {} but its open quantity needs {:?}",
                        order.id, order.hold_remaining, expected
                    ));
                }
                let account = ledger_entries::customer_account(
                    book.livemode,
                    &order.customer,
                    &order.hold_asset,
                    true,
                );
                *held_expected.entry(account.id).or_default() += order.hold_remaining;
            }
            report.open_orders += open.len();
        }
        report.books = books.len();
        for mode in ["test/customer/", "live/customer/"] {
            for account in conn.ledger_accounts_with_prefix(mode).await? {
                report.customer_accounts += 1;
                let Some(balance) = account.available_credit_balance() else {
                    report
                        .problems
                        .push(format!("account {} is below zero", account.id));
                    continue;
                };
                if account.id.ends_with(ledger_entries::CUSTOMER_HELD_SUFFIX) {
                    let expected = held_expected.remove(&account.id).unwrap_or(0);
                    if balance != expected {
                        report.problems.push(format!(
                            "account {} holds {balance} but its open orders hold {expected}",
                            account.id
                        ));
                    }
                }
            }
        }
        for (account, expected) in held_expected {
            if expected > 0 {
                report.problems.push(format!(
                    "open orders hold {expected} but account {account} does not exist"
                ));
            }
        }
        let desk = crate::desk::check_holds(&mut conn).await?;
        report.desk_trades_pending = desk.0;
        report.problems.extend(desk.1);
        let pools = crate::pools::check_pools(&mut conn).await?;
        report.pools = pools.pools;
        report.problems.extend(pools.problems);
        report.ok = report.problems.is_empty();
        Ok(report)
    }
}
