//! One integration binary for the crate's public API: the provider test
//! vectors from providers.md, verdicts on tampered input, sign/verify round
//! trips, the registry, and property tests.

#![allow(clippy::unwrap_used)]

mod helpers;
mod properties;
mod registry;
mod round_trips;
mod vectors;
