//! The vocabulary: ids, sides, order kinds, time in force, self-trade
//! prevention, and the pair's configuration.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A price in the quote asset's minor units per lot (see [`PairConfig`]).
pub type Price = u64;
/// A quantity in the base asset's minor units, a multiple of the lot size.
pub type Quantity = u64;

/// An order's id, chosen by the caller and unique among the engine's open
/// orders (resting and stop).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OrderId(pub u64);

/// Who owns an order; two orders of one owner never trade with each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OwnerId(pub u64);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    pub fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }

    /// Whether a taker on this side with `limit` (none: a market order) may
    /// trade at a resting order's `price`.
    pub fn accepts(self, limit: Option<Price>, price: Price) -> bool {
        match (self, limit) {
            (_, None) => true,
            (Side::Buy, Some(limit)) => price <= limit,
            (Side::Sell, Some(limit)) => price >= limit,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum OrderKind {
    /// Trades at `price` or better; what remains rests (GTC, post-only).
    Limit { price: Price },
    /// Trades at any price until filled or the book is empty; never rests.
    Market,
    /// Kept apart until the last trade price reaches `trigger` (a buy stop
    /// when it is at or above, a sell stop at or below), then enters as a
    /// market order.
    Stop { trigger: Price },
    /// As [`OrderKind::Stop`], then enters as a limit order at `price`.
    StopLimit { trigger: Price, price: Price },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeInForce {
    /// Good till cancelled: a limit order's remainder rests.
    Gtc,
    /// Immediate or cancel: the remainder is cancelled, never rests.
    Ioc,
    /// Fill or kill: fills completely at once or is refused, changing
    /// nothing.
    Fok,
    /// Rests without taking: refused if it would trade on entry.
    PostOnly,
}

/// What happens when a taker meets a resting order of the same owner
/// (Binance's three modes). The taker's mode decides; no fill happens
/// between the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SelfTradePrevention {
    /// Cancel the taker's remainder ("cancel newest"); the resting order stays.
    #[default]
    CancelTaker,
    /// Cancel the resting order ("cancel oldest") and keep matching.
    CancelMaker,
    /// Cancel both.
    CancelBoth,
}

/// A new order, as placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewOrder {
    pub id: OrderId,
    pub owner: OwnerId,
    pub side: Side,
    pub kind: OrderKind,
    pub quantity: Quantity,
    pub time_in_force: TimeInForce,
    pub self_trade: SelfTradePrevention,
}

impl NewOrder {
    /// The limit price the order trades with once it enters the book.
    pub fn limit_price(&self) -> Option<Price> {
        match self.kind {
            OrderKind::Limit { price } | OrderKind::StopLimit { price, .. } => Some(price),
            OrderKind::Market | OrderKind::Stop { .. } => None,
        }
    }

    pub fn trigger_price(&self) -> Option<Price> {
        match self.kind {
            OrderKind::Stop { trigger } | OrderKind::StopLimit { trigger, .. } => Some(trigger),
            OrderKind::Limit { .. } | OrderKind::Market => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PairStatus {
    Active,
    /// New orders and amendments are refused; cancels are allowed.
    Halted,
}

/// The rules of one trading pair.
///
/// Units: quantities are in the base asset's minor units and must be
/// multiples of `lot_size`; prices are in the quote asset's minor units per
/// lot and must be multiples of `tick_size`. The notional of `quantity` at
/// `price` is `price × quantity / lot_size` quote minor units, exact in a
/// `u128`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairConfig {
    pub tick_size: Price,
    pub lot_size: Quantity,
    /// The smallest notional of a limit or stop-limit order, at its limit
    /// price. Market and stop orders have no price to check it against.
    pub min_notional: u128,
    /// Fees in basis points of a fill's notional, at most 10,000, rounded
    /// up to the next quote minor unit.
    pub maker_fee_bps: u16,
    pub taker_fee_bps: u16,
    pub status: PairStatus,
    /// The most open orders (resting and stop) the engine holds.
    pub open_orders_max: usize,
}

pub const FEE_BPS_MAX: u16 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error("tick_size must be positive")]
    ZeroTickSize,
    #[error("lot_size must be positive")]
    ZeroLotSize,
    #[error("fees must be at most {FEE_BPS_MAX} basis points")]
    FeeTooHigh,
    #[error("open_orders_max must be positive")]
    ZeroOpenOrdersMax,
}

impl PairConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.tick_size == 0 {
            return Err(ConfigError::ZeroTickSize);
        }
        if self.lot_size == 0 {
            return Err(ConfigError::ZeroLotSize);
        }
        if self.maker_fee_bps > FEE_BPS_MAX || self.taker_fee_bps > FEE_BPS_MAX {
            return Err(ConfigError::FeeTooHigh);
        }
        if self.open_orders_max == 0 {
            return Err(ConfigError::ZeroOpenOrdersMax);
        }
        Ok(())
    }
}
