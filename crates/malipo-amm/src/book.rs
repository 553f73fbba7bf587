//! An order book as a router venue: a snapshot of one pair's resting orders
//! that quotes and fills an exact input the way the matching engine
//! (`malipo-matching`) fills a taker's market order, without depending on
//! it. The caller (the gateway) takes the snapshot from the engine and runs
//! the real order; property tests prove the two agree.
//!
//! # What an exact-in leg on a book means
//!
//! The input is an offer, not a promise to spend all of it: a book trades
//! whole lots only, and only against the orders in the snapshot.
//!
//! - Selling the base (a taker sell): the leg sells
//!   `min(floor(amount_in / lot_size) * lot_size, snapshot's bid quantity)`
//!   against the bids, best price first and oldest first within a price.
//!   Each maker order filled is one fill at its price:
//!   `notional = price * quantity / lot_size` quote minor units, of which
//!   the taker fee `ceil(notional * taker_fee_bps / 10,000)` goes to the
//!   venue; the output is the sum of `notional - fee` over the fills.
//! - Buying the base (a taker buy paying quote): the leg buys the most
//!   whole lots whose cost, the sum of `notional + fee` over the fills, is
//!   at most `amount_in`, against the asks, best first. The output is the
//!   base bought.
//!
//! The part of the input not spent (less than a lot, or more than the
//! snapshot holds, or less than one more lot costs) stays with the trader:
//! [`Trade::amount_spent`] says how much was used. Fees round up per fill,
//! as the engine charges them, so the snapshot keeps every order (not just
//! each price level's total).
//!
//! Cumulative sums over the orders make a quote a binary search, not a
//! walk: a route search quotes each venue thousands of times.

use malipo_core::Asset;

use crate::{AmmError, VENUE_ID_MAX_BYTES, VenueId};

/// The most resting orders a snapshot holds per side: a leg trades at most
/// against these (the gateway snapshots the best ones).
pub const BOOK_ORDERS_PER_SIDE_MAX: usize = 1_000;

/// The largest fee, as in the matching engine: 100%.
pub const BOOK_FEE_BPS_MAX: u16 = 10_000;

const BPS: u128 = 10_000;

/// One resting order of a snapshot: `quantity` base minor units (a multiple
/// of the lot) at `price` quote minor units per lot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestingOrder {
    pub price: u64,
    pub quantity: u64,
}

/// What a snapshot is made of. Each side in the order the engine matches:
/// best price first, oldest first within a price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBook {
    /// The pair's id, e.g. `btc_usd`.
    pub id: VenueId,
    pub base: Asset,
    pub quote: Asset,
    pub tick_size: u64,
    pub lot_size: u64,
    /// What a taker pays, in basis points of each fill's notional.
    pub taker_fee_bps: u16,
    pub bids: Vec<RestingOrder>,
    pub asks: Vec<RestingOrder>,
}

/// What a leg on a book did or would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trade {
    /// The input used: at most the amount offered (see the module docs).
    pub amount_spent: u128,
    pub amount_out: u128,
    /// The base quantity traded (the taker order's quantity).
    pub quantity: u64,
}

/// One side's orders with their running totals.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BookSide {
    orders: Vec<RestingOrder>,
    /// `quantity[i]`: the base of the first `i` orders.
    quantity: Vec<u128>,
    /// `value[i]`: what taking the first `i` orders whole gives a seller
    /// (bids: notional less fee) or costs a buyer (asks: notional plus fee).
    value: Vec<u128>,
}

/// A snapshot of one pair's book. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Book {
    id: VenueId,
    base: Asset,
    quote: Asset,
    tick_size: u64,
    lot_size: u64,
    taker_fee_bps: u16,
    bids: BookSide,
    asks: BookSide,
}

/// `ceil(notional * bps / 10,000)`, computed as the matching engine does
/// (`malipo_matching::fee::fee`), so it never overflows for `bps <= 10,000`.
pub fn taker_fee(notional: u128, bps: u16) -> u128 {
    let bps = u128::from(bps.min(BOOK_FEE_BPS_MAX));
    (notional / BPS) * bps + ((notional % BPS) * bps).div_ceil(BPS)
}

fn invalid(reason: &'static str) -> AmmError {
    AmmError::InvalidBook(reason)
}

impl Book {
    /// Checks the snapshot: a valid id, two assets, positive tick and lot,
    /// a fee of at most 100%, at most [`BOOK_ORDERS_PER_SIDE_MAX`] orders per
    /// side, each on the tick and the lot and in matching order, and a book
    /// that is not crossed.
    pub fn new(new: NewBook) -> Result<Book, AmmError> {
        if new.id.0.is_empty() || new.id.0.len() > VENUE_ID_MAX_BYTES {
            return Err(AmmError::InvalidVenueId);
        }
        if new.base == new.quote {
            return Err(AmmError::SameAsset);
        }
        if new.tick_size == 0 || new.lot_size == 0 {
            return Err(invalid("tick_size and lot_size must be positive"));
        }
        if new.taker_fee_bps > BOOK_FEE_BPS_MAX {
            return Err(AmmError::FeeTooHigh {
                fee_bps: new.taker_fee_bps,
                max: BOOK_FEE_BPS_MAX,
            });
        }
        for (orders, better_first) in [
            (&new.bids, (|a, b| a >= b) as fn(u64, u64) -> bool),
            (&new.asks, |a, b| a <= b),
        ] {
            if orders.len() > BOOK_ORDERS_PER_SIDE_MAX {
                return Err(invalid("too many orders on one side"));
            }
            for order in orders {
                if order.price == 0 || !order.price.is_multiple_of(new.tick_size) {
                    return Err(invalid("a price is not a positive multiple of the tick"));
                }
                if order.quantity == 0 || !order.quantity.is_multiple_of(new.lot_size) {
                    return Err(invalid("a quantity is not a positive multiple of the lot"));
                }
            }
            if orders
                .windows(2)
                .any(|pair| !better_first(pair[0].price, pair[1].price))
            {
                return Err(invalid("orders are not best price first"));
            }
        }
        if let (Some(bid), Some(ask)) = (new.bids.first(), new.asks.first())
            && bid.price >= ask.price
        {
            return Err(invalid("the book is crossed"));
        }
        let fee_bps = new.taker_fee_bps;
        let lot = new.lot_size;
        Ok(Book {
            bids: BookSide::new(new.bids, lot, fee_bps, false)?,
            asks: BookSide::new(new.asks, lot, fee_bps, true)?,
            id: new.id,
            base: new.base,
            quote: new.quote,
            tick_size: new.tick_size,
            lot_size: lot,
            taker_fee_bps: fee_bps,
        })
    }

    pub fn id(&self) -> &VenueId {
        &self.id
    }

    /// `[base, quote]`.
    pub fn assets(&self) -> [Asset; 2] {
        [self.base, self.quote]
    }

    pub fn tick_size(&self) -> u64 {
        self.tick_size
    }

    pub fn lot_size(&self) -> u64 {
        self.lot_size
    }

    pub fn taker_fee_bps(&self) -> u16 {
        self.taker_fee_bps
    }

    /// The resting bids, best first.
    pub fn bids(&self) -> &[RestingOrder] {
        &self.bids.orders
    }

    /// The resting asks, best first.
    pub fn asks(&self) -> &[RestingOrder] {
        &self.asks.orders
    }

    /// 0 for the base, 1 for the quote.
    fn side_of(&self, asset: Asset) -> Result<usize, AmmError> {
        if asset == self.base {
            Ok(0)
        } else if asset == self.quote {
            Ok(1)
        } else {
            Err(AmmError::AssetNotInPool(asset))
        }
    }

    /// What offering `amount_in` of `asset_in` would trade now (see the
    /// module docs). Refused with [`AmmError::ZeroOutput`] when it would
    /// give nothing.
    pub fn quote_exact_in(&self, asset_in: Asset, amount_in: u128) -> Result<Trade, AmmError> {
        self.quote_side_in(self.side_of(asset_in)?, amount_in)
    }

    /// [`Book::quote_exact_in`] for the asset at `input` (0: base, 1:
    /// quote).
    pub(crate) fn quote_side_in(&self, input: usize, amount_in: u128) -> Result<Trade, AmmError> {
        if amount_in == 0 {
            return Err(AmmError::ZeroAmount);
        }
        let trade = if input == 0 {
            self.sell(amount_in)?.0
        } else {
            self.buy(amount_in)?.0
        };
        if trade.amount_out == 0 {
            return Err(AmmError::ZeroOutput);
        }
        Ok(trade)
    }

    /// Trades as [`Book::quote_exact_in`] and removes what it filled from the
    /// snapshot.
    pub fn apply_exact_in(&mut self, asset_in: Asset, amount_in: u128) -> Result<Trade, AmmError> {
        let input = self.side_of(asset_in)?;
        self.quote_side_in(input, amount_in)?;
        let (trade, filled) = if input == 0 {
            self.sell(amount_in)?
        } else {
            self.buy(amount_in)?
        };
        let (lot, fee_bps) = (self.lot_size, self.taker_fee_bps);
        if input == 0 {
            self.bids.take(filled, lot, fee_bps, false)?;
        } else {
            self.asks.take(filled, lot, fee_bps, true)?;
        }
        Ok(trade)
    }

    /// The price before any trade as a ratio `(out, in)` of minor units:
    /// the middle of the best bid and ask, or the one side there is.
    pub fn mid_price(&self, asset_in: Asset) -> Result<(u128, u128), AmmError> {
        let input = self.side_of(asset_in)?;
        let bid = self.bids.orders.first().map(|order| order.price);
        let ask = self.asks.orders.first().map(|order| order.price);
        // Quote minor units per `2 * lot` base minor units.
        let per_two_lots = match (bid, ask) {
            (Some(bid), Some(ask)) => u128::from(bid) + u128::from(ask),
            (Some(price), None) | (None, Some(price)) => 2 * u128::from(price),
            (None, None) => return Err(AmmError::InsufficientLiquidity),
        };
        let two_lots = 2 * u128::from(self.lot_size);
        Ok(if input == 0 {
            (per_two_lots, two_lots)
        } else {
            (two_lots, per_two_lots)
        })
    }

    /// A taker sell of the whole lots of `amount_in`, bounded by the bids:
    /// the trade and the quantity filled.
    fn sell(&self, amount_in: u128) -> Result<(Trade, u128), AmmError> {
        let lot = u128::from(self.lot_size);
        let side = &self.bids;
        let total = side.quantity.last().copied().unwrap_or(0);
        let quantity = (amount_in / lot * lot).min(total);
        // The orders filled whole, then a part of the next one.
        let whole = side.quantity.partition_point(|sum| *sum <= quantity) - 1;
        let rest = quantity - side.quantity[whole];
        let mut amount_out = side.value[whole];
        if rest > 0 {
            let order = side.orders[whole];
            let notional = u128::from(order.price) * (rest / lot);
            amount_out = amount_out
                .checked_add(notional - taker_fee(notional, self.taker_fee_bps))
                .ok_or(AmmError::Overflow)?;
        }
        let trade = Trade {
            amount_spent: quantity,
            amount_out,
            quantity: u64::try_from(quantity).map_err(|_| AmmError::Overflow)?,
        };
        Ok((trade, quantity))
    }

    /// A taker buy of the most whole lots `amount_in` pays for (fees
    /// included), bounded by the asks: the trade and the quantity filled.
    fn buy(&self, amount_in: u128) -> Result<(Trade, u128), AmmError> {
        let side = &self.asks;
        let whole = side.value.partition_point(|cost| *cost <= amount_in) - 1;
        let mut quantity = side.quantity[whole];
        let mut spent = side.value[whole];
        if let Some(order) = side.orders.get(whole) {
            let budget = amount_in - spent;
            let price = u128::from(order.price);
            let cost = |lots: u128| -> Option<u128> {
                let notional = price.checked_mul(lots)?;
                notional.checked_add(taker_fee(notional, self.taker_fee_bps))
            };
            // The most lots of this order within the budget (fewer than the
            // whole order, which the budget does not reach): cost is
            // increasing in lots, so a binary search.
            let (mut low, mut high) = (0u128, u128::from(order.quantity / self.lot_size));
            while low + 1 < high {
                let middle = low + (high - low) / 2;
                if cost(middle).is_some_and(|cost| cost <= budget) {
                    low = middle;
                } else {
                    high = middle;
                }
            }
            quantity += low * u128::from(self.lot_size);
            spent += cost(low).ok_or(AmmError::Overflow)?;
        }
        let trade = Trade {
            amount_spent: spent,
            amount_out: quantity,
            quantity: u64::try_from(quantity).map_err(|_| AmmError::Overflow)?,
        };
        Ok((trade, quantity))
    }
}

impl BookSide {
    fn new(
        orders: Vec<RestingOrder>,
        lot: u64,
        fee_bps: u16,
        buying: bool,
    ) -> Result<BookSide, AmmError> {
        let mut side = BookSide {
            quantity: Vec::with_capacity(orders.len() + 1),
            value: Vec::with_capacity(orders.len() + 1),
            orders,
        };
        side.sum(lot, fee_bps, buying)?;
        Ok(side)
    }

    /// Recomputes the running totals; refuses totals past 128 bits.
    fn sum(&mut self, lot: u64, fee_bps: u16, buying: bool) -> Result<(), AmmError> {
        self.quantity.clear();
        self.value.clear();
        let (mut quantity, mut value) = (0u128, 0u128);
        self.quantity.push(0);
        self.value.push(0);
        for order in &self.orders {
            let notional = u128::from(order.price) * u128::from(order.quantity / lot);
            let fee = taker_fee(notional, fee_bps);
            let worth = if buying {
                notional.checked_add(fee).ok_or(AmmError::Overflow)?
            } else {
                notional - fee
            };
            quantity += u128::from(order.quantity);
            value = value.checked_add(worth).ok_or(AmmError::Overflow)?;
            self.quantity.push(quantity);
            self.value.push(value);
        }
        Ok(())
    }

    /// Removes `filled` base from the front, as the engine's fills do.
    fn take(&mut self, filled: u128, lot: u64, fee_bps: u16, buying: bool) -> Result<(), AmmError> {
        let whole = self.quantity.partition_point(|sum| *sum <= filled) - 1;
        let rest = filled - self.quantity[whole];
        self.orders.drain(..whole);
        if rest > 0
            && let Some(first) = self.orders.first_mut()
        {
            // rest < the order's quantity, a u64.
            first.quantity -= u64::try_from(rest).map_err(|_| AmmError::Overflow)?;
        }
        self.sum(lot, fee_bps, buying)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asset(code: &str) -> Asset {
        Asset::parse(code).expect("a known asset")
    }

    fn book(bids: &[(u64, u64)], asks: &[(u64, u64)], lot: u64, fee_bps: u16) -> Book {
        let orders = |side: &[(u64, u64)]| {
            side.iter()
                .map(|&(price, quantity)| RestingOrder { price, quantity })
                .collect()
        };
        Book::new(NewBook {
            id: VenueId("btc_usd".into()),
            base: asset("btc"),
            quote: asset("usd"),
            tick_size: 1,
            lot_size: lot,
            taker_fee_bps: fee_bps,
            bids: orders(bids),
            asks: orders(asks),
        })
        .expect("a valid book")
    }

    #[test]
    fn a_sell_fills_whole_lots_best_bid_first_with_the_fee_per_fill() {
        // Lot 10: bids 100 per lot for 30, then 90 per lot for 20.
        let book = book(&[(100, 30), (90, 20)], &[(120, 10)], 10, 100);
        // 45 offered: 40 sold (4 lots); 3 lots at 100 (fee ceil(3) = 3),
        // 1 lot at 90 (fee ceil(0.9) = 1).
        let trade = book.quote_exact_in(asset("btc"), 45).expect("a quote");
        assert_eq!(
            trade,
            Trade {
                amount_spent: 40,
                amount_out: 300 - 3 + 90 - 1,
                quantity: 40
            }
        );
        // More than the bids hold: only what they take.
        let all = book.quote_exact_in(asset("btc"), 1_000).expect("a quote");
        assert_eq!((all.amount_spent, all.amount_out), (50, 297 + 180 - 2));
        assert_eq!(
            book.quote_exact_in(asset("btc"), 9),
            Err(AmmError::ZeroOutput)
        );
    }

    #[test]
    fn a_buy_takes_the_most_lots_its_input_pays_for() {
        let book = book(&[(100, 10)], &[(120, 20), (130, 30)], 10, 100);
        // Whole first order: 240 + 3 = 243; one lot more: 130 + 2 = 132.
        let trade = book
            .quote_exact_in(asset("usd"), 243 + 132)
            .expect("a quote");
        assert_eq!((trade.amount_spent, trade.amount_out), (375, 30));
        // One unit short of that lot: it stays unspent.
        let short = book.quote_exact_in(asset("usd"), 374).expect("a quote");
        assert_eq!((short.amount_spent, short.amount_out), (243, 20));
    }

    #[test]
    fn applying_removes_what_was_filled() {
        let mut book = book(&[(100, 30), (90, 20)], &[(120, 10)], 10, 0);
        let trade = book.apply_exact_in(asset("btc"), 40).expect("fills");
        assert_eq!(trade.amount_out, 390);
        assert_eq!(
            book.bids(),
            &[RestingOrder {
                price: 90,
                quantity: 10
            }]
        );
        assert_eq!(book.mid_price(asset("btc")), Ok((210, 20)));
    }

    #[test]
    fn a_crossed_or_unordered_snapshot_is_refused() {
        let new = |bids: Vec<RestingOrder>, asks: Vec<RestingOrder>| NewBook {
            id: VenueId("btc_usd".into()),
            base: asset("btc"),
            quote: asset("usd"),
            tick_size: 1,
            lot_size: 1,
            taker_fee_bps: 0,
            bids,
            asks,
        };
        let at = |price, quantity| RestingOrder { price, quantity };
        assert!(Book::new(new(vec![at(10, 1)], vec![at(10, 1)])).is_err());
        assert!(Book::new(new(vec![at(9, 1), at(10, 1)], vec![])).is_err());
        assert!(Book::new(new(vec![], vec![at(11, 1), at(10, 1)])).is_err());
        assert!(Book::new(new(vec![at(9, 0)], vec![])).is_err());
    }
}
