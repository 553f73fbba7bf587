//! Notional and fees: exact integers, no overflow possible.

use crate::{Price, Quantity};

const BPS_PER_UNIT: u128 = 10_000;

/// `price × quantity / lot_size` in quote minor units. `quantity` is a
/// multiple of `lot_size` (checked on entry), so the division is exact, and
/// the product of two `u64`s always fits in a `u128`.
pub fn notional(price: Price, quantity: Quantity, lot_size: Quantity) -> u128 {
    let lots = quantity.checked_div(lot_size).unwrap_or(0);
    u128::from(price) * u128::from(lots)
}

/// `ceil(notional × bps / 10,000)`: fees round up, in the venue's favour, to
/// the next quote minor unit.
///
/// Computed as `q × bps + ceil(r × bps / 10,000)` with
/// `notional = q × 10,000 + r`, so nothing overflows for `bps <= 10,000`
/// (checked in [`crate::PairConfig::validate`]): the result is at most
/// `notional`.
pub fn fee(notional: u128, bps: u16) -> u128 {
    let bps = u128::from(bps.min(crate::types::FEE_BPS_MAX));
    let whole = notional / BPS_PER_UNIT;
    let rest = notional % BPS_PER_UNIT;
    whole * bps + (rest * bps).div_ceil(BPS_PER_UNIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fees_round_up_and_never_overflow() {
        assert_eq!(fee(10_000, 25), 25);
        assert_eq!(fee(1, 1), 1);
        assert_eq!(fee(0, 10_000), 0);
        assert_eq!(fee(9_999, 1), 1);
        assert_eq!(fee(20_001, 5), 11);
        assert_eq!(fee(u128::MAX, 10_000), u128::MAX);
        assert_eq!(fee(u128::MAX, 0), 0);
    }

    #[test]
    fn notional_is_exact_at_the_extremes() {
        assert_eq!(
            notional(u64::MAX, u64::MAX, 1),
            u128::from(u64::MAX) * u128::from(u64::MAX)
        );
        assert_eq!(notional(250, 30, 10), 750);
    }
}
