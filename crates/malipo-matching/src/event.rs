//! What the engine answers: events in the order things happened, and the
//! reasons a command is refused.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::{NewOrder, OrderId, OwnerId, PairStatus, Price, Quantity, Side};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "event")]
pub enum Event {
    /// The order passed every check and is open (or about to trade).
    Accepted {
        order: NewOrder,
    },
    /// A stop order left the stop book because the last trade price reached
    /// its trigger; it enters next as a fresh order.
    Triggered {
        id: OrderId,
        owner: OwnerId,
        last_price: Price,
    },
    /// A triggered stop order failed an entry check (post-only would take,
    /// fill-or-kill cannot fill, overflow): it is done without trading.
    Rejected {
        id: OrderId,
        owner: OwnerId,
        reason: RejectReason,
    },
    Fill(Fill),
    /// `quantity` of the order will never trade.
    Cancelled {
        id: OrderId,
        owner: OwnerId,
        quantity: Quantity,
        reason: CancelReason,
    },
    /// A resting order's price or open quantity changed from
    /// `old_quantity` to `quantity`. With `priority_kept` false it was
    /// cancelled and replaced at the back of the queue.
    Amended {
        id: OrderId,
        owner: OwnerId,
        price: Price,
        old_quantity: Quantity,
        quantity: Quantity,
        priority_kept: bool,
    },
    /// The order is finished: nothing of it is open any more.
    Done {
        id: OrderId,
        owner: OwnerId,
    },
    StatusChanged {
        status: PairStatus,
    },
}

/// One trade, at the resting (maker) order's price. Both fees are in the
/// quote asset's minor units, rounded up (see [`crate::fee`]); settling it is
/// one ledger batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fill {
    pub maker: OrderId,
    pub maker_owner: OwnerId,
    pub taker: OrderId,
    pub taker_owner: OwnerId,
    pub taker_side: Side,
    pub price: Price,
    pub quantity: Quantity,
    /// `price × quantity / lot_size`, in quote minor units.
    pub notional: u128,
    pub maker_fee: u128,
    pub taker_fee: u128,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    /// The owner cancelled (or reduced the order by an amendment).
    Requested,
    /// Self-trade prevention (see [`crate::SelfTradePrevention`]).
    SelfTrade,
    /// An immediate-or-cancel, fill-or-kill or market order's remainder.
    Unfilled,
}

/// Why a command changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    #[error("the pair is halted: only cancels are accepted")]
    PairHalted,
    #[error("quantity must be positive")]
    ZeroQuantity,
    #[error("quantity must be a multiple of the lot size")]
    QuantityNotMultipleOfLot,
    #[error("price must be positive")]
    ZeroPrice,
    #[error("price must be a multiple of the tick size")]
    PriceNotMultipleOfTick,
    #[error("a market or stop order cannot be post-only")]
    PostOnlyWithoutPrice,
    #[error("the order's notional is below the pair's minimum")]
    BelowMinNotional,
    #[error("an open order already has this id")]
    DuplicateOrderId,
    #[error("the engine holds its maximum number of open orders")]
    TooManyOpenOrders,
    #[error("a post-only order would trade on entry")]
    PostOnlyWouldTake,
    #[error("a fill-or-kill order cannot be filled completely")]
    CannotFillCompletely,
    #[error("no open order has this id")]
    UnknownOrder,
    #[error("the order belongs to another owner")]
    NotOwner,
    #[error("stop orders cannot be amended: cancel and place again")]
    NotAmendable,
    #[error("a quantity would overflow")]
    Overflow,
}
