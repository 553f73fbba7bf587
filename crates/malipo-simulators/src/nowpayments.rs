//! NOWPayments (crypto payments): create a payment, its status, and the
//! signed IPN sent to `ipn_callback_url` on every status change.
//!
//! | path | method | what |
//! |---|---|---|
//! | `/v1/status` | GET | `{"message": "OK"}` (no key needed) |
//! | `/v1/currencies` | GET | `{"currencies": [...]}`: what `pay_currency` may be |
//! | `/v1/estimate?amount=&currency_from=&currency_to=` | GET | the estimated amount |
//! | `/v1/payment` | POST | create: 201 with `payment_id` (a string), `pay_address`, `pay_amount` |
//! | `/v1/payment/{payment_id}` | GET | status (`payment_id` a number here) |
//!
//! Every call but `/v1/status` needs `x-api-key` (403 `INVALID_API_KEY`
//! otherwise). Errors are `{"status": false, "statusCode": 400, "code":
//! "INVALID_REQUEST_PARAMS", "message": "..."}`.
//!
//! IPNs carry `x-nowpayments-sig`: lowercase hex HMAC-SHA512 with the IPN
//! secret over the body re-serialized compactly with keys sorted at every
//! level ([`ipn_signature`]). Amounts are JSON numbers printed as
//! JavaScript prints them (`15`, never `15.0`).
//!
//! Rates are a fixed table ([`USD_PER_UNIT`]); `pay_amount` is the price in
//! USD over the coin's USD price, rounded up to the coin's precision.
//! Outcomes are chosen by the price ([`NowPaymentsScenario::for_price`]) or
//! by the sandbox's `case` field (`success`, `partially_paid`, `failed`,
//! `expired`): after `callback_delay_ms` the payment is `confirming` (an
//! IPN), and after as long again it ends (another IPN).

use crate::clock::{CivilTime, now_unix_ms};
use crate::context::{Callback, SimulatorContext, is_callback_url};
use crate::ids;
use crate::json::{decimal_hundredths, parse_object, text};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha512;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Price (in hundredths of the price currency): paid only in part, the
/// payment stays `partially_paid`.
pub const PRICE_PARTIALLY_PAID: u128 = 7013;
/// Price: nothing arrives; the payment `expired`.
pub const PRICE_EXPIRED: u128 = 7014;
/// Price: seen on chain, then `failed`.
pub const PRICE_FAILED: u128 = 7015;
/// Price: `finished`, but no IPN is ever sent (only the status tells).
pub const PRICE_IPN_LOST: u128 = 7017;
/// Price: `waiting` for ever, no IPN.
pub const PRICE_NEVER_PAID: u128 = 7018;
/// Price: `finished`, the IPN sent twice.
pub const PRICE_DUPLICATE_IPN: u128 = 7019;

/// USD per unit of each price or pay currency (lowercase), with the
/// number of decimals a pay amount is given in (0 for fiat).
pub const USD_PER_UNIT: &[(&str, f64, u32)] = &[
    ("usd", 1.0, 0),
    ("eur", 1.08, 0),
    ("gbp", 1.27, 0),
    ("kes", 0.0077, 0),
    ("ugx", 0.00027, 0),
    ("tzs", 0.00039, 0),
    ("ngn", 0.00065, 0),
    ("ghs", 0.064, 0),
    ("zar", 0.055, 0),
    ("rwf", 0.00075, 0),
    ("btc", 60_000.0, 8),
    ("eth", 3_000.0, 8),
    ("ltc", 80.0, 8),
    ("sol", 150.0, 9),
    ("trx", 0.25, 6),
    ("usdttrc20", 1.0, 6),
    ("usdterc20", 1.0, 6),
];

/// How a simulated payment ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NowPaymentsScenario {
    Finished,
    PartiallyPaid,
    Expired,
    Failed,
    IpnLost,
    NeverPaid,
    DuplicateIpn,
}

impl NowPaymentsScenario {
    /// By the price in hundredths (`70.13` -> 7013) or, for a whole price,
    /// by the price itself (`7013`).
    pub fn for_price(hundredths: u128) -> NowPaymentsScenario {
        let whole = hundredths.is_multiple_of(100).then_some(hundredths / 100);
        let magic = |value: u128| hundredths == value || whole == Some(value);
        match () {
            () if magic(PRICE_PARTIALLY_PAID) => NowPaymentsScenario::PartiallyPaid,
            () if magic(PRICE_EXPIRED) => NowPaymentsScenario::Expired,
            () if magic(PRICE_FAILED) => NowPaymentsScenario::Failed,
            () if magic(PRICE_IPN_LOST) => NowPaymentsScenario::IpnLost,
            () if magic(PRICE_NEVER_PAID) => NowPaymentsScenario::NeverPaid,
            () if magic(PRICE_DUPLICATE_IPN) => NowPaymentsScenario::DuplicateIpn,
            () => NowPaymentsScenario::Finished,
        }
    }

    /// The sandbox's `case` field.
    fn for_case(case: &str) -> Option<NowPaymentsScenario> {
        Some(match case {
            "success" => NowPaymentsScenario::Finished,
            "partially_paid" => NowPaymentsScenario::PartiallyPaid,
            "failed" => NowPaymentsScenario::Failed,
            "expired" => NowPaymentsScenario::Expired,
            _ => return None,
        })
    }

    /// Whether the payment is seen on chain (`confirming`) before it ends.
    fn confirms_first(self) -> bool {
        !matches!(
            self,
            NowPaymentsScenario::Expired | NowPaymentsScenario::NeverPaid
        )
    }

    fn final_status(self) -> &'static str {
        match self {
            NowPaymentsScenario::PartiallyPaid => "partially_paid",
            NowPaymentsScenario::Expired => "expired",
            NowPaymentsScenario::Failed => "failed",
            NowPaymentsScenario::NeverPaid => "waiting",
            _ => "finished",
        }
    }

    fn ipn_copies(self) -> usize {
        match self {
            NowPaymentsScenario::IpnLost | NowPaymentsScenario::NeverPaid => 0,
            NowPaymentsScenario::DuplicateIpn => 2,
            _ => 1,
        }
    }
}

/// `x-nowpayments-sig`: lowercase hex HMAC-SHA512 (`secret` = IPN secret)
/// over `body` serialized compactly with keys sorted at every level
/// (serde_json's default map is ordered by key).
pub fn ipn_signature(secret: &str, body: &Value) -> String {
    let Ok(mut mac) = Hmac::<Sha512>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(body.to_string().as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A NOWPayments error answer.
#[derive(Debug)]
pub(crate) struct NowPaymentsError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl IntoResponse for NowPaymentsError {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(json!({
                "status": false,
                "statusCode": self.status.as_u16(),
                "code": self.code,
                "message": self.message,
            })),
        )
            .into_response()
    }
}

fn invalid(message: impl Into<String>) -> NowPaymentsError {
    NowPaymentsError {
        status: StatusCode::BAD_REQUEST,
        code: "INVALID_REQUEST_PARAMS",
        message: message.into(),
    }
}

/// A decimal amount as a JSON number printed the way JavaScript prints it:
/// `text` is a plain decimal; trailing zeros (and a bare `.`) go.
fn decimal_number(text: &str) -> Value {
    let trimmed = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        text
    };
    serde_json::from_str(trimmed).unwrap_or(Value::Null)
}

/// `value` with `decimals` decimals, rounded up (the customer never pays
/// less than the price).
fn decimal_text(value: f64, decimals: u32) -> String {
    let scale = 10f64.powi(i32::try_from(decimals).unwrap_or(8));
    let scaled = (value * scale - 1e-6).ceil().max(1.0);
    format!("{:.*}", decimals as usize, scaled / scale)
}

fn rate(currency: &str) -> Option<(f64, u32)> {
    USD_PER_UNIT
        .iter()
        .find(|(code, _, _)| *code == currency)
        .map(|(_, usd, decimals)| (*usd, *decimals))
}

/// The network a coin is paid on.
fn network(pay_currency: &str) -> &'static str {
    match pay_currency {
        "btc" => "btc",
        "eth" | "usdterc20" => "eth",
        "ltc" => "ltc",
        "sol" => "sol",
        _ => "trx",
    }
}

/// An address in the coin's usual shape.
fn address(pay_currency: &str) -> String {
    match network(pay_currency) {
        "btc" => format!("3{}", ids::token(33)),
        "eth" => format!("0x{}", ids::hex(40)),
        "ltc" => format!("M{}", ids::token(33)),
        "sol" => ids::token(44),
        _ => format!("T{}", ids::token(33)),
    }
}

#[derive(Debug, Clone)]
struct CryptoPayment {
    payment_id: u64,
    purchase_id: u64,
    status: &'static str,
    pay_address: String,
    price_amount: String,
    price_currency: String,
    pay_amount: String,
    pay_currency: String,
    actually_paid: String,
    order_id: Option<String>,
    order_description: Option<String>,
    ipn_callback_url: Option<String>,
    created_at: String,
    updated_at: String,
    expiration_estimate_date: String,
    scenario: NowPaymentsScenario,
}

impl CryptoPayment {
    /// The status object (`GET /v1/payment/{id}` and the IPN body): ids
    /// are numbers here, unlike the create answer.
    fn status_body(&self) -> Value {
        json!({
            "payment_id": self.payment_id,
            "invoice_id": null,
            "payment_status": self.status,
            "pay_address": self.pay_address,
            "payin_extra_id": null,
            "price_amount": decimal_number(&self.price_amount),
            "price_currency": self.price_currency,
            "pay_amount": decimal_number(&self.pay_amount),
            "actually_paid": decimal_number(&self.actually_paid),
            "pay_currency": self.pay_currency,
            "order_id": self.order_id,
            "order_description": self.order_description,
            "purchase_id": self.purchase_id,
            "outcome_amount": decimal_number(&self.actually_paid),
            "outcome_currency": self.pay_currency,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "type": "crypto2crypto",
            "payment_extra_ids": null,
        })
    }
}

/// The NOWPayments simulator's state; serve it with [`router`].
#[derive(Debug, Clone)]
pub struct NowPaymentsState {
    context: SimulatorContext,
    payments: Arc<Mutex<HashMap<u64, CryptoPayment>>>,
}

impl NowPaymentsState {
    pub fn new(context: SimulatorContext) -> NowPaymentsState {
        NowPaymentsState {
            context,
            payments: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn config(&self) -> &crate::NowPaymentsConfig {
        &self.context.config().nowpayments
    }

    fn payments(&self) -> MutexGuard<'_, HashMap<u64, CryptoPayment>> {
        // Each change under this lock is a single insert or field write.
        self.payments
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn authorize(&self, headers: &HeaderMap) -> Result<(), NowPaymentsError> {
        let key = headers
            .get("x-api-key")
            .and_then(|value| value.to_str().ok());
        if key != Some(self.config().api_key.as_str()) {
            return Err(NowPaymentsError {
                status: StatusCode::FORBIDDEN,
                code: "INVALID_API_KEY",
                message: "Invalid api key".into(),
            });
        }
        Ok(())
    }

    /// Moves a payment to `status` and returns its signed IPN, if it has
    /// a callback URL.
    fn advance(&self, payment_id: u64, status: &'static str) -> Option<Callback> {
        let now = CivilTime::utc(now_unix_ms()).iso_utc();
        let payment = {
            let mut payments = self.payments();
            let payment = payments.get_mut(&payment_id)?;
            payment.status = status;
            payment.updated_at = now;
            payment.actually_paid = match (status, payment.scenario) {
                ("waiting" | "expired", _) => "0".into(),
                (_, NowPaymentsScenario::PartiallyPaid) => half(&payment.pay_amount),
                _ => payment.pay_amount.clone(),
            };
            payment.clone()
        };
        let url = payment.ipn_callback_url.as_deref()?;
        let body = payment.status_body();
        let mut callback = Callback::post("nowpayments_ipn", url, body.clone());
        callback.headers.push((
            "x-nowpayments-sig".into(),
            ipn_signature(&self.config().ipn_secret, &body),
        ));
        Some(callback)
    }
}

/// Half of a decimal amount, at the same number of decimals.
fn half(amount: &str) -> String {
    let decimals = amount
        .split_once('.')
        .map_or(0, |(_, fraction)| fraction.len());
    let value: f64 = amount.parse().unwrap_or(0.0);
    format!("{:.*}", decimals, value / 2.0)
}

/// The NOWPayments API routes over `state`.
pub fn router(state: NowPaymentsState) -> Router {
    Router::new()
        .route(
            "/v1/status",
            get(|| async { axum::Json(json!({"message": "OK"})) }),
        )
        .route("/v1/currencies", get(currencies))
        .route("/v1/estimate", get(estimate))
        .route("/v1/payment", post(create_payment))
        .route("/v1/payment/{payment_id}", get(payment_status))
        .fallback(|| async {
            NowPaymentsError {
                status: StatusCode::NOT_FOUND,
                code: "NOT_FOUND",
                message: "Not found".into(),
            }
        })
        .with_state(state)
}

async fn currencies(
    State(state): State<NowPaymentsState>,
    headers: HeaderMap,
) -> Result<Response, NowPaymentsError> {
    state.authorize(&headers)?;
    let coins: Vec<&str> = USD_PER_UNIT
        .iter()
        .filter(|(_, _, decimals)| *decimals > 0)
        .map(|(code, _, _)| *code)
        .collect();
    Ok(axum::Json(json!({ "currencies": coins })).into_response())
}

#[derive(Debug, serde::Deserialize)]
struct EstimateQuery {
    amount: Option<String>,
    currency_from: Option<String>,
    currency_to: Option<String>,
}

async fn estimate(
    State(state): State<NowPaymentsState>,
    headers: HeaderMap,
    Query(query): Query<EstimateQuery>,
) -> Result<Response, NowPaymentsError> {
    state.authorize(&headers)?;
    let (Some(amount), Some(from), Some(to)) =
        (query.amount, query.currency_from, query.currency_to)
    else {
        return Err(invalid(
            "amount, currency_from and currency_to are required",
        ));
    };
    let value: f64 = amount
        .parse()
        .ok()
        .filter(|value: &f64| *value > 0.0)
        .ok_or_else(|| invalid("\"amount\" must be a positive number"))?;
    let from_rate = rate(&from).ok_or_else(|| invalid("Invalid currency_from"))?;
    let to_rate = rate(&to).ok_or_else(|| invalid("Invalid currency_to"))?;
    let estimated = decimal_text(value * from_rate.0 / to_rate.0, to_rate.1.max(2));
    Ok(axum::Json(json!({
        "currency_from": from,
        "amount_from": decimal_number(&amount),
        "currency_to": to,
        "estimated_amount": decimal_number(&estimated),
    }))
    .into_response())
}

async fn create_payment(
    State(state): State<NowPaymentsState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, NowPaymentsError> {
    state.authorize(&headers)?;
    let body = parse_object(&body).ok_or_else(|| invalid("Request body must be JSON"))?;
    let price = body
        .get("price_amount")
        .ok_or_else(|| invalid("\"price_amount\" is required"))?;
    let price_text = match price {
        Value::Number(number) => number.to_string(),
        _ => return Err(invalid("\"price_amount\" must be a number")),
    };
    let price_value: f64 = price_text
        .parse()
        .ok()
        .filter(|value: &f64| *value > 0.0)
        .ok_or_else(|| invalid("\"price_amount\" must be greater than 0"))?;
    let price_currency = text(&body, "price_currency")
        .ok_or_else(|| invalid("\"price_currency\" is required"))?
        .to_ascii_lowercase();
    let pay_currency = text(&body, "pay_currency")
        .ok_or_else(|| invalid("\"pay_currency\" is required"))?
        .to_ascii_lowercase();
    let (price_usd, _) = rate(&price_currency)
        .ok_or_else(|| invalid(format!("Currency {price_currency} was not found")))?;
    let (coin_usd, decimals) = rate(&pay_currency)
        .filter(|(_, decimals)| *decimals > 0)
        .ok_or_else(|| invalid(format!("Currency {pay_currency} was not found")))?;
    let ipn_callback_url = match body.get("ipn_callback_url") {
        None | Some(Value::Null) => None,
        Some(Value::String(url)) if is_callback_url(url) => Some(url.clone()),
        Some(_) => return Err(invalid("\"ipn_callback_url\" must be a valid uri")),
    };
    let optional = |key: &str| text(&body, key).map(str::to_owned);
    let scenario = text(&body, "case")
        .and_then(NowPaymentsScenario::for_case)
        .unwrap_or_else(|| {
            let hundredths = decimal_hundredths(&price_text).unwrap_or(0);
            NowPaymentsScenario::for_price(hundredths)
        });
    let pay_amount = decimal_text(price_value * price_usd / coin_usd, decimals);
    let now_ms = now_unix_ms();
    let now = CivilTime::utc(now_ms).iso_utc();
    let fixed_rate = body.get("is_fixed_rate") == Some(&Value::Bool(true));
    let lifetime_ms = if fixed_rate {
        state.config().fixed_rate_lifetime_ms
    } else {
        7 * 24 * 3_600_000
    };
    let payment = CryptoPayment {
        payment_id: ids::digits(10).parse().unwrap_or(1),
        purchase_id: ids::digits(10).parse().unwrap_or(1),
        status: "waiting",
        pay_address: address(&pay_currency),
        price_amount: price_text,
        price_currency,
        pay_amount,
        pay_currency,
        actually_paid: "0".into(),
        order_id: optional("order_id"),
        order_description: optional("order_description"),
        ipn_callback_url,
        created_at: now.clone(),
        updated_at: now,
        expiration_estimate_date: CivilTime::utc(now_ms + lifetime_ms).iso_utc(),
        scenario,
    };
    {
        let mut payments = state.payments();
        if payments.len() >= state.context.config().transactions_max {
            return Err(NowPaymentsError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "SERVICE_UNAVAILABLE",
                message: "Service temporarily unavailable".into(),
            });
        }
        payments.insert(payment.payment_id, payment.clone());
    }
    if scenario != NowPaymentsScenario::NeverPaid {
        let task_state = state.clone();
        let id = payment.payment_id;
        state.context.spawn(async move {
            if scenario.confirms_first() {
                task_state.context.customer_delay().await;
                let ipn = task_state.advance(id, "confirming");
                if let Some(ipn) = ipn.filter(|_| scenario.ipn_copies() > 0) {
                    task_state.context.deliver(&ipn).await;
                }
            }
            task_state.context.customer_delay().await;
            let Some(ipn) = task_state.advance(id, scenario.final_status()) else {
                return;
            };
            for _ in 0..scenario.ipn_copies() {
                task_state.context.deliver(&ipn).await;
            }
        });
    }
    let created = json!({
        "payment_id": payment.payment_id.to_string(),
        "payment_status": payment.status,
        "pay_address": payment.pay_address,
        "price_amount": decimal_number(&payment.price_amount),
        "price_currency": payment.price_currency,
        "pay_amount": decimal_number(&payment.pay_amount),
        "pay_currency": payment.pay_currency,
        "order_id": payment.order_id,
        "order_description": payment.order_description,
        "ipn_callback_url": payment.ipn_callback_url,
        "created_at": payment.created_at,
        "updated_at": payment.updated_at,
        "purchase_id": payment.purchase_id.to_string(),
        "amount_received": null,
        "payin_extra_id": null,
        "smart_contract": "",
        "network": network(&payment.pay_currency),
        "network_precision": decimals,
        "time_limit": null,
        "burning_percent": null,
        "expiration_estimate_date": payment.expiration_estimate_date,
    });
    Ok((StatusCode::CREATED, axum::Json(created)).into_response())
}

async fn payment_status(
    State(state): State<NowPaymentsState>,
    headers: HeaderMap,
    Path(payment_id): Path<String>,
) -> Result<Response, NowPaymentsError> {
    state.authorize(&headers)?;
    let payment = payment_id
        .parse::<u64>()
        .ok()
        .and_then(|id| state.payments().get(&id).cloned())
        .ok_or_else(|| NowPaymentsError {
            status: StatusCode::NOT_FOUND,
            code: "PAYMENT_NOT_FOUND",
            message: format!("Payment {payment_id} not found"),
        })?;
    Ok(axum::Json(payment.status_body()).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_shared_test_vector() {
        let body: Value = serde_json::from_str(r#"{"payment_id":123456789,"payment_status":"finished","pay_address":"address","price_amount":1,"price_currency":"usd","pay_amount":15,"actually_paid":15,"pay_currency":"trx","order_id":"ORDER-1","order_description":null,"purchase_id":"123456789","outcome_amount":14.8106,"outcome_currency":"trx","fee":{"currency":"btc","depositFee":0.09853637216235617,"withdrawalFee":0,"serviceFee":0}}"#).expect("json");
        assert_eq!(
            ipn_signature("test_ipn_secret_key", &body),
            "d5b07709b1fbd544805483fdefc2c952e8a83cdd5eaa4e3612665c78f302751ed17f2b93acf5bb60d3e9003ea66cca9e92a3a8db2276fffeb047c65cf8f976e8"
        );
    }

    #[test]
    fn amounts_print_as_javascript_prints_them() {
        assert_eq!(decimal_number("15.00").to_string(), "15");
        assert_eq!(decimal_number("0.00116700").to_string(), "0.001167");
        assert_eq!(decimal_number("70.13").to_string(), "70.13");
    }

    #[test]
    fn pay_amounts_round_up_to_the_coin_precision() {
        assert_eq!(decimal_text(70.13 / 60_000.0, 8), "0.00116884");
        assert_eq!(decimal_text(1.0, 6), "1.000000");
    }

    #[test]
    fn prices_choose_scenarios() {
        assert_eq!(
            NowPaymentsScenario::for_price(7013),
            NowPaymentsScenario::PartiallyPaid
        );
        assert_eq!(
            NowPaymentsScenario::for_price(701_400),
            NowPaymentsScenario::Expired
        );
        assert_eq!(
            NowPaymentsScenario::for_price(1_000),
            NowPaymentsScenario::Finished
        );
    }
}
