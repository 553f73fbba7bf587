//! The places a trade can execute, behind one enum so the router does not
//! care which kind it quotes.
//!
//! Pools are the only kind today. An order book joins as another variant:
//! quoting an exact input walks its levels, its mid price is the middle of
//! the best bid and ask, and applying a quote fills the levels walked. The
//! router needs nothing else from a venue.

use malipo_core::Asset;

use crate::{AmmError, Pool, VenueId};

/// A place a trade can execute.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Venue {
    Pool(Pool),
}

impl Venue {
    pub fn id(&self) -> &VenueId {
        match self {
            Venue::Pool(pool) => pool.id(),
        }
    }

    /// The two assets it trades.
    pub fn assets(&self) -> [Asset; 2] {
        match self {
            Venue::Pool(pool) => pool.assets(),
        }
    }

    /// What selling exactly `amount_in` of `asset_in` would give now.
    pub fn quote_exact_in(&self, asset_in: Asset, amount_in: u128) -> Result<u128, AmmError> {
        match self {
            Venue::Pool(pool) => pool.quote_exact_in(asset_in, amount_in),
        }
    }

    /// [`Venue::quote_exact_in`] selling the asset at `input` (0 or 1) in
    /// [`Venue::assets`].
    pub(crate) fn quote_side_in(&self, input: usize, amount_in: u128) -> Result<u128, AmmError> {
        match self {
            Venue::Pool(pool) => pool.quote_side_in(input, amount_in),
        }
    }

    /// The price of `asset_in` before any trade, as a ratio `(out, in)`.
    pub fn mid_price(&self, asset_in: Asset) -> Result<(u128, u128), AmmError> {
        match self {
            Venue::Pool(pool) => pool.mid_price(asset_in),
        }
    }

    /// Sells exactly `amount_in` of `asset_in` and answers the output. The
    /// router checks the minimum output over the whole route.
    pub(crate) fn apply_exact_in(
        &mut self,
        asset_in: Asset,
        amount_in: u128,
    ) -> Result<u128, AmmError> {
        match self {
            Venue::Pool(pool) => pool.apply_exact_in(asset_in, amount_in),
        }
    }
}

impl From<Pool> for Venue {
    fn from(pool: Pool) -> Self {
        Venue::Pool(pool)
    }
}
