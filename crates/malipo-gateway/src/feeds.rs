//! Live feeds of the trading venue: what `GET /v1/trading/stream` sends.
//!
//! # Where the messages come from
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
//! something and subscribes again for a fresh snapshot.

use crate::auth::MerchantContext;
use crate::trading::{BookState, book_id, catch_up};
use crate::{ApiError, ErrorKind, Gateway, GatewayError, GatewayResult};
use malipo_core::objects::Scope;
use malipo_core::trading::{Order, TradingPair};
use malipo_matching::{Command, DepthLevel, Engine, Event, Side};
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
    /// `orders`: the key's merchant's orders created and finished, in its mode.
    Orders,
}

impl Channel {
    /// Reads `book:{pair}`, `trades:{pair}`, `ticker:{pair}` or `orders`;
    /// errors name `channel`.
    pub fn parse(text: &str) -> Result<Channel, ApiError> {
        if text == "orders" {
            return Ok(Channel::Orders);
        }
        let unknown = || {
            ApiError::new(
                ErrorKind::InvalidRequest,
                "channel_unknown",
                format!(
                    "unknown channel `{text}`: use book:{{pair}}, trades:{{pair}}, ticker:{{pair}} or orders"
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
            Channel::Orders => "orders".to_owned(),
        }
    }

    fn kind(&self) -> Kind {
        match self {
            Channel::Book(_) => Kind::Book,
            Channel::Trades(_) => Kind::Trades,
            Channel::Ticker(_) => Kind::Ticker,
            Channel::Orders => Kind::Orders,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Book,
    Trades,
    Ticker,
    Orders,
}

/// Why the server closes a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Its send buffer was full, or one write took too long.
    SlowConsumer,
    /// No pong for two ping intervals.
    PongTimeout,
}

/// One WebSocket's end in the feeds: its bounded queue of text frames and
/// the signal that closes it.
#[derive(Debug)]
pub struct FeedSocket {
    id: u64,
    merchant_id: String,
    livemode: bool,
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
    subscribers: BTreeMap<(Kind, u64), Arc<FeedSocket>>,
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
struct TickerMessage {
    #[serde(rename = "type")]
    kind: &'static str,
    channel: String,
    livemode: bool,
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

fn text(message: &impl Serialize) -> GatewayResult<Arc<str>> {
    Ok(Arc::from(
        serde_json::to_string(message).map_err(GatewayError::internal)?,
    ))
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

    fn send(&mut self, kind: Kind, text: &Arc<str>, merchant: Option<&str>) {
        let mut gone = Vec::new();
        for ((subscribed, id), socket) in self.subscribers.range((kind, 0)..=(kind, u64::MAX)) {
            debug_assert_eq!(*subscribed, kind);
            if merchant.is_some_and(|merchant| merchant != socket.merchant_id) {
                continue;
            }
            if !socket.send(text.clone()) {
                gone.push((kind, *id));
            }
        }
        for key in gone {
            self.subscribers.remove(&key);
        }
    }

    fn has(&self, kind: Kind) -> bool {
        self.subscribers
            .range((kind, 0)..=(kind, u64::MAX))
            .next()
            .is_some()
    }
}

impl BookFeed {
    fn snapshot(&self, state: &FeedState) -> GatewayResult<Arc<str>> {
        let bids: Vec<LevelMessage> = state.bids.iter().map(LevelMessage::from).collect();
        let asks: Vec<LevelMessage> = state.asks.iter().map(LevelMessage::from).collect();
        text(&BookMessage {
            kind: "snapshot",
            channel: format!("book:{}", self.pair.id),
            livemode: self.livemode(),
            sequence: state.book.sequence,
            bids: &bids,
            asks: &asks,
        })
    }

    fn livemode(&self) -> bool {
        self.book_id.ends_with("/live")
    }

    fn ticker(&self, state: &FeedState, ticker: TickerState) -> GatewayResult<Arc<str>> {
        let quote =
            |best: Option<(u64, u64)>| best.map(|(price, quantity)| Quote { price, quantity });
        text(&TickerMessage {
            kind: "ticker",
            channel: format!("ticker:{}", self.pair.id),
            livemode: self.livemode(),
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
            let command: Command =
                serde_json::from_str(&command).map_err(GatewayError::internal)?;
            let engine = state
                .book
                .engine
                .as_mut()
                .ok_or_else(|| internal("the feed has no engine"))?;
            let events = engine.apply(&command).map_err(|reason| {
                internal(format!(
                    "book {}: replaying command {sequence} was refused: {reason}",
                    self.book_id
                ))
            })?;
            state.book.sequence = sequence;
            let levels = engine.depth(depth);
            let (bids, asks) = (levels.bids, levels.asks);

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
            let bid_changes = level_changes(&state.bids, &bids);
            let ask_changes = level_changes(&state.asks, &asks);
            state.bids = bids;
            state.asks = asks;
            if state.has(Kind::Book) {
                let message = text(&BookMessage {
                    kind: "update",
                    channel: format!("book:{}", self.pair.id),
                    livemode: self.livemode(),
                    sequence,
                    bids: &bid_changes,
                    asks: &ask_changes,
                })?;
                state.send(Kind::Book, &message, None);
            }
            let ticker = state.ticker_now()?;
            if state.ticker != Some(ticker) {
                state.ticker = Some(ticker);
                if state.has(Kind::Ticker) {
                    let message = self.ticker(state, ticker)?;
                    state.send(Kind::Ticker, &message, None);
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
                    state.send(Kind::Orders, &message, Some(&record.merchant_id));
                }
            }
        }
        Ok(())
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
        state.subscribers.retain(|_, socket| !socket.is_closing());
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

impl Gateway {
    pub(crate) fn feeds(&self) -> &Feeds {
        &self.inner.feeds
    }

    /// Takes one of the key's socket places on this node: a 429
    /// `sockets_too_many` when all are taken.
    pub fn open_feed_socket(
        &self,
        context: &MerchantContext,
    ) -> GatewayResult<(Arc<FeedSocket>, mpsc::Receiver<Arc<str>>, SocketPermit)> {
        context.require(Scope::ReadOnly)?;
        let config = &self.config().feeds;
        {
            let mut counts = lock(&self.feeds().sockets_per_key);
            let count = counts.entry(context.key_id.clone()).or_default();
            if *count >= config.sockets_per_key_max {
                return Err(ApiError::new(
                    ErrorKind::RateLimit,
                    "sockets_too_many",
                    format!(
                        "this API key already holds {} open streams on this node (the limit)",
                        config.sockets_per_key_max
                    ),
                )
                .into());
            }
            *count += 1;
        }
        let permit = SocketPermit {
            gateway: self.clone(),
            key_id: context.key_id.clone(),
        };
        let (queue, receiver) = mpsc::channel(config.send_buffer_messages.max(1));
        let (close, _) = watch::channel(None);
        let socket = Arc::new(FeedSocket {
            id: self.feeds().next_socket.fetch_add(1, Ordering::Relaxed),
            merchant_id: context.merchant_id.clone(),
            livemode: context.livemode(),
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

    /// Adds the socket to the channel's feeds. `ack` is queued first, then
    /// the channel's first message (a book's snapshot, the ticker), so that
    /// every later message of the channel follows them.
    pub async fn feed_subscribe(
        &self,
        socket: &Arc<FeedSocket>,
        channel: &Channel,
        ack: Arc<str>,
    ) -> GatewayResult<()> {
        let pairs = match channel {
            Channel::Book(pair) | Channel::Trades(pair) | Channel::Ticker(pair) => {
                let mut reader = self.store().reader().await?;
                vec![
                    reader
                        .conn()
                        .trading_pair(pair)
                        .await?
                        .ok_or_else(|| pair_missing(pair))?,
                ]
            }
            Channel::Orders => self.trading_pairs().await?.data,
        };
        if !socket.send(ack) {
            return Ok(());
        }
        let kind = channel.kind();
        for pair in pairs {
            loop {
                let feed = self.book_feed(&pair, socket.livemode);
                let mut state = feed.state.lock().await;
                if state.stopped {
                    continue;
                }
                if state.book.engine.is_none() {
                    feed.advance(self, &mut state).await?;
                }
                match kind {
                    Kind::Book => {
                        let snapshot = feed.snapshot(&state)?;
                        socket.send(snapshot);
                    }
                    Kind::Ticker => {
                        let ticker = state.ticker_now()?;
                        let message = feed.ticker(&state, ticker)?;
                        socket.send(message);
                    }
                    Kind::Trades | Kind::Orders => {}
                }
                state.subscribers.insert((kind, socket.id), socket.clone());
                break;
            }
        }
        Ok(())
    }

    /// Removes the socket from the channel's feeds.
    pub async fn feed_unsubscribe(&self, socket: &FeedSocket, channel: &Channel) {
        let kind = channel.kind();
        let feeds: Vec<Arc<BookFeed>> = {
            let books = lock(&self.feeds().books);
            books
                .values()
                .filter(|feed| feed.livemode() == socket.livemode)
                .filter(|feed| match channel {
                    Channel::Orders => true,
                    Channel::Book(pair) | Channel::Trades(pair) | Channel::Ticker(pair) => {
                        &feed.pair.id == pair
                    }
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
