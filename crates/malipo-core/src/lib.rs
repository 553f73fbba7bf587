//! Malipo's domain, without IO: everything here is pure and deterministic.
//!
//! - [`asset`]: the asset table (ISO 4217 currencies and crypto assets) with
//!   each asset's exponent and per-payment maximum.
//! - [`conversion`]: quoted rates and converted amounts, exact and rounded
//!   in the platform's favour.
//! - [`desk`]: the buy/sell desk's fee table and quote amounts.
//! - [`money`]: [`money::MinorUnits`], an exact integer amount in an asset's
//!   minor unit, with checked arithmetic only.
//! - [`id`]: prefixed, time-sortable object ids (`pay_…`, `re_…`).
//! - [`payment`], [`refund`] and [`payout`]: statuses and the named
//!   transitions between them; an illegal transition is an error, never a
//!   silent overwrite.
//! - [`fee`]: fee schedules (basis points + fixed) with documented rounding.
//! - [`metadata`]: the bounded string map merchants attach to objects.
//! - [`objects`]: the resources as the API shows them (payment, refund, …),
//!   shared by the store, the gateway and the HTTP layer.
//! - [`trading`]: customers, trading pairs, orders and fills as the API
//!   shows them.
//!
//! Architecture invariant: no crate below this one, no IO, no clock (callers
//! pass `now`), no floats anywhere money is computed.

pub mod asset;
pub mod conversion;
pub mod desk;
pub mod fee;
pub mod id;
pub mod metadata;
pub mod mode;
pub mod money;
pub mod objects;
pub mod payment;
pub mod payout;
pub mod reference;
pub mod refund;
pub mod trading;

pub use asset::Asset;
pub use mode::Mode;
pub use money::MinorUnits;
