//! The asset table: which currencies and crypto assets Malipo knows, with the
//! exponent of each (how many minor units make one major unit), whether it
//! is fiat or crypto, and the largest amount one payment may carry.
//!
//! - Every ISO 4217 currency that has a minor unit defined (from the
//!   `iso_currency` crate's copy of the ISO list: 150+ codes; the metals
//!   and testing codes such as `xau` and `xxx`, which have none, are left
//!   out), with the exponent ISO gives it.
//! - Crypto assets and tokens with their on-chain decimals: BTC 8, ETH 18,
//!   SOL 9, TRX 6, USDT 6, USDC 6, MTT 18.
//! - Extra assets and overrides from the configuration ([`configure`]),
//!   validated at start: a new code, or a new maximum for a known one. An
//!   exponent is never changed (every stored amount would change meaning).
//!
//! The table is process-wide (parsing a currency needs no handle to the
//! configuration); [`configure`] only ever adds to it, so gateways started
//! in one process with different files cannot take each other's assets
//! away, and a conflicting definition is refused.

use iso_currency::IntoEnumIterator;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, LazyLock, RwLock};

/// Fiat money or a crypto asset / token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AssetKind {
    Fiat,
    Crypto,
}

impl AssetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AssetKind::Fiat => "fiat",
            AssetKind::Crypto => "crypto",
        }
    }
}

/// A known asset, identified by its lowercase code (`kes`, `usd`, `eth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Asset {
    code: &'static str,
    kind: AssetKind,
    exponent: u8,
    payment_amount_max: u128,
}

/// The largest exponent an asset may have (18-decimal tokens).
pub const EXPONENT_MAX: u8 = 18;
/// The largest code length (`usdttrc20` style codes fit).
pub const CODE_LENGTH_MAX: usize = 12;
/// An ISO currency without its own entry in [`CURATED`] may carry this many
/// major units in one payment (override it in the configuration).
pub const DEFAULT_FIAT_PAYMENT_MAJOR_UNITS_MAX: u128 = 1_000_000_000;

/// Assets with a maximum of their own, in major units (KES 100 million, USD
/// 999,999), and the crypto assets. A payment's amount is a `u64` in the
/// API, so 18-decimal tokens are capped at 10 whole tokens per payment; the
/// ledger itself holds 128 bits.
const CURATED: &[(&str, AssetKind, u8, u128)] = &[
    ("kes", AssetKind::Fiat, 2, 100_000_000),
    ("ugx", AssetKind::Fiat, 0, 50_000_000_000),
    ("tzs", AssetKind::Fiat, 2, 1_000_000_000),
    ("rwf", AssetKind::Fiat, 0, 100_000_000_000),
    ("zmw", AssetKind::Fiat, 2, 10_000_000),
    ("ghs", AssetKind::Fiat, 2, 10_000_000),
    ("ngn", AssetKind::Fiat, 2, 1_000_000_000),
    ("xaf", AssetKind::Fiat, 0, 1_000_000_000),
    ("xof", AssetKind::Fiat, 0, 1_000_000_000),
    ("zar", AssetKind::Fiat, 2, 100_000_000),
    ("usd", AssetKind::Fiat, 2, 999_999),
    ("eur", AssetKind::Fiat, 2, 999_999),
    ("gbp", AssetKind::Fiat, 2, 999_999),
    ("btc", AssetKind::Crypto, 8, 1_000),
    ("eth", AssetKind::Crypto, 18, 10),
    ("sol", AssetKind::Crypto, 9, 100_000),
    ("trx", AssetKind::Crypto, 6, 10_000_000),
    ("usdc", AssetKind::Crypto, 6, 10_000_000),
    ("usdt", AssetKind::Crypto, 6, 10_000_000),
    ("mtt", AssetKind::Crypto, 18, 10),
];

fn major_to_minor(major: u128, exponent: u8) -> u128 {
    major.saturating_mul(10u128.pow(u32::from(exponent)))
}

/// The largest amount a payment's `u64` can hold.
fn api_amount_max() -> u128 {
    u128::from(u64::MAX)
}

/// The table: assets in order (ISO currencies alphabetically, then crypto,
/// then configured extras) and an index by code.
#[derive(Debug, Clone)]
struct Table {
    assets: Vec<Asset>,
    by_code: BTreeMap<&'static str, usize>,
}

impl Table {
    fn builtin() -> Table {
        let mut assets: Vec<Asset> = Vec::new();
        for currency in iso_currency::Currency::iter() {
            let Some(exponent) = currency.exponent().and_then(|e| u8::try_from(e).ok()) else {
                continue;
            };
            let code: &'static str = match CURATED
                .iter()
                .find(|(code, ..)| code.eq_ignore_ascii_case(currency.code()))
            {
                Some((code, ..)) => code,
                // Once per process for ~150 three-letter codes.
                None => Box::leak(currency.code().to_ascii_lowercase().into_boxed_str()),
            };
            assets.push(Asset {
                code,
                kind: AssetKind::Fiat,
                exponent,
                payment_amount_max: major_to_minor(DEFAULT_FIAT_PAYMENT_MAJOR_UNITS_MAX, exponent)
                    .min(api_amount_max()),
            });
        }
        let mut table = Table::from_assets(assets);
        for (code, kind, exponent, major_max) in CURATED {
            let asset = Asset {
                code,
                kind: *kind,
                exponent: *exponent,
                payment_amount_max: major_to_minor(*major_max, *exponent),
            };
            table.put(asset);
        }
        table
    }

    fn from_assets(assets: Vec<Asset>) -> Table {
        let by_code = assets
            .iter()
            .enumerate()
            .map(|(index, asset)| (asset.code, index))
            .collect();
        Table { assets, by_code }
    }

    fn get(&self, code: &str) -> Option<Asset> {
        self.by_code.get(code).map(|index| self.assets[*index])
    }

    /// Replaces the asset with this code, or appends it.
    fn put(&mut self, asset: Asset) {
        match self.by_code.get(asset.code) {
            Some(index) => self.assets[*index] = asset,
            None => {
                self.by_code.insert(asset.code, self.assets.len());
                self.assets.push(asset);
            }
        }
    }
}

static TABLE: LazyLock<RwLock<Arc<Table>>> =
    LazyLock::new(|| RwLock::new(Arc::new(Table::builtin())));

fn table() -> Arc<Table> {
    match TABLE.read() {
        Ok(table) => table.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

/// An asset added or changed by the configuration (`[[assets]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetSpec {
    /// 2 to 12 lowercase letters or digits (any case accepted).
    pub code: String,
    /// `fiat` or `crypto`; for a known code it must match (or be omitted).
    pub kind: Option<AssetKind>,
    /// Decimal places of the minor unit, 0 to 18; for a known code it must
    /// match (or be omitted).
    pub exponent: Option<u8>,
    /// The largest payment in major units (whole coins, whole shillings).
    pub payment_major_units_max: Option<u64>,
}

/// Why an `[[assets]]` entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("asset `{code}`: {problem}")]
pub struct AssetSpecError {
    pub code: String,
    pub problem: String,
}

fn spec_asset(spec: &AssetSpec, current: Option<Asset>) -> Result<Asset, AssetSpecError> {
    let code = spec.code.trim().to_ascii_lowercase();
    let problem = |problem: String| AssetSpecError {
        code: code.clone(),
        problem,
    };
    if !(2..=CODE_LENGTH_MAX).contains(&code.len())
        || !code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return Err(problem(format!(
            "a code is 2 to {CODE_LENGTH_MAX} letters or digits"
        )));
    }
    let exponent = match (spec.exponent, current) {
        (Some(exponent), Some(known)) if exponent != known.exponent => {
            return Err(problem(format!(
                "its exponent is {}: changing it would change the meaning of every stored amount",
                known.exponent
            )));
        }
        (Some(exponent), _) if exponent > EXPONENT_MAX => {
            return Err(problem(format!("exponent must be 0 to {EXPONENT_MAX}")));
        }
        (Some(exponent), _) => exponent,
        (None, Some(known)) => known.exponent,
        (None, None) => return Err(problem("a new asset needs its exponent".into())),
    };
    let kind = match (spec.kind, current) {
        (Some(kind), Some(known)) if kind != known.kind => {
            return Err(problem(format!("it is {}", known.kind.as_str())));
        }
        (Some(kind), _) => kind,
        (None, Some(known)) => known.kind,
        (None, None) => return Err(problem("a new asset needs its kind".into())),
    };
    let payment_amount_max = match (spec.payment_major_units_max, current) {
        (Some(major), _) => {
            let minor = major_to_minor(u128::from(major), exponent);
            if major == 0 || minor > api_amount_max() {
                return Err(problem(format!(
                    "payment_major_units_max must be 1 to {}",
                    api_amount_max() / 10u128.pow(u32::from(exponent))
                )));
            }
            minor
        }
        (None, Some(known)) => known.payment_amount_max,
        (None, None) => {
            return Err(problem("a new asset needs payment_major_units_max".into()));
        }
    };
    Ok(Asset {
        code: current.map_or_else(
            // Once per configured asset at start.
            || &*Box::leak(code.clone().into_boxed_str()),
            |known| known.code,
        ),
        kind,
        exponent,
        payment_amount_max,
    })
}

/// Adds the configured assets to the table (or changes known ones'
/// maximum). All or nothing: one bad entry changes nothing.
pub fn configure(specs: &[AssetSpec]) -> Result<(), AssetSpecError> {
    if specs.is_empty() {
        return Ok(());
    }
    let mut guard = match TABLE.write() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    };
    let mut next = Table::clone(&guard);
    for spec in specs {
        let code = spec.code.trim().to_ascii_lowercase();
        let asset = spec_asset(spec, next.get(&code))?;
        next.put(asset);
    }
    *guard = Arc::new(next);
    Ok(())
}

/// Checks configured assets without changing the table.
pub fn check_specs(specs: &[AssetSpec]) -> Result<(), AssetSpecError> {
    let mut next = Table::clone(&table());
    for spec in specs {
        let code = spec.code.trim().to_ascii_lowercase();
        let asset = spec_asset(spec, next.get(&code))?;
        next.put(asset);
    }
    Ok(())
}

/// Why an asset code was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown currency `{0}`; GET /v1/currencies lists the supported ones")]
pub struct UnknownAsset(pub String);

impl Asset {
    /// Parses a code in any case (`KES`, `kes`) into a known asset.
    pub fn parse(code: &str) -> Result<Self, UnknownAsset> {
        let lower = code.trim().to_ascii_lowercase();
        table().get(&lower).ok_or(UnknownAsset(code.to_owned()))
    }

    /// All known assets: ISO currencies alphabetically, then crypto assets,
    /// then configured ones.
    pub fn all() -> Vec<Asset> {
        table().assets.clone()
    }

    /// The lowercase code, as the API answers it.
    pub fn code(&self) -> &'static str {
        self.code
    }

    pub fn kind(&self) -> AssetKind {
        self.kind
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

    fn parse(code: &str) -> Asset {
        Asset::parse(code).expect("known")
    }

    #[test]
    fn parses_any_case_and_answers_lowercase() {
        let kes = parse("KES");
        assert_eq!(kes.code(), "kes");
        assert_eq!(kes.exponent(), 2);
        assert_eq!(parse("ugx").exponent(), 0);
        assert_eq!(parse("Eth").exponent(), 18);
    }

    #[test]
    fn every_iso_currency_with_a_minor_unit_is_known() {
        assert_eq!(parse("jpy").exponent(), 0);
        assert_eq!(parse("kwd").exponent(), 3);
        assert_eq!(parse("bhd").exponent(), 3);
        assert_eq!(parse("clf").exponent(), 4);
        assert_eq!(parse("chf").kind(), AssetKind::Fiat);
        assert!(Asset::parse("xau").is_err(), "metals have no minor unit");
        let fiat = Asset::all()
            .iter()
            .filter(|asset| asset.kind() == AssetKind::Fiat)
            .count();
        assert!(fiat >= 150, "{fiat}");
    }

    #[test]
    fn crypto_assets_have_their_decimals() {
        for (code, exponent) in [
            ("btc", 8),
            ("eth", 18),
            ("sol", 9),
            ("trx", 6),
            ("usdt", 6),
            ("mtt", 18),
        ] {
            let asset = parse(code);
            assert_eq!(asset.exponent(), exponent, "{code}");
            assert_eq!(asset.kind(), AssetKind::Crypto, "{code}");
        }
    }

    #[test]
    fn refuses_unknown_codes_and_names_them() {
        let error = Asset::parse("xyz").expect_err("xyz is not an asset");
        assert!(error.to_string().contains("xyz"));
    }

    #[test]
    fn every_payment_maximum_fits_the_api_amount() {
        for asset in Asset::all() {
            assert!(
                asset.payment_amount_max() <= u128::from(u64::MAX),
                "{}",
                asset.code()
            );
            assert!(asset.payment_amount_max() > 0, "{}", asset.code());
        }
        assert_eq!(parse("usd").payment_amount_max(), 99_999_900);
    }

    #[test]
    fn codes_are_unique() {
        let mut codes: Vec<_> = Asset::all().iter().map(|a| a.code).collect();
        let count = codes.len();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), count);
    }

    #[test]
    fn configuration_adds_assets_and_raises_maximums_but_never_changes_exponents() {
        let spec = |code: &str, kind, exponent, max| AssetSpec {
            code: code.into(),
            kind,
            exponent,
            payment_major_units_max: max,
        };
        configure(&[spec("tstcoin", Some(AssetKind::Crypto), Some(9), Some(500))])
            .expect("a new token");
        let token = parse("TSTCOIN");
        assert_eq!(token.exponent(), 9);
        assert_eq!(token.payment_amount_max(), 500_000_000_000);
        let refused = configure(&[spec("kes", None, Some(3), None)]).expect_err("exponent");
        assert!(refused.problem.contains("exponent is 2"), "{refused}");
        assert!(configure(&[spec("x", Some(AssetKind::Fiat), Some(2), Some(1))]).is_err());
        assert!(configure(&[spec("newfiat", Some(AssetKind::Fiat), None, Some(1))]).is_err());
        assert!(
            configure(&[spec("bigtok", Some(AssetKind::Crypto), Some(18), Some(100))]).is_err()
        );
        assert!(check_specs(&[spec("mwk", None, None, Some(5_000_000))]).is_ok());
    }
}
