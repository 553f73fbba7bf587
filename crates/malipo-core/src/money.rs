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

    /// The amount as a decimal in the asset's major unit, exactly:
    /// 150050 with exponent 2 -> `1500.50`; exponent 0 -> no point.
    pub fn to_decimal(self, exponent: u8) -> String {
        let digits = self.0.to_string();
        let exponent = usize::from(exponent);
        if exponent == 0 {
            return digits;
        }
        let padded = format!("{digits:0>width$}", width = exponent + 1);
        let (whole, fraction) = padded.split_at(padded.len() - exponent);
        format!("{whole}.{fraction}")
    }

    /// Parses a decimal in the major unit (`1500`, `1500.5`, `1500.50`)
    /// exactly into minor units: digits with at most one `.` and at most
    /// `exponent` digits after it; no sign, exponent, or separators.
    pub fn parse_decimal(text: &str, exponent: u8) -> Result<MinorUnits, DecimalProblem> {
        if text.is_empty() || text.len() > DECIMAL_TEXT_LENGTH_MAX {
            return Err(DecimalProblem::Malformed);
        }
        let (whole, fraction) = match text.split_once('.') {
            Some((whole, fraction)) => (whole, fraction),
            None => (text, ""),
        };
        let digits_only = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !digits_only(whole) || !digits_only(fraction) {
            return Err(DecimalProblem::Malformed);
        }
        if text.contains('.') && fraction.is_empty() {
            return Err(DecimalProblem::Malformed);
        }
        if fraction.len() > usize::from(exponent) {
            return Err(DecimalProblem::TooPrecise { exponent });
        }
        let scale = 10u128
            .checked_pow(u32::from(exponent))
            .ok_or(DecimalProblem::TooLarge)?;
        let whole: u128 = whole.parse().map_err(|_| DecimalProblem::TooLarge)?;
        let fraction_scale = 10u128
            .checked_pow((usize::from(exponent) - fraction.len()) as u32)
            .ok_or(DecimalProblem::TooLarge)?;
        let fraction: u128 = if fraction.is_empty() {
            0
        } else {
            fraction.parse().map_err(|_| DecimalProblem::Malformed)?
        };
        whole
            .checked_mul(scale)
            .and_then(|minor| minor.checked_add(fraction * fraction_scale))
            .map(MinorUnits)
            .ok_or(DecimalProblem::TooLarge)
    }
}

/// The longest decimal text [`MinorUnits::parse_decimal`] reads.
pub const DECIMAL_TEXT_LENGTH_MAX: usize = 60;

/// Why text is not an amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecimalProblem {
    #[error("an amount is a decimal in the currency's major unit, e.g. `1500.50`")]
    Malformed,
    #[error("the currency has {exponent} decimal places; the amount has more")]
    TooPrecise { exponent: u8 },
    #[error("the amount is too large")]
    TooLarge,
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

    #[test]
    fn decimals_convert_exactly() {
        let parse = MinorUnits::parse_decimal;
        assert_eq!(parse("1500.50", 2), Ok(MinorUnits::new(150_050)));
        assert_eq!(parse("1500.5", 2), Ok(MinorUnits::new(150_050)));
        assert_eq!(parse("1500", 2), Ok(MinorUnits::new(150_000)));
        assert_eq!(parse("0.01", 2), Ok(MinorUnits::new(1)));
        assert_eq!(parse("1500", 0), Ok(MinorUnits::new(1500)));
        assert_eq!(
            parse("1500.0", 0),
            Err(DecimalProblem::TooPrecise { exponent: 0 })
        );
        assert_eq!(
            parse("1.005", 2),
            Err(DecimalProblem::TooPrecise { exponent: 2 })
        );
        for bad in [
            "", ".5", "1.", "-1", "+1", "1e3", "1,000", "1.2.3", " 1", "１",
        ] {
            assert_eq!(parse(bad, 2), Err(DecimalProblem::Malformed), "{bad:?}");
        }
        assert_eq!(parse(&"9".repeat(50), 18), Err(DecimalProblem::TooLarge));
        assert_eq!(MinorUnits::new(150_050).to_decimal(2), "1500.50");
        assert_eq!(MinorUnits::new(5).to_decimal(2), "0.05");
        assert_eq!(MinorUnits::new(1500).to_decimal(0), "1500");
        assert_eq!(MinorUnits::new(1).to_decimal(18), "0.000000000000000001");
    }

    proptest! {
        #[test]
        fn decimal_form_round_trips(value in any::<u64>(), exponent in 0u8..=18) {
            let amount = MinorUnits::from(value);
            prop_assert_eq!(MinorUnits::parse_decimal(&amount.to_decimal(exponent), exponent), Ok(amount));
        }

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
