//! Live feeds: what `GET /v1/ws` (and its header-authenticated twin
//! `GET /v1/trading/stream`) sends.
//!
//! # Who listens
//!
//! A [`FeedIdentity`]: a merchant's API key (its merchant and mode) or a
//! customer token (one customer of one merchant, in one mode). Public
//! channels are the same for both; private channels (`orders`, `payments`,
//! `trades`) carry only the identity's objects: all of the merchant's in
//! the mode, or only the customer's.
//!
//! # Where the book messages come from
//!
//! The per-book command log (`trading_commands`), the same on every node:
//! each book somebody on this node subscribed to has one `BookFeed` with
//! its own engine, rebuilt like the venue's (newest snapshot, then the log)
//! and then advanced by polling the log from the last sequence it applied,
//! every `poll_interval_ms`, or at once when this node committed a command
//! of the book (the venue wakes it). Replaying a command gives its events:
//! fills become `trades` messages, the change of the top levels a `book`
//! update, a change of last price or best bid/ask a `ticker` message, and
//! the orders the command created or finished the `orders` messages of
//! their merchant. One mechanism for SQLite and PostgreSQL, one node or
//! many: a command logged by another node reaches this node's sockets at
//! the next poll. A command is logged in the transaction that settles it,
//! and the row lock serializes a book's commands, so the log has no holes:
//! every sequence up to the book's row is committed.
//!
//! # Slow consumers
//!
//! Each socket has one bounded queue of ready-to-send text frames
//! (`send_buffer_messages`). A feed never waits for a socket: when a
//! socket's queue is full, the socket is told to close (`slow_consumer`)
//! and dropped from every feed, so memory per socket is bounded and no
//! subscriber can hold up another.
//!
//! Every book update carries the command's `sequence`, and the book feed
//! sends one update per command (possibly with no level changed), so a
//! client that sees a sequence other than the last + 1 knows it missed
//! something. Subscribing with `since` replays the missed updates from the
//! log (rebuilding the book as it stood at `since`, then computing each
//! command's update exactly as the live feed did), or says it can't and
//! sends a fresh snapshot.
//!
//! # Where the private event channels come from
//!
//! The event outbox the webhooks use (`events`): the worker numbers each
//! event when it fans it out (`feed_sequence`, committed in order and
//! without holes), and one [`EventFeed`] per node reads the events after
//! the last number it saw, every `poll_interval_ms` or at once when this
//! node's worker numbered some. So a payment confirmed on another node
//! reaches every node's sockets. `since` on these channels replays the
//! owner's events after that number (at most `resume_events_max`).

use crate::auth::MerchantContext;
use crate::trading::{BookState, book_id, catch_up};
use crate::webhooks::event_object;
use crate::{ApiError, ErrorKind, Gateway, GatewayError, GatewayResult};
use malipo_core::objects::{Event as EventObject, Scope};
use malipo_core::trading::{Order, TradingPair};
use malipo_matching::{Command, DepthLevel, Engine, Event, Side};
use malipo_store::EventRecord;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, watch};

/// Commands one poll reads at most (the next poll reads the rest at once).
pub const COMMANDS_PER_POLL_MAX: u32 = 1_000;
/// The most levels per side a book feed tracks.
pub const BOOK_DEPTH_MAX: usize = 100;

/// Limits of the live feeds (`[feeds]` in the configuration).
#[derive(Debug, Clone)]
pub struct FeedConfig {
    /// How often a subscribed book's log is read for commands other nodes
    /// logged (commands of this node wake the feed at once).
    pub poll_interval_ms: u64,
    /// Levels per side in a book snapshot and tracked by its updates.
    pub book_depth: usize,
    /// Channels one socket may subscribe to at once.
    pub subscriptions_per_socket_max: usize,
    /// Sockets one API key may hold open on one node.
    pub sockets_per_key_max: usize,
    /// Messages waiting to be written to one socket; one more closes it
    /// as a slow consumer.
    pub send_buffer_messages: usize,
    /// A ping every this often; a socket with no pong for two intervals is
    /// closed.
    pub ping_interval_ms: u64,
    /// A socket that takes longer to accept one message is closed.
    pub write_timeout_ms: u64,
    /// `GET /v1/ws`: the first message (the auth message) must come within
    /// this.
    pub auth_timeout_ms: u64,
    /// A `heartbeat` message this often.
    pub heartbeat_interval_ms: u64,
    /// The most commands a book subscription with `since` replays; further
    /// behind gets a fresh snapshot.
    pub resume_commands_max: u64,
    /// The most of the owner's events a private subscription with `since`
    /// replays; further behind is told so and sent events from now.
    pub resume_events_max: u32,
}

impl Default for FeedConfig {
    fn default() -> Self {
        FeedConfig {
            poll_interval_ms: 100,
            book_depth: 50,
            subscriptions_per_socket_max: 50,
            sockets_per_key_max: 10,
            send_buffer_messages: 256,
            ping_interval_ms: 20_000,
            write_timeout_ms: 10_000,
            auth_timeout_ms: 10_000,
            heartbeat_interval_ms: 15_000,
            resume_commands_max: 1_000,
            resume_events_max: 1_000,
        }
    }
}

/// One channel of the stream.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Channel {
    /// `book:{pair}`: a depth snapshot, then one update per command.
    Book(String),
    /// `trades:{pair}`: every fill.
    Trades(String),
    /// `ticker:{pair}`: last price and best bid/ask when they change.
    Ticker(String),
    /// `prices`: every pair's best bid/ask and last price when they change.
    Prices,
    /// `orders` (private): the owner's orders created and finished.
    Orders,
    /// `payments` (private): the owner's `payment.*` events.
    Payments,
    /// `trades` (private): the owner's desk trades and pool swaps
    /// (`trade.*`, `swap.*` events).
    OwnTrades,
}

impl Channel {
    /// Reads `book:{pair}`, `trades:{pair}`, `ticker:{pair}`, `prices`,
    /// `orders`, `payments` or `trades`; errors name `channel`.
    pub fn parse(text: &str) -> Result<Channel, ApiError> {
        match text {
            "orders" => return Ok(Channel::Orders),
            "prices" => return Ok(Channel::Prices),
            "payments" => return Ok(Channel::Payments),
            "trades" => return Ok(Channel::OwnTrades),
            _ => {}
        }
        let unknown = || {
            ApiError::new(
                ErrorKind::InvalidRequest,
                "channel_unknown",
                format!(
                    "unknown channel `{text}`: use book:{{pair}}, trades:{{pair}}, ticker:{{pair}}, prices, orders, payments or trades"
                ),
            )
            .with_param("channel")
        };
        let (kind, pair) = text.split_once(':').ok_or_else(unknown)?;
        if pair.is_empty() || pair.len() > 64 {
            return Err(unknown());
        }
        let pair = pair.to_ascii_lowercase();
        match kind {
            "book" => Ok(Channel::Book(pair)),
            "trades" => Ok(Channel::Trades(pair)),
            "ticker" => Ok(Channel::Ticker(pair)),
            _ => Err(unknown()),
        }
    }

    pub fn name(&self) -> String {
        match self {
            Channel::Book(pair) => format!("book:{pair}"),
            Channel::Trades(pair) => format!("trades:{pair}"),
            Channel::Ticker(pair) => format!("ticker:{pair}"),
            Channel::Prices => "prices".to_owned(),
            Channel::Orders => "orders".to_owned(),
            Channel::Payments => "payments".to_owned(),
            Channel::OwnTrades => "trades".to_owned(),
        }
    }

    fn kind(&self) -> Kind {
        match self {
            Channel::Book(_) => Kind::Book,
            Channel::Trades(_) => Kind::Trades,
            Channel::Ticker(_) => Kind::Ticker,
            Channel::Prices => Kind::Prices,
            Channel::Orders => Kind::Orders,
            Channel::Payments => Kind::Payments,
            Channel::OwnTrades => Kind::OwnTrades,
        }
    }

    /// Whether the channel shows only the listener's own objects.
    pub fn is_private(&self) -> bool {
        matches!(
            self,
            Channel::Orders | Channel::Payments | Channel::OwnTrades
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Book,
    Trades,
    Ticker,
    Prices,
    Orders,
    Payments,
    OwnTrades,
}

/// The private event channel an event type belongs to, if any.
fn event_kind(event_type: &str) -> Option<Kind> {
    let (object, _) = event_type.split_once('.')?;
    match object {
        "payment" => Some(Kind::Payments),
        "trade" | "swap" => Some(Kind::OwnTrades),
        _ => None,
    }
}

/// What a subscription asks besides its channel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscribeOptions {
    /// Resume after this sequence: a book's command sequence, or an event
    /// channel's `sequence`.
    pub since: Option<u64>,
    /// A private channel narrowed to one of the merchant's customers (a
    /// customer token may only name its own).
    pub customer: Option<String>,
}

/// Who a stream belongs to: an API key's merchant and mode, or a customer
/// token's customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedIdentity {
    pub merchant_id: String,
    pub livemode: bool,
    /// A customer token's customer: private channels carry only its objects.
    pub customer: Option<String>,
    /// The API key or customer token; sockets are counted per credential.
    pub credential_id: String,
    /// When a customer token expires (its streams close then).
    pub expires_at: Option<i64>,
}

impl FeedIdentity {
    /// A merchant's key, which needs at least read access.
    pub fn merchant(context: &MerchantContext) -> Result<FeedIdentity, ApiError> {
        context.require(Scope::ReadOnly)?;
        Ok(FeedIdentity {
            merchant_id: context.merchant_id.clone(),
            livemode: context.livemode(),
            customer: None,
            credential_id: context.key_id.clone(),
            expires_at: None,
        })
    }
}

/// Why the server closes a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Its send buffer was full, or one write took too long.
    SlowConsumer,
    /// Nothing from the client (not even a pong) for two ping intervals.
    PongTimeout,
    /// The customer token the stream was opened with expired.
    TokenExpired,
}

/// One WebSocket's end in the feeds: its bounded queue of text frames and
/// the signal that closes it.
#[derive(Debug)]
pub struct FeedSocket {
    id: u64,
    identity: FeedIdentity,
    queue: mpsc::Sender<Arc<str>>,
    close: watch::Sender<Option<CloseReason>>,
}

impl FeedSocket {
    /// Queues one frame without waiting; a full queue closes the socket as
    /// a slow consumer. False when the frame was not queued.
    pub fn send(&self, text: Arc<str>) -> bool {
        match self.queue.try_send(text) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.close(CloseReason::SlowConsumer);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Asks the socket to close (the first reason wins).
    pub fn close(&self, reason: CloseReason) {
        self.close.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(reason);
                true
            } else {
                false
            }
        });
    }

    pub fn is_closing(&self) -> bool {
        self.close.borrow().is_some()
    }

    pub fn closed_signal(&self) -> watch::Receiver<Option<CloseReason>> {
        self.close.subscribe()
    }

    pub fn identity(&self) -> &FeedIdentity {
        &self.identity
    }
}

/// A socket's place in this node's count of sockets per key; dropping it
/// frees the place.
#[derive(Debug)]
pub struct SocketPermit {
    gateway: Gateway,
    key_id: String,
}

impl Drop for SocketPermit {
    fn drop(&mut self) {
        let mut counts = lock(&self.gateway.feeds().sockets_per_key);
        if let Some(count) = counts.get_mut(&self.key_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.key_id);
            }
        }
    }
}

/// This node's feeds, by book id, and its sockets per key.
#[derive(Debug, Default)]
pub(crate) struct Feeds {
    books: StdMutex<HashMap<String, Arc<BookFeed>>>,
    events: StdMutex<Option<Arc<EventFeed>>>,
    sockets_per_key: StdMutex<HashMap<String, usize>>,
    next_socket: AtomicU64,
}

fn lock<T>(mutex: &StdMutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned map only means another thread panicked while holding it.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Feeds {
    /// Wakes the book's feed, if this node has one: a command was committed.
    pub(crate) fn wake(&self, book_id: &str) {
        if let Some(feed) = lock(&self.books).get(book_id) {
            feed.wake.notify_one();
        }
    }

    /// Wakes the event feed, if this node has one: events were numbered.
    pub(crate) fn wake_events(&self) {
        if let Some(feed) = lock(&self.events).as_ref() {
            feed.wake.notify_one();
        }
    }
}

/// One subscription of one socket to a feed.
#[derive(Debug)]
struct Subscriber {
    socket: Arc<FeedSocket>,
    /// Private channels: only this customer's objects.
    customer: Option<String>,
    /// Event channels: only events numbered after this.
    after: u64,
}

impl Subscriber {
    /// Whether an object of this owner is for this subscriber.
    fn wants(&self, merchant_id: &str, customer: Option<&str>) -> bool {
        self.socket.identity.merchant_id == merchant_id
            && self
                .customer
                .as_deref()
                .is_none_or(|wanted| customer == Some(wanted))
    }
}

#[derive(Debug)]
struct BookFeed {
    book_id: String,
    pair: TradingPair,
    wake: Notify,
    state: tokio::sync::Mutex<FeedState>,
}

#[derive(Debug, Default)]
struct FeedState {
    book: BookState,
    bids: Vec<DepthLevel>,
    asks: Vec<DepthLevel>,
    ticker: Option<TickerState>,
    subscribers: BTreeMap<(Kind, u64), Subscriber>,
    /// The poller left the hub: subscribe to a fresh feed instead.
    stopped: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TickerState {
    last_price: Option<u64>,
    best_bid: Option<(u64, u64)>,
    best_ask: Option<(u64, u64)>,
}

/// One price level as the feeds send it (`quantity` 0: the level is gone).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LevelMessage {
    pub price: u64,
    pub quantity: u64,
    pub orders: u64,
}

impl From<&DepthLevel> for LevelMessage {
    fn from(level: &DepthLevel) -> Self {
        LevelMessage {
            price: level.price,
            quantity: level.quantity,
            orders: level.orders as u64,
        }
    }
}

#[derive(Serialize)]
struct BookMessage<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    channel: String,
    livemode: bool,
    sequence: u64,
    bids: &'a [LevelMessage],
    asks: &'a [LevelMessage],
}

#[derive(Serialize)]
struct TradeMessage {
    #[serde(rename = "type")]
    kind: &'static str,
    channel: String,
    livemode: bool,
    sequence: u64,
    price: u64,
    quantity: u64,
    notional: u128,
    taker_side: &'static str,
    /// Unix seconds the command was logged.
    time: i64,
}

#[derive(Serialize)]
struct Quote {
    price: u64,
    quantity: u64,
}

#[derive(Serialize)]
struct TickerMessage<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    channel: String,
    livemode: bool,
    /// `prices` messages name their pair.
    #[serde(skip_serializing_if = "Option::is_none")]
    pair: Option<&'a str>,
    sequence: u64,
    last_price: Option<u64>,
    best_bid: Option<Quote>,
    best_ask: Option<Quote>,
}

#[derive(Serialize)]
struct OrderMessage<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    channel: &'static str,
    livemode: bool,
    pair: &'a str,
    sequence: u64,
    order: &'a Order,
}

/// An event of a private event channel: the webhook's event object.
#[derive(Serialize)]
struct EventMessage<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    channel: &'static str,
    livemode: bool,
    /// The event's number in the feeds' order (increasing, not contiguous
    /// per owner): resume with `since` set to the last one seen.
    sequence: u64,
    event: &'a EventObject,
}

/// A subscription with `since` that could not be resumed.
#[derive(Serialize)]
struct ResumeUnavailable<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    channel: &'a str,
    since: u64,
    message: String,
}

fn resume_unavailable(channel: &Channel, since: u64, message: String) -> GatewayResult<Arc<str>> {
    text(&ResumeUnavailable {
        kind: "resume_unavailable",
        channel: &channel.name(),
        since,
        message,
    })
}

fn text(message: &impl Serialize) -> GatewayResult<Arc<str>> {
    Ok(Arc::from(
        serde_json::to_string(message).map_err(GatewayError::internal)?,
    ))
}

/// Queues `text` to the kind's subscribers that want it (`owner`: the
/// object's merchant and customer; `sequence`: an event's number, which
/// each subscriber takes only after its `after`); drops those whose queue
/// is gone.
fn send_to(
    subscribers: &mut BTreeMap<(Kind, u64), Subscriber>,
    kind: Kind,
    text: &Arc<str>,
    owner: Option<(&str, Option<&str>)>,
    sequence: Option<u64>,
) {
    let mut gone = Vec::new();
    for ((subscribed, id), subscriber) in subscribers.range((kind, 0)..=(kind, u64::MAX)) {
        debug_assert_eq!(*subscribed, kind);
        if owner.is_some_and(|(merchant, customer)| !subscriber.wants(merchant, customer))
            || sequence.is_some_and(|sequence| sequence <= subscriber.after)
        {
            continue;
        }
        if !subscriber.socket.send(text.clone()) {
            gone.push((kind, *id));
        }
    }
    for key in gone {
        subscribers.remove(&key);
    }
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Buy => "buy",
        Side::Sell => "sell",
    }
}

/// The changes from `before` to `after` (both best first): changed or new
/// levels with their quantity, vanished ones with quantity 0.
fn level_changes(before: &[DepthLevel], after: &[DepthLevel]) -> Vec<LevelMessage> {
    let old: BTreeMap<u64, &DepthLevel> = before.iter().map(|level| (level.price, level)).collect();
    let new: BTreeMap<u64, &DepthLevel> = after.iter().map(|level| (level.price, level)).collect();
    let mut changes = Vec::new();
    for level in after {
        if old.get(&level.price) != Some(&level) {
            changes.push(LevelMessage::from(level));
        }
    }
    for level in before {
        if !new.contains_key(&level.price) {
            changes.push(LevelMessage {
                price: level.price,
                quantity: 0,
                orders: 0,
            });
        }
    }
    changes
}

impl FeedState {
    fn engine(&self) -> GatewayResult<&Engine> {
        self.book
            .engine
            .as_ref()
            .ok_or_else(|| internal("the feed has no engine"))
    }

    fn ticker_now(&self) -> GatewayResult<TickerState> {
        let engine = self.engine()?;
        Ok(TickerState {
            last_price: engine.last_trade_price(),
            best_bid: engine.best_bid(),
            best_ask: engine.best_ask(),
        })
    }

    /// Queues `text` to the kind's subscribers (only those who want the
    /// object, when `owner` names its merchant and customer).
    fn send(&mut self, kind: Kind, text: &Arc<str>, owner: Option<(&str, Option<&str>)>) {
        send_to(&mut self.subscribers, kind, text, owner, None);
    }

    fn has(&self, kind: Kind) -> bool {
        self.subscribers
            .range((kind, 0)..=(kind, u64::MAX))
            .next()
            .is_some()
    }
}

/// One command's book update: the levels that changed from `bids`/`asks`
/// (which become the new levels) to the engine's top `depth` levels. The
/// live feed and a resume replay both use it, so a replay sends exactly
/// what the live feed sent.
fn book_update(
    engine: &Engine,
    depth: usize,
    bids: &mut Vec<DepthLevel>,
    asks: &mut Vec<DepthLevel>,
    channel: String,
    livemode: bool,
    sequence: u64,
) -> GatewayResult<Arc<str>> {
    let levels = engine.depth(depth);
    let bid_changes = level_changes(bids, &levels.bids);
    let ask_changes = level_changes(asks, &levels.asks);
    *bids = levels.bids;
    *asks = levels.asks;
    text(&BookMessage {
        kind: "update",
        channel,
        livemode,
        sequence,
        bids: &bid_changes,
        asks: &ask_changes,
    })
}

fn parse_command(book_id: &str, sequence: u64, command: &str) -> GatewayResult<Command> {
    serde_json::from_str(command).map_err(|error| {
        internal(format!(
            "book {book_id}: command {sequence} does not parse: {error}"
        ))
    })
}

impl BookFeed {
    fn snapshot(&self, state: &FeedState) -> GatewayResult<Arc<str>> {
        let bids: Vec<LevelMessage> = state.bids.iter().map(LevelMessage::from).collect();
        let asks: Vec<LevelMessage> = state.asks.iter().map(LevelMessage::from).collect();
        text(&BookMessage {
            kind: "snapshot",
            channel: self.book_channel(),
            livemode: self.livemode(),
            sequence: state.book.sequence,
            bids: &bids,
            asks: &asks,
        })
    }

    fn book_channel(&self) -> String {
        format!("book:{}", self.pair.id)
    }

    fn livemode(&self) -> bool {
        self.book_id.ends_with("/live")
    }

    /// The ticker (`ticker:{pair}`) or the pair's `prices` message.
    fn ticker(
        &self,
        state: &FeedState,
        ticker: TickerState,
        kind: Kind,
    ) -> GatewayResult<Arc<str>> {
        let quote =
            |best: Option<(u64, u64)>| best.map(|(price, quantity)| Quote { price, quantity });
        let (kind, channel, pair) = match kind {
            Kind::Prices => ("price", "prices".to_owned(), Some(self.pair.id.as_str())),
            _ => ("ticker", format!("ticker:{}", self.pair.id), None),
        };
        text(&TickerMessage {
            kind,
            channel,
            livemode: self.livemode(),
            pair,
            sequence: state.book.sequence,
            last_price: ticker.last_price,
            best_bid: quote(ticker.best_bid),
            best_ask: quote(ticker.best_ask),
        })
    }

    /// Builds the engine (first use) or applies the commands logged since
    /// the last poll, sending what each one changed.
    async fn advance(&self, gateway: &Gateway, state: &mut FeedState) -> GatewayResult<()> {
        let depth = gateway.config().feeds.book_depth.clamp(1, BOOK_DEPTH_MAX);
        let mut reader = gateway.store().reader().await?;
        let mut conn = reader.conn();
        let head = conn.trading_book_sequence(&self.book_id).await?;
        if state.book.engine.is_none() {
            catch_up(&mut conn, &mut state.book, &self.book_id, &self.pair, head).await?;
            let levels = state.engine()?.depth(depth);
            state.bids = levels.bids;
            state.asks = levels.asks;
            state.ticker = Some(state.ticker_now()?);
            return Ok(());
        }
        if head <= state.book.sequence {
            return Ok(());
        }
        let log = conn
            .trading_log(
                &self.book_id,
                state.book.sequence,
                head,
                COMMANDS_PER_POLL_MAX,
            )
            .await?;
        for (sequence, command, created) in log {
            if sequence != state.book.sequence + 1 {
                return Err(internal(format!(
                    "book {}: the log jumps from {} to {sequence}",
                    self.book_id, state.book.sequence
                )));
            }
            let command = parse_command(&self.book_id, sequence, &command)?;
            let FeedState {
                book, bids, asks, ..
            } = &mut *state;
            let engine = book
                .engine
                .as_mut()
                .ok_or_else(|| internal("the feed has no engine"))?;
            let events = engine.apply(&command).map_err(|reason| {
                internal(format!(
                    "book {}: replaying command {sequence} was refused: {reason}",
                    self.book_id
                ))
            })?;
            book.sequence = sequence;
            let update = book_update(
                engine,
                depth,
                bids,
                asks,
                self.book_channel(),
                self.livemode(),
                sequence,
            )?;

            if state.has(Kind::Trades) {
                for event in &events {
                    if let Event::Fill(fill) = event {
                        let message = text(&TradeMessage {
                            kind: "trade",
                            channel: format!("trades:{}", self.pair.id),
                            livemode: self.livemode(),
                            sequence,
                            price: fill.price,
                            quantity: fill.quantity,
                            notional: fill.notional,
                            taker_side: side_name(fill.taker_side),
                            time: created,
                        })?;
                        state.send(Kind::Trades, &message, None);
                    }
                }
            }
            state.send(Kind::Book, &update, None);
            let ticker = state.ticker_now()?;
            if state.ticker != Some(ticker) {
                state.ticker = Some(ticker);
                for kind in [Kind::Ticker, Kind::Prices] {
                    if state.has(kind) {
                        let message = self.ticker(state, ticker, kind)?;
                        state.send(kind, &message, None);
                    }
                }
            }
            if state.has(Kind::Orders) {
                // The orders this command created or finished, as their rows
                // stand now (a finished order never changes again).
                let mut numbers: Vec<(u64, bool)> = Vec::new();
                if let Command::Place(order) = &command {
                    numbers.push((order.id.0, true));
                }
                for event in &events {
                    if let Event::Done { id, .. } = event {
                        numbers.push((id.0, false));
                    }
                }
                for (number, created) in numbers {
                    let Some(record) = conn.trading_order_by_number(&self.book_id, number).await?
                    else {
                        continue;
                    };
                    let kind = if created {
                        "order.created"
                    } else {
                        match record.order.status {
                            malipo_core::trading::OrderStatus::Filled => "order.filled",
                            malipo_core::trading::OrderStatus::Canceled => "order.canceled",
                            malipo_core::trading::OrderStatus::Rejected => "order.rejected",
                            malipo_core::trading::OrderStatus::Open => continue,
                        }
                    };
                    let message = text(&OrderMessage {
                        kind,
                        channel: "orders",
                        livemode: self.livemode(),
                        pair: &self.pair.id,
                        sequence,
                        order: &record.order,
                    })?;
                    state.send(
                        Kind::Orders,
                        &message,
                        Some((&record.merchant_id, Some(record.order.customer.as_str()))),
                    );
                }
            }
        }
        Ok(())
    }

    /// The updates after `since` up to the feed's sequence, for one socket
    /// resuming a book subscription; `None` when they can't be rebuilt
    /// (too far behind, or the log no longer holds them): the caller sends
    /// a fresh snapshot instead.
    async fn replay(
        &self,
        gateway: &Gateway,
        state: &FeedState,
        since: u64,
    ) -> GatewayResult<Result<Vec<Arc<str>>, String>> {
        let config = &gateway.config().feeds;
        let depth = config.book_depth.clamp(1, BOOK_DEPTH_MAX);
        let head = state.book.sequence;
        if head - since > config.resume_commands_max {
            return Ok(Err(format!(
                "{} commands since {since}: more than the {} a resume replays",
                head - since,
                config.resume_commands_max
            )));
        }
        let mut reader = gateway.store().reader().await?;
        let mut conn = reader.conn();
        let mut book = BookState::default();
        if let Err(error) = catch_up(&mut conn, &mut book, &self.book_id, &self.pair, since).await {
            tracing::info!(book = %self.book_id, since, %error, "a feed resume could not rebuild the book");
            return Ok(Err(format!(
                "the log no longer holds the book at sequence {since}"
            )));
        }
        let mut engine = book
            .engine
            .ok_or_else(|| internal("catch_up left no engine"))?;
        let levels = engine.depth(depth);
        let (mut bids, mut asks) = (levels.bids, levels.asks);
        let mut messages = Vec::new();
        let mut sequence = since;
        while sequence < head {
            let log = conn
                .trading_log(&self.book_id, sequence, head, COMMANDS_PER_POLL_MAX)
                .await?;
            if log.is_empty() {
                return Ok(Err(format!(
                    "the log no longer holds command {}",
                    sequence + 1
                )));
            }
            for (next, command, _) in log {
                if next != sequence + 1 {
                    return Ok(Err(format!(
                        "the log no longer holds command {}",
                        sequence + 1
                    )));
                }
                let command = parse_command(&self.book_id, next, &command)?;
                engine.apply(&command).map_err(|reason| {
                    internal(format!(
                        "book {}: replaying command {next} was refused: {reason}",
                        self.book_id
                    ))
                })?;
                sequence = next;
                messages.push(book_update(
                    &engine,
                    depth,
                    &mut bids,
                    &mut asks,
                    self.book_channel(),
                    self.livemode(),
                    sequence,
                )?);
            }
        }
        Ok(Ok(messages))
    }
}

/// Polls one book's log while anybody on this node listens to it.
async fn run_feed(gateway: Gateway, feed: Arc<BookFeed>) {
    let interval = Duration::from_millis(gateway.config().feeds.poll_interval_ms.max(1));
    let mut failures: u32 = 0;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = feed.wake.notified() => {}
        }
        let mut state = feed.state.lock().await;
        state
            .subscribers
            .retain(|_, subscriber| !subscriber.socket.is_closing());
        if state.subscribers.is_empty() {
            drop(state);
            // Leave the hub under its lock, so that nobody finds this feed
            // after it stopped; a subscriber that holds the state now keeps
            // the feed running.
            let mut books = lock(&gateway.feeds().books);
            if let Ok(mut state) = feed.state.try_lock()
                && state.subscribers.is_empty()
            {
                state.stopped = true;
                if books
                    .get(&feed.book_id)
                    .is_some_and(|current| Arc::ptr_eq(current, &feed))
                {
                    books.remove(&feed.book_id);
                }
                return;
            }
            continue;
        }
        match feed.advance(&gateway, &mut state).await {
            Ok(()) => failures = 0,
            Err(error) => {
                failures += 1;
                tracing::warn!(book = %feed.book_id, %error, failures, "the live feed could not read the log");
                metrics::counter!("malipo_feed_poll_failures_total").increment(1);
            }
        }
    }
}

/// This node's reader of the event outbox for the private event channels
/// (`payments`, `trades`), shared by every socket that subscribed to one.
#[derive(Debug)]
struct EventFeed {
    wake: Notify,
    state: tokio::sync::Mutex<EventFeedState>,
}

#[derive(Debug, Default)]
struct EventFeedState {
    /// The last event number read; `None` until the first read.
    cursor: Option<u64>,
    subscribers: BTreeMap<(Kind, u64), Subscriber>,
    /// The poller left the hub: subscribe to a fresh feed instead.
    stopped: bool,
}

/// The customer an event's object belongs to: its `customer` (orders,
/// desk trades, swaps) or the customer a payment credits.
fn event_customer(data: &serde_json::Value) -> Option<&str> {
    data.get("customer")
        .and_then(serde_json::Value::as_str)
        .or_else(|| {
            data.get("credit_customer")
                .and_then(serde_json::Value::as_str)
        })
}

/// One event's message, ready for the sockets of its owner.
struct RoutedEvent {
    kind: Kind,
    message: Arc<str>,
    /// The customer the event's object belongs to.
    customer: Option<String>,
}

/// The message of one event on its channel, with the customer it belongs
/// to; `None` for events of no private event channel.
fn event_message(sequence: u64, record: &EventRecord) -> GatewayResult<Option<RoutedEvent>> {
    let Some(kind) = event_kind(&record.event_type) else {
        return Ok(None);
    };
    let event = event_object(record)?;
    let customer = event_customer(&event.data.object).map(str::to_owned);
    let message = text(&EventMessage {
        kind: &record.event_type,
        channel: match kind {
            Kind::Payments => "payments",
            _ => "trades",
        },
        livemode: record.livemode,
        sequence,
        event: &event,
    })?;
    Ok(Some(RoutedEvent {
        kind,
        message,
        customer,
    }))
}

impl EventFeed {
    /// Reads the first cursor, or the events numbered since the last read,
    /// sending each to the subscribers that want it.
    async fn advance(&self, gateway: &Gateway, state: &mut EventFeedState) -> GatewayResult<()> {
        let mut reader = gateway.store().reader().await?;
        let mut conn = reader.conn();
        let head = conn.event_feed_head().await?;
        let Some(cursor) = state.cursor else {
            state.cursor = Some(head);
            return Ok(());
        };
        if head <= cursor {
            return Ok(());
        }
        let events = conn
            .events_for_feeds(None, cursor, head, COMMANDS_PER_POLL_MAX)
            .await?;
        let mut last = cursor;
        for (sequence, record) in events {
            last = sequence;
            // Most events are nobody's on this node: skip them before
            // parsing and serializing.
            let listened = event_kind(&record.event_type).is_some_and(|kind| {
                state
                    .subscribers
                    .range((kind, 0)..=(kind, u64::MAX))
                    .any(|(_, subscriber)| {
                        subscriber.socket.identity.livemode == record.livemode
                            && subscriber.socket.identity.merchant_id == record.merchant_id
                    })
            });
            if !listened {
                continue;
            }
            if let Some(RoutedEvent {
                kind,
                message,
                customer,
            }) = event_message(sequence, &record)?
            {
                let subscribers = &mut state.subscribers;
                let mut gone = Vec::new();
                for (key, subscriber) in subscribers.range((kind, 0)..=(kind, u64::MAX)) {
                    if subscriber.socket.identity.livemode == record.livemode
                        && subscriber.wants(&record.merchant_id, customer.as_deref())
                        && sequence > subscriber.after
                        && !subscriber.socket.send(message.clone())
                    {
                        gone.push(*key);
                    }
                }
                for key in gone {
                    subscribers.remove(&key);
                }
            }
        }
        // Numbers commit without holes, so every number up to the last one
        // read is read; a full read leaves more: read again at once.
        state.cursor = Some(last);
        if last < head {
            self.wake.notify_one();
        }
        Ok(())
    }
}

/// Polls the outbox while anybody on this node listens to an event channel.
async fn run_event_feed(gateway: Gateway, feed: Arc<EventFeed>) {
    let interval = Duration::from_millis(gateway.config().feeds.poll_interval_ms.max(1));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = feed.wake.notified() => {}
        }
        let mut state = feed.state.lock().await;
        state
            .subscribers
            .retain(|_, subscriber| !subscriber.socket.is_closing());
        if state.subscribers.is_empty() {
            drop(state);
            let mut hub = lock(&gateway.feeds().events);
            if let Ok(mut state) = feed.state.try_lock()
                && state.subscribers.is_empty()
            {
                state.stopped = true;
                if hub
                    .as_ref()
                    .is_some_and(|current| Arc::ptr_eq(current, &feed))
                {
                    *hub = None;
                }
                return;
            }
            continue;
        }
        if let Err(error) = feed.advance(&gateway, &mut state).await {
            tracing::warn!(%error, "the live event feed could not read the outbox");
            metrics::counter!("malipo_feed_poll_failures_total").increment(1);
        }
    }
}

fn internal(message: impl Into<String>) -> GatewayError {
    GatewayError::Internal(message.into().into())
}

fn pair_missing(pair: &str) -> ApiError {
    ApiError::new(
        ErrorKind::InvalidRequest,
        "resource_missing",
        format!("no such trading pair: `{pair}`"),
    )
    .with_param("channel")
}

fn since_invalid(message: impl Into<String>) -> ApiError {
    ApiError::invalid("since", message)
}

impl Gateway {
    pub(crate) fn feeds(&self) -> &Feeds {
        &self.inner.feeds
    }

    /// Takes one of the credential's socket places on this node: a 429
    /// `sockets_too_many` when all are taken.
    pub fn open_feed_socket(
        &self,
        identity: FeedIdentity,
    ) -> GatewayResult<(Arc<FeedSocket>, mpsc::Receiver<Arc<str>>, SocketPermit)> {
        let config = &self.config().feeds;
        {
            let mut counts = lock(&self.feeds().sockets_per_key);
            let count = counts.entry(identity.credential_id.clone()).or_default();
            if *count >= config.sockets_per_key_max {
                return Err(ApiError::new(
                    ErrorKind::RateLimit,
                    "sockets_too_many",
                    format!(
                        "this credential already holds {} open streams on this node (the limit)",
                        config.sockets_per_key_max
                    ),
                )
                .into());
            }
            *count += 1;
        }
        let permit = SocketPermit {
            gateway: self.clone(),
            key_id: identity.credential_id.clone(),
        };
        let (queue, receiver) = mpsc::channel(config.send_buffer_messages.max(1));
        let (close, _) = watch::channel(None);
        let socket = Arc::new(FeedSocket {
            id: self.feeds().next_socket.fetch_add(1, Ordering::Relaxed),
            identity,
            queue,
            close,
        });
        metrics::counter!("malipo_feed_sockets_total").increment(1);
        Ok((socket, receiver, permit))
    }

    /// The feed of one book, started on first use.
    fn book_feed(&self, pair: &TradingPair, livemode: bool) -> Arc<BookFeed> {
        let id = book_id(&pair.id, livemode);
        let mut books = lock(&self.feeds().books);
        if let Some(feed) = books.get(&id) {
            return feed.clone();
        }
        let feed = Arc::new(BookFeed {
            book_id: id.clone(),
            pair: pair.clone(),
            wake: Notify::new(),
            state: tokio::sync::Mutex::new(FeedState::default()),
        });
        books.insert(id, feed.clone());
        tokio::spawn(run_feed(self.clone(), feed.clone()));
        feed
    }

    /// This node's event feed, started on first use.
    fn event_feed(&self) -> Arc<EventFeed> {
        let mut hub = lock(&self.feeds().events);
        if let Some(feed) = hub.as_ref() {
            return feed.clone();
        }
        let feed = Arc::new(EventFeed {
            wake: Notify::new(),
            state: tokio::sync::Mutex::new(EventFeedState::default()),
        });
        *hub = Some(feed.clone());
        tokio::spawn(run_event_feed(self.clone(), feed.clone()));
        feed
    }

    /// The customer a private subscription is narrowed to: a customer
    /// token's own (naming another is a 403 `customer_forbidden`), or one
    /// of the merchant's customers in the stream's mode (404 otherwise).
    async fn subscription_customer(
        &self,
        identity: &FeedIdentity,
        channel: &Channel,
        requested: Option<&str>,
    ) -> GatewayResult<Option<String>> {
        let Some(requested) = requested else {
            return Ok(identity.customer.clone());
        };
        if !channel.is_private() {
            return Err(ApiError::invalid(
                "customer",
                "only private channels (orders, payments, trades) take a customer",
            )
            .into());
        }
        if let Some(own) = &identity.customer {
            if own != requested {
                return Err(ApiError::new(
                    ErrorKind::Permission,
                    "customer_forbidden",
                    "a customer token reads only its own customer's channels",
                )
                .with_param("customer")
                .into());
            }
            return Ok(Some(own.clone()));
        }
        let mut reader = self.store().reader().await?;
        let found = reader
            .conn()
            .customer(&identity.merchant_id, identity.livemode, requested)
            .await?;
        if found.is_none() {
            return Err(ApiError::not_found("customer", requested)
                .with_param("customer")
                .into());
        }
        Ok(Some(requested.to_owned()))
    }

    /// Adds the socket to the channel's feeds. `ack` is queued first, then
    /// the channel's first messages (a book's snapshot or the updates it
    /// missed, the ticker, the prices, the events after `since`), so that
    /// every later message of the channel follows them.
    pub async fn feed_subscribe(
        &self,
        socket: &Arc<FeedSocket>,
        channel: &Channel,
        options: &SubscribeOptions,
        ack: Arc<str>,
    ) -> GatewayResult<()> {
        let identity = &socket.identity;
        let customer = self
            .subscription_customer(identity, channel, options.customer.as_deref())
            .await?;
        if options.since.is_some()
            && !matches!(
                channel,
                Channel::Book(_) | Channel::Payments | Channel::OwnTrades
            )
        {
            return Err(since_invalid(
                "only book:{pair}, payments and trades resume from a sequence",
            )
            .into());
        }
        if matches!(channel, Channel::Payments | Channel::OwnTrades) {
            return self
                .subscribe_events(socket, channel, options.since, customer, ack)
                .await;
        }
        let pairs = match channel {
            Channel::Book(pair) | Channel::Trades(pair) | Channel::Ticker(pair) => {
                let mut reader = self.store().reader().await?;
                let mut conn = reader.conn();
                let found = conn
                    .trading_pair(pair)
                    .await?
                    .ok_or_else(|| pair_missing(pair))?;
                if let Some(since) = options.since {
                    let head = conn
                        .trading_book_sequence(&book_id(pair, identity.livemode))
                        .await?;
                    if since > head {
                        return Err(since_invalid(format!(
                            "since {since} is after the book's sequence {head}"
                        ))
                        .into());
                    }
                }
                vec![found]
            }
            _ => self.trading_pairs().await?.data,
        };
        if !socket.send(ack) {
            return Ok(());
        }
        let kind = channel.kind();
        for pair in pairs {
            loop {
                let feed = self.book_feed(&pair, identity.livemode);
                let mut state = feed.state.lock().await;
                if state.stopped {
                    continue;
                }
                if state.book.engine.is_none() {
                    feed.advance(self, &mut state).await?;
                }
                match (kind, options.since) {
                    (Kind::Book, Some(since)) => {
                        if since > state.book.sequence {
                            // This node's feed is behind the book's row:
                            // catch up first.
                            feed.advance(self, &mut state).await?;
                        }
                        let replay = if since > state.book.sequence {
                            Err(format!(
                                "this node's feed is at {}, before {since}",
                                state.book.sequence
                            ))
                        } else {
                            feed.replay(self, &state, since).await?
                        };
                        match replay {
                            Ok(updates) => {
                                for update in updates {
                                    socket.send(update);
                                }
                            }
                            Err(reason) => {
                                socket.send(resume_unavailable(channel, since, reason)?);
                                socket.send(feed.snapshot(&state)?);
                            }
                        }
                    }
                    (Kind::Book, None) => {
                        socket.send(feed.snapshot(&state)?);
                    }
                    (Kind::Ticker | Kind::Prices, _) => {
                        let ticker = state.ticker_now()?;
                        socket.send(feed.ticker(&state, ticker, kind)?);
                    }
                    _ => {}
                }
                state.subscribers.insert(
                    (kind, socket.id),
                    Subscriber {
                        socket: socket.clone(),
                        customer: customer.clone(),
                        after: 0,
                    },
                );
                break;
            }
        }
        Ok(())
    }

    /// A private event channel: the owner's events after `since` (at most
    /// `resume_events_max`, else a `resume_unavailable` notice), then the
    /// new ones.
    async fn subscribe_events(
        &self,
        socket: &Arc<FeedSocket>,
        channel: &Channel,
        since: Option<u64>,
        customer: Option<String>,
        ack: Arc<str>,
    ) -> GatewayResult<()> {
        let identity = &socket.identity;
        let config = &self.config().feeds;
        if let Some(since) = since {
            let head = self
                .store()
                .reader()
                .await?
                .conn()
                .event_feed_head()
                .await?;
            if since > head {
                return Err(since_invalid(format!(
                    "since {since} is after the last event's sequence {head}"
                ))
                .into());
            }
        }
        if !socket.send(ack) {
            return Ok(());
        }
        let kind = channel.kind();
        loop {
            let feed = self.event_feed();
            let mut state = feed.state.lock().await;
            if state.stopped {
                continue;
            }
            if state.cursor.is_none() {
                feed.advance(self, &mut state).await?;
            }
            let cursor = state
                .cursor
                .ok_or_else(|| internal("the event feed has no cursor"))?;
            let mut after = cursor;
            if let Some(since) = since {
                if since >= cursor {
                    // Events up to `since` were seen (read by another node
                    // already): skip them when this node reads them.
                    after = since;
                } else {
                    let limit = config.resume_events_max;
                    let mut reader = self.store().reader().await?;
                    let pruned_through = reader.conn().event_feed_pruned_through().await?;
                    let events = reader
                        .conn()
                        .events_for_feeds(
                            Some((&identity.merchant_id, identity.livemode)),
                            since,
                            cursor,
                            limit.saturating_add(1),
                        )
                        .await?;
                    drop(reader);
                    if since < pruned_through {
                        // `crate::retention` deleted events after `since`:
                        // a replay would have a silent gap.
                        socket.send(resume_unavailable(
                            channel,
                            since,
                            format!(
                                "the retention deleted events after {since}: sending events from now"
                            ),
                        )?);
                    } else if events.len() > limit as usize {
                        socket.send(resume_unavailable(
                            channel,
                            since,
                            format!(
                                "more than {limit} events since {since}: sending events from now"
                            ),
                        )?);
                    } else {
                        for (sequence, record) in &events {
                            if let Some(routed) = event_message(*sequence, record)?
                                && routed.kind == kind
                                && customer
                                    .as_deref()
                                    .is_none_or(|wanted| routed.customer.as_deref() == Some(wanted))
                            {
                                socket.send(routed.message);
                            }
                        }
                    }
                }
            }
            state.subscribers.insert(
                (kind, socket.id),
                Subscriber {
                    socket: socket.clone(),
                    customer,
                    after,
                },
            );
            return Ok(());
        }
    }

    /// Removes the socket from the channel's feeds.
    pub async fn feed_unsubscribe(&self, socket: &FeedSocket, channel: &Channel) {
        let kind = channel.kind();
        if matches!(channel, Channel::Payments | Channel::OwnTrades) {
            let feed = lock(&self.feeds().events).clone();
            if let Some(feed) = feed {
                feed.state
                    .lock()
                    .await
                    .subscribers
                    .remove(&(kind, socket.id));
            }
            return;
        }
        let feeds: Vec<Arc<BookFeed>> = {
            let books = lock(&self.feeds().books);
            books
                .values()
                .filter(|feed| feed.livemode() == socket.identity.livemode)
                .filter(|feed| match channel {
                    Channel::Book(pair) | Channel::Trades(pair) | Channel::Ticker(pair) => {
                        &feed.pair.id == pair
                    }
                    _ => true,
                })
                .cloned()
                .collect()
        };
        for feed in feeds {
            feed.state
                .lock()
                .await
                .subscribers
                .remove(&(kind, socket.id));
        }
    }
}
