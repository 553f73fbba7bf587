//! Constant-product liquidity pools (Uniswap v2) and a router over them and
//! order-book snapshots, in exact integers: pure, deterministic, no IO, no clock (callers pass
//! `now_ms`), no floats.
//!
//! # Pools
//!
//! A [`Pool`] holds reserves of two assets (amounts in each asset's minor
//! unit, `u128`, at most [`RESERVE_MAX`]) and charges a fee in basis points
//! that stays in the pool. [`curve`] has the formulas; every division rounds
//! in the pool's favour, so `k = reserve_a * reserve_b` never decreases.
//!
//! - [`Pool::create`]: the first deposit mints `sqrt(a * b)` LP shares, of
//!   which [`MINIMUM_LIQUIDITY`] are locked for ever.
//! - [`Pool::add_liquidity`]: takes only the amounts at the pool's ratio
//!   (the larger side is cut down, nothing is refunded) and mints shares pro
//!   rata to the smaller side, rounded down.
//! - [`Pool::remove_liquidity`]: burns shares for their part of both
//!   reserves, rounded down.
//! - [`Pool::swap_exact_in`] / [`Pool::swap_exact_out`]: with a minimum
//!   output or a maximum input, and a [`Deadline`].
//!
//! Every operation answers its [`Movement`]s: who pays whom how much of
//! which asset or LP share. A caller settles them as one linked ledger batch.
//! Shares are owned in the ledger, not in the pool: the pool only knows how
//! many are outstanding.
//!
//! Decimals do not enter the arithmetic: amounts are minor units on both
//! sides, and prices are ratios of minor units. A pool of KES (2 decimals)
//! and ETH (18 decimals) works the same way as any other.
//!
//! # Router
//!
//! [`Venues`] holds the places a trade can execute, as the [`Venue`] enum:
//! pools, and order books as [`Book`] snapshots (a depth snapshot of one
//! pair's resting orders that fills an exact input as the matching engine
//! fills a taker market order; see `book.rs` for what an exact-in leg on a
//! book spends).
//! [`Venues::quote`] finds the best way to turn an amount of one asset into
//! another: every path of up to [`HOPS_MAX`] hops, optionally split across
//! two paths, with the expected output and the price impact.
//! [`Venues::execute`] applies a route's legs all or none.
//!
//! # Example
//!
//! ```
//! use malipo_amm::{AssetAmount, Deadline, NewPool, Pool, RouteRequest, Venue, VenueId, Venues};
//! use malipo_core::Asset;
//!
//! let (kes, usd) = (Asset::parse("kes")?, Asset::parse("usd")?);
//! let (pool, created) = Pool::create(NewPool {
//!     id: VenueId("kes_usd".into()),
//!     provider: "cus_founder".into(),
//!     deposits: [
//!         AssetAmount { asset: kes, amount: 1_000_000 },
//!         AssetAmount { asset: usd, amount: 1_000_000 },
//!     ],
//!     fee_bps: 30,
//! })?;
//! assert_eq!(created.shares, 1_000_000 - 1_000); // sqrt(x * y), less the locked minimum
//!
//! let mut venues = Venues::new(vec![Venue::from(pool)])?;
//! let route = venues.quote(&RouteRequest {
//!     asset_in: kes,
//!     asset_out: usd,
//!     amount_in: 1_000,
//!     min_amount_out: 990,
//!     max_hops: 3,
//!     split: true,
//! })?;
//! assert_eq!((route.amount_out, route.price_impact_bps), (996, 40));
//! let done = venues.execute(&route, 990, "cus_1", Deadline::none(0))?;
//! assert_eq!(done.amount_out, 996);
//! assert_eq!(done.movements.len(), 2); // cus_1 pays the pool; the pool pays cus_1
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Invariants (property-tested in `tests/`)
//!
//! 1. `k` never decreases through a swap, and strictly increases when the
//!    fee is above zero.
//! 2. Value is conserved: per asset, the reserves after an operation plus
//!    what it paid out equal the reserves before plus what it took in, and
//!    the movements say exactly that.
//! 3. Adding then removing liquidity never returns more than was put in.
//! 4. The [`MINIMUM_LIQUIDITY`] shares are never burned.
//! 5. A route's quoted output is exactly what executing its legs one by one
//!    gives, and it is at least what any single path gives, on pools and
//!    books alike; a book's quote is what the matching engine fills for a
//!    market IOC order of the same input.
//! 6. Nothing panics: arithmetic is checked and an unrepresentable result
//!    is [`AmmError::Overflow`].

mod arith;
mod book;
pub mod curve;
mod error;
mod movement;
mod pool;
mod router;
mod venue;

pub use book::{
    BOOK_FEE_BPS_MAX, BOOK_ORDERS_PER_SIDE_MAX, Book, NewBook, RestingOrder, Trade, taker_fee,
};
pub use error::AmmError;
pub use movement::{Movement, Party, Unit, VENUE_ID_MAX_BYTES, VenueId};
pub use pool::{
    AddLiquidity, AssetAmount, Deadline, FEE_BPS_MAX, LiquidityReceipt, MINIMUM_LIQUIDITY, NewPool,
    Pool, RESERVE_MAX, RemoveLiquidity, SwapExactIn, SwapExactOut, SwapReceipt,
};
pub use router::{
    Execution, HOP_QUOTES_MAX, HOPS_MAX, Hop, Route, RouteError, RoutePart, RouteRequest,
    VENUES_MAX, Venues,
};
pub use venue::Venue;
