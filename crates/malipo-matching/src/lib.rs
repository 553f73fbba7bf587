//! Malipo's order-book matching engine: one pair's book as a pure,
//! deterministic state machine. No IO, no clock, no floats, no threads.
//!
//! # How it is used
//!
//! The venue owns one [`Engine`] per pair. It logs each [`Command`] durably,
//! calls [`Engine::apply`], and settles what the [`Event`]s say: each
//! [`Fill`] is one ledger batch (base one way, quote the other, both fees to
//! the venue); `Cancelled` and `Done` release what was held. After a
//! restart, applying the same log to [`Engine::new`] gives the identical
//! state and events; an [`Engine`] serializes (serde) as a snapshot, so
//! replay can start from the last one.
//!
//! # Rules
//!
//! - Units: [`PairConfig`]. Prices are multiples of the tick, quantities of
//!   the lot, notionals `u128`. Fees are basis points of the notional,
//!   rounded up ([`fee::fee`]).
//! - Price-time priority. A fill is at the resting order's price, so no
//!   taker ever trades worse than its limit.
//! - Time in force: GTC rests; IOC and market orders never rest; FOK fills
//!   completely or is refused; post-only is refused if it would take.
//! - Self-trade prevention: the taker's [`SelfTradePrevention`] mode;
//!   cancel-taker by default.
//! - Stops wait in their own book and enter as fresh orders when the last
//!   trade price reaches their trigger (a buy stop at or above it, a sell
//!   stop at or below), one at a time, each trading before the next is
//!   chosen against the new last price: among triggered buy stops the lowest
//!   trigger, among sell stops the highest, then the older of the two (ties
//!   by age). A stop placed when the last price already triggers it enters
//!   at once.
//! - Amend ([`Command::Amend`]): a resting order keeps its priority only if
//!   the price is unchanged and the quantity does not grow; otherwise it is
//!   cancelled and replaced at the back of the queue.
//! - A halted pair refuses new orders and amendments, and accepts cancels.
//! - Order ids are unique among open orders; reusing the id of a finished
//!   order is allowed, and telling them apart is the caller's business.
//!
//! # Invariants (tested against a naive reference engine in `tests/`)
//!
//! 1. A refused command changes nothing and emits nothing.
//! 2. Per order, placed = filled + cancelled + open.
//! 3. The book is never crossed after a command.
//! 4. Nothing panics or wraps: checks that could overflow run before any
//!    change, and matching itself cannot overflow.
//! 5. The same commands give the same events and state.
//!
//! # Speed
//!
//! Each side is a `BTreeMap` of price levels; a level is a FIFO queue
//! linked through a slab of orders, and an id index (a fast non-SipHash
//! hasher) finds any order, so a cancel is O(1) plus the level's map update.
//! See docs/benchmarks.md for the figures.

mod book;
mod command;
mod engine;
mod event;
pub mod fee;
mod hash;
mod stops;
mod types;

pub use book::DepthLevel;
pub use command::Command;
pub use engine::{Depth, Engine, OrderView};
pub use event::{CancelReason, Event, Fill, RejectReason};
pub use types::{
    ConfigError, FEE_BPS_MAX, NewOrder, OrderId, OrderKind, OwnerId, PairConfig, PairStatus, Price,
    Quantity, SelfTradePrevention, Side, TimeInForce,
};
