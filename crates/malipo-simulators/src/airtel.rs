//! Airtel Money Open API: token, collection (USSD push), enquiry, refund,
//! and the callback to the URL configured on the app.
//!
//! | path | method | what |
//! |---|---|---|
//! | `/auth/oauth2/token` | POST | JSON client_id/client_secret/grant_type; `expires_in` a string |
//! | `/merchant/v1/payments/` (also `/merchant/v2/payments/`, no trailing slash) | POST | USSD push; `DP00800001006` = in progress |
//! | `/standard/v1/payments/{id}` | GET | enquiry: `TIP`, `TS`, `TF`, `TA` |
//! | `/standard/v1/payments/refund` (also v2) | POST | refund by `airtel_money_id` |
//! | `/simulate/callback-url` | PUT | simulator control: `{"url": "..."}` sets the app's callback URL |
//!
//! Every payment call needs the Bearer token plus `X-Country` and
//! `X-Currency` headers that agree with each other and with the body
//! (`subscriber` and `transaction` country/currency). `msisdn` is WITHOUT
//! country code (9 or 10 digits). Errors use Airtel's status block with
//! `success: false` and ESB result codes (`ESB000008` field validation,
//! `ESB000034` country, `ESB000035` currency, `ESB000036` msisdn,
//! `ESB000041` duplicate id, `ESB000045` not found); bad tokens get 401
//! `{"error": "invalid_token", ...}` and bad client credentials 401
//! `{"error": "invalid_client", ...}`. Those error bodies are this
//! simulator's reading of client code, not a documented Airtel format.
//! v2 message signing (`x-signature`, `x-key`) is not checked.
//!
//! With [`crate::AirtelConfig::callback_hash_key`] set, callbacks carry a
//! top-level `hash`: base64(HMAC-SHA256(key, compact JSON of the
//! `transaction` object as sent)). Airtel has not confirmed which bytes it
//! signs; this is the guess client libraries make.
//!
//! Outcomes are chosen by the last four digits of the subscriber msisdn:
//! see [`AirtelScenario`].

use crate::context::{Callback, SimulatorContext, is_callback_url};
use crate::ids;
use crate::json::{parse_object, text};
use crate::tokens::{TokenStore, bearer};
use crate::{Error, clock};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Countries the simulator serves, with their currency and dialling code.
pub const COUNTRIES: &[(&str, &str, &str)] = &[
    ("UG", "UGX", "256"),
    ("KE", "KES", "254"),
    ("TZ", "TZS", "255"),
    ("ZM", "ZMW", "260"),
    ("MW", "MWK", "265"),
    ("RW", "RWF", "250"),
    ("NG", "NGN", "234"),
    ("CD", "USD", "243"),
];

/// Msisdn ending: fails with `DP00800001007` (insufficient balance).
pub const ENDING_INSUFFICIENT_FUNDS: &str = "0002";
/// Msisdn ending: fails with `DP00800001008` (the customer refused).
pub const ENDING_REFUSED: &str = "0004";
/// Msisdn ending: stays `TIP` for ever, no callback.
pub const ENDING_NEVER_ANSWERED: &str = "0005";
/// Msisdn ending: fails with `DP00800001002` (incorrect PIN).
pub const ENDING_INCORRECT_PIN: &str = "0006";
/// Msisdn ending: fails with `DP00800001024` (timed out).
pub const ENDING_TIMED_OUT: &str = "0007";
/// Msisdn ending: ends `TA` (ambiguous, `DP00800001000`), no callback.
pub const ENDING_AMBIGUOUS: &str = "0008";
/// Msisdn ending: succeeds, callback never sent.
pub const ENDING_CALLBACK_LOST: &str = "0009";
/// Msisdn ending: succeeds, callback sent twice.
pub const ENDING_DUPLICATE_CALLBACK: &str = "0010";

/// How a collection ends, by the last four digits of the msisdn (the
/// failing endings match Malipo's own sandbox connector: 0002 insufficient
/// funds, 0004 declined, 0005 never completes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AirtelScenario {
    /// Anything else: `TS`, `DP00800001001`.
    Success,
    /// `TF` with this response code.
    Fails(&'static str),
    NeverAnswered,
    Ambiguous,
    CallbackLost,
    DuplicateCallback,
}

impl AirtelScenario {
    pub fn for_msisdn(msisdn: &str) -> AirtelScenario {
        match msisdn.get(msisdn.len().saturating_sub(4)..) {
            Some(ENDING_INSUFFICIENT_FUNDS) => AirtelScenario::Fails("DP00800001007"),
            Some(ENDING_REFUSED) => AirtelScenario::Fails("DP00800001008"),
            Some(ENDING_NEVER_ANSWERED) => AirtelScenario::NeverAnswered,
            Some(ENDING_INCORRECT_PIN) => AirtelScenario::Fails("DP00800001002"),
            Some(ENDING_TIMED_OUT) => AirtelScenario::Fails("DP00800001024"),
            Some(ENDING_AMBIGUOUS) => AirtelScenario::Ambiguous,
            Some(ENDING_CALLBACK_LOST) => AirtelScenario::CallbackLost,
            Some(ENDING_DUPLICATE_CALLBACK) => AirtelScenario::DuplicateCallback,
            _ => AirtelScenario::Success,
        }
    }

    fn callback_copies(self) -> usize {
        match self {
            AirtelScenario::Success | AirtelScenario::Fails(_) => 1,
            AirtelScenario::DuplicateCallback => 2,
            _ => 0,
        }
    }
}

/// Airtel's response codes with the messages the simulator uses.
pub const RESPONSE_CODES: &[(&str, &str)] = &[
    ("DP00800001000", "Transaction is in ambiguous state"),
    ("DP00800001001", "Transaction is successful"),
    ("DP00800001002", "Incorrect PIN has been entered"),
    ("DP00800001003", "Withdrawal amount limit exceeded"),
    ("DP00800001004", "Invalid amount"),
    ("DP00800001005", "User did not enter the PIN"),
    (
        "DP00800001006",
        "Transaction in pending state. Please check after sometime.",
    ),
    ("DP00800001007", "Not enough balance"),
    ("DP00800001008", "Refused by the customer"),
    ("DP00800001010", "Transaction not permitted to payee"),
    ("DP00800001024", "Transaction timed out"),
    ("DP00800001025", "Transaction not found"),
    ("DP00800001029", "Transaction expired"),
];

fn response_message(code: &str) -> &'static str {
    RESPONSE_CODES
        .iter()
        .find(|(known, _)| *known == code)
        .map_or("Transaction failed", |(_, message)| message)
}

/// An Airtel error answer.
#[derive(Debug)]
pub(crate) enum AirtelError {
    /// The ESB status block with `success: false`.
    Status {
        http: StatusCode,
        result_code: &'static str,
        response_code: Option<&'static str>,
        message: String,
    },
    InvalidToken,
    InvalidClient,
    UnsupportedGrantType,
}

impl AirtelError {
    fn status(
        http: StatusCode,
        result_code: &'static str,
        message: impl Into<String>,
    ) -> AirtelError {
        AirtelError::Status {
            http,
            result_code,
            response_code: None,
            message: message.into(),
        }
    }

    fn field(message: &str) -> AirtelError {
        AirtelError::status(StatusCode::BAD_REQUEST, "ESB000008", message)
    }

    fn not_found() -> AirtelError {
        AirtelError::Status {
            http: StatusCode::NOT_FOUND,
            result_code: "ESB000045",
            response_code: Some("DP00800001025"),
            message: "No Transaction Found With Provided Transaction Id.".into(),
        }
    }
}

impl IntoResponse for AirtelError {
    fn into_response(self) -> Response {
        match self {
            AirtelError::Status {
                http,
                result_code,
                response_code,
                message,
            } => {
                let mut status = json!({
                    "code": http.as_u16().to_string(),
                    "message": message,
                    "result_code": result_code,
                    "success": false,
                });
                if let Some(code) = response_code {
                    status["response_code"] = json!(code);
                }
                (http, axum::Json(json!({"data": {}, "status": status}))).into_response()
            }
            AirtelError::InvalidToken => (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({
                    "error": "invalid_token",
                    "error_description": "The access token is invalid or has expired",
                })),
            )
                .into_response(),
            AirtelError::InvalidClient => (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({
                    "error": "invalid_client",
                    "error_description": "Client authentication failed",
                })),
            )
                .into_response(),
            AirtelError::UnsupportedGrantType => (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({
                    "error": "unsupported_grant_type",
                    "error_description": "Only client_credentials is supported",
                })),
            )
                .into_response(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AirtelStatus {
    InProgress,
    Success,
    Failed(&'static str),
    Ambiguous,
}

impl AirtelStatus {
    fn code(self) -> &'static str {
        match self {
            AirtelStatus::InProgress => "TIP",
            AirtelStatus::Success => "TS",
            AirtelStatus::Failed(_) => "TF",
            AirtelStatus::Ambiguous => "TA",
        }
    }

    fn response_code(self) -> &'static str {
        match self {
            AirtelStatus::InProgress => "DP00800001006",
            AirtelStatus::Success => "DP00800001001",
            AirtelStatus::Failed(code) => code,
            AirtelStatus::Ambiguous => "DP00800001000",
        }
    }
}

#[derive(Debug, Clone)]
struct AirtelTransaction {
    id: String,
    airtel_money_id: String,
    amount: serde_json::Number,
    currency: String,
    scenario: AirtelScenario,
    status: AirtelStatus,
    refunded: bool,
}

#[derive(Debug)]
struct Book {
    tokens: TokenStore<()>,
    transactions: HashMap<String, AirtelTransaction>,
    /// airtel_money_id -> transaction.id
    by_money_id: HashMap<String, String>,
    callback_url: Option<String>,
}

/// The Airtel Money simulator's state; serve it with [`router`].
#[derive(Debug, Clone)]
pub struct AirtelState {
    context: SimulatorContext,
    book: Arc<Mutex<Book>>,
}

impl AirtelState {
    pub fn new(context: SimulatorContext) -> AirtelState {
        let callback_url = context.config().airtel.callback_url.clone();
        AirtelState {
            book: Arc::new(Mutex::new(Book {
                tokens: TokenStore::new(),
                transactions: HashMap::new(),
                by_money_id: HashMap::new(),
                callback_url,
            })),
            context,
        }
    }

    pub fn context(&self) -> &SimulatorContext {
        &self.context
    }

    fn config(&self) -> &crate::AirtelConfig {
        &self.context.config().airtel
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        // Each change under this lock is a single insert or field write.
        self.book
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sets the callback URL configured on the Airtel app.
    pub fn set_callback_url(&self, url: &str) -> Result<(), Error> {
        if !is_callback_url(url) {
            return Err(Error::InvalidRequest(format!("not an http(s) URL: {url}")));
        }
        self.book().callback_url = Some(url.to_string());
        Ok(())
    }

    fn authorize(&self, headers: &HeaderMap) -> Result<(), AirtelError> {
        let valid = bearer(headers).is_some_and(|token| self.book().tokens.check(token).is_some());
        if valid {
            Ok(())
        } else {
            Err(AirtelError::InvalidToken)
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

/// The `(country, currency, dialling code)` named by X-Country/X-Currency.
fn market(headers: &HeaderMap) -> Result<(&'static str, &'static str, &'static str), AirtelError> {
    let country = header(headers, "x-country")
        .and_then(|country| COUNTRIES.iter().find(|(code, _, _)| *code == country))
        .ok_or_else(|| {
            AirtelError::status(StatusCode::BAD_REQUEST, "ESB000034", "Invalid Country Name")
        })?;
    if header(headers, "x-currency") != Some(country.1) {
        return Err(AirtelError::status(
            StatusCode::BAD_REQUEST,
            "ESB000035",
            "Invalid Currency Code",
        ));
    }
    Ok(*country)
}

/// The Airtel Money API routes over `state`.
pub fn router(state: AirtelState) -> Router {
    Router::new()
        .route("/auth/oauth2/token", post(token))
        .route("/merchant/v1/payments/", post(collect))
        .route("/merchant/v1/payments", post(collect))
        .route("/merchant/v2/payments/", post(collect))
        .route("/merchant/v2/payments", post(collect))
        .route("/standard/v1/payments/refund", post(refund))
        .route("/standard/v2/payments/refund", post(refund))
        .route("/standard/v1/payments/{id}", get(enquiry))
        .route("/simulate/callback-url", put(set_callback_url))
        .fallback(|| async {
            AirtelError::status(StatusCode::NOT_FOUND, "ESB000001", "Resource not found")
        })
        .with_state(state)
}

/// `POST /auth/oauth2/token`.
async fn token(State(state): State<AirtelState>, body: Bytes) -> Result<Response, AirtelError> {
    let body = parse_object(&body).ok_or_else(|| AirtelError::field("Invalid request body"))?;
    if text(&body, "grant_type") != Some("client_credentials") {
        return Err(AirtelError::UnsupportedGrantType);
    }
    let config = state.config();
    if text(&body, "client_id") != Some(config.client_id.as_str())
        || text(&body, "client_secret") != Some(config.client_secret.as_str())
    {
        return Err(AirtelError::InvalidClient);
    }
    let token = ids::token(32);
    let lifetime_seconds = config.token_lifetime_seconds;
    state
        .book()
        .tokens
        .issue(&token, Duration::from_secs(lifetime_seconds), ());
    // `expires_in` is a string on Airtel's wire.
    Ok(axum::Json(json!({
        "access_token": token,
        "expires_in": lifetime_seconds.to_string(),
        "token_type": "bearer",
    }))
    .into_response())
}

/// `POST /merchant/v1/payments/`: the USSD push.
async fn collect(
    State(state): State<AirtelState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AirtelError> {
    state.authorize(&headers)?;
    let (country, currency, dialling_code) = market(&headers)?;
    let body = parse_object(&body).ok_or_else(|| AirtelError::field("Invalid request body"))?;
    text(&body, "reference").ok_or_else(|| AirtelError::field("reference is required"))?;
    let subscriber = body
        .get("subscriber")
        .filter(|subscriber| subscriber.is_object())
        .ok_or_else(|| AirtelError::field("subscriber is required"))?;
    let transaction = body
        .get("transaction")
        .filter(|transaction| transaction.is_object())
        .ok_or_else(|| AirtelError::field("transaction is required"))?;
    for part in [subscriber, transaction] {
        if text(part, "country") != Some(country) {
            return Err(AirtelError::status(
                StatusCode::BAD_REQUEST,
                "ESB000034",
                "Invalid Country Name",
            ));
        }
        if text(part, "currency") != Some(currency) {
            return Err(AirtelError::status(
                StatusCode::BAD_REQUEST,
                "ESB000035",
                "Invalid Currency Code",
            ));
        }
    }
    // The msisdn goes without country code; a number or digit string.
    let msisdn = match subscriber.get("msisdn") {
        Some(Value::String(msisdn)) => msisdn.clone(),
        Some(Value::Number(msisdn)) => msisdn.to_string(),
        _ => String::new(),
    };
    let msisdn_valid = crate::json::is_digits(&msisdn)
        && (9..=10).contains(&msisdn.len())
        && !(msisdn.starts_with(dialling_code) && msisdn.len() > 9);
    if !msisdn_valid {
        return Err(AirtelError::status(
            StatusCode::BAD_REQUEST,
            "ESB000036",
            "Invalid MSISDN Length. MSISDN should be without country code",
        ));
    }
    let amount = transaction
        .get("amount")
        .and_then(Value::as_number)
        .filter(|amount| amount.as_f64().is_some_and(|value| value > 0.0))
        .cloned()
        .ok_or_else(|| AirtelError::field("transaction.amount must be a positive number"))?;
    let id = text(transaction, "id")
        .ok_or_else(|| AirtelError::field("transaction.id is required"))?
        .to_string();
    let scenario = AirtelScenario::for_msisdn(&msisdn);
    {
        let mut book = state.book();
        if book.transactions.contains_key(&id) {
            return Err(AirtelError::status(
                StatusCode::BAD_REQUEST,
                "ESB000041",
                "External Transaction ID already exists",
            ));
        }
        if book.transactions.len() >= state.context.config().transactions_max {
            return Err(AirtelError::status(
                StatusCode::SERVICE_UNAVAILABLE,
                "ESB000001",
                "Something went wrong",
            ));
        }
        let now = clock::CivilTime::east_africa(clock::now_unix_ms());
        let airtel_money_id = loop {
            let candidate = format!(
                "MP{}.{}.{}{}",
                now.short_date(),
                now.hour_minute(),
                ids::uppercase_alphanumeric(1),
                ids::digits(5)
            );
            if !book.by_money_id.contains_key(&candidate) {
                break candidate;
            }
        };
        book.by_money_id.insert(airtel_money_id.clone(), id.clone());
        book.transactions.insert(
            id.clone(),
            AirtelTransaction {
                id: id.clone(),
                airtel_money_id,
                amount,
                currency: currency.to_string(),
                scenario,
                status: AirtelStatus::InProgress,
                refunded: false,
            },
        );
    }
    if scenario != AirtelScenario::NeverAnswered {
        let task_state = state.clone();
        let transaction_id = id.clone();
        state.context.spawn(async move {
            task_state.context.customer_delay().await;
            let Some((callback, copies)) = task_state.complete(&transaction_id) else {
                return;
            };
            for _ in 0..copies {
                task_state.context.deliver(&callback).await;
            }
        });
    }
    Ok(axum::Json(json!({
        "data": {"transaction": {"id": id, "status": "SUCCESS"}},
        "status": {
            "code": "200",
            "message": "SUCCESS",
            "result_code": "ESB000010",
            "response_code": "DP00800001006",
            "success": true,
        },
    }))
    .into_response())
}

/// "5,000": Airtel's message formatting of whole amounts.
fn grouped(amount: &serde_json::Number) -> String {
    let text = amount.to_string();
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let mut grouped = String::new();
    for (index, digit) in whole.chars().enumerate() {
        if index > 0 && (whole.len() - index) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    if !fraction.is_empty() && fraction.bytes().any(|digit| digit != b'0') {
        grouped.push('.');
        grouped.push_str(fraction);
    }
    grouped
}

impl AirtelState {
    /// The customer answers: sets the final status and returns the callback
    /// (if a URL is configured) with how many copies to send.
    fn complete(&self, id: &str) -> Option<(Callback, usize)> {
        let mut book = self.book();
        let url = book.callback_url.clone();
        let transaction = book.transactions.get_mut(id)?;
        transaction.status = match transaction.scenario {
            AirtelScenario::Fails(code) => AirtelStatus::Failed(code),
            AirtelScenario::Ambiguous => AirtelStatus::Ambiguous,
            _ => AirtelStatus::Success,
        };
        let transaction = transaction.clone();
        drop(book);
        let url = url?;
        let config = self.config();
        let message = match transaction.status {
            AirtelStatus::Success => format!(
                "Paid {} {} to {}, Trans ID {}.",
                transaction.currency,
                grouped(&transaction.amount),
                config.merchant_name,
                transaction.airtel_money_id
            ),
            status => response_message(status.response_code()).to_string(),
        };
        let callback_transaction = json!({
            "id": transaction.id,
            "message": message,
            "status_code": transaction.status.code(),
            "airtel_money_id": transaction.airtel_money_id,
        });
        let mut body = json!({"transaction": callback_transaction});
        if let Some(key) = &config.callback_hash_key {
            body["hash"] = json!(callback_hash(key, &callback_transaction));
        }
        Some((
            Callback::post("airtel_callback", &url, body),
            transaction.scenario.callback_copies(),
        ))
    }
}

/// base64(HMAC-SHA256(key, compact JSON of `transaction`)): the unconfirmed
/// "callback authentication" hash (see the module docs).
pub fn callback_hash(key: &str, transaction: &Value) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key.as_bytes()) else {
        return String::new();
    };
    mac.update(transaction.to_string().as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// `GET /standard/v1/payments/{id}`.
async fn enquiry(
    State(state): State<AirtelState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, AirtelError> {
    state.authorize(&headers)?;
    market(&headers)?;
    let transaction = state
        .book()
        .transactions
        .get(&id)
        .cloned()
        .ok_or_else(AirtelError::not_found)?;
    let response_code = transaction.status.response_code();
    let mut data = json!({
        "id": transaction.id,
        "message": response_message(response_code),
        "status": transaction.status.code(),
    });
    // The Airtel Money id exists once money has moved (or failed to).
    if !matches!(transaction.status, AirtelStatus::InProgress) {
        data["airtel_money_id"] = json!(transaction.airtel_money_id);
    }
    Ok(axum::Json(json!({
        "data": {"transaction": data},
        "status": {
            "code": "200",
            "message": "SUCCESS",
            "result_code": "ESB000010",
            "response_code": response_code,
            "success": true,
        },
    }))
    .into_response())
}

/// `POST /standard/v1/payments/refund`.
async fn refund(
    State(state): State<AirtelState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AirtelError> {
    state.authorize(&headers)?;
    market(&headers)?;
    let body = parse_object(&body).ok_or_else(|| AirtelError::field("Invalid request body"))?;
    let airtel_money_id = body
        .get("transaction")
        .and_then(|transaction| text(transaction, "airtel_money_id"))
        .ok_or_else(|| AirtelError::field("transaction.airtel_money_id is required"))?
        .to_string();
    {
        let mut book = state.book();
        let id = book
            .by_money_id
            .get(&airtel_money_id)
            .cloned()
            .ok_or_else(AirtelError::not_found)?;
        let transaction = book
            .transactions
            .get_mut(&id)
            .ok_or_else(AirtelError::not_found)?;
        if transaction.status != AirtelStatus::Success {
            return Err(AirtelError::status(
                StatusCode::BAD_REQUEST,
                "ESB000011",
                "Only successful transactions can be refunded",
            ));
        }
        if transaction.refunded {
            return Err(AirtelError::status(
                StatusCode::BAD_REQUEST,
                "ESB000011",
                "Transaction already refunded",
            ));
        }
        transaction.refunded = true;
    }
    // `success: false` next to "SUCCESS" is what Airtel's documented sample
    // shows; kept so clients learn to read result_code, not `success`.
    Ok(axum::Json(json!({
        "data": {"transaction": {"airtel_money_id": airtel_money_id, "status": "SUCCESS"}},
        "status": {
            "code": "200",
            "message": "SUCCESS",
            "result_code": "ESB000010",
            "success": false,
        },
    }))
    .into_response())
}

/// `PUT /simulate/callback-url` `{"url": "..."}` (simulator control).
async fn set_callback_url(State(state): State<AirtelState>, body: Bytes) -> Response {
    let url = parse_object(&body).and_then(|body| text(&body, "url").map(str::to_string));
    match url.map(|url| state.set_callback_url(&url)) {
        Some(Ok(())) => StatusCode::NO_CONTENT.into_response(),
        _ => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "send {\"url\": \"http://...\"}"})),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msisdn_endings_choose_scenarios() {
        assert_eq!(
            AirtelScenario::for_msisdn("752000001"),
            AirtelScenario::Success
        );
        assert_eq!(
            AirtelScenario::for_msisdn("752000002"),
            AirtelScenario::Fails("DP00800001007")
        );
        assert_eq!(
            AirtelScenario::for_msisdn("752000004"),
            AirtelScenario::Fails("DP00800001008")
        );
        assert_eq!(
            AirtelScenario::for_msisdn("752000005"),
            AirtelScenario::NeverAnswered
        );
        assert_eq!(
            AirtelScenario::for_msisdn("752000008"),
            AirtelScenario::Ambiguous
        );
        assert_eq!(
            AirtelScenario::for_msisdn("752000009"),
            AirtelScenario::CallbackLost
        );
        assert_eq!(
            AirtelScenario::for_msisdn("752000010"),
            AirtelScenario::DuplicateCallback
        );
    }

    #[test]
    fn amounts_are_grouped_in_messages() {
        assert_eq!(grouped(&serde_json::Number::from(5000)), "5,000");
        assert_eq!(grouped(&serde_json::Number::from(500)), "500");
        assert_eq!(grouped(&serde_json::Number::from(1_234_567)), "1,234,567");
    }
}
