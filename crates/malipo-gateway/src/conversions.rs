//! Currencies, rates and conversion quotes; what a conversion payment
//! settles with (see docs/conversions.md).
//!
//! - `GET /v1/currencies`: the asset table ([`malipo_core::asset`]).
//! - `GET /v1/rates?base=usd`: each asset's mid rate against the base, its
//!   source, `as_of` and whether it is stale ([`crate::rates`]).
//! - `POST /v1/conversions/quote`: a rate locked for
//!   `conversion_quote_lifetime_seconds`, the mid rate less
//!   `conversion_spread_basis_points`, with both amounts computed and
//!   rounded in the platform's favour ([`malipo_core::conversion`]). A
//!   stale rate is refused (`rate_stale`, 503).
//! - A payment made with `conversion_quote` ([`Gateway::conversion_for`])
//!   takes the quote's amount and currency; the merchant is credited the
//!   quote's `to_amount` less the fee (charged on the converted amount) in
//!   the `to` currency through the platform's FX accounts
//!   ([`crate::ledger_entries`]). The quote is claimed in the transaction
//!   that writes the payment, so it pays once; an expired or used quote is
//!   a 400 naming `conversion_quote`.
//! - Refunds of conversion payments are refused (409
//!   `conversion_refund_unsupported`): see docs/conversions.md.

use crate::auth::MerchantContext;
use crate::idempotency::{IdempotencyGuard, complete};
use crate::payments::CreatePayment;
use crate::rates::PairRateError;
use crate::{ApiError, ErrorKind, Gateway, GatewayError, GatewayResult, now_seconds};
use malipo_core::conversion::{self, ConversionError};
use malipo_core::id::{IdKind, looks_like, new_id};
use malipo_core::objects::{List, PaymentConversion, Scope};
use malipo_core::payment::PaymentMethod;
use malipo_core::{Asset, MinorUnits};
use malipo_store::ConversionQuoteRecord;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// The longest a quote may be configured to last: an hour.
pub const QUOTE_LIFETIME_SECONDS_MAX: u64 = 3_600;

/// One asset of `GET /v1/currencies`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Currency {
    /// Always `currency`.
    pub object: &'static str,
    /// Lowercase code (`kes`, `usd`, `eth`).
    pub code: String,
    /// `fiat` or `crypto`.
    pub kind: malipo_core::asset::AssetKind,
    /// Decimal places of the minor unit (kes 2, ugx 0, eth 18).
    pub exponent: u8,
    /// The largest amount one payment may carry, in minor units, as a
    /// decimal string (18-decimal tokens pass 2^53).
    pub maximum: String,
}

/// One rate of `GET /v1/rates`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Rate {
    /// Always `rate`.
    pub object: &'static str,
    pub base: String,
    pub currency: String,
    /// Mid rate: major units of `currency` per one major unit of `base`,
    /// as a decimal string.
    pub rate: String,
    /// The configured source it came from.
    pub source: String,
    /// When the source says it was true (Unix seconds).
    pub as_of: i64,
    /// Older than the source's freshness limit: shown, never quoted.
    pub stale: bool,
}

/// `GET /v1/rates` parameters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
pub struct RateFilters {
    /// The asset rates are against (default `usd`).
    pub base: Option<String>,
    /// Only these assets, comma-separated (`kes,ugx`).
    pub currencies: Option<String>,
}

/// `POST /v1/conversions/quote`
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"from_currency": "kes", "to_currency": "usd", "amount": 150000}))]
pub struct CreateConversionQuote {
    /// The currency the customer pays in.
    pub from_currency: Option<String>,
    /// The currency the merchant is credited in.
    pub to_currency: Option<String>,
    /// What the customer pays, in `from_currency` minor units (give this or
    /// `to_amount`).
    pub amount: Option<u64>,
    /// What the merchant should be credited before fees, in `to_currency`
    /// minor units (give this or `amount`).
    pub to_amount: Option<u64>,
}

/// A locked rate: pay `from_amount` of `from_currency` (a payment with
/// `conversion_quote`) before `expires_at`, and the merchant is credited
/// `to_amount` of `to_currency` less the fee.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ConversionQuote {
    /// `cq_…`
    pub id: String,
    /// Always `conversion_quote`.
    pub object: &'static str,
    pub livemode: bool,
    pub from_currency: String,
    pub to_currency: String,
    /// What the customer pays, in `from_currency` minor units.
    pub from_amount: u64,
    /// What `from_amount` buys at `rate`, in `to_currency` minor units.
    pub to_amount: u64,
    /// The locked rate, spread included: major units of `to_currency` per
    /// major unit of `from_currency`, as a decimal string.
    pub rate: String,
    /// The source's mid rate the quote was made from.
    pub mid_rate: String,
    /// The spread taken off the mid rate, in hundredths of a percent.
    pub spread_basis_points: u32,
    /// The rate source.
    pub source: String,
    /// When the source's rate was true (Unix seconds).
    pub rate_as_of: i64,
    /// After this (Unix seconds), a payment can't use the quote.
    pub expires_at: i64,
    pub created: i64,
    /// The payment that used it (`pay_…`), once used.
    pub payment: Option<String>,
}

impl From<ConversionQuoteRecord> for ConversionQuote {
    fn from(record: ConversionQuoteRecord) -> Self {
        ConversionQuote {
            id: record.id,
            object: "conversion_quote",
            livemode: record.livemode,
            from_currency: record.from_currency,
            to_currency: record.to_currency,
            from_amount: record.from_amount,
            to_amount: record.to_amount,
            rate: record.rate,
            mid_rate: record.mid_rate,
            spread_basis_points: u32::try_from(record.spread_basis_points).unwrap_or(0),
            source: record.source,
            rate_as_of: record.rate_as_of,
            expires_at: record.expires_at,
            created: record.created,
            payment: record.payment_id,
        }
    }
}

fn parse_asset(param: &str, value: Option<String>) -> Result<Asset, ApiError> {
    let code = value.ok_or_else(|| ApiError::missing(param))?;
    Asset::parse(&code).map_err(|error| ApiError::invalid(param, error.to_string()))
}

fn too_large(param: &str) -> ApiError {
    ApiError::invalid(param, "the converted amount is too large")
}

/// The 4xx/503 for a pair without a quotable rate.
fn rate_refusal(from: Asset, to: Asset, error: PairRateError) -> ApiError {
    match error {
        PairRateError::Unknown => ApiError::new(
            ErrorKind::InvalidRequest,
            "rate_unavailable",
            format!("no configured rate source prices {from} -> {to}"),
        )
        .with_param("to_currency"),
        PairRateError::Stale(rate) => ApiError::new(
            ErrorKind::ServiceUnavailable,
            "rate_stale",
            format!(
                "the {from} -> {to} rate from `{}` is stale (as of {}); no quote until it is refreshed",
                rate.source, rate.as_of
            ),
        ),
        PairRateError::SourcesDown(errors) => ApiError::new(
            ErrorKind::ServiceUnavailable,
            "rate_source_unavailable",
            format!(
                "no fresh {from} -> {to} rate: {}",
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        ),
    }
}

impl Gateway {
    /// `GET /v1/currencies`: every asset, in table order.
    pub fn currencies(&self, context: &MerchantContext) -> GatewayResult<List<Currency>> {
        context.require(Scope::ReadOnly)?;
        let data = Asset::all()
            .into_iter()
            .map(|asset| Currency {
                object: "currency",
                code: asset.code().to_owned(),
                kind: asset.kind(),
                exponent: asset.exponent(),
                maximum: asset.payment_amount_max().to_string(),
            })
            .collect();
        Ok(List::new(data, false))
    }

    /// `GET /v1/rates`: mid rates against `base`, by currency code.
    pub async fn rates(
        &self,
        context: &MerchantContext,
        filters: &RateFilters,
    ) -> GatewayResult<List<Rate>> {
        context.require(Scope::ReadOnly)?;
        let base = match &filters.base {
            Some(code) => {
                Asset::parse(code).map_err(|error| ApiError::invalid("base", error.to_string()))?
            }
            None => Asset::parse("usd").map_err(GatewayError::internal)?,
        };
        let only = filters
            .currencies
            .as_deref()
            .map(|list| {
                list.split(',')
                    .filter(|code| !code.trim().is_empty())
                    .map(|code| {
                        Asset::parse(code)
                            .map_err(|error| ApiError::invalid("currencies", error.to_string()))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        let found = self.rate_book().against(base, now_seconds()).await;
        let data = found
            .into_iter()
            .filter(|(code, _)| {
                only.as_ref()
                    .is_none_or(|only| only.iter().any(|asset| asset.code() == *code))
            })
            .map(|(code, rate)| Rate {
                object: "rate",
                base: base.code().to_owned(),
                currency: code.to_owned(),
                rate: rate.mid.to_string(),
                source: rate.source,
                as_of: rate.as_of,
                stale: rate.stale,
            })
            .collect();
        Ok(List::new(data, false))
    }

    /// `POST /v1/conversions/quote`: locks a rate for the configured time.
    pub async fn create_conversion_quote(
        &self,
        context: &MerchantContext,
        request: CreateConversionQuote,
        guard: Option<IdempotencyGuard>,
    ) -> GatewayResult<ConversionQuote> {
        context.require(Scope::PaymentsWrite)?;
        if let Some(id) = guard
            .as_ref()
            .and_then(|guard| guard.resume_object_id.clone())
        {
            let quote = self.conversion_quote(context, &id).await?;
            self.complete_resumed(guard.as_ref(), &quote).await?;
            return Ok(quote);
        }
        let from = parse_asset("from_currency", request.from_currency)?;
        let to = parse_asset("to_currency", request.to_currency)?;
        if from == to {
            return Err(ApiError::invalid(
                "to_currency",
                "to_currency must differ from from_currency",
            )
            .into());
        }
        let from_max = from.payment_amount_max();
        match (request.amount, request.to_amount) {
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid(
                    "to_amount",
                    "give amount (what the customer pays) or to_amount (what the merchant gets), not both",
                )
                .into());
            }
            (None, None) => return Err(ApiError::missing("amount").into()),
            (Some(0), _) => {
                return Err(ApiError::invalid("amount", "amount must be greater than 0").into());
            }
            (_, Some(0)) => {
                return Err(
                    ApiError::invalid("to_amount", "to_amount must be greater than 0").into(),
                );
            }
            (Some(amount), None) if u128::from(amount) > from_max => {
                return Err(ApiError::invalid(
                    "amount",
                    format!("amount may be at most {from_max} {from} minor units"),
                )
                .into());
            }
            _ => {}
        }
        let now = now_seconds();
        let sourced = self
            .rate_book()
            .pair(from, to, now)
            .await
            .map_err(|error| rate_refusal(from, to, error))?;
        let config = self.config();
        let spread = config.conversion_spread_basis_points;
        let rate =
            conversion::quoted_rate(sourced.mid, spread).map_err(|error| -> GatewayError {
                match error {
                    ConversionError::TooLarge => too_large("amount").into(),
                    other => GatewayError::internal(ApiError::invalid("rate", other.to_string())),
                }
            })?;
        let (from_amount, to_amount) = match (request.amount, request.to_amount) {
            (Some(amount), _) => {
                let to_amount = conversion::to_amount_for(u128::from(amount), from, to, rate)
                    .map_err(|_| too_large("amount"))?;
                if to_amount == 0 {
                    return Err(ApiError::invalid(
                        "amount",
                        format!("{amount} {from} minor units buy less than one {to} minor unit"),
                    )
                    .into());
                }
                let to_amount = u64::try_from(to_amount).map_err(|_| too_large("amount"))?;
                (amount, to_amount)
            }
            (None, Some(to_amount)) => {
                let from_amount =
                    conversion::from_amount_for(u128::from(to_amount), from, to, rate)
                        .map_err(|_| too_large("to_amount"))?;
                if from_amount > from_max {
                    return Err(ApiError::invalid(
                        "to_amount",
                        format!(
                            "to_amount needs {from_amount} {from} minor units, more than one payment may carry ({from_max})"
                        ),
                    )
                    .into());
                }
                let from_amount = u64::try_from(from_amount).map_err(|_| too_large("to_amount"))?;
                (from_amount, to_amount)
            }
            (None, None) => return Err(ApiError::missing("amount").into()),
        };
        // What one payment may credit: the `to` asset's payment maximum,
        // and what a balance transaction (a signed 64-bit amount) holds.
        let to_max = to.payment_amount_max().min(i64::MAX as u128);
        if u128::from(to_amount) > to_max {
            let param = if request.amount.is_some() {
                "amount"
            } else {
                "to_amount"
            };
            return Err(ApiError::invalid(
                param,
                format!(
                    "the conversion credits {to_amount} {to} minor units, more than one payment may credit ({to_max})"
                ),
            )
            .into());
        }
        let lifetime = i64::try_from(config.conversion_quote_lifetime_seconds).unwrap_or(60);
        let record = ConversionQuoteRecord {
            id: new_id(IdKind::ConversionQuote),
            merchant_id: context.merchant_id.clone(),
            livemode: context.livemode(),
            from_currency: from.code().to_owned(),
            to_currency: to.code().to_owned(),
            from_amount,
            to_amount,
            rate: rate.to_string(),
            mid_rate: sourced.mid.normalize().to_string(),
            spread_basis_points: i64::from(spread),
            source: sourced.source,
            rate_as_of: sourced.as_of,
            expires_at: now.saturating_add(lifetime),
            created: now,
            payment_id: None,
        };
        let quote = ConversionQuote::from(record.clone());
        let mut tx = self.store().begin().await?;
        let mut conn = tx.conn();
        conn.insert_conversion_quote(&record).await?;
        complete(&mut conn, guard.as_ref(), &quote).await?;
        tx.commit().await?;
        metrics::counter!("malipo_conversion_quotes_total").increment(1);
        Ok(quote)
    }

    /// `GET /v1/conversions/quotes/{id}`
    pub async fn conversion_quote(
        &self,
        context: &MerchantContext,
        id: &str,
    ) -> GatewayResult<ConversionQuote> {
        context.require(Scope::ReadOnly)?;
        if !looks_like(IdKind::ConversionQuote, id) {
            return Err(ApiError::not_found("conversion_quote", id).into());
        }
        let mut reader = self.store().reader().await?;
        let record = reader
            .conn()
            .conversion_quote(&context.merchant_id, context.livemode(), id)
            .await?
            .ok_or_else(|| ApiError::not_found("conversion_quote", id))?;
        Ok(ConversionQuote::from(record))
    }

    /// For `POST /v1/payments` with `conversion_quote`: checks the quote
    /// (this merchant's and mode's, unused, unexpired), fills in the
    /// payment's amount and currency from it (or checks them against it),
    /// and answers the settlement without its fee (see
    /// [`Gateway::with_fee`]); the quote is claimed when the payment is
    /// written.
    pub(crate) async fn conversion_for(
        &self,
        context: &MerchantContext,
        request: &mut CreatePayment,
    ) -> GatewayResult<Option<PaymentConversion>> {
        let Some(id) = request.conversion_quote.clone() else {
            return Ok(None);
        };
        let param = "conversion_quote";
        let missing = || {
            ApiError::new(
                ErrorKind::InvalidRequest,
                "resource_missing",
                format!("no such conversion_quote: `{id}`"),
            )
            .with_param(param)
        };
        if !looks_like(IdKind::ConversionQuote, &id) {
            return Err(missing().into());
        }
        let quote = {
            let mut reader = self.store().reader().await?;
            reader
                .conn()
                .conversion_quote(&context.merchant_id, context.livemode(), &id)
                .await?
                .ok_or_else(missing)?
        };
        if quote.payment_id.is_some() {
            return Err(quote_used(&quote).into());
        }
        if quote.expires_at <= now_seconds() {
            return Err(quote_expired(&quote).into());
        }
        match &request.currency {
            None => request.currency = Some(quote.from_currency.clone()),
            Some(currency) if !currency.eq_ignore_ascii_case(&quote.from_currency) => {
                return Err(ApiError::invalid(
                    "currency",
                    format!(
                        "the conversion quote is for payments in `{}`",
                        quote.from_currency
                    ),
                )
                .into());
            }
            Some(_) => {}
        }
        match request.amount {
            None => request.amount = Some(quote.from_amount),
            Some(amount) if amount != quote.from_amount => {
                return Err(ApiError::invalid(
                    "amount",
                    format!(
                        "the conversion quote is for an amount of {}",
                        quote.from_amount
                    ),
                )
                .into());
            }
            Some(_) => {}
        }
        Ok(Some(PaymentConversion {
            quote: quote.id,
            to_currency: quote.to_currency,
            rate: quote.rate,
            to_amount: quote.to_amount,
            fee: 0,
            net: quote.to_amount,
        }))
    }

    /// The conversion with the merchant's fee for `method`, charged on the
    /// converted amount in the credited currency.
    pub(crate) async fn with_fee(
        &self,
        merchant_id: &str,
        method: PaymentMethod,
        mut conversion: PaymentConversion,
    ) -> GatewayResult<PaymentConversion> {
        let fee = self
            .fee_schedule(merchant_id, method)
            .await?
            .fee_for(MinorUnits::from(conversion.to_amount));
        conversion.fee = u64::try_from(fee.get()).map_err(GatewayError::internal)?;
        conversion.net = conversion.to_amount - conversion.fee;
        Ok(conversion)
    }
}

fn quote_used(quote: &ConversionQuoteRecord) -> ApiError {
    ApiError::new(
        ErrorKind::InvalidRequest,
        "conversion_quote_used",
        format!(
            "conversion quote {} was already used by payment {}",
            quote.id,
            quote.payment_id.as_deref().unwrap_or("(another payment)")
        ),
    )
    .with_param("conversion_quote")
}

fn quote_expired(quote: &ConversionQuoteRecord) -> ApiError {
    ApiError::new(
        ErrorKind::InvalidRequest,
        "conversion_quote_expired",
        format!(
            "conversion quote {} expired at {}; ask for a new one",
            quote.id, quote.expires_at
        ),
    )
    .with_param("conversion_quote")
}

/// The 400 of a quote claimed by another payment, or expired, between the
/// check and the payment's write.
pub(crate) fn quote_gone(quote_id: &str) -> ApiError {
    ApiError::new(
        ErrorKind::InvalidRequest,
        "conversion_quote_used",
        format!("conversion quote {quote_id} was used by another payment or has expired"),
    )
    .with_param("conversion_quote")
}

/// The checked spread and lifetime settings.
pub fn check_conversion_settings(
    spread_basis_points: u32,
    quote_lifetime_seconds: u64,
) -> Result<(), (&'static str, String)> {
    if spread_basis_points > conversion::SPREAD_BASIS_POINTS_MAX {
        return Err((
            "conversion_spread_basis_points",
            format!("must be at most {}", conversion::SPREAD_BASIS_POINTS_MAX),
        ));
    }
    if !(1..=QUOTE_LIFETIME_SECONDS_MAX).contains(&quote_lifetime_seconds) {
        return Err((
            "conversion_quote_lifetime_seconds",
            format!("must be 1 to {QUOTE_LIFETIME_SECONDS_MAX}"),
        ));
    }
    Ok(())
}
