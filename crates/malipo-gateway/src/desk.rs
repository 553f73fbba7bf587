//! The buy/sell desk (docs/trading.md, "Desk"): a customer buys or sells a
//! crypto asset against fiat with the platform as counterparty, at a price
//! locked by a quote.
//!
//! - `GET /v1/trading/prices`: bid/ask from the venue's book for
//!   `{asset}_{currency}` when both sides have orders, else from the rate
//!   sources (mid ± `[desk] spread_basis_points`); a stale rate is refused
//!   (`rate_stale`, 503).
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
//! - `POST /v1/admin/trading/reserves` funds a test-mode reserve from the
//!   platform's test funding account; `GET` shows every reserve.

use crate::auth::{Actor, AuditChange, MerchantContext, audit_state};
use crate::customers::customer_of;
use crate::idempotency::{IdempotencyGuard, complete};
use crate::payments::{created_filters, emit, owner_filters, post};
use crate::rates::PairRateError;
use crate::trading::BookParams;
use crate::{
    ApiError, ErrorKind, Gateway, GatewayError, GatewayResult, ledger_entries, now_seconds,
};
use malipo_core::asset::AssetKind;
use malipo_core::conversion::{self, ConversionError};
use malipo_core::desk::{self, BALANCE_METHOD, FeeTable, Named, Side};
use malipo_core::id::{IdKind, looks_like, new_id};
use malipo_core::objects::{List, Scope};
use malipo_core::{Asset, Mode};
use malipo_ledger::{Account, AccountFlags, TransferKind, TransferRequest};
use malipo_store::{Conn, DeskQuoteRecord, DeskTradeRecord, Page};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use utoipa::{IntoParams, ToSchema};

/// The longest a desk quote may be configured to last: an hour.
pub const DESK_QUOTE_LIFETIME_SECONDS_MAX: u64 = 3_600;

/// `[desk]` settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeskConfig {
    /// Fee by payment method in basis points, over the defaults
    /// (mpesa/mtn_momo/airtel_money/sandbox 250, bank_transfer 150,
    /// voucher 100, crypto 50, card 300, balance 50).
    pub fee_basis_points: BTreeMap<String, u32>,
    /// Taken off (bid) and added to (ask) the mid rate when a price comes
    /// from the rate sources (at most 5000).
    pub spread_basis_points: u32,
    /// How long a desk quote can be used (1 to 3600).
    pub quote_lifetime_seconds: u64,
}

impl Default for DeskConfig {
    fn default() -> Self {
        DeskConfig {
            fee_basis_points: BTreeMap::new(),
            spread_basis_points: 100,
            quote_lifetime_seconds: 60,
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
        if !(1..=DESK_QUOTE_LIFETIME_SECONDS_MAX).contains(&self.quote_lifetime_seconds) {
            return Err((
                "desk.quote_lifetime_seconds",
                format!("1 to {DESK_QUOTE_LIFETIME_SECONDS_MAX}"),
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
    /// `order_book` (the venue's `{asset}_{currency}` book) or the name of
    /// the rate source.
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
    /// `order_book` or the rate source's name.
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
    /// What trades can draw (minor units).
    #[schema(value_type = u64)]
    pub available: u128,
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
    /// sides have orders, else the rate sources' mid ± the desk spread.
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
            let per_currency = Decimal::ONE
                .checked_div(ask)
                .ok_or_else(|| too_large("asset"))?;
            return Ok(DeskRates {
                buy: conversion::quoted_rate(per_currency, 0).map_err(rate_error)?,
                sell: conversion::quoted_rate(bid, 0).map_err(rate_error)?,
                bid: bid.normalize(),
                ask: ask.normalize(),
                source: "order_book".into(),
                as_of: now,
            });
        }
        let sourced = self
            .rate_book()
            .pair(asset, currency, now)
            .await
            .map_err(|error| rate_refusal(asset, currency, error))?;
        let spread = self.config().desk.spread_basis_points;
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
            let mut tx = self.store().begin().await?;
            complete(&mut tx.conn(), guard.as_ref(), &trade).await?;
            tx.commit().await?;
            return Ok(trade);
        }
        let quote_id = request.quote.ok_or_else(|| ApiError::missing("quote"))?;
        if side == "buy" && request.pay_from_balance != Some(true) {
            return Err(ApiError::new(
                ErrorKind::InvalidRequest,
                "parameter_unsupported",
                "a buy settles from the customer's balance (pay_from_balance: true); paying a buy with a payment method is not available yet",
            )
            .with_param("pay_from_balance")
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
            created: now,
        };
        if !conn.claim_desk_quote(&quote.id, &trade.id, now).await? {
            let why = if quote.expires_at <= now {
                "has expired"
            } else {
                "was used already"
            };
            return Err(ApiError::new(
                ErrorKind::InvalidRequest,
                "quote_unusable",
                format!("quote {} {why}: ask for a new one", quote.id),
            )
            .with_param("quote")
            .into());
        }
        let (accounts, transfers) = settlement(&quote, &trade.id);
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
                } else {
                    entry.fees = balance;
                }
            }
            data.extend(by_asset.into_values());
        }
        Ok(List::new(data, false))
    }
}

fn empty_reserve(livemode: bool, asset: &str) -> DeskReserve {
    DeskReserve {
        object: "desk_reserve",
        livemode,
        asset: asset.to_owned(),
        available: 0,
        fees: 0,
    }
}

async fn reserve_of(
    conn: &mut Conn<'_>,
    livemode: bool,
    asset: &str,
) -> GatewayResult<DeskReserve> {
    let mut reserve = empty_reserve(livemode, asset);
    reserve.available = balance_of(conn, &reserve_account(livemode, asset)).await?;
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

/// The transfers that settle a quote at once. The first account is the
/// customer account the trade debits.
fn settlement(quote: &DeskQuote, trade_id: &str) -> (Vec<Account>, Vec<TransferRequest>) {
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
            transfer(
                "asset",
                &reserve_asset,
                &customer_asset,
                quote.asset_amount,
                &quote.asset,
            ),
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
    transfers.retain(|transfer| transfer.amount > 0);
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
