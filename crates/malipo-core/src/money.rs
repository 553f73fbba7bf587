//! Exact money: an unsigned integer count of an asset's minor units.
//!
//! There is no float anywhere near money. Every operation that can overflow or
//! go below zero is checked and says so, instead of wrapping or panicking.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An amount in minor units (KES cents, UGX units, wei). 128 bits hold any
/// 18-decimal token supply.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct MinorUnits(u128);

impl MinorUnits {
    pub const ZERO: MinorUnits = MinorUnits(0);

    pub const fn new(value: u128) -> Self {
        MinorUnits(value)
    }

    pub const fn get(self) -> u128 {
        self.0
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    pub fn checked_add(self, other: MinorUnits) -> Option<MinorUnits> {
        self.0.checked_add(other.0).map(MinorUnits)
    }

    pub fn checked_sub(self, other: MinorUnits) -> Option<MinorUnits> {
        self.0.checked_sub(other.0).map(MinorUnits)
    }

    /// `self * numerator / denominator`, rounded down, without intermediate
    /// overflow for any amount below 2^96 and numerator below 2^32. `None` on
    /// a zero denominator or overflow.
    pub fn mul_div_floor(self, numerator: u128, denominator: u128) -> Option<MinorUnits> {
        if denominator == 0 {
            return None;
        }
        self.0
            .checked_mul(numerator)
            .map(|product| MinorUnits(product / denominator))
    }

    /// Stored form: decimal digits, so both SQLite and PostgreSQL hold the
    /// full 128 bits in a TEXT column.
    pub fn to_db(self) -> String {
        self.0.to_string()
    }

    /// Parses the stored decimal form.
    pub fn from_db(text: &str) -> Option<MinorUnits> {
        text.parse().ok().map(MinorUnits)
    }
}

impl fmt::Display for MinorUnits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<u64> for MinorUnits {
    fn from(value: u64) -> Self {
        MinorUnits(u128::from(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn arithmetic_is_checked() {
        assert_eq!(
            MinorUnits::new(u128::MAX).checked_add(MinorUnits::new(1)),
            None
        );
        assert_eq!(MinorUnits::new(1).checked_sub(MinorUnits::new(2)), None);
        assert_eq!(MinorUnits::new(5).mul_div_floor(1, 0), None);
    }

    proptest! {
        #[test]
        fn db_form_round_trips(value in any::<u128>()) {
            let amount = MinorUnits::new(value);
            prop_assert_eq!(MinorUnits::from_db(&amount.to_db()), Some(amount));
        }

        #[test]
        fn add_then_sub_is_identity(a in any::<u64>(), b in any::<u64>()) {
            let (a, b) = (MinorUnits::from(a), MinorUnits::from(b));
            let sum = a.checked_add(b).expect("u64 + u64 fits u128");
            prop_assert_eq!(sum.checked_sub(b), Some(a));
        }
    }
}
