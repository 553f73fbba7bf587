//! The asset table: which currencies and crypto assets Malipo knows, with the
//! exponent of each (how many minor units make one major unit) and the largest
//! amount one payment may carry.
//!
//! ISO 4217 has no crypto assets, so the table is ours rather than a crate's.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A known asset, identified by its lowercase code (`kes`, `usd`, `eth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Asset {
    code: &'static str,
    exponent: u8,
    payment_amount_max: u128,
}

/// Every asset Malipo accepts, with the largest payment in major units
/// (KES 100 million, USD 999,999). Amounts are in minor units: KES cents,
/// UGX units (exponent 0), wei for ETH (exponent 18). A payment's amount is
/// a `u64` in the API, so 18-decimal tokens are capped at 10 whole tokens
/// per payment; the ledger itself holds 128 bits.
const ASSETS: &[Asset] = &[
    asset("kes", 2, 100_000_000),
    asset("ugx", 0, 50_000_000_000),
    asset("tzs", 2, 1_000_000_000),
    asset("rwf", 0, 100_000_000_000),
    asset("zmw", 2, 10_000_000),
    asset("ghs", 2, 10_000_000),
    asset("ngn", 2, 1_000_000_000),
    asset("xaf", 0, 1_000_000_000),
    asset("xof", 0, 1_000_000_000),
    asset("zar", 2, 100_000_000),
    asset("usd", 2, 999_999),
    asset("eur", 2, 999_999),
    asset("gbp", 2, 999_999),
    asset("btc", 8, 1_000),
    asset("eth", 18, 10),
    asset("usdc", 6, 10_000_000),
    asset("usdt", 6, 10_000_000),
    asset("mtt", 18, 10),
];

const fn asset(code: &'static str, exponent: u8, payment_major_units_max: u128) -> Asset {
    Asset {
        code,
        exponent,
        payment_amount_max: payment_major_units_max * 10u128.pow(exponent as u32),
    }
}

/// Why an asset code was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown currency `{0}`; supported: {supported}", supported = supported_codes())]
pub struct UnknownAsset(pub String);

fn supported_codes() -> String {
    ASSETS.iter().map(|a| a.code).collect::<Vec<_>>().join(", ")
}

impl Asset {
    /// Parses a code in any case (`KES`, `kes`) into a known asset.
    pub fn parse(code: &str) -> Result<Self, UnknownAsset> {
        let lower = code.trim().to_ascii_lowercase();
        ASSETS
            .iter()
            .find(|a| a.code == lower)
            .copied()
            .ok_or(UnknownAsset(code.to_owned()))
    }

    /// All known assets, in table order.
    pub fn all() -> &'static [Asset] {
        ASSETS
    }

    /// The lowercase code, as the API answers it.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// How many decimal places the minor unit has (kes 2, ugx 0, eth 18).
    pub fn exponent(&self) -> u8 {
        self.exponent
    }

    /// The largest amount, in minor units, a single payment may carry.
    pub fn payment_amount_max(&self) -> u128 {
        self.payment_amount_max
    }
}

impl fmt::Display for Asset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

impl Serialize for Asset {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code)
    }
}

impl<'de> Deserialize<'de> for Asset {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        Asset::parse(&code).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_any_case_and_answers_lowercase() {
        let kes = Asset::parse("KES").expect("kes is known");
        assert_eq!(kes.code(), "kes");
        assert_eq!(kes.exponent(), 2);
        assert_eq!(Asset::parse("ugx").expect("ugx").exponent(), 0);
        assert_eq!(Asset::parse("Eth").expect("eth").exponent(), 18);
    }

    #[test]
    fn refuses_unknown_codes_and_names_them() {
        let error = Asset::parse("xyz").expect_err("xyz is not an asset");
        assert!(error.to_string().contains("xyz"));
    }

    #[test]
    fn every_payment_maximum_fits_the_api_amount() {
        for asset in ASSETS {
            assert!(
                asset.payment_amount_max() <= u128::from(u64::MAX),
                "{}",
                asset.code()
            );
        }
        assert_eq!(
            Asset::parse("usd").expect("usd").payment_amount_max(),
            99_999_900
        );
    }

    #[test]
    fn codes_are_unique() {
        let mut codes: Vec<_> = ASSETS.iter().map(|a| a.code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), ASSETS.len());
    }
}
