//! Price impact, computed exactly and rounded up to a basis point.
//!
//! A path's mid price is the product over its hops of `reserve_out /
//! reserve_in` before the trade (in minor units, so the assets' decimals
//! cancel out). At that price the input would give
//! `ideal = sum over parts of amount_in * mid price`; the impact is the
//! shortfall of the real output against it, `(ideal - out) / ideal`. It
//! includes the venues' fees, as the price a trader gets does (Uniswap v2's
//! SDK computes it the same way).
//!
//! The products are exact (three hops of reserves make up to 336 bits, a
//! sum over two parts about 800), in arbitrary precision: this runs once per
//! quote, not per path.

use num_bigint::BigUint;

use super::RouteError;
use crate::curve::BPS;

/// One part of a route: its input, and its path's mid price as a ratio.
pub(crate) struct PricedPart {
    pub(crate) amount_in: u128,
    pub(crate) mid_out: BigUint,
    pub(crate) mid_in: BigUint,
}

/// `ceil(10000 * (ideal - amount_out) / ideal)`, or 0 when the output
/// reaches the ideal.
pub(crate) fn price_impact_bps(parts: &[PricedPart], amount_out: u128) -> Result<u32, RouteError> {
    // ideal = numerator / denominator, summed part by part.
    let mut numerator = BigUint::ZERO;
    let mut denominator = BigUint::from(1u8);
    for part in parts {
        numerator = numerator * &part.mid_in + part.amount_in * &part.mid_out * &denominator;
        denominator *= &part.mid_in;
    }
    let real = amount_out * denominator;
    if numerator <= real {
        return Ok(0);
    }
    let scaled = (&numerator - real) * BPS;
    let bps = (scaled + &numerator - 1u8) / &numerator;
    u32::try_from(bps).map_err(|_| RouteError::Overflow)
}

/// Multiplies a path's hops' mid prices into one ratio.
pub(crate) fn path_mid_price(hops: impl IntoIterator<Item = (u128, u128)>) -> (BigUint, BigUint) {
    let mut mid_out = BigUint::from(1u8);
    let mut mid_in = BigUint::from(1u8);
    for (out, into) in hops {
        mid_out *= out;
        mid_in *= into;
    }
    (mid_out, mid_in)
}
#[cfg(test)]
mod tests {
    use super::*;

    fn part(amount_in: u128, mid_out: u128, mid_in: u128) -> PricedPart {
        PricedPart {
            amount_in,
            mid_out: BigUint::from(mid_out),
            mid_in: BigUint::from(mid_in),
        }
    }

    #[test]
    fn shortfall_against_the_mid_price_rounded_up() {
        // 100 at 2/1 would give 200; 199 is 0.5% short.
        assert_eq!(price_impact_bps(&[part(100, 2, 1)], 199), Ok(50));
        // 1 short of 3 * 1000 / 7 = 428.57…: (428.57 - 427) / 428.57 = 36.67 bps -> 37.
        assert_eq!(price_impact_bps(&[part(1000, 3, 7)], 427), Ok(37));
        assert_eq!(price_impact_bps(&[part(100, 2, 1)], 200), Ok(0));
        assert_eq!(price_impact_bps(&[part(100, 2, 1)], 250), Ok(0));
    }

    #[test]
    fn sums_parts_over_a_common_denominator() {
        // 100 at 2 + 300 at 1/3 = 300 ideal; 270 is 10% short.
        assert_eq!(
            price_impact_bps(&[part(100, 2, 1), part(300, 1, 3)], 270),
            Ok(1000)
        );
    }
}
