//! What an operation moves, shaped like ledger transfers: who pays whom how
//! much of what. A caller settles one operation's movements as one linked
//! ledger batch (all or nothing), mapping each [`Party`] and [`Unit`] to a
//! ledger account and asset of its choosing.

use std::fmt;

use malipo_core::Asset;

/// The longest venue id accepted, in bytes: it ends up inside ledger
/// account ids, which are bounded too.
pub const VENUE_ID_MAX_BYTES: usize = 64;

/// A venue's identity, chosen by the caller (e.g. `pool_kes_usdc_30`), 1 to
/// [`VENUE_ID_MAX_BYTES`] bytes (checked when a pool is created).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VenueId(pub String);

impl fmt::Display for VenueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who pays or receives.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Party {
    /// A trader or liquidity provider, named by the caller (e.g. `cus_…`).
    Owner(String),
    /// A pool's reserves: the pool holds both of its assets here.
    Pool(VenueId),
    /// An order book's makers, taken together: a router leg on a book pays
    /// them and is paid by them (a caller settles such a leg as the taker
    /// order it is, fill by fill).
    Book(VenueId),
    /// Where a pool's LP shares come from when minted and go back to when
    /// burned: its debits minus credits are the shares outstanding.
    ShareIssuer(VenueId),
    /// Holds the first [`crate::MINIMUM_LIQUIDITY`] shares of a pool for
    /// ever: nothing ever moves out of it.
    LockedShares(VenueId),
}

/// What is moved: an asset, or a pool's LP shares.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Unit {
    Asset(Asset),
    Shares(VenueId),
}

/// One ledger-shaped movement: `from` pays `amount` of `unit` to `to`.
/// Amounts are in the asset's minor unit (LP shares have no decimals).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Movement {
    pub from: Party,
    pub to: Party,
    pub unit: Unit,
    pub amount: u128,
}

impl Movement {
    pub(crate) fn asset(from: Party, to: Party, asset: Asset, amount: u128) -> Self {
        Movement {
            from,
            to,
            unit: Unit::Asset(asset),
            amount,
        }
    }

    pub(crate) fn shares(from: Party, to: Party, pool: &VenueId, amount: u128) -> Self {
        Movement {
            from,
            to,
            unit: Unit::Shares(pool.clone()),
            amount,
        }
    }
}
