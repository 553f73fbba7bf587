//! The trading venue's resources as the API shows them: customers (a
//! merchant's end users, holding asset balances in the ledger), pairs,
//! orders and fills.
//!
//! Units follow the matching engine (`malipo-matching`): quantities are in
//! the base asset's minor units (multiples of the pair's `lot_size`), prices
//! in the quote asset's minor units per `lot_size` of base (multiples of
//! `tick_size`). A fill's notional is `price × quantity / lot_size` quote
//! minor units. Balances are 128-bit in the ledger and serialized as JSON
//! integers.

use crate::metadata::Metadata;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One of a merchant's end users; owns asset balances. (Named
/// `TradingCustomer` in the OpenAPI document, apart from a payment's
/// `customer` details.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = TradingCustomer)]
pub struct Customer {
    /// `cus_…`
    pub id: String,
    /// Always `customer`.
    pub object: &'static str,
    pub livemode: bool,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub metadata: Metadata,
    pub created: i64,
}

/// One asset of a customer's balance: two ledger accounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CustomerBalance {
    /// Lowercase asset code, e.g. `usd`, `btc`.
    pub asset: String,
    /// What the customer can spend or place orders with (minor units).
    #[schema(value_type = u64)]
    pub available: u128,
    /// What open orders hold (minor units).
    #[schema(value_type = u64)]
    pub held: u128,
}

/// `GET /v1/customers/{id}/balances`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CustomerBalances {
    /// Always `customer_balances`.
    pub object: &'static str,
    pub customer: String,
    pub livemode: bool,
    /// One entry per asset the customer ever held, by asset code.
    pub balances: Vec<CustomerBalance>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PairStatus {
    /// Takes orders.
    Active,
    /// Refuses new orders; cancels are still accepted.
    Halted,
}

impl PairStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PairStatus::Active => "active",
            PairStatus::Halted => "halted",
        }
    }

    pub fn parse(text: &str) -> Option<PairStatus> {
        match text {
            "active" => Some(PairStatus::Active),
            "halted" => Some(PairStatus::Halted),
            _ => None,
        }
    }
}

/// A market: `base` bought and sold for `quote`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TradingPair {
    /// `{base}_{quote}`, e.g. `btc_usd`.
    pub id: String,
    /// Always `trading_pair`.
    pub object: &'static str,
    pub base: String,
    pub quote: String,
    /// Prices are multiples of it (quote minor units per lot).
    pub tick_size: u64,
    /// Quantities are multiples of it (base minor units).
    pub lot_size: u64,
    /// The smallest notional of a limit order at its price (quote minor units).
    #[schema(value_type = u64)]
    pub min_notional: u128,
    /// Fee of the resting side, basis points of the notional.
    pub maker_fee_bps: u16,
    /// Fee of the incoming side, basis points of the notional.
    pub taker_fee_bps: u16,
    pub status: PairStatus,
    pub created: i64,
    pub updated: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderSide {
    Buy,
    Sell,
}

impl OrderSide {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderSide::Buy => "buy",
            OrderSide::Sell => "sell",
        }
    }

    pub fn parse(text: &str) -> Option<OrderSide> {
        match text {
            "buy" => Some(OrderSide::Buy),
            "sell" => Some(OrderSide::Sell),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderType {
    Limit,
    Market,
    Stop,
    StopLimit,
}

impl OrderType {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderType::Limit => "limit",
            OrderType::Market => "market",
            OrderType::Stop => "stop",
            OrderType::StopLimit => "stop_limit",
        }
    }

    pub fn parse(text: &str) -> Option<OrderType> {
        match text {
            "limit" => Some(OrderType::Limit),
            "market" => Some(OrderType::Market),
            "stop" => Some(OrderType::Stop),
            "stop_limit" => Some(OrderType::StopLimit),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum TimeInForce {
    /// Good till cancelled.
    #[serde(rename = "GTC")]
    Gtc,
    /// Immediate or cancel.
    #[serde(rename = "IOC")]
    Ioc,
    /// Fill or kill.
    #[serde(rename = "FOK")]
    Fok,
}

impl TimeInForce {
    pub fn as_str(self) -> &'static str {
        match self {
            TimeInForce::Gtc => "GTC",
            TimeInForce::Ioc => "IOC",
            TimeInForce::Fok => "FOK",
        }
    }

    pub fn parse(text: &str) -> Option<TimeInForce> {
        match text.to_ascii_uppercase().as_str() {
            "GTC" => Some(TimeInForce::Gtc),
            "IOC" => Some(TimeInForce::Ioc),
            "FOK" => Some(TimeInForce::Fok),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Resting in the book, or a stop waiting for its trigger.
    Open,
    /// Completely filled.
    Filled,
    /// Finished with a part never traded: cancelled by the customer, the
    /// unfilled rest of an IOC or market order, or self-trade prevention.
    Canceled,
    /// A triggered stop that failed its entry checks (e.g. FOK could not fill).
    Rejected,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Open => "open",
            OrderStatus::Filled => "filled",
            OrderStatus::Canceled => "canceled",
            OrderStatus::Rejected => "rejected",
        }
    }

    pub fn parse(text: &str) -> Option<OrderStatus> {
        match text {
            "open" => Some(OrderStatus::Open),
            "filled" => Some(OrderStatus::Filled),
            "canceled" => Some(OrderStatus::Canceled),
            "rejected" => Some(OrderStatus::Rejected),
            _ => None,
        }
    }
}

/// A customer's order on a pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Order {
    /// `ord_…`
    pub id: String,
    /// Always `order`.
    pub object: &'static str,
    pub livemode: bool,
    pub customer: String,
    pub pair: String,
    pub side: OrderSide,
    #[serde(rename = "type")]
    pub kind: OrderType,
    /// The limit price (`limit`, `stop_limit`).
    pub price: Option<u64>,
    /// The trigger (`stop`, `stop_limit`): the last trade price at which the
    /// order enters the book.
    pub stop_price: Option<u64>,
    pub quantity: u64,
    pub filled_quantity: u64,
    /// The part that will never trade.
    pub canceled_quantity: u64,
    pub time_in_force: TimeInForce,
    pub post_only: bool,
    pub status: OrderStatus,
    /// What the ledger still holds for the open part (in `hold_asset`:
    /// base for sells, quote for buys).
    #[schema(value_type = u64)]
    pub hold_remaining: u128,
    pub hold_asset: String,
    /// Quote minor units traded (the sum of the fills' notionals).
    #[schema(value_type = u64)]
    pub quote_filled: u128,
    /// Fees paid, in quote minor units.
    #[schema(value_type = u64)]
    pub fees_paid: u128,
    pub created: i64,
    pub updated: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Liquidity {
    /// The order was resting.
    Maker,
    /// The order came in and traded.
    Taker,
}

impl Liquidity {
    pub fn as_str(self) -> &'static str {
        match self {
            Liquidity::Maker => "maker",
            Liquidity::Taker => "taker",
        }
    }

    pub fn parse(text: &str) -> Option<Liquidity> {
        match text {
            "maker" => Some(Liquidity::Maker),
            "taker" => Some(Liquidity::Taker),
            _ => None,
        }
    }
}

/// One side of a trade: each trade is two fills, one per order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Fill {
    /// `fill_…`
    pub id: String,
    /// Always `fill`.
    pub object: &'static str,
    pub livemode: bool,
    pub pair: String,
    pub order: String,
    pub customer: String,
    pub side: OrderSide,
    pub liquidity: Liquidity,
    /// The resting order's price.
    pub price: u64,
    pub quantity: u64,
    /// `price × quantity / lot_size`, quote minor units.
    #[schema(value_type = u64)]
    pub notional: u128,
    /// Paid by this side, quote minor units.
    #[schema(value_type = u64)]
    pub fee: u128,
    /// The book's command that made the trade.
    pub sequence: u64,
    pub created: i64,
}

/// One price level of a book.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BookLevel {
    pub price: u64,
    /// The open quantity at this price.
    pub quantity: u64,
    /// How many orders rest at this price.
    pub orders: u64,
}

/// `GET /v1/trading/books/{pair}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrderBook {
    /// Always `order_book`.
    pub object: &'static str,
    pub pair: String,
    pub livemode: bool,
    /// The last command logged for the book.
    pub sequence: u64,
    /// Best (highest) first.
    pub bids: Vec<BookLevel>,
    /// Best (lowest) first.
    pub asks: Vec<BookLevel>,
    pub last_price: Option<u64>,
}
