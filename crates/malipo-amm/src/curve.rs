//! The constant-product formulas of Uniswap v2, in exact integers.
//!
//! A swap pays `amount_in` into a pool with reserves `(reserve_in,
//! reserve_out)` and a fee of `fee_bps` basis points kept by the pool:
//!
//! ```text
//! amount_out = floor( in * (10000 - fee) * reserve_out
//!                     / (reserve_in * 10000 + in * (10000 - fee)) )
//! amount_in  = ceil(  reserve_in * out * 10000
//!                     / ((reserve_out - out) * (10000 - fee)) )
//! ```
//!
//! Rounding always favours the pool, so `k = reserve_in * reserve_out`
//! never decreases: `amount_out` rounds down, and `amount_in` for an exact
//! output rounds up (the smallest input whose `amount_out` reaches `out`).

use crate::AmmError;
use crate::arith::{mul_div_ceil, mul_div_floor};

/// Basis points in one whole (100%).
pub const BPS: u128 = 10_000;

/// What a pool pays out for exactly `amount_in` (rounded down).
pub fn amount_out(
    amount_in: u128,
    reserve_in: u128,
    reserve_out: u128,
    fee_bps: u16,
) -> Result<u128, AmmError> {
    if amount_in == 0 {
        return Err(AmmError::ZeroAmount);
    }
    if reserve_in == 0 || reserve_out == 0 {
        return Err(AmmError::InsufficientLiquidity);
    }
    let in_with_fee = amount_in
        .checked_mul(BPS - u128::from(fee_bps))
        .ok_or(AmmError::Overflow)?;
    let denominator = reserve_in
        .checked_mul(BPS)
        .and_then(|scaled| scaled.checked_add(in_with_fee))
        .ok_or(AmmError::Overflow)?;
    mul_div_floor(in_with_fee, reserve_out, denominator).ok_or(AmmError::Overflow)
}

/// The least input for which a pool pays out at least `amount_out`
/// (rounded up).
pub fn amount_in(
    amount_out: u128,
    reserve_in: u128,
    reserve_out: u128,
    fee_bps: u16,
) -> Result<u128, AmmError> {
    if amount_out == 0 {
        return Err(AmmError::ZeroAmount);
    }
    if reserve_in == 0 || amount_out >= reserve_out {
        return Err(AmmError::InsufficientLiquidity);
    }
    let scaled_reserve_in = reserve_in.checked_mul(BPS).ok_or(AmmError::Overflow)?;
    let denominator = (reserve_out - amount_out)
        .checked_mul(BPS - u128::from(fee_bps))
        .ok_or(AmmError::Overflow)?;
    mul_div_ceil(scaled_reserve_in, amount_out, denominator).ok_or(AmmError::Overflow)
}
