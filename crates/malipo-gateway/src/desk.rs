//! The buy/sell desk (docs/trading.md, "Desk"): a customer buys or sells a
//! crypto asset against fiat with the platform as counterparty, at a price
//! locked by a quote.
//!
//! - `GET /v1/trading/prices`: bid/ask from the venue's book for
//!   `{asset}_{currency}` when both sides have orders, else from the
//!   mode's deepest liquidity pool of the pair (what one major unit sells
//!   or buys for, through `malipo-amm`'s quotes, ± `[desk]
//!   spread_basis_points`; ignored when crossed or further than `[desk]
//!   max_pool_deviation_basis_points` from the rate sources' mid), else
//!   from the rate sources (mid ± `[desk] spread_basis_points`); a stale
//!   rate is refused (`rate_stale`, 503). Book and pool prices become
//!   rates rounded for the platform (`market_rates`, `pool_rates`).
//! - `POST /v1/trading/quotes`: locks the rate for
//!   `[desk] quote_lifetime_seconds`, with the fee of the payment method
//!   (`[desk] fee_basis_points`, [`malipo_core::desk::FeeTable`]) and both
//!   amounts rounded in the platform's favour ([`malipo_core::desk`], on
//!   top of [`malipo_core::conversion`]).
//! - `POST /v1/trading/buy` with `pay_from_balance` and
//!   `POST /v1/trading/sell`: settle at once, in one transaction, through
//!   the platform's per-asset reserve and desk fee accounts
//!   ([`reserve_account`], [`desk_fees_account`]). A short reserve is a 409
//!   `reserve_insufficient`, a short customer balance a 400; nothing moves.
//! - `POST /v1/trading/buy` with a `payment`: the payment is created by
//!   the payments code (`Gateway::create_payment_for`) crediting the
//!   customer, and `open_trade` claims the quote, checks the reserve, holds
//!   the asset on it (a pending ledger transfer, `reserve_hold`) and writes
//!   the `pending` trade in the transaction that writes the payment.
//!   Wherever a payment crediting a customer reaches a final status, its
//!   money's writer calls `payment_finished` in the same transaction: a
//!   success settles the trade as a balance buy, the hold posted (or fails
//!   it, the fiat staying in the customer's balance, when it is late),
//!   any other end fails it; a failure or cancel voids the hold.
//! - `POST /v1/trading/trades/{id}/cancel`: a pending trade, and its
//!   payment when the provider holds nothing of it yet.
//! - `POST /v1/admin/trading/reserves` funds a test-mode reserve from the
//!   platform's test funding account; `GET` shows every reserve.

use crate::auth::{Actor, AuditChange, MerchantContext, audit_state};
use crate::customers::customer_of;
use crate::idempotency::{IdempotencyGuard, complete};
use crate::payments::{
    CreatePayment, cancel_unsent, cancelable_unsent, created_filters, emit, owner_filters, post,
};
use crate::rates::PairRateError;
use crate::trading::BookParams;
use crate::{
    ApiError, ErrorKind, Gateway, GatewayError, GatewayResult, ledger_entries, now_seconds,
};
use malipo_core::asset::AssetKind;
use malipo_core::conversion::{self, ConversionError};
use malipo_core::desk::{self, BALANCE_METHOD, FeeTable, Named, Side};
use malipo_core::id::{IdKind, looks_like, new_id};
use malipo_core::objects::{List, NextAction, Payment, Scope};
use malipo_core::payment::PaymentStatus;
use malipo_core::{Asset, Mode};
use malipo_ledger::{Account, AccountFlags, TransferKind, TransferRequest};
use malipo_store::{Conn, DeskQuoteRecord, DeskTradeRecord, IdempotencyClaim, Page, PaymentRecord};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use utoipa::{IntoParams, ToSchema};

/// The longest a desk quote may be configured to last: an hour.
pub const DESK_QUOTE_LIFETIME_SECONDS_MAX: u64 = 3_600;

/// The longest a buy paid with a payment method may wait for its payment:
/// three days (a bank transfer's default expiry).
pub const DESK_PAYMENT_WINDOW_SECONDS_MAX: u64 = 259_200;

/// The widest `[desk] max_pool_deviation_basis_points`: 50%.
pub const DESK_POOL_DEVIATION_BASIS_POINTS_MAX: u32 = 5_000;

/// `[desk]` settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeskConfig {
    /// Fee by payment method in basis points, over the defaults
    /// (mpesa/mtn_momo/airtel_money/sandbox 250, bank_transfer 150,
    /// voucher 100, crypto 50, card 300, balance 50).
    pub fee_basis_points: BTreeMap<String, u32>,
    /// Taken off (bid) and added to (ask) the mid rate when a price comes
    /// from the rate sources, and off the pool's bid and onto its ask when
    /// it comes from a pool (at most 5000).
    pub spread_basis_points: u32,
    /// How far (1 to 5000 basis points) a pool's mid may be from the rate
    /// sources' mid for the pair before the desk ignores the pool and
    /// prices from the rate sources (a pool is cheap to push).
    pub max_pool_deviation_basis_points: u32,
    /// How long a desk quote can be used (1 to 3600).
    pub quote_lifetime_seconds: u64,
    /// How long after a buy paid with a payment method its payment may
    /// succeed and still complete it (1 to 259 200); later, the trade
    /// fails and the fiat stays in the customer's balance.
    pub payment_window_seconds: u64,
}

impl Default for DeskConfig {
    fn default() -> Self {
        DeskConfig {
            fee_basis_points: BTreeMap::new(),
            spread_basis_points: 100,
            max_pool_deviation_basis_points: 500,
            quote_lifetime_seconds: 60,
            payment_window_seconds: 900,
        }
    }
}

impl DeskConfig {
    /// The setting at fault and why, for the config loader.
    pub fn check(&self) -> Result<FeeTable, (&'static str, String)> {
        if self.spread_basis_points > conversion::SPREAD_BASIS_POINTS_MAX {
            return Err((
                "desk.spread_basis_points",
                format!("at most {}", conversion::SPREAD_BASIS_POINTS_MAX),
            ));
        }
        if !(1..=DESK_POOL_DEVIATION_BASIS_POINTS_MAX)
            .contains(&self.max_pool_deviation_basis_points)
        {
            return Err((
                "desk.max_pool_deviation_basis_points",
                format!("1 to {DESK_POOL_DEVIATION_BASIS_POINTS_MAX}"),
            ));
        }
        if !(1..=DESK_QUOTE_LIFETIME_SECONDS_MAX).contains(&self.quote_lifetime_seconds) {
            return Err((
                "desk.quote_lifetime_seconds",
                format!("1 to {DESK_QUOTE_LIFETIME_SECONDS_MAX}"),
            ));
        }
        if !(1..=DESK_PAYMENT_WINDOW_SECONDS_MAX).contains(&self.payment_window_seconds) {
            return Err((
                "desk.payment_window_seconds",
                format!("1 to {DESK_PAYMENT_WINDOW_SECONDS_MAX}"),
            ));
        }
        FeeTable::with_overrides(&self.fee_basis_points)
            .map_err(|problem| ("desk.fee_basis_points", problem))
    }
}

/// The platform's stock of one asset that desk trades draw on and refill.
pub fn reserve_account(livemode: bool, asset: &str) -> Account {
    platform_account(livemode, asset, "desk_reserve")
}

/// The desk's fee revenue in one asset.
pub fn desk_fees_account(livemode: bool, asset: &str) -> Account {
    platform_account(livemode, asset, "desk_fees")
}

fn platform_account(livemode: bool, asset: &str, purpose: &str) -> Account {
    Account::new(
        format!(
            "{}/platform/{asset}/{purpose}",
            Mode::from_livemode(livemode).as_str()
        ),
        asset.to_owned(),
        AccountFlags {
            debits_must_not_exceed_credits: true,
            credits_must_not_exceed_debits: false,
        },
    )
}

/// `GET /v1/trading/prices` parameters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
pub struct PriceParams {
    /// The crypto asset (`btc`).
    pub asset: Option<String>,
    /// The fiat currency (`usd`).
    pub currency: Option<String>,
}

/// What the desk buys and sells one asset for now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct DeskPrice {
    /// Always `desk_price`.
    pub object: &'static str,
    pub livemode: bool,
    pub asset: String,
    pub currency: String,
    /// What the desk pays for one major unit of `asset`, in major units of
    /// `currency` (decimal string).
    pub bid: String,
    /// What one major unit of `asset` costs from the desk (decimal string).
    pub ask: String,
    /// `order_book` (the venue's `{asset}_{currency}` book), `pool` (the
    /// mode's liquidity pools of the pair) or the name of the rate source.
    pub source: String,
    /// When the price was true (Unix seconds).
    pub as_of: i64,
}

/// `POST /v1/trading/quotes`
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct CreateDeskQuote {
    /// The customer (`cus_…`) who trades.
    pub customer: Option<String>,
    /// `buy` (the customer pays fiat) or `sell` (the customer gives the
    /// asset).
    pub side: Option<String>,
    /// The crypto asset (`btc`).
    pub asset: Option<String>,
    /// The fiat currency (`usd`).
    pub currency: Option<String>,
    /// Fiat minor units the customer pays (buy, fee included) or receives
    /// (sell, after the fee). Give this or `asset_amount`.
    pub amount: Option<u64>,
    /// Asset minor units the customer receives (buy) or gives (sell).
    pub asset_amount: Option<u64>,
    /// How a buy is paid (`mpesa`, `card`, `bank_transfer`, `voucher`,
    /// `crypto`, `sandbox`, `balance`); a sell always pays into the
    /// customer's balance (`balance`, the default).
    pub payment_method: Option<String>,
}

/// A locked desk price with both amounts and the fee.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeskQuote {
    /// `dq_…`
    pub id: String,
    /// Always `desk_quote`.
    pub object: String,
    pub livemode: bool,
    pub customer: String,
    /// `buy` or `sell`.
    pub side: String,
    pub asset: String,
    pub currency: String,
    /// Fiat minor units the customer pays (buy, fee included) or receives
    /// (sell, after the fee).
    pub amount: u64,
    /// Asset minor units the customer receives (buy) or gives (sell).
    pub asset_amount: u64,
    /// The desk's fee in fiat minor units.
    pub fee: u64,
    pub fee_basis_points: u32,
    pub payment_method: String,
    /// The locked price: major units of `currency` per major unit of
    /// `asset` (decimal string).
    pub price: String,
    /// `order_book`, `pool` or the rate source's name.
    pub source: String,
    pub expires_at: i64,
    pub created: i64,
}

/// `POST /v1/trading/buy` and `POST /v1/trading/sell`
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct CreateTrade {
    /// The desk quote (`dq_…`) to trade at.
    pub quote: Option<String>,
    /// Buy only: settle from the customer's fiat balance at once (the
    /// quote's `payment_method` must be `balance`).
    pub pay_from_balance: Option<bool>,
    /// Buy only, for a quote of a payment method: the payment's details as
    /// `POST /v1/payments` takes them (`customer`, `reference`,
    /// `description`, `metadata`, `return_url`, `payment_method`,
    /// `confirm`). `amount`, `currency` and `method` come from the quote
    /// (given, they must equal it); the desk credits the quote's customer,
    /// so `credit_customer`, `customer_id`, `conversion_quote` and a
    /// manual `capture_method` are refused. Errors name the field as
    /// `payment[customer][phone]`.
    pub payment: Option<CreatePayment>,
}

/// A buy or sell at the desk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Trade {
    /// `trd_…`
    pub id: String,
    /// Always `trade`.
    pub object: String,
    pub livemode: bool,
    pub customer: String,
    pub quote: String,
    pub side: String,
    pub asset: String,
    pub currency: String,
    pub amount: u64,
    pub asset_amount: u64,
    pub fee: u64,
    pub payment_method: String,
    /// `pending`, `completed`, `failed` or `canceled`.
    pub status: String,
    /// The payment (`pay_…`) paying for a buy made with a payment method.
    #[serde(default)]
    pub payment: Option<String>,
    /// While pending: what the customer does to pay, as the payment showed
    /// it when the buy was answered (`GET /v1/payments/{payment}` has it
    /// as it is now).
    #[serde(default)]
    pub next_action: Option<NextAction>,
    /// A buy paid with a payment method completes only if the payment
    /// succeeds by then (Unix seconds; `[desk] payment_window_seconds`
    /// after `created`).
    #[serde(default)]
    pub expires_at: Option<i64>,
    /// Why a trade failed: `payment_failed`, `payment_canceled`,
    /// `payment_expired`, `payment_late`, `balance_insufficient` or
    /// `settlement_failed`.
    #[serde(default)]
    pub failure_code: Option<String>,
    #[serde(default)]
    pub failure_message: Option<String>,
    pub created: i64,
}

/// `GET /v1/trading/trades` filters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
pub struct TradeFilters {
    pub customer: Option<String>,
    /// `pending`, `completed`, `failed` or `canceled`.
    pub status: Option<String>,
    /// Created at or after (Unix seconds).
    #[serde(rename = "created[gte]")]
    #[param(rename = "created[gte]")]
    pub created_gte: Option<i64>,
    /// Created at or before (Unix seconds).
    #[serde(rename = "created[lte]")]
    #[param(rename = "created[lte]")]
    pub created_lte: Option<i64>,
}

/// `POST /v1/admin/trading/reserves`
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct FundReserve {
    pub asset: Option<String>,
    /// Minor units to add.
    pub amount: Option<u64>,
    /// `test` only (see docs/trading.md).
    pub mode: Option<String>,
}

/// One asset's desk reserve and fee revenue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct DeskReserve {
    /// Always `desk_reserve`.
    pub object: &'static str,
    pub livemode: bool,
    pub asset: String,
    /// What trades can draw (minor units), the holds excluded.
    #[schema(value_type = u64)]
    pub available: u128,
    /// Held for pending buys paid with a payment method (minor units):
    /// delivered when their payment succeeds, back in `available` when
    /// they fail or are canceled.
    #[schema(value_type = u64)]
    pub held: u128,
    /// Desk fees earned in this asset (minor units).
    #[schema(value_type = u64)]
    pub fees: u128,
}

fn parse_asset(param: &str, value: Option<&str>, kind: AssetKind) -> Result<Asset, ApiError> {
    let code = value.ok_or_else(|| ApiError::missing(param))?;
    let asset = Asset::parse(&code.to_ascii_lowercase())
        .map_err(|error| ApiError::invalid(param, error.to_string()))?;
    if asset.kind() != kind {
        let want = match kind {
            AssetKind::Fiat => "a fiat currency",
            AssetKind::Crypto => "a crypto asset",
        };
        return Err(ApiError::invalid(param, format!("{param} must be {want}")));
    }
    Ok(asset)
}

fn too_large(param: &str) -> ApiError {
    ApiError::invalid(param, "the amount is too large")
}

fn rate_refusal(asset: Asset, currency: Asset, error: PairRateError) -> ApiError {
    match error {
        PairRateError::Unknown => ApiError::new(
            ErrorKind::InvalidRequest,
            "rate_unavailable",
            format!("no order book liquidity and no rate source prices {asset} -> {currency}"),
        )
        .with_param("asset"),
        PairRateError::Stale(rate) => ApiError::new(
            ErrorKind::ServiceUnavailable,
            "rate_stale",
            format!(
                "the {asset} -> {currency} rate from `{}` is stale (as of {}); no price until it is refreshed",
                rate.source, rate.as_of
            ),
        ),
        PairRateError::SourcesDown(errors) => ApiError::new(
            ErrorKind::ServiceUnavailable,
            "rate_source_unavailable",
            format!(
                "no fresh {asset} -> {currency} rate: {}",
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        ),
    }
}

fn reserve_short(asset: &str, needed: u128, available: u128) -> GatewayError {
    ApiError::new(
        ErrorKind::Conflict,
        "reserve_insufficient",
        format!(
            "the desk's {asset} reserve holds {available} minor units, this trade needs {needed}"
        ),
    )
    .into()
}

/// The locked rates of a pair: `buy` converts currency -> asset, `sell`
/// asset -> currency (both as [`conversion::quoted_rate`] gives them), and
/// the bid/ask shown for them (major units of currency per asset).
struct DeskRates {
    buy: Decimal,
    sell: Decimal,
    bid: Decimal,
    ask: Decimal,
    source: String,
    as_of: i64,
}

/// The ask a buy rate amounts to: its inverse, rounded up (never shows
/// the customer a better price than the rate gives).
fn ask_of(buy: Decimal) -> GatewayResult<Decimal> {
    Decimal::ONE
        .checked_div(buy)
        .and_then(|ask| {
            ask.round_sf_with_strategy(
                conversion::RATE_SIGNIFICANT_DIGITS,
                rust_decimal::RoundingStrategy::AwayFromZero,
            )
        })
        .map(|ask| ask.normalize())
        .ok_or_else(|| too_large("asset").into())
}

/// The rates of a market's bid and ask (major units of currency per
/// major unit of asset): a sell converts at the bid truncated
/// ([`conversion::quoted_rate`]), a buy at the inverse of the ask rounded
/// down ([`per_unit_down`]), both in the platform's favour.
fn market_rates(bid: Decimal, ask: Decimal, source: &str, now: i64) -> GatewayResult<DeskRates> {
    Ok(DeskRates {
        buy: per_unit_down(ask)?,
        sell: conversion::quoted_rate(bid, 0).map_err(rate_error)?,
        bid: bid.normalize(),
        ask: ask.normalize(),
        source: source.into(),
        as_of: now,
    })
}

/// A pool's rates: its bid less the desk spread (a sell's rate, shown as
/// the bid) and the inverse of its ask less the spread (a buy's rate; the
/// ask shown is its inverse rounded up), as the rate sources' mid is
/// widened, all in the platform's favour.
fn pool_rates(bid: Decimal, ask: Decimal, spread: u32, now: i64) -> GatewayResult<DeskRates> {
    let sell = conversion::quoted_rate(bid, spread).map_err(rate_error)?;
    let buy = conversion::quoted_rate(per_unit_down(ask)?, spread).map_err(rate_error)?;
    Ok(DeskRates {
        buy,
        sell,
        bid: sell.normalize(),
        ask: ask_of(buy)?,
        source: "pool".into(),
        as_of: now,
    })
}

/// Whether a pool's mid, `(bid + ask) / 2`, is within `deviation_bps`
/// of the rate sources' `mid`.
fn near_mid(bid: Decimal, ask: Decimal, mid: Decimal, deviation_bps: u32) -> bool {
    let Some(pool_mid) = bid
        .checked_add(ask)
        .and_then(|sum| sum.checked_div(Decimal::TWO))
    else {
        return false;
    };
    let (Some(gap), Some(allowed)) = (
        pool_mid.checked_sub(mid).map(|gap| gap.abs()),
        mid.checked_mul(Decimal::from(deviation_bps))
            .and_then(|scaled| scaled.checked_div(Decimal::from(10_000))),
    ) else {
        return false;
    };
    gap <= allowed
}

/// `1 / price` truncated to [`conversion::RATE_SIGNIFICANT_DIGITS`]
/// digits and never above the true inverse: `Decimal`'s division rounds
/// its 28th digit either way, so the result is checked against `price`
/// (an exact product) and stepped down one unit of its last digit if it
/// would give more than `price` buys.
fn per_unit_down(price: Decimal) -> GatewayResult<Decimal> {
    let inverse = Decimal::ONE
        .checked_div(price)
        .ok_or_else(|| too_large("asset"))?;
    let mut rate = conversion::quoted_rate(inverse, 0).map_err(rate_error)?;
    if rate
        .checked_mul(price)
        .is_none_or(|product| product > Decimal::ONE)
    {
        // One unit of the last of the rate's significant digits.
        let digits = u32::try_from(rate.mantissa().unsigned_abs().to_string().len())
            .unwrap_or(conversion::RATE_SIGNIFICANT_DIGITS);
        let step = Decimal::try_new(
            1,
            rate.scale() + conversion::RATE_SIGNIFICANT_DIGITS.saturating_sub(digits),
        )
        .map_err(|_| too_large("asset"))?;
        rate = rate
            .checked_sub(step)
            .filter(|rate| *rate > Decimal::ZERO)
            .ok_or_else(|| too_large("asset"))?
            .normalize();
    }
    Ok(rate)
}

/// A book price (quote minor units per `lot_size` base minor units) as
/// major units of quote per major unit of base.
fn book_price(price: u64, lot_size: u64, base: Asset, quote: Asset) -> Option<Decimal> {
    let scale = 10u64.checked_pow(u32::from(base.exponent()))?;
    let quote_scale = 10u64.checked_pow(u32::from(quote.exponent()))?;
    Decimal::from(price)
        .checked_mul(Decimal::from(scale))?
        .checked_div(Decimal::from(lot_size))?
        .checked_div(Decimal::from(quote_scale))
}

fn quote_unusable(quote_id: &str, expired: bool) -> GatewayError {
    let why = if expired {
        "has expired"
    } else {
        "was used already"
    };
    ApiError::new(
        ErrorKind::InvalidRequest,
        "quote_unusable",
        format!("quote {quote_id} {why}: ask for a new one"),
    )
    .with_param("quote")
    .into()
}

/// The payment fields a buy fills in from its quote (any the client gives
/// must equal the quote's): an error about one is about the quote.
const FILLED_FROM_QUOTE: [&str; 5] = [
    "amount",
    "currency",
    "method",
    "customer_id",
    "credit_customer",
];

/// An error of the payment a buy creates, its field named inside
/// `payment` (`customer[phone]` -> `payment[customer][phone]`); the
/// trade's own (`quote`) stays as it is, and so does an error about a
/// field the desk filled in from the quote ([`FILLED_FROM_QUOTE`]), which
/// names `quote`.
fn in_payment(error: GatewayError) -> GatewayError {
    match error {
        GatewayError::Api(mut error) => {
            if let Some(param) = error.param.take() {
                error.param = Some(if FILLED_FROM_QUOTE.contains(&param.as_str()) {
                    "quote".into()
                } else if param == "quote" || param.starts_with("payment[") {
                    param
                } else {
                    match param.split_once('[') {
                        Some((head, rest)) => format!("payment[{head}][{rest}"),
                        None => format!("payment[{param}]"),
                    }
                });
            }
            GatewayError::Api(error)
        }
        other => other,
    }
}

fn rate_error(error: ConversionError) -> GatewayError {
    GatewayError::internal(ApiError::invalid("rate", error.to_string()))
}

fn side_of(value: &str) -> Side {
    if value == "sell" {
        Side::Sell
    } else {
        Side::Buy
    }
}

impl Gateway {
    fn fee_table(&self) -> GatewayResult<FeeTable> {
        FeeTable::with_overrides(&self.config().desk.fee_basis_points)
            .map_err(|problem| GatewayError::internal(std::io::Error::other(problem)))
    }

    /// The desk's rates for a pair: the book's best bid/ask when both
    /// sides have orders, else the deepest pool's bid and ask for one unit
    /// widened by the desk spread (unless crossed, or further than
    /// `max_pool_deviation_basis_points` from the rate sources' mid when
    /// they price the pair), else the rate sources' mid ± the desk spread.
    async fn desk_rates(
        &self,
        context: &MerchantContext,
        asset: Asset,
        currency: Asset,
    ) -> GatewayResult<DeskRates> {
        let pair_id = format!("{}_{}", asset.code(), currency.code());
        let now = now_seconds();
        let book = match self
            .order_book(context, &pair_id, &BookParams { depth: Some(1) })
            .await
        {
            Ok(book) => Some(book),
            Err(GatewayError::Api(error)) if error.code == "resource_missing" => None,
            Err(error) => return Err(error),
        };
        if let Some(book) = book
            && let (Some(bid), Some(ask)) = (book.bids.first(), book.asks.first())
        {
            let lot_size = self.trading_lot_size(&pair_id).await?;
            let bid = book_price(bid.price, lot_size, asset, currency)
                .ok_or_else(|| too_large("asset"))?;
            let ask = book_price(ask.price, lot_size, asset, currency)
                .ok_or_else(|| too_large("asset"))?;
            return market_rates(bid, ask, "order_book", now);
        }
        let spread = self.config().desk.spread_basis_points;
        let sourced = self.rate_book().pair(asset, currency, now).await;
        if let Some((bid, ask)) = self.pool_prices(context, asset, currency).await? {
            let deviation = self.config().desk.max_pool_deviation_basis_points;
            let near = sourced
                .as_ref()
                .map_or(true, |sourced| near_mid(bid, ask, sourced.mid, deviation));
            if near {
                return pool_rates(bid, ask, spread, now);
            }
            metrics::counter!("malipo_desk_pool_prices_refused_total").increment(1);
        }
        let sourced = sourced.map_err(|error| rate_refusal(asset, currency, error))?;
        let per_currency = Decimal::ONE
            .checked_div(sourced.mid)
            .ok_or_else(|| too_large("asset"))?;
        let buy = conversion::quoted_rate(per_currency, spread).map_err(rate_error)?;
        let sell = conversion::quoted_rate(sourced.mid, spread).map_err(rate_error)?;
        Ok(DeskRates {
            buy,
            sell,
            bid: sell.normalize(),
            ask: ask_of(buy)?,
            source: sourced.source,
            as_of: sourced.as_of,
        })
    }

    /// The bid and ask the deepest active pool of the key's mode that
    /// trades `asset` against `currency` (the most `currency` in reserve,
    /// among those that can both buy and sell a whole unit) gives for one
    /// major unit of `asset` (through [`malipo_amm::Pool::quote_exact_in`]
    /// and [`malipo_amm::Pool::quote_exact_out`], so with the pool's fee
    /// and rounded for the pool). Both sides come from that one pool: a
    /// bid from one pool and an ask from another could cross. `None` when
    /// no pool prices a unit or the deepest one's bid is not below its ask.
    async fn pool_prices(
        &self,
        context: &MerchantContext,
        asset: Asset,
        currency: Asset,
    ) -> GatewayResult<Option<(Decimal, Decimal)>> {
        let records = {
            let mut reader = self.store().reader().await?;
            reader
                .conn()
                .trading_pools(context.livemode(), false)
                .await?
        };
        let unit = 10u128.pow(u32::from(asset.exponent()));
        let currency_scale = Decimal::from(10u64.pow(u32::from(currency.exponent())));
        let mut deepest: Option<(u128, Decimal, Decimal)> = None;
        for pool in crate::pools::active_pools_of(&records, asset, currency)? {
            let (Ok(sold), Ok(bought)) = (
                pool.quote_exact_in(asset, unit),
                pool.quote_exact_out(asset, unit),
            ) else {
                continue;
            };
            let (Ok(sold), Ok(bought)) = (i128::try_from(sold), i128::try_from(bought)) else {
                continue;
            };
            let (Some(bid), Some(ask)) = (
                Decimal::try_from_i128_with_scale(sold, 0)
                    .ok()
                    .and_then(|sold| sold.checked_div(currency_scale)),
                Decimal::try_from_i128_with_scale(bought, 0)
                    .ok()
                    .and_then(|bought| bought.checked_div(currency_scale)),
            ) else {
                continue;
            };
            if bid <= Decimal::ZERO {
                continue;
            }
            let depth = pool.reserve_of(currency).unwrap_or(0);
            if deepest.is_none_or(|(most, _, _)| depth > most) {
                deepest = Some((depth, bid, ask));
            }
        }
        Ok(deepest
            .filter(|(_, bid, ask)| bid < ask)
            .map(|(_, bid, ask)| (bid, ask)))
    }

    /// `GET /v1/trading/prices`
    pub async fn desk_price(
        &self,
        context: &MerchantContext,
        params: &PriceParams,
    ) -> GatewayResult<DeskPrice> {
        context.require(Scope::ReadOnly)?;
        let asset = parse_asset("asset", params.asset.as_deref(), AssetKind::Crypto)?;
        let currency = parse_asset("currency", params.currency.as_deref(), AssetKind::Fiat)?;
        let rates = self.desk_rates(context, asset, currency).await?;
        let (bid, ask) = (rates.bid, rates.ask);
        Ok(DeskPrice {
            object: "desk_price",
            livemode: context.livemode(),
            asset: asset.code().to_owned(),
            currency: currency.code().to_owned(),
            bid: bid.to_string(),
            ask: ask.to_string(),
            source: rates.source,
            as_of: rates.as_of,
        })
    }

    /// Refuses a buy quote its payment method could never pay, with the
    /// provider's own check ([`malipo_connectors::Connector::check_payment`],
    /// the one the payment runs): a method without a connector names
    /// `payment_method`, a currency or amount it refuses (M-Pesa in USD,
    /// KES with cents) names `currency` or the amount the client gave.
    /// What only the payment knows (the customer's phone) is left to it.
    fn check_quote_payable(
        &self,
        method: &str,
        currency: Asset,
        amount: u128,
        named_param: &str,
    ) -> GatewayResult<()> {
        let Some(payment_method) = malipo_core::payment::PaymentMethod::parse(method) else {
            return Ok(());
        };
        use malipo_core::payment::PaymentMethod as Method;
        if matches!(
            payment_method,
            Method::Card | Method::BankTransfer | Method::Voucher
        ) {
            return Ok(());
        }
        let connector = self
            .connectors()
            .for_method(payment_method)
            .ok_or_else(|| {
                ApiError::invalid(
                    "payment_method",
                    format!(
                        "the `{method}` method has no connector configured on this gateway yet"
                    ),
                )
            })?;
        let amount = u64::try_from(amount).map_err(|_| too_large(named_param))?;
        let mut customer = malipo_core::objects::Customer::default();
        match connector.check_payment(&mut customer, currency.code(), amount) {
            Err(error) if error.param == "currency" => {
                Err(ApiError::invalid("currency", error.message).into())
            }
            Err(error) if error.param == "amount" => {
                Err(ApiError::invalid(named_param, error.message).into())
            }
            _ => Ok(()),
        }
    }

    /// `POST /v1/trading/quotes`
    pub async fn create_desk_quote(
        &self,
        context: &MerchantContext,
        request: CreateDeskQuote,
        guard: Option<IdempotencyGuard>,
    ) -> GatewayResult<DeskQuote> {
        context.require(Scope::Full)?;
        if let Some(id) = guard
            .as_ref()
            .and_then(|guard| guard.resume_object_id.clone())
        {
            let mut tx = self.store().begin().await?;
            let mut conn = tx.conn();
            let quote = quote_of(&mut conn, context, &id, "id").await?;
            complete(&mut conn, guard.as_ref(), &quote).await?;
            tx.commit().await?;
            return Ok(quote);
        }
        let customer_id = request
            .customer
            .clone()
            .ok_or_else(|| ApiError::missing("customer"))?;
        let side = match request.side.as_deref() {
            Some("buy") => Side::Buy,
            Some("sell") => Side::Sell,
            Some(other) => {
                return Err(ApiError::invalid(
                    "side",
                    format!("unknown side `{other}`: use buy or sell"),
                )
                .into());
            }
            None => return Err(ApiError::missing("side").into()),
        };
        let asset = parse_asset("asset", request.asset.as_deref(), AssetKind::Crypto)?;
        let currency = parse_asset("currency", request.currency.as_deref(), AssetKind::Fiat)?;
        let named = match (request.amount, request.asset_amount) {
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid(
                    "asset_amount",
                    "give amount (fiat) or asset_amount (crypto), not both",
                )
                .into());
            }
            (None, None) => return Err(ApiError::missing("amount").into()),
            (Some(0), _) => {
                return Err(ApiError::invalid("amount", "amount must be greater than 0").into());
            }
            (_, Some(0)) => {
                return Err(ApiError::invalid(
                    "asset_amount",
                    "asset_amount must be greater than 0",
                )
                .into());
            }
            (Some(amount), None) => Named::Amount(u128::from(amount)),
            (None, Some(asset_amount)) => Named::AssetAmount(u128::from(asset_amount)),
        };
        let named_param = match named {
            Named::Amount(_) => "amount",
            Named::AssetAmount(_) => "asset_amount",
        };
        let table = self.fee_table()?;
        let method = match (side, request.payment_method.as_deref()) {
            (Side::Sell, None | Some(BALANCE_METHOD)) => BALANCE_METHOD.to_owned(),
            (Side::Sell, Some(_)) => {
                return Err(ApiError::invalid(
                    "payment_method",
                    "a sell pays into the customer's balance: payment_method must be `balance`",
                )
                .into());
            }
            (Side::Buy, None) => return Err(ApiError::missing("payment_method").into()),
            (Side::Buy, Some(method)) => method.to_owned(),
        };
        let fee_bps = table.basis_points(&method).ok_or_else(|| {
            ApiError::invalid(
                "payment_method",
                format!("the desk has no fee for `{method}`: use a payment method or `balance`"),
            )
        })?;
        let rates = self.desk_rates(context, asset, currency).await?;
        let rate = match side {
            Side::Buy => rates.buy,
            Side::Sell => rates.sell,
        };
        let amounts = desk::amounts(side, asset, currency, rate, fee_bps, named)
            .map_err(|_| too_large(named_param))?;
        let gross = amounts.amount + if side == Side::Sell { amounts.fee } else { 0 };
        if amounts.asset_amount == 0 || amounts.amount == 0 {
            return Err(ApiError::invalid(
                named_param,
                "the amount is too small: one side of the trade would be 0 minor units",
            )
            .into());
        }
        let fiat_max = currency.payment_amount_max().min(u128::from(u64::MAX));
        let asset_max = asset.payment_amount_max().min(u128::from(u64::MAX));
        if gross > fiat_max || amounts.asset_amount > asset_max {
            return Err(ApiError::invalid(
                named_param,
                format!(
                    "one trade may move at most {fiat_max} {currency} and {asset_max} {asset} minor units"
                ),
            )
            .into());
        }
        if side == Side::Buy {
            self.check_quote_payable(&method, currency, amounts.amount, named_param)?;
        }
        let (bid, ask) = (rates.bid, rates.ask);
        let now = now_seconds();
        let lifetime = i64::try_from(self.config().desk.quote_lifetime_seconds).unwrap_or(60);
        let quote = DeskQuote {
            id: new_id(IdKind::DeskQuote),
            object: "desk_quote".into(),
            livemode: context.livemode(),
            customer: customer_id.clone(),
            side: if side == Side::Buy { "buy" } else { "sell" }.into(),
            asset: asset.code().to_owned(),
            currency: currency.code().to_owned(),
            amount: u64::try_from(amounts.amount).map_err(|_| too_large(named_param))?,
            asset_amount: u64::try_from(amounts.asset_amount)
                .map_err(|_| too_large(named_param))?,
            fee: u64::try_from(amounts.fee).map_err(|_| too_large(named_param))?,
            fee_basis_points: fee_bps,
            payment_method: method,
            price: if side == Side::Buy { ask } else { bid }.to_string(),
            source: rates.source,
            expires_at: now.saturating_add(lifetime),
            created: now,
        };
        let mut tx = self.store().begin().await?;
        let mut conn = tx.conn();
        customer_of(&mut conn, context, &customer_id, "customer").await?;
        check_reserve(&mut conn, &quote).await?;
        conn.insert_desk_quote(&DeskQuoteRecord {
            id: quote.id.clone(),
            merchant_id: context.merchant_id.clone(),
            livemode: quote.livemode,
            customer_id,
            expires_at: quote.expires_at,
            trade_id: None,
            body: to_json(&quote)?,
            created: now,
        })
        .await?;
        complete(&mut conn, guard.as_ref(), &quote).await?;
        tx.commit().await?;
        metrics::counter!("malipo_desk_quotes_total").increment(1);
        Ok(quote)
    }

    /// `POST /v1/trading/buy` (`pay_from_balance: true`) and
    /// `POST /v1/trading/sell`: claims the quote and settles at once.
    pub async fn create_trade(
        &self,
        context: &MerchantContext,
        side: &str,
        request: CreateTrade,
        guard: Option<IdempotencyGuard>,
    ) -> GatewayResult<Trade> {
        context.require(Scope::Full)?;
        if let Some(id) = guard
            .as_ref()
            .and_then(|guard| guard.resume_object_id.clone())
        {
            let trade = self.trade(context, &id).await?;
            self.complete_resumed(guard.as_ref(), &trade).await?;
            return Ok(trade);
        }
        let quote_id = request.quote.ok_or_else(|| ApiError::missing("quote"))?;
        if side == "sell" && request.payment.is_some() {
            return Err(ApiError::invalid(
                "payment",
                "a sell pays into the customer's balance: it takes no payment",
            )
            .into());
        }
        if side == "buy" && request.pay_from_balance != Some(true) {
            if request.pay_from_balance.is_some() {
                return Err(ApiError::invalid(
                    "pay_from_balance",
                    "pay_from_balance is true (settle from the balance) or omitted (pay with `payment`)",
                )
                .into());
            }
            return self
                .buy_with_payment(context, &quote_id, request.payment, guard)
                .await;
        }
        if request.payment.is_some() {
            return Err(ApiError::invalid(
                "payment",
                "a buy from the balance (pay_from_balance: true) takes no payment",
            )
            .into());
        }
        let mut tx = self.store().begin().await?;
        let mut conn = tx.conn();
        let quote = quote_of(&mut conn, context, &quote_id, "quote").await?;
        if quote.side != side {
            return Err(ApiError::invalid(
                "quote",
                format!(
                    "quote {} is a {} quote: use POST /v1/trading/{}",
                    quote.id, quote.side, quote.side
                ),
            )
            .into());
        }
        if side == "buy" && quote.payment_method != BALANCE_METHOD {
            return Err(ApiError::invalid(
                "quote",
                "pay_from_balance needs a quote with payment_method `balance` (its fee)",
            )
            .into());
        }
        let now = now_seconds();
        let trade = Trade {
            id: new_id(IdKind::Trade),
            object: "trade".into(),
            livemode: quote.livemode,
            customer: quote.customer.clone(),
            quote: quote.id.clone(),
            side: quote.side.clone(),
            asset: quote.asset.clone(),
            currency: quote.currency.clone(),
            amount: quote.amount,
            asset_amount: quote.asset_amount,
            fee: quote.fee,
            payment_method: quote.payment_method.clone(),
            status: "completed".into(),
            payment: None,
            next_action: None,
            expires_at: None,
            failure_code: None,
            failure_message: None,
            created: now,
        };
        if !conn.claim_desk_quote(&quote.id, &trade.id, now).await? {
            return Err(quote_unusable(&quote.id, quote.expires_at <= now));
        }
        let (accounts, transfers) = settlement(&quote, &trade.id, false);
        // Lock the two accounts the checks read (in id order, so two
        // trades never wait on each other crosswise): a concurrent trade
        // waits here and then sees what this one left.
        let drawn = if side == "buy" {
            &quote.asset
        } else {
            &quote.currency
        };
        let reserve = reserve_account(quote.livemode, drawn);
        let locked: BTreeSet<&str> = [accounts[0].id.as_str(), reserve.id.as_str()].into();
        conn.ledger_accounts_for_update(&locked).await?;
        check_reserve(&mut conn, &quote).await?;
        let (debited, debited_asset, needed, param) = if side == "buy" {
            (
                &accounts[0],
                &quote.currency,
                u128::from(quote.amount),
                "quote",
            )
        } else {
            (
                &accounts[0],
                &quote.asset,
                u128::from(quote.asset_amount),
                "asset_amount",
            )
        };
        let have = balance_of(&mut conn, debited).await?;
        if have < needed {
            return Err(ApiError::new(
                ErrorKind::InvalidRequest,
                "balance_insufficient",
                format!(
                    "customer {} has {have} {debited_asset} minor units available, the trade needs {needed}",
                    quote.customer
                ),
            )
            .with_param(param)
            .into());
        }
        post(&mut conn, &accounts, &transfers).await?;
        conn.insert_desk_trade(&DeskTradeRecord {
            id: trade.id.clone(),
            merchant_id: context.merchant_id.clone(),
            livemode: trade.livemode,
            customer_id: trade.customer.clone(),
            status: trade.status.clone(),
            payment_id: None,
            body: to_json(&trade)?,
            created: now,
        })
        .await?;
        let mut created = trade.clone();
        created.status = "pending".into();
        emit(
            &mut conn,
            &context.merchant_id,
            trade.livemode,
            "trade.created",
            &created,
        )
        .await?;
        emit(
            &mut conn,
            &context.merchant_id,
            trade.livemode,
            "trade.completed",
            &trade,
        )
        .await?;
        complete(&mut conn, guard.as_ref(), &trade).await?;
        tx.commit().await?;
        metrics::counter!("malipo_desk_trades_total").increment(1);
        Ok(trade)
    }

    /// `POST /v1/trading/buy` with a payment method: the payment (through
    /// [`Gateway::create_payment_for`], crediting the quote's customer)
    /// and the pending trade it pays for, written in one transaction; the
    /// answer carries the payment's `next_action`.
    async fn buy_with_payment(
        &self,
        context: &MerchantContext,
        quote_id: &str,
        payment: Option<CreatePayment>,
        guard: Option<IdempotencyGuard>,
    ) -> GatewayResult<Trade> {
        let (quote, claimed) = {
            let mut reader = self.store().reader().await?;
            let mut conn = reader.conn();
            let quote = quote_of(&mut conn, context, quote_id, "quote").await?;
            let claimed = conn
                .desk_quote(&context.merchant_id, context.livemode(), quote_id)
                .await?
                .and_then(|record| record.trade_id)
                .is_some();
            (quote, claimed)
        };
        if quote.side != "buy" {
            return Err(ApiError::invalid(
                "quote",
                format!(
                    "quote {} is a {} quote: use POST /v1/trading/{}",
                    quote.id, quote.side, quote.side
                ),
            )
            .into());
        }
        if quote.payment_method == BALANCE_METHOD {
            return Err(ApiError::invalid(
                "quote",
                "this quote is priced for paying from the balance: send pay_from_balance: true, or quote a payment method",
            )
            .into());
        }
        if quote.payment_method == "voucher" {
            return Err(ApiError::invalid(
                "quote",
                "a voucher payment can't credit a customer, so it can't pay for a desk buy: quote another payment method",
            )
            .into());
        }
        let now = now_seconds();
        if claimed || quote.expires_at <= now {
            return Err(quote_unusable(&quote.id, !claimed));
        }
        // Early answers, before a provider is asked: the payment's own
        // transaction checks both again ([`open_trade`]).
        check_reserve(&mut self.store().reader().await?.conn(), &quote).await?;
        let mut request = payment.unwrap_or_default();
        let mismatch = |param: &str, wanted: String| -> GatewayError {
            ApiError::invalid(
                format!("payment[{param}]"),
                format!("the quote sets payment[{param}] ({wanted}): leave it out or give that"),
            )
            .into()
        };
        if request.amount.is_some_and(|amount| amount != quote.amount) {
            return Err(mismatch("amount", quote.amount.to_string()));
        }
        if request
            .currency
            .as_deref()
            .is_some_and(|currency| !currency.eq_ignore_ascii_case(&quote.currency))
        {
            return Err(mismatch("currency", quote.currency.clone()));
        }
        if request
            .method
            .as_deref()
            .is_some_and(|method| method != quote.payment_method)
        {
            return Err(mismatch("method", quote.payment_method.clone()));
        }
        let manual = request
            .capture_method
            .as_deref()
            .is_some_and(|method| method != "automatic");
        for (param, given) in [
            ("credit_customer", request.credit_customer.is_some()),
            ("customer_id", request.customer_id.is_some()),
            ("conversion_quote", request.conversion_quote.is_some()),
            ("capture_method", manual),
        ] {
            if given {
                return Err(ApiError::invalid(
                    format!("payment[{param}]"),
                    format!("a desk buy's payment credits the quote's customer at once: payment[{param}] is not taken"),
                )
                .into());
            }
        }
        if request.confirm == Some(false) {
            return Err(ApiError::invalid(
                "payment[confirm]",
                "a desk buy's payment is sent to its provider at once: payment[confirm] can't be false (an unsent payment would hold the quoted price for free)",
            )
            .into());
        }
        let window = i64::try_from(self.config().desk.payment_window_seconds).unwrap_or(900);
        let trade = Trade {
            id: new_id(IdKind::Trade),
            object: "trade".into(),
            livemode: quote.livemode,
            customer: quote.customer.clone(),
            quote: quote.id.clone(),
            side: quote.side.clone(),
            asset: quote.asset.clone(),
            currency: quote.currency.clone(),
            amount: quote.amount,
            asset_amount: quote.asset_amount,
            fee: quote.fee,
            payment_method: quote.payment_method.clone(),
            status: "pending".into(),
            payment: None,
            next_action: None,
            expires_at: Some(now.saturating_add(window)),
            failure_code: None,
            failure_message: None,
            created: now,
        };
        request.amount = Some(quote.amount);
        request.currency = Some(quote.currency.clone());
        request.method = Some(quote.payment_method.clone());
        request.credit_customer = Some(true);
        request.customer_id = Some(quote.customer.clone());
        request
            .metadata
            .insert("desk_trade".into(), trade.id.clone());
        let trade_id = trade.id.clone();
        let attachment = TradeAttachment {
            trade,
            merchant_id: context.merchant_id.clone(),
            idempotency: guard.as_ref().map(|guard| guard.claim.clone()),
        };
        let payment = self
            .create_payment_for(context, request, None, Some(attachment))
            .await
            .map_err(in_payment)?;
        metrics::counter!("malipo_desk_trades_total").increment(1);
        // The payment and the trade are committed: from here on the answer
        // is the trade as it stands, never an error the client would take
        // for "nothing happened" (a retry with the Idempotency-Key resumes
        // at the trade, its recovery point).
        match self
            .record_next_action(context, &trade_id, &payment, guard.as_ref())
            .await
        {
            Ok(trade) => Ok(trade),
            Err(error) => {
                tracing::warn!(trade = %trade_id, error = %error.chain(),
                    "a desk buy committed but its answer could not be recorded; answering the trade as stored");
                self.trade(context, &trade_id).await
            }
        }
    }

    /// After a paid buy committed: copies the payment's `next_action` onto
    /// the trade while it is still pending, and completes the
    /// Idempotency-Key with the trade as it then stands (re-read when a
    /// callback ended it meanwhile, so a finished trade is never answered
    /// or stored as pending).
    async fn record_next_action(
        &self,
        context: &MerchantContext,
        trade_id: &str,
        payment: &Payment,
        guard: Option<&IdempotencyGuard>,
    ) -> GatewayResult<Trade> {
        let mut tx = self.store().begin().await?;
        let mut conn = tx.conn();
        let read = |record: Option<DeskTradeRecord>| -> GatewayResult<Trade> {
            let record = record
                .ok_or_else(|| GatewayError::internal(ApiError::not_found("trade", trade_id)))?;
            from_json(&record.id, &record.body)
        };
        let mut trade = read(
            conn.desk_trade(&context.merchant_id, context.livemode(), trade_id)
                .await?,
        )?;
        if trade.status == "pending" && payment.next_action.is_some() {
            trade.next_action = payment.next_action.clone();
            if !conn
                .update_desk_trade(&trade.id, "pending", "pending", &to_json(&trade)?)
                .await?
            {
                trade = read(
                    conn.desk_trade(&context.merchant_id, context.livemode(), trade_id)
                        .await?,
                )?;
            }
        }
        complete(&mut conn, guard, &trade).await?;
        tx.commit().await?;
        Ok(trade)
    }

    /// `POST /v1/trading/trades/{id}/cancel`: a pending trade becomes
    /// `canceled`, with its payment only when it was never sent to its
    /// provider (`payments::cancelable_unsent`); any other payment (an STK
    /// push, a card page, a crypto address) goes on, and a later success
    /// only credits the customer's balance.
    pub async fn cancel_trade(
        &self,
        context: &MerchantContext,
        id: &str,
        guard: Option<IdempotencyGuard>,
    ) -> GatewayResult<Trade> {
        context.require(Scope::Full)?;
        if !looks_like(IdKind::Trade, id) {
            return Err(ApiError::not_found("trade", id).into());
        }
        let mut tx = self.store().begin().await?;
        let mut conn = tx.conn();
        let found = conn
            .desk_trade(&context.merchant_id, context.livemode(), id)
            .await?
            .ok_or_else(|| ApiError::not_found("trade", id))?;
        // The payment's lock first: its end (which settles the trade)
        // holds it too, so the two never interleave.
        let mut payment = match &found.payment_id {
            Some(payment_id) => {
                conn.payment_for_update(&context.merchant_id, context.livemode(), payment_id)
                    .await?
            }
            None => None,
        };
        let found = conn
            .desk_trade(&context.merchant_id, context.livemode(), id)
            .await?
            .ok_or_else(|| ApiError::not_found("trade", id))?;
        let mut trade: Trade = from_json(&found.id, &found.body)?;
        if trade.status != "pending" {
            return Err(ApiError::new(
                ErrorKind::InvalidRequest,
                "trade_not_pending",
                format!(
                    "trade {id} is {}: only a pending trade can be canceled",
                    trade.status
                ),
            )
            .into());
        }
        trade.status = "canceled".into();
        trade.next_action = None;
        let (accounts, void) = reserve_hold(&trade, HoldStep::Release);
        post(&mut conn, &accounts, &void).await?;
        if !conn
            .update_desk_trade(id, "pending", "canceled", &to_json(&trade)?)
            .await?
        {
            return Err(GatewayError::internal(std::io::Error::other(format!(
                "trade {id} left pending while its payment was locked"
            ))));
        }
        emit(
            &mut conn,
            &context.merchant_id,
            trade.livemode,
            "trade.canceled",
            &trade,
        )
        .await?;
        if let Some(payment) = &mut payment
            && cancelable_unsent(payment)
        {
            cancel_unsent(&mut conn, payment).await?;
        }
        complete(&mut conn, guard.as_ref(), &trade).await?;
        tx.commit().await?;
        metrics::counter!("malipo_desk_trades_canceled_total").increment(1);
        Ok(trade)
    }

    /// `GET /v1/trading/trades/{id}`
    pub async fn trade(&self, context: &MerchantContext, id: &str) -> GatewayResult<Trade> {
        context.require(Scope::ReadOnly)?;
        if !looks_like(IdKind::Trade, id) {
            return Err(ApiError::not_found("trade", id).into());
        }
        let mut reader = self.store().reader().await?;
        let record = reader
            .conn()
            .desk_trade(&context.merchant_id, context.livemode(), id)
            .await?
            .ok_or_else(|| ApiError::not_found("trade", id))?;
        from_json(&record.id, &record.body)
    }

    /// `GET /v1/trading/trades`
    pub async fn trades(
        &self,
        context: &MerchantContext,
        filters: &TradeFilters,
        page: &Page,
    ) -> GatewayResult<List<Trade>> {
        context.require(Scope::ReadOnly)?;
        let mut conditions = owner_filters(context);
        if let Some(customer) = &filters.customer {
            conditions.push(malipo_store::Filter::TextEquals(
                "customer_id",
                customer.clone(),
            ));
        }
        if let Some(status) = &filters.status {
            if !["pending", "completed", "failed", "canceled"].contains(&status.as_str()) {
                return Err(ApiError::invalid(
                    "status",
                    "status is one of pending, completed, failed, canceled",
                )
                .into());
            }
            conditions.push(malipo_store::Filter::TextEquals("status", status.clone()));
        }
        created_filters(&mut conditions, filters.created_gte, filters.created_lte);
        let mut reader = self.store().reader().await?;
        let (records, has_more) = reader.conn().desk_trades(&conditions, page).await?;
        let data = records
            .iter()
            .map(|record| from_json(&record.id, &record.body))
            .collect::<GatewayResult<Vec<Trade>>>()?;
        Ok(List::new(data, has_more))
    }

    /// Operator: adds to a test-mode reserve from the platform's test
    /// funding account.
    pub async fn fund_desk_reserve(
        &self,
        actor: &Actor,
        request: FundReserve,
    ) -> GatewayResult<DeskReserve> {
        let code = request.asset.ok_or_else(|| ApiError::missing("asset"))?;
        let asset = Asset::parse(&code.to_ascii_lowercase())
            .map_err(|error| ApiError::invalid("asset", error.to_string()))?;
        let amount = request.amount.ok_or_else(|| ApiError::missing("amount"))?;
        if amount == 0 {
            return Err(ApiError::invalid("amount", "amount must be positive").into());
        }
        match request.mode.as_deref() {
            Some("test") => {}
            Some("live") => {
                return Err(ApiError::new(
                    ErrorKind::InvalidRequest,
                    "test_mode_only",
                    "live reserves are not funded through the API: see docs/trading.md (Desk)",
                )
                .with_param("mode")
                .into());
            }
            Some(other) => {
                return Err(
                    ApiError::invalid("mode", format!("unknown mode `{other}`: use test")).into(),
                );
            }
            None => return Err(ApiError::missing("mode").into()),
        }
        let funding = ledger_entries::test_funding_account(asset.code());
        let reserve = reserve_account(false, asset.code());
        let mut tx = self.store().begin().await?;
        let mut conn = tx.conn();
        let before = reserve_of(&mut conn, false, asset.code()).await?;
        post(
            &mut conn,
            &[funding.clone(), reserve.clone()],
            &[TransferRequest {
                id: new_id(IdKind::LedgerTransfer),
                debit_account_id: funding.id,
                credit_account_id: reserve.id,
                amount: u128::from(amount),
                asset: asset.code().to_owned(),
                kind: TransferKind::Posted,
                pending_id: None,
                code: "desk_reserve_funding".into(),
                source_id: None,
            }],
        )
        .await?;
        let after = reserve_of(&mut conn, false, asset.code()).await?;
        actor
            .record(
                &mut tx,
                AuditChange {
                    action: "desk_reserve.fund",
                    object_type: "desk_reserve",
                    object_id: asset.code(),
                    merchant_id: None,
                    livemode: Some(false),
                    before: Some(audit_state(&before)?),
                    after: Some(audit_state(&after)?),
                },
            )
            .await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Operator: every desk reserve of both modes.
    pub async fn desk_reserves(&self) -> GatewayResult<List<DeskReserve>> {
        let mut reader = self.store().reader().await?;
        let mut conn = reader.conn();
        let mut data = Vec::new();
        for livemode in [false, true] {
            let prefix = format!("{}/platform/", Mode::from_livemode(livemode).as_str());
            let mut by_asset: BTreeMap<String, DeskReserve> = BTreeMap::new();
            for account in conn.ledger_accounts_with_prefix(&prefix).await? {
                let is_reserve = account.id.ends_with("/desk_reserve");
                if !is_reserve && !account.id.ends_with("/desk_fees") {
                    continue;
                }
                let entry = by_asset
                    .entry(account.asset.clone())
                    .or_insert_with(|| empty_reserve(livemode, &account.asset));
                let balance = account.available_credit_balance().unwrap_or(0);
                if is_reserve {
                    entry.available = balance;
                    entry.held = account.debits_pending;
                } else {
                    entry.fees = balance;
                }
            }
            data.extend(by_asset.into_values());
        }
        Ok(List::new(data, false))
    }
}

/// A desk buy waiting for the payment that creates it: written by
/// [`open_trade`] in the payment's own first transaction.
#[derive(Debug, Clone)]
pub(crate) struct TradeAttachment {
    /// The trade, `pending`, its `payment` not set yet.
    pub trade: Trade,
    pub merchant_id: String,
    /// The buy's Idempotency-Key: its recovery point is the trade.
    pub idempotency: Option<IdempotencyClaim>,
}

/// In the transaction that writes a desk buy's payment: claims the quote
/// (once), checks the asset reserve under its lock and holds the trade's
/// asset on it ([`reserve_hold`]), writes the pending
/// trade with `trade.created` and the Idempotency-Key's recovery point;
/// a payment that already ended (the sandbox answers at once) settles or
/// fails it here. A refusal fails the whole transaction: no payment, no
/// trade.
pub(crate) async fn open_trade(
    conn: &mut Conn<'_>,
    attachment: &TradeAttachment,
    payment: &PaymentRecord,
) -> GatewayResult<()> {
    let mut trade = attachment.trade.clone();
    let now = now_seconds();
    let quote_record = conn
        .desk_quote(&attachment.merchant_id, trade.livemode, &trade.quote)
        .await?
        .ok_or_else(|| ApiError::not_found("desk_quote", &trade.quote).with_param("quote"))?;
    if !conn.claim_desk_quote(&trade.quote, &trade.id, now).await? {
        return Err(quote_unusable(&trade.quote, quote_record.expires_at <= now));
    }
    let quote: DeskQuote = from_json(&quote_record.id, &quote_record.body)?;
    let reserve = reserve_account(trade.livemode, &trade.asset);
    conn.ledger_accounts_for_update(&[reserve.id.as_str()].into())
        .await?;
    check_reserve(conn, &quote).await?;
    // The asset the trade will deliver is held from now on: other trades
    // and quotes see only what is left (`available` excludes it).
    let (accounts, hold) = reserve_hold(&trade, HoldStep::Hold);
    post(conn, &accounts, &hold).await?;
    trade.payment = Some(payment.payment.id.clone());
    conn.insert_desk_trade(&DeskTradeRecord {
        id: trade.id.clone(),
        merchant_id: attachment.merchant_id.clone(),
        livemode: trade.livemode,
        customer_id: trade.customer.clone(),
        status: trade.status.clone(),
        payment_id: trade.payment.clone(),
        body: to_json(&trade)?,
        created: trade.created,
    })
    .await?;
    emit(
        conn,
        &attachment.merchant_id,
        trade.livemode,
        "trade.created",
        &trade,
    )
    .await?;
    if let Some(claim) = &attachment.idempotency {
        conn.set_idempotency_recovery_point(claim, &trade.id)
            .await?;
    }
    if payment.payment.status.is_terminal() {
        payment_finished(conn, &payment.payment.id, payment.payment.status).await?;
    }
    Ok(())
}

/// A payment crediting a customer reached `status`, in the transaction
/// that records it (the caller holds the payment's row lock, as
/// [`Gateway::cancel_trade`] does before it reads the trade). The pending
/// desk trade it pays for, if any, completes on success — settled exactly
/// as a balance buy from the fiat the payment just credited — or fails:
/// a late success or a short balance (the fiat stays in the customer's
/// balance), or a payment that failed, was canceled or expired; a failure
/// voids the trade's hold on the reserve. A trade already canceled stays
/// so.
pub(crate) async fn payment_finished(
    conn: &mut Conn<'_>,
    payment_id: &str,
    status: PaymentStatus,
) -> GatewayResult<()> {
    let Some(record) = conn.desk_trade_for_payment(payment_id).await? else {
        return Ok(());
    };
    if record.status != "pending" {
        return Ok(());
    }
    let mut trade: Trade = from_json(&record.id, &record.body)?;
    let failure = match status {
        PaymentStatus::Succeeded => settle_paid_buy(conn, &record, &trade).await?,
        PaymentStatus::Failed => Some((
            "payment_failed",
            format!("payment {payment_id} failed; nothing was traded"),
        )),
        PaymentStatus::Canceled => Some((
            "payment_canceled",
            format!("payment {payment_id} was canceled; nothing was traded"),
        )),
        _ => Some((
            "payment_expired",
            format!("payment {payment_id} expired before it was paid; nothing was traded"),
        )),
    };
    trade.next_action = None;
    if failure.is_some() {
        let (accounts, void) = reserve_hold(&trade, HoldStep::Release);
        post(conn, &accounts, &void).await?;
    }
    let event_type = match failure {
        None => {
            trade.status = "completed".into();
            "trade.completed"
        }
        Some((code, message)) => {
            trade.status = "failed".into();
            trade.failure_code = Some(code.into());
            trade.failure_message = Some(message);
            "trade.failed"
        }
    };
    if !conn
        .update_desk_trade(&trade.id, "pending", &trade.status, &to_json(&trade)?)
        .await?
    {
        return Err(GatewayError::internal(std::io::Error::other(format!(
            "trade {} left pending while its payment was locked",
            trade.id
        ))));
    }
    emit(
        conn,
        &record.merchant_id,
        trade.livemode,
        event_type,
        &trade,
    )
    .await?;
    metrics::counter!("malipo_desk_paid_trades_total", "status" => trade.status.clone())
        .increment(1);
    Ok(())
}

/// Settles a paid buy like a balance buy; answers why it can't instead
/// (nothing moved then: the payment's fiat stays with the customer).
async fn settle_paid_buy(
    conn: &mut Conn<'_>,
    record: &DeskTradeRecord,
    trade: &Trade,
) -> GatewayResult<Option<(&'static str, String)>> {
    let keeps = format!(
        "the payment's {} {} minor units stay in the customer's balance",
        trade.amount, trade.currency
    );
    if let Some(deadline) = trade.expires_at
        && now_seconds() > deadline
    {
        return Ok(Some((
            "payment_late",
            format!("the payment succeeded after the trade's deadline ({deadline}); {keeps}"),
        )));
    }
    let quote_record = conn
        .desk_quote(&record.merchant_id, record.livemode, &trade.quote)
        .await?
        .ok_or_else(|| GatewayError::internal(ApiError::not_found("desk_quote", &trade.quote)))?;
    let quote: DeskQuote = from_json(&quote_record.id, &quote_record.body)?;
    // The reserve's side is the hold the trade took when it opened: no
    // reserve check, its asset is already set aside.
    let (accounts, transfers) = settlement(&quote, &trade.id, true);
    // Every account the settlement writes, locked in one call in id order,
    // so two settlements (or a settlement and a trade) never lock them in
    // opposite orders.
    let locked: BTreeSet<&str> = accounts.iter().map(|account| account.id.as_str()).collect();
    conn.ledger_accounts_for_update(&locked).await?;
    let have = balance_of(conn, &accounts[0]).await?;
    if have < u128::from(quote.amount) {
        return Ok(Some((
            "balance_insufficient",
            format!(
                "customer {} has {have} {} minor units available, the trade needs {}",
                quote.customer, quote.currency, quote.amount
            ),
        )));
    }
    // The payment's success is recorded whatever happens here: a
    // settlement the ledger or the database refuses is undone alone and
    // fails the trade, the fiat staying with the customer.
    conn.savepoint().await?;
    match post(conn, &accounts, &transfers).await {
        Ok(()) => {
            conn.release_savepoint().await?;
            Ok(None)
        }
        Err(error) => {
            tracing::error!(trade = %trade.id, error = %error.chain(),
                "a paid desk buy could not be settled; the trade fails and the fiat stays with the customer");
            metrics::counter!("malipo_desk_settlements_failed_total").increment(1);
            conn.rollback_to_savepoint().await?;
            Ok(Some((
                "settlement_failed",
                format!("the trade could not be settled; {keeps}"),
            )))
        }
    }
}

/// For `malipo trading check`: each desk reserve's pending debits equal
/// the `asset_amount`s of its mode's pending trades in that asset (the
/// holds [`open_trade`] took). Answers how many trades are pending and
/// each disagreement in words.
pub(crate) async fn check_holds(conn: &mut Conn<'_>) -> GatewayResult<(usize, Vec<String>)> {
    let pending = conn.pending_desk_trades().await?;
    let mut expected: BTreeMap<String, u128> = BTreeMap::new();
    for record in &pending {
        let trade: Trade = from_json(&record.id, &record.body)?;
        *expected
            .entry(reserve_account(trade.livemode, &trade.asset).id)
            .or_default() += u128::from(trade.asset_amount);
    }
    let mut problems = Vec::new();
    for mode in [Mode::Test, Mode::Live] {
        let prefix = format!("{}/platform/", mode.as_str());
        for account in conn.ledger_accounts_with_prefix(&prefix).await? {
            if !account.id.ends_with("/desk_reserve") {
                continue;
            }
            let holds = expected.remove(&account.id).unwrap_or(0);
            if account.debits_pending != holds {
                problems.push(format!(
                    "desk reserve {} has {} pending but its pending trades hold {holds}",
                    account.id, account.debits_pending
                ));
            }
        }
    }
    for (account, holds) in expected {
        if holds > 0 {
            problems.push(format!(
                "pending desk trades hold {holds} but reserve {account} does not exist"
            ));
        }
    }
    Ok((pending.len(), problems))
}

fn empty_reserve(livemode: bool, asset: &str) -> DeskReserve {
    DeskReserve {
        object: "desk_reserve",
        livemode,
        asset: asset.to_owned(),
        available: 0,
        held: 0,
        fees: 0,
    }
}

async fn reserve_of(
    conn: &mut Conn<'_>,
    livemode: bool,
    asset: &str,
) -> GatewayResult<DeskReserve> {
    let mut reserve = empty_reserve(livemode, asset);
    let account = reserve_account(livemode, asset);
    if let Some(found) = conn
        .ledger_accounts_with_prefix(&account.id)
        .await?
        .into_iter()
        .find(|found| found.id == account.id)
    {
        reserve.available = found.available_credit_balance().unwrap_or(0);
        reserve.held = found.debits_pending;
    }
    reserve.fees = balance_of(conn, &desk_fees_account(livemode, asset)).await?;
    Ok(reserve)
}

/// What an account can pay out now (0 when it does not exist yet).
async fn balance_of(conn: &mut Conn<'_>, account: &Account) -> GatewayResult<u128> {
    Ok(conn
        .ledger_accounts_with_prefix(&account.id)
        .await?
        .into_iter()
        .find(|found| found.id == account.id)
        .and_then(|found| found.available_credit_balance())
        .unwrap_or(0))
}

/// 409 `reserve_insufficient` unless the reserve the trade draws on holds
/// enough: the asset for a buy, the gross fiat for a sell.
async fn check_reserve(conn: &mut Conn<'_>, quote: &DeskQuote) -> GatewayResult<()> {
    let (asset, needed) = if quote.side == "buy" {
        (&quote.asset, u128::from(quote.asset_amount))
    } else {
        (
            &quote.currency,
            u128::from(quote.amount) + u128::from(quote.fee),
        )
    };
    let available = balance_of(conn, &reserve_account(quote.livemode, asset)).await?;
    if available < needed {
        return Err(reserve_short(asset, needed, available));
    }
    Ok(())
}

/// A step of the hold a pending buy puts on the asset reserve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HoldStep {
    /// The trade opened: `{trade}.asset.pending`, reserve -> customer.
    Hold,
    /// It failed or was canceled: `{trade}.asset.void` gives it back.
    Release,
}

/// The pending transfer that holds a buy's `asset_amount` on the asset
/// reserve while its payment runs (`available` no longer counts it), or
/// its void; settling posts it ([`settlement`] with `held`). Nothing for
/// an asset amount of zero.
fn reserve_hold(trade: &Trade, step: HoldStep) -> (Vec<Account>, Vec<TransferRequest>) {
    let reserve = reserve_account(trade.livemode, &trade.asset);
    let customer =
        ledger_entries::customer_account(trade.livemode, &trade.customer, &trade.asset, false);
    let pending_id = format!("{}.asset.pending", trade.id);
    let transfer = match step {
        HoldStep::Hold => TransferRequest {
            id: pending_id,
            debit_account_id: reserve.id.clone(),
            credit_account_id: customer.id.clone(),
            amount: u128::from(trade.asset_amount),
            asset: trade.asset.clone(),
            kind: TransferKind::Pending,
            pending_id: None,
            code: "desk_buy_hold".into(),
            source_id: Some(trade.id.clone()),
        },
        HoldStep::Release => TransferRequest {
            id: format!("{}.asset.void", trade.id),
            debit_account_id: reserve.id.clone(),
            credit_account_id: customer.id.clone(),
            amount: 0,
            asset: trade.asset.clone(),
            kind: TransferKind::VoidPending,
            pending_id: Some(pending_id),
            code: "desk_buy_release".into(),
            source_id: Some(trade.id.clone()),
        },
    };
    let transfers = if trade.asset_amount > 0 {
        vec![transfer]
    } else {
        Vec::new()
    };
    (vec![reserve, customer], transfers)
}

/// The transfers that settle a quote at once. The first account is the
/// customer account the trade debits. With `held` (a buy paid with a
/// payment method), the asset comes from the trade's hold on the reserve
/// (its pending transfer posted) rather than a transfer of its own.
fn settlement(
    quote: &DeskQuote,
    trade_id: &str,
    held: bool,
) -> (Vec<Account>, Vec<TransferRequest>) {
    let live = quote.livemode;
    let customer_fiat =
        ledger_entries::customer_account(live, &quote.customer, &quote.currency, false);
    let customer_asset =
        ledger_entries::customer_account(live, &quote.customer, &quote.asset, false);
    let reserve_fiat = reserve_account(live, &quote.currency);
    let reserve_asset = reserve_account(live, &quote.asset);
    let fees = desk_fees_account(live, &quote.currency);
    let transfer = |suffix: &str, debit: &Account, credit: &Account, amount: u64, asset: &str| {
        TransferRequest {
            id: format!("{trade_id}.{suffix}"),
            debit_account_id: debit.id.clone(),
            credit_account_id: credit.id.clone(),
            amount: u128::from(amount),
            asset: asset.to_owned(),
            kind: TransferKind::Posted,
            pending_id: None,
            code: format!("desk_{}", quote.side),
            source_id: Some(trade_id.to_owned()),
        }
    };
    let fee_transfer = |debit: &Account| transfer("fee", debit, &fees, quote.fee, &quote.currency);
    let mut transfers = if side_of(&quote.side) == Side::Buy {
        vec![
            transfer(
                "fiat",
                &customer_fiat,
                &reserve_fiat,
                quote.amount - quote.fee,
                &quote.currency,
            ),
            fee_transfer(&customer_fiat),
            if held {
                TransferRequest {
                    kind: TransferKind::PostPending,
                    pending_id: Some(format!("{trade_id}.asset.pending")),
                    amount: 0,
                    ..transfer(
                        "asset.post",
                        &reserve_asset,
                        &customer_asset,
                        quote.asset_amount,
                        &quote.asset,
                    )
                }
            } else {
                transfer(
                    "asset",
                    &reserve_asset,
                    &customer_asset,
                    quote.asset_amount,
                    &quote.asset,
                )
            },
        ]
    } else {
        vec![
            transfer(
                "asset",
                &customer_asset,
                &reserve_asset,
                quote.asset_amount,
                &quote.asset,
            ),
            transfer(
                "fiat",
                &reserve_fiat,
                &customer_fiat,
                quote.amount,
                &quote.currency,
            ),
            fee_transfer(&reserve_fiat),
        ]
    };
    // A posted hold carries no amount of its own (the pending one's).
    transfers.retain(|transfer| {
        transfer.amount > 0 || (transfer.pending_id.is_some() && quote.asset_amount > 0)
    });
    let first = if side_of(&quote.side) == Side::Buy {
        customer_fiat.clone()
    } else {
        customer_asset.clone()
    };
    (
        vec![
            first,
            customer_fiat,
            customer_asset,
            reserve_fiat,
            reserve_asset,
            fees,
        ],
        transfers,
    )
}

async fn quote_of(
    conn: &mut Conn<'_>,
    context: &MerchantContext,
    id: &str,
    param: &str,
) -> GatewayResult<DeskQuote> {
    let missing = || ApiError::not_found("desk_quote", id).with_param(param);
    if !looks_like(IdKind::DeskQuote, id) {
        return Err(missing().into());
    }
    let record = conn
        .desk_quote(&context.merchant_id, context.livemode(), id)
        .await?
        .ok_or_else(missing)?;
    from_json(&record.id, &record.body)
}

fn to_json(object: &impl Serialize) -> GatewayResult<String> {
    serde_json::to_string(object).map_err(GatewayError::internal)
}

fn from_json<T: serde::de::DeserializeOwned>(id: &str, body: &str) -> GatewayResult<T> {
    serde_json::from_str(body).map_err(|error| {
        GatewayError::internal(std::io::Error::other(format!(
            "{id}: stored body unreadable: {error}"
        )))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_mid_counts_as_near_within_the_allowed_deviation_only() {
        let decimal = |text: &str| Decimal::from_str_exact(text).expect("decimal");
        let mid = decimal("50000");
        // Mid 52 500: exactly 5% away is allowed, a cent more is not.
        assert!(near_mid(decimal("50000"), decimal("55000"), mid, 500));
        assert!(!near_mid(decimal("50000"), decimal("55000.02"), mid, 500));
        // Below the source as well as above.
        assert!(!near_mid(decimal("40000"), decimal("50000"), mid, 500));
        assert!(near_mid(decimal("40000"), decimal("50000"), mid, 1_000));
    }

    #[test]
    fn pool_rates_widen_both_sides_by_the_spread() {
        let decimal = |text: &str| Decimal::from_str_exact(text).expect("decimal");
        let rates = pool_rates(decimal("45330.54"), decimal("55722.73"), 100, 0).expect("rates");
        assert_eq!(rates.bid, decimal("44877.2346"));
        assert_eq!(rates.ask, decimal("56285.5858588"));
        assert!(rates.buy * decimal("55722.73") < Decimal::ONE);
        assert_eq!(rates.source, "pool");
    }

    #[test]
    fn the_inverse_of_a_price_never_buys_more_than_the_price_gives() {
        for text in [
            "50000",
            "55722.73",
            "3",
            "7",
            "0.3",
            "1",
            "45330.54",
            "123456.789",
            "0.00000007",
            "99999999999.99",
        ] {
            let price = Decimal::from_str_exact(text).expect("decimal");
            let rate = per_unit_down(price).expect("a rate");
            assert!(rate * price <= Decimal::ONE, "{text}: {rate}");
            assert!(
                rate.mantissa().unsigned_abs().to_string().len()
                    <= conversion::RATE_SIGNIFICANT_DIGITS as usize,
                "{text}: {rate}"
            );
            // And it is the 12-digit truncation, not less.
            let step = Decimal::try_new(
                1,
                rate.scale()
                    + conversion::RATE_SIGNIFICANT_DIGITS.saturating_sub(
                        u32::try_from(rate.mantissa().unsigned_abs().to_string().len())
                            .expect("digits"),
                    ),
            )
            .expect("step");
            assert!((rate + step) * price > Decimal::ONE, "{text}: {rate}");
        }
    }
}
