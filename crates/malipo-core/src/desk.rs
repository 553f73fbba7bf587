//! The buy/sell desk's arithmetic: fees by payment method and the amounts
//! of a desk quote, exact and rounded in the platform's favour.
//!
//! A desk quote trades a crypto `asset` against a fiat `currency`. The
//! fiat leg is `amount` — what the customer pays (buy, fee included) or
//! receives (sell, fee deducted) — and the asset leg is `asset_amount`.
//! The fee is charged on the gross fiat leg, in fiat:
//! `fee = ceil(gross × fee_bps / 10 000)`.
//!
//! The conversion between the legs is [`crate::conversion`]'s (one
//! implementation): a buy converts `currency -> asset` at the locked rate,
//! a sell `asset -> currency`; an amount given on the paying side converts
//! rounded down, an amount asked on the receiving side is priced rounded
//! up. When the customer names the net side, the gross is the smallest
//! whole minor unit whose net after the (rounded-up) fee covers it:
//! `gross = ceil(net × 10 000 / (10 000 − fee_bps))`.

use crate::Asset;
use crate::conversion::{self, ConversionError};
use rust_decimal::Decimal;
use std::collections::BTreeMap;

/// The highest fee a method may be configured with: 50%.
pub const FEE_BASIS_POINTS_MAX: u32 = 5_000;

/// The fee method of a trade paid from (or to) the customer's balance.
pub const BALANCE_METHOD: &str = "balance";

/// Buy or sell, from the customer's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The customer pays fiat and receives the asset.
    Buy,
    /// The customer gives the asset and receives fiat.
    Sell,
}

/// The desk's fee by payment method, in basis points (`balance` for
/// trades settled from or into the customer's balance).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeeTable {
    by_method: BTreeMap<String, u32>,
}

impl Default for FeeTable {
    fn default() -> Self {
        let by_method = [
            ("sandbox", 250),
            ("mpesa", 250),
            ("mtn_momo", 250),
            ("airtel_money", 250),
            ("bank_transfer", 150),
            ("voucher", 100),
            ("crypto", 50),
            ("card", 300),
            (BALANCE_METHOD, 50),
        ]
        .into_iter()
        .map(|(method, bps)| (method.to_owned(), bps))
        .collect();
        FeeTable { by_method }
    }
}

impl FeeTable {
    /// The defaults with `overrides` applied; a fee above
    /// [`FEE_BASIS_POINTS_MAX`] is refused with the method's name.
    pub fn with_overrides(overrides: &BTreeMap<String, u32>) -> Result<FeeTable, String> {
        let mut table = FeeTable::default();
        for (method, bps) in overrides {
            if *bps > FEE_BASIS_POINTS_MAX {
                return Err(format!(
                    "desk fee for `{method}` must be at most {FEE_BASIS_POINTS_MAX} basis points"
                ));
            }
            table.by_method.insert(method.clone(), *bps);
        }
        Ok(table)
    }

    /// The fee for `method`, if it has one.
    pub fn basis_points(&self, method: &str) -> Option<u32> {
        self.by_method.get(method).copied()
    }
}

/// What the customer named: the fiat leg or the asset leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Named {
    Amount(u128),
    AssetAmount(u128),
}

/// A desk quote's amounts, in minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeskAmounts {
    /// Fiat the customer pays (buy) or receives (sell).
    pub amount: u128,
    /// The asset the customer receives (buy) or gives (sell).
    pub asset_amount: u128,
    /// Fiat fee, part of `amount` (buy) or deducted before it (sell).
    pub fee: u128,
}

/// `ceil(gross × bps / 10 000)`.
pub fn fee_on(gross: u128, bps: u32) -> Result<u128, ConversionError> {
    gross
        .checked_mul(u128::from(bps))
        .map(|product| product.div_ceil(10_000))
        .ok_or(ConversionError::TooLarge)
}

/// The smallest gross whose net after the rounded-up fee is at least `net`.
pub fn gross_for_net(net: u128, bps: u32) -> Result<u128, ConversionError> {
    if bps > FEE_BASIS_POINTS_MAX {
        return Err(ConversionError::SpreadTooWide);
    }
    net.checked_mul(10_000)
        .map(|scaled| scaled.div_ceil(u128::from(10_000 - bps)))
        .ok_or(ConversionError::TooLarge)
}

/// The amounts of a quote. `rate` is the locked rate of the paying side
/// into the receiving side (`currency -> asset` for a buy, `asset ->
/// currency` for a sell), as [`conversion::quoted_rate`] gives it.
pub fn amounts(
    side: Side,
    asset: Asset,
    currency: Asset,
    rate: Decimal,
    fee_bps: u32,
    named: Named,
) -> Result<DeskAmounts, ConversionError> {
    match (side, named) {
        (Side::Buy, Named::Amount(amount)) => {
            let fee = fee_on(amount, fee_bps)?;
            let net = amount.checked_sub(fee).ok_or(ConversionError::TooLarge)?;
            let asset_amount = conversion::to_amount_for(net, currency, asset, rate)?;
            Ok(DeskAmounts {
                amount,
                asset_amount,
                fee,
            })
        }
        (Side::Buy, Named::AssetAmount(asset_amount)) => {
            let net = conversion::from_amount_for(asset_amount, currency, asset, rate)?;
            let amount = gross_for_net(net, fee_bps)?;
            let fee = amount - net.min(amount);
            Ok(DeskAmounts {
                amount,
                asset_amount,
                fee,
            })
        }
        (Side::Sell, Named::AssetAmount(asset_amount)) => {
            let gross = conversion::to_amount_for(asset_amount, asset, currency, rate)?;
            let fee = fee_on(gross, fee_bps)?;
            Ok(DeskAmounts {
                amount: gross - fee.min(gross),
                asset_amount,
                fee,
            })
        }
        (Side::Sell, Named::Amount(amount)) => {
            let gross = gross_for_net(amount, fee_bps)?;
            let asset_amount = conversion::from_amount_for(gross, asset, currency, rate)?;
            Ok(DeskAmounts {
                amount,
                asset_amount,
                fee: gross - amount,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asset(code: &str) -> Asset {
        Asset::parse(code).expect("known")
    }

    fn rate(text: &str) -> Decimal {
        Decimal::from_str_exact(text).expect("decimal")
    }

    #[test]
    fn default_fees_follow_the_method_table() {
        let table = FeeTable::default();
        assert_eq!(table.basis_points("mpesa"), Some(250));
        assert_eq!(table.basis_points("bank_transfer"), Some(150));
        assert_eq!(table.basis_points("voucher"), Some(100));
        assert_eq!(table.basis_points("crypto"), Some(50));
        assert_eq!(table.basis_points("card"), Some(300));
        assert_eq!(table.basis_points(BALANCE_METHOD), Some(50));
        let overrides = BTreeMap::from([("card".to_owned(), 275)]);
        let table = FeeTable::with_overrides(&overrides).expect("valid");
        assert_eq!(table.basis_points("card"), Some(275));
        let too_high = BTreeMap::from([("card".to_owned(), 5_001)]);
        assert!(FeeTable::with_overrides(&too_high).is_err());
    }

    #[test]
    fn a_buy_of_fiat_rounds_the_fee_up_and_the_asset_down() {
        // 100.01 USD at 2.5%: fee 250.025 cents -> 251; 97.50 USD buy
        // 97.5 / 50 000 BTC = 0.00195 BTC = 195 000 sats.
        let usd = asset("usd");
        let btc = asset("btc");
        let per_usd = rate("0.00002"); // 1 / 50 000
        let quote =
            amounts(Side::Buy, btc, usd, per_usd, 250, Named::Amount(10_001)).expect("quote");
        assert_eq!(quote.fee, 251);
        assert_eq!(quote.amount, 10_001);
        assert_eq!(quote.asset_amount, 195_000);
    }

    #[test]
    fn a_buy_of_an_asset_amount_charges_enough_to_cover_it() {
        let usd = asset("usd");
        let btc = asset("btc");
        let per_usd = rate("0.00002");
        let quote = amounts(
            Side::Buy,
            btc,
            usd,
            per_usd,
            250,
            Named::AssetAmount(1_000_000),
        )
        .expect("amounts");
        // 0.01 BTC = 500 USD net = 50 000 cents; gross ceil(50 000 / 0.975) = 51 283.
        assert_eq!(quote.amount, 51_283);
        assert_eq!(quote.fee, 1_283);
        // The gross really pays for it, and one cent less would not.
        let back =
            amounts(Side::Buy, btc, usd, per_usd, 250, Named::Amount(51_283)).expect("quote");
        assert!(back.asset_amount >= 1_000_000);
        let short =
            amounts(Side::Buy, btc, usd, per_usd, 250, Named::Amount(51_282)).expect("quote");
        assert!(short.asset_amount < 1_000_000);
    }

    #[test]
    fn a_sell_pays_out_the_net_rounded_down() {
        let usd = asset("usd");
        let btc = asset("btc");
        let per_btc = rate("50000");
        let quote = amounts(
            Side::Sell,
            btc,
            usd,
            per_btc,
            50,
            Named::AssetAmount(1_000_001),
        )
        .expect("amounts");
        // 0.01000001 BTC = 500.0005 USD -> 50 000 cents; fee 250 cents.
        assert_eq!(quote.fee, 250);
        assert_eq!(quote.amount, 49_750);
        let named =
            amounts(Side::Sell, btc, usd, per_btc, 50, Named::Amount(49_750)).expect("quote");
        assert_eq!(named.amount, 49_750);
        assert_eq!(named.fee, 250);
        assert_eq!(named.asset_amount, 1_000_000);
    }

    #[test]
    fn gross_for_net_is_the_smallest_gross_that_covers_the_net() {
        for bps in [0, 1, 50, 250, 300, 5_000] {
            for net in [0u128, 1, 2, 99, 10_000, 123_457] {
                let gross = gross_for_net(net, bps).expect("quote");
                assert!(gross - fee_on(gross, bps).expect("amounts") >= net);
                if gross > 0 {
                    let less = gross - 1;
                    assert!(less - fee_on(less, bps).expect("amounts").min(less) < net);
                }
            }
        }
    }
}
