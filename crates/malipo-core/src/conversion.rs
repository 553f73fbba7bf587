//! Currency conversion arithmetic: the rate a quote locks and the amounts
//! on both sides, exact and rounded in the platform's favour.
//!
//! A rate is a decimal (`rust_decimal`, never a float): how many major units
//! of `to` one major unit of `from` buys. Amounts are integers in each
//! asset's minor unit. The rules:
//!
//! 1. The quoted rate is the mid rate less the spread,
//!    `mid × (10 000 − spread_bps) / 10 000`, truncated toward zero to
//!    [`RATE_SIGNIFICANT_DIGITS`] significant digits. Truncating only ever
//!    gives the customer fewer `to` units per `from` unit.
//! 2. From a `from` amount: `to = floor(from × rate × 10^(to_exp − from_exp))`
//!    (the merchant is credited the whole minor units the rate pays for;
//!    the fraction stays with the platform).
//! 3. From a `to` amount: `from = ceil(to ÷ rate × 10^(from_exp − to_exp))`
//!    (the customer pays the smallest whole minor unit that buys at least
//!    `to`); the merchant is credited exactly the `to` asked for.
//!
//! The arithmetic is on 128-bit integers: the rate's mantissa has at most
//! 12 digits, an amount at most 20, so `amount × mantissa` always fits;
//! powers of ten are applied with checked arithmetic and an overflow is an
//! error, never a wrap.

use crate::Asset;
use rust_decimal::prelude::*;

/// Digits a quoted rate keeps (truncated beyond).
pub const RATE_SIGNIFICANT_DIGITS: u32 = 12;
/// The widest spread a quote may carry: 50%.
pub const SPREAD_BASIS_POINTS_MAX: u32 = 5_000;

/// Why an amount could not be converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConversionError {
    #[error("the rate must be greater than zero")]
    RateNotPositive,
    #[error("the spread must be at most {SPREAD_BASIS_POINTS_MAX} basis points")]
    SpreadTooWide,
    #[error("the converted amount is too large")]
    TooLarge,
}

/// The rate a quote locks: `mid` less `spread_bps`, truncated to
/// [`RATE_SIGNIFICANT_DIGITS`] digits (rule 1).
pub fn quoted_rate(mid: Decimal, spread_bps: u32) -> Result<Decimal, ConversionError> {
    if spread_bps > SPREAD_BASIS_POINTS_MAX {
        return Err(ConversionError::SpreadTooWide);
    }
    if mid <= Decimal::ZERO {
        return Err(ConversionError::RateNotPositive);
    }
    // 20 significant digits times a 4-digit factor stays within Decimal's
    // 28 digits: the product is exact before the final truncation.
    let mid = mid
        .round_sf_with_strategy(20, RoundingStrategy::ToZero)
        .ok_or(ConversionError::TooLarge)?;
    let factor = Decimal::new(i64::from(10_000 - spread_bps), 4);
    let rate = mid
        .checked_mul(factor)
        .ok_or(ConversionError::TooLarge)?
        .round_sf_with_strategy(RATE_SIGNIFICANT_DIGITS, RoundingStrategy::ToZero)
        .ok_or(ConversionError::TooLarge)?
        .normalize();
    if rate <= Decimal::ZERO {
        return Err(ConversionError::RateNotPositive);
    }
    Ok(rate)
}

/// The rate as `mantissa / 10^scale`, with a positive mantissa.
fn parts(rate: Decimal) -> Result<(u128, i32), ConversionError> {
    let rate = rate.normalize();
    let mantissa = u128::try_from(rate.mantissa())
        .ok()
        .filter(|m| *m > 0)
        .ok_or(ConversionError::RateNotPositive)?;
    let scale = i32::try_from(rate.scale()).map_err(|_| ConversionError::TooLarge)?;
    Ok((mantissa, scale))
}

fn pow10(exponent: u32) -> Option<u128> {
    10u128.checked_pow(exponent)
}

/// `to` minor units bought by `from_amount` at `rate`, rounded down (rule 2).
pub fn to_amount_for(
    from_amount: u128,
    from: Asset,
    to: Asset,
    rate: Decimal,
) -> Result<u128, ConversionError> {
    let (mantissa, scale) = parts(rate)?;
    let product = from_amount
        .checked_mul(mantissa)
        .ok_or(ConversionError::TooLarge)?;
    let shift = i32::from(to.exponent()) - i32::from(from.exponent()) - scale;
    if shift >= 0 {
        pow10(shift.unsigned_abs())
            .and_then(|factor| product.checked_mul(factor))
            .ok_or(ConversionError::TooLarge)
    } else {
        // A divisor beyond u128 is larger than any product: the floor is 0.
        Ok(pow10(shift.unsigned_abs()).map_or(0, |divisor| product / divisor))
    }
}

/// `from` minor units needed to buy `to_amount` at `rate`, rounded up
/// (rule 3).
pub fn from_amount_for(
    to_amount: u128,
    from: Asset,
    to: Asset,
    rate: Decimal,
) -> Result<u128, ConversionError> {
    let (mantissa, scale) = parts(rate)?;
    if to_amount == 0 {
        return Ok(0);
    }
    let shift = scale + i32::from(from.exponent()) - i32::from(to.exponent());
    let (numerator, denominator) = if shift >= 0 {
        let numerator = pow10(shift.unsigned_abs())
            .and_then(|factor| to_amount.checked_mul(factor))
            .ok_or(ConversionError::TooLarge)?;
        (numerator, mantissa)
    } else {
        match pow10(shift.unsigned_abs()).and_then(|factor| mantissa.checked_mul(factor)) {
            Some(denominator) => (to_amount, denominator),
            // The divisor is beyond u128, so above `to_amount`: one minor
            // unit buys it.
            None => return Ok(1),
        }
    };
    Ok(numerator.div_ceil(denominator))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn asset(code: &str) -> Asset {
        Asset::parse(code).expect("known")
    }

    fn rate(text: &str) -> Decimal {
        Decimal::from_str_exact(text).expect("decimal")
    }

    #[test]
    fn the_spread_and_the_truncation_favour_the_platform() {
        // 1 / 129.5 KES per USD, as a division gives it.
        let mid = Decimal::ONE / Decimal::from_str("129.5").expect("mid");
        let quoted = quoted_rate(mid, 100).expect("rate");
        assert_eq!(quoted.to_string(), "0.00764478764478");
        assert!(quoted < mid);
        assert_eq!(quoted_rate(rate("129.5"), 0).expect("rate"), rate("129.5"));
        assert_eq!(
            quoted_rate(rate("129.5"), 50).expect("rate"),
            rate("128.8525")
        );
        // 13 digits: the 13th is cut, not rounded up.
        assert_eq!(
            quoted_rate(rate("1.999999999999999"), 0).expect("rate"),
            rate("1.99999999999")
        );
        assert_eq!(
            quoted_rate(rate("1"), 5_001),
            Err(ConversionError::SpreadTooWide)
        );
        assert_eq!(
            quoted_rate(rate("0"), 0),
            Err(ConversionError::RateNotPositive)
        );
    }

    #[test]
    fn kes_to_usd_rounds_the_credit_down_and_the_payment_up() {
        let (kes, usd) = (asset("kes"), asset("usd"));
        let r = rate("0.00772200772");
        // KES 100.00 -> USD 0.772200772 -> 77 cents (never 78).
        assert_eq!(to_amount_for(10_000, kes, usd, r), Ok(77));
        // KES 0.01 buys nothing.
        assert_eq!(to_amount_for(1, kes, usd, r), Ok(0));
        // USD 0.77 needs KES 99.71...: 9972 cents, which buy at least 77.
        assert_eq!(from_amount_for(77, kes, usd, r), Ok(9_972));
        assert!(to_amount_for(9_972, kes, usd, r).expect("to") >= 77);
        assert!(to_amount_for(9_971, kes, usd, r).expect("to") < 77);
    }

    #[test]
    fn ugx_with_no_minor_unit_to_usd() {
        let (ugx, usd) = (asset("ugx"), asset("usd"));
        let r = rate("0.00027027");
        // UGX 10,000 -> USD 2.7027 -> 270 cents.
        assert_eq!(to_amount_for(10_000, ugx, usd, r), Ok(270));
        assert_eq!(to_amount_for(36, ugx, usd, r), Ok(0));
        assert_eq!(to_amount_for(37, ugx, usd, r), Ok(0));
        assert_eq!(to_amount_for(38, ugx, usd, r), Ok(1));
        // A cent costs UGX 37.0004 at this rate: rounded up to 38 (37 buys nothing).
        assert_eq!(from_amount_for(1, ugx, usd, r), Ok(38));
        // and back: usd -> ugx
        assert_eq!(
            to_amount_for(100, usd, ugx, rate("3700.5")),
            Ok(3_700),
            "USD 1.00 -> UGX 3700.5 -> 3700"
        );
    }

    #[test]
    fn usd_to_btc_and_eth_at_8_and_18_decimals() {
        let (usd, btc, eth) = (asset("usd"), asset("btc"), asset("eth"));
        // USD 100.00 at 0.0000105 BTC/USD = 0.00105 BTC = 105,000 sat.
        assert_eq!(
            to_amount_for(10_000, usd, btc, rate("0.0000105")),
            Ok(105_000)
        );
        // USD 1.00 at 0.00025 ETH/USD = 2.5e14 wei exactly.
        assert_eq!(
            to_amount_for(100, usd, eth, rate("0.00025")),
            Ok(250_000_000_000_000)
        );
        // The largest USD payment into ETH stays exact in 128 bits.
        let max = usd.payment_amount_max();
        assert_eq!(
            to_amount_for(max, usd, eth, rate("0.000251234567891")),
            Ok(251_234_316_656_432_109_000)
        );
        // ETH -> USD: 1 wei is worth nothing; 0.01 ETH at 3980.123456789 -> $39.80.
        assert_eq!(to_amount_for(1, eth, usd, rate("3980.123456789")), Ok(0));
        assert_eq!(
            to_amount_for(10_000_000_000_000_000, eth, usd, rate("3980.123456789")),
            Ok(3_980)
        );
        // To get $39.80, pay the smallest wei amount that buys it.
        let wei = from_amount_for(3_980, eth, usd, rate("3980.123456789")).expect("wei");
        assert_eq!(wei, 9_999_689_816_684_482);
        assert_eq!(
            to_amount_for(wei, eth, usd, rate("3980.123456789")),
            Ok(3_980)
        );
        assert_eq!(
            to_amount_for(wei - 1, eth, usd, rate("3980.123456789")),
            Ok(3_979)
        );
    }

    proptest::proptest! {
        /// For any pair of exponents, rate and target: the amount rounded
        /// up buys at least the target, and one minor unit less buys less
        /// (so the customer never pays a unit more than needed, and the
        /// credit is never more than what was paid for).
        #[test]
        fn rounding_always_favours_the_platform(
            to_amount in 1u64..=1_000_000_000_000,
            mantissa in 1i64..=999_999_999_999,
            scale in 0u32..=16,
            pair in 0usize..6,
        ) {
            let pairs = [("kes", "usd"), ("ugx", "usd"), ("usd", "btc"), ("usd", "eth"),
                ("eth", "usd"), ("usd", "ugx")];
            let (from, to) = (asset(pairs[pair].0), asset(pairs[pair].1));
            let rate = Decimal::new(mantissa, scale);
            if let Ok(from_amount) = from_amount_for(u128::from(to_amount), from, to, rate) {
                if let Ok(bought) = to_amount_for(from_amount, from, to, rate) {
                    proptest::prop_assert!(bought >= u128::from(to_amount));
                }
                if from_amount > 1
                    && let Ok(less) = to_amount_for(from_amount - 1, from, to, rate)
                {
                    proptest::prop_assert!(less < u128::from(to_amount));
                }
            }
        }
    }

    #[test]
    fn overflow_is_an_error_not_a_wrap() {
        let (ugx, eth) = (asset("ugx"), asset("eth"));
        assert_eq!(
            to_amount_for(u128::from(u64::MAX), ugx, eth, rate("999999999999")),
            Err(ConversionError::TooLarge)
        );
        assert_eq!(
            from_amount_for(u128::from(u64::MAX), eth, ugx, rate("0.000000000001")),
            Err(ConversionError::TooLarge)
        );
    }
}
