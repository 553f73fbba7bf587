//! The places a trade can execute, behind one enum so the router does not
//! care which kind it quotes.
//!
//! A pool quotes by its curve; an order book ([`Book`], a snapshot of one
//! pair's resting orders) by walking its orders as the matching engine
//! fills a taker order. Both answer a [`Trade`]: a book may leave part of an
//! exact input unspent (whole lots only, bounded by its depth), a pool
//! never does. The mid price of a book is the middle of its best bid and
//! ask. The router needs nothing else from a venue.

use malipo_core::Asset;

use crate::{AmmError, Book, Pool, Trade, VenueId};

/// A place a trade can execute.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Venue {
    Pool(Pool),
    Book(Book),
}

impl Venue {
    pub fn id(&self) -> &VenueId {
        match self {
            Venue::Pool(pool) => pool.id(),
            Venue::Book(book) => book.id(),
        }
    }

    /// The two assets it trades (a book: base, then quote).
    pub fn assets(&self) -> [Asset; 2] {
        match self {
            Venue::Pool(pool) => pool.assets(),
            Venue::Book(book) => book.assets(),
        }
    }

    /// What offering exactly `amount_in` of `asset_in` would give now.
    pub fn quote_exact_in(&self, asset_in: Asset, amount_in: u128) -> Result<u128, AmmError> {
        Ok(self.trade_exact_in(asset_in, amount_in)?.amount_out)
    }

    /// What offering `amount_in` of `asset_in` would spend and give now.
    pub fn trade_exact_in(&self, asset_in: Asset, amount_in: u128) -> Result<Trade, AmmError> {
        match self {
            Venue::Pool(pool) => Ok(whole(amount_in, pool.quote_exact_in(asset_in, amount_in)?)),
            Venue::Book(book) => book.quote_exact_in(asset_in, amount_in),
        }
    }

    /// [`Venue::quote_exact_in`] selling the asset at `input` (0 or 1) in
    /// [`Venue::assets`].
    pub(crate) fn quote_side_in(&self, input: usize, amount_in: u128) -> Result<u128, AmmError> {
        match self {
            Venue::Pool(pool) => pool.quote_side_in(input, amount_in),
            Venue::Book(book) => Ok(book.quote_side_in(input, amount_in)?.amount_out),
        }
    }

    /// The price of `asset_in` before any trade, as a ratio `(out, in)`.
    pub fn mid_price(&self, asset_in: Asset) -> Result<(u128, u128), AmmError> {
        match self {
            Venue::Pool(pool) => pool.mid_price(asset_in),
            Venue::Book(book) => book.mid_price(asset_in),
        }
    }

    /// Offers exactly `amount_in` of `asset_in` and answers what it spent
    /// and gave. The router checks the minimum output over the whole route.
    pub(crate) fn apply_exact_in(
        &mut self,
        asset_in: Asset,
        amount_in: u128,
    ) -> Result<Trade, AmmError> {
        match self {
            Venue::Pool(pool) => Ok(whole(amount_in, pool.apply_exact_in(asset_in, amount_in)?)),
            Venue::Book(book) => book.apply_exact_in(asset_in, amount_in),
        }
    }
}

/// A pool's trade: it spends all of its input.
fn whole(amount_in: u128, amount_out: u128) -> Trade {
    Trade {
        amount_spent: amount_in,
        amount_out,
        // Pools have no lots; the quantity is the base of a book trade.
        quantity: 0,
    }
}

impl From<Pool> for Venue {
    fn from(pool: Pool) -> Self {
        Venue::Pool(pool)
    }
}

impl From<Book> for Venue {
    fn from(book: Book) -> Self {
        Venue::Book(book)
    }
}
