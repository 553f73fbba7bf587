//! Relworx (Uganda/Kenya/Tanzania mobile money aggregator), API v2:
//! request payment, send payment, status, and the signed webhook to the
//! URL configured on the business account.
//!
//! | path | method | what |
//! |---|---|---|
//! | `/mobile-money/request-payment` | POST | collect; "Request payment in progress." |
//! | `/mobile-money/send-payment` | POST | pay out; "Send payment in progress." |
//! | `/mobile-money/check-request-status?internal_reference=&account_no=` | GET | `status`/`request_status`: pending, success, failed |
//! | `/simulate/callback-url` | PUT | simulator control: `{"url": "..."}` sets the webhook URL |
//!
//! The real API lives under `/api` (`https://payments.relworx.com/api`);
//! the simulator serves both with and without that prefix, so either base
//! URL works. Every call needs `Authorization: Bearer <API key>` (401
//! otherwise) and `Accept: application/vnd.relworx.v2` (400 otherwise).
//! `reference` is 8-36 characters and unique (422 when reused); `msisdn`
//! is international with `+` and its country must match `currency` (UGX
//! +256, KES +254, TZS +255); `amount` a positive JSON number with at most
//! two decimals. Errors are `{"success": false, "message": "..."}`.
//!
//! Webhooks carry `Relworx-Signature: t=<unix>,v=<signature>`, the
//! signature being HMAC-SHA256 with the webhook key over the exact webhook
//! URL + t + `customer_reference<value>internal_reference<value>status<value>`
//! (only those keys, sorted), hex by default ([`webhook_signature`]).
//!
//! Outcomes are chosen by the last four digits of the msisdn: see
//! [`RelworxScenario`].

use crate::clock::{CivilTime, now_unix_ms};
use crate::config::RelworxSignatureEncoding;
use crate::context::{Callback, SimulatorContext, is_callback_url};
use crate::json::{decimal_hundredths, hundredths_number, is_digits, parse_object, text};
use crate::{Error, ids};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

/// The `Accept` header that selects API v2.
pub const ACCEPT_V2: &str = "application/vnd.relworx.v2";

/// Msisdn ending: fails (insufficient funds).
pub const ENDING_INSUFFICIENT_FUNDS: &str = "0002";
/// Msisdn ending: fails (declined by the customer).
pub const ENDING_DECLINED: &str = "0004";
/// Msisdn ending: stays pending for ever, no webhook.
pub const ENDING_NEVER_ANSWERED: &str = "0005";
/// Msisdn ending: succeeds, webhook never sent.
pub const ENDING_WEBHOOK_LOST: &str = "0009";
/// Msisdn ending: succeeds, webhook sent twice.
pub const ENDING_DUPLICATE_WEBHOOK: &str = "0010";

/// How a request ends, by the last four digits of the msisdn (the failing
/// endings match Malipo's sandbox connector).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelworxScenario {
    Success,
    /// Failed with this reason (used in `message`).
    Fails(&'static str),
    NeverAnswered,
    WebhookLost,
    DuplicateWebhook,
}

impl RelworxScenario {
    pub fn for_msisdn(msisdn: &str) -> RelworxScenario {
        match msisdn.get(msisdn.len().saturating_sub(4)..) {
            Some(ENDING_INSUFFICIENT_FUNDS) => RelworxScenario::Fails("insufficient funds"),
            Some(ENDING_DECLINED) => RelworxScenario::Fails("declined by the customer"),
            Some(ENDING_NEVER_ANSWERED) => RelworxScenario::NeverAnswered,
            Some(ENDING_WEBHOOK_LOST) => RelworxScenario::WebhookLost,
            Some(ENDING_DUPLICATE_WEBHOOK) => RelworxScenario::DuplicateWebhook,
            _ => RelworxScenario::Success,
        }
    }

    fn webhook_copies(self) -> usize {
        match self {
            RelworxScenario::Success | RelworxScenario::Fails(_) => 1,
            RelworxScenario::DuplicateWebhook => 2,
            RelworxScenario::NeverAnswered | RelworxScenario::WebhookLost => 0,
        }
    }
}

/// Countries by msisdn prefix: (dialling prefix, currency).
const MARKETS: &[(&str, &str)] = &[("+256", "UGX"), ("+254", "KES"), ("+255", "TZS")];

/// The provider name Relworx reports for a number (field names and values
/// of this endpoint come from client code, not first-party docs).
fn provider_for(msisdn: &str) -> &'static str {
    let national = msisdn.get(4..6).unwrap_or_default();
    match (msisdn.get(..4).unwrap_or_default(), national) {
        ("+256", "70" | "74" | "75" | "20") => "AIRTEL_UGANDA",
        ("+256", _) => "mtn_mobile_money",
        ("+254", _) => "mpesa_kenya",
        _ => "tigo_pesa_tanzania",
    }
}

/// `Relworx-Signature`'s `v`: HMAC-SHA256 (`key` = webhook key) over
/// `url`, then `timestamp`, then each of customer_reference,
/// internal_reference and status as key and value; hex or base64 encoded.
pub fn webhook_signature(
    key: &str,
    url: &str,
    timestamp: i64,
    customer_reference: &str,
    internal_reference: &str,
    status: &str,
    encoding: RelworxSignatureEncoding,
) -> String {
    let signed = format!(
        "{url}{timestamp}customer_reference{customer_reference}internal_reference{internal_reference}status{status}"
    );
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key.as_bytes()) else {
        return String::new();
    };
    mac.update(signed.as_bytes());
    let digest = mac.finalize().into_bytes();
    match encoding {
        RelworxSignatureEncoding::Hex => hex::encode(digest),
        RelworxSignatureEncoding::Base64 => {
            base64::engine::general_purpose::STANDARD.encode(digest)
        }
    }
}

/// A Relworx error answer: `{"success": false, "message": "..."}`.
#[derive(Debug)]
pub(crate) struct RelworxError {
    status: StatusCode,
    message: String,
}

impl IntoResponse for RelworxError {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(json!({"success": false, "message": self.message})),
        )
            .into_response()
    }
}

fn error(status: StatusCode, message: &str) -> RelworxError {
    RelworxError {
        status,
        message: message.to_string(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Request,
    Send,
}

#[derive(Debug, Clone)]
struct RelworxRequest {
    direction: Direction,
    customer_reference: String,
    internal_reference: String,
    msisdn: String,
    amount: serde_json::Number,
    amount_hundredths: u128,
    currency: String,
    scenario: RelworxScenario,
    /// `pending`, `success` or `failed`.
    status: &'static str,
    provider_transaction_id: Option<String>,
    completed_at: Option<String>,
}

impl RelworxRequest {
    fn message(&self) -> String {
        let action = match self.direction {
            Direction::Request => "Request payment",
            Direction::Send => "Send payment",
        };
        match (self.status, self.scenario) {
            ("success", _) => format!("{action} completed successfully."),
            ("failed", RelworxScenario::Fails(reason)) => format!("{action} failed: {reason}."),
            _ => format!("{action} in progress."),
        }
    }

    /// 2.5% of the amount (the docs' sample: 12.5 on 500), in hundredths.
    fn charge_hundredths(&self) -> u128 {
        (self.amount_hundredths * 25).div_ceil(1000)
    }
}

#[derive(Debug)]
struct Book {
    requests: HashMap<String, RelworxRequest>,
    customer_references: HashSet<String>,
    webhook_url: Option<String>,
}

/// The Relworx simulator's state; serve it with [`router`].
#[derive(Debug, Clone)]
pub struct RelworxState {
    context: SimulatorContext,
    book: Arc<Mutex<Book>>,
}

impl RelworxState {
    pub fn new(context: SimulatorContext) -> RelworxState {
        let webhook_url = context.config().relworx.webhook_url.clone();
        RelworxState {
            book: Arc::new(Mutex::new(Book {
                requests: HashMap::new(),
                customer_references: HashSet::new(),
                webhook_url,
            })),
            context,
        }
    }

    pub fn context(&self) -> &SimulatorContext {
        &self.context
    }

    fn config(&self) -> &crate::RelworxConfig {
        &self.context.config().relworx
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        // Each change under this lock is a single insert or field write.
        self.book
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sets the webhook URL configured on the business account.
    pub fn set_webhook_url(&self, url: &str) -> Result<(), Error> {
        if !is_callback_url(url) {
            return Err(Error::InvalidRequest(format!("not an http(s) URL: {url}")));
        }
        self.book().webhook_url = Some(url.to_string());
        Ok(())
    }

    /// Checks the API key and the v2 Accept header.
    fn authorize(&self, headers: &HeaderMap) -> Result<(), RelworxError> {
        let token = crate::tokens::bearer(headers);
        if token != Some(self.config().api_key.as_str()) {
            return Err(error(
                StatusCode::UNAUTHORIZED,
                "Invalid or missing API key.",
            ));
        }
        let accept = headers
            .get(axum::http::header::ACCEPT)
            .and_then(|value| value.to_str().ok());
        if !accept.is_some_and(|accept| accept.contains(ACCEPT_V2)) {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "Unsupported API version. Send Accept: application/vnd.relworx.v2.",
            ));
        }
        Ok(())
    }
}

/// The Relworx API routes over `state`, with and without the `/api` prefix.
pub fn router(state: RelworxState) -> Router {
    let api = Router::new()
        .route("/mobile-money/request-payment", post(request_payment))
        .route("/mobile-money/send-payment", post(send_payment))
        .route("/mobile-money/check-request-status", get(check_status));
    Router::new()
        .merge(api.clone())
        .nest("/api", api)
        .route("/simulate/callback-url", put(set_webhook_url))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "Resource not found.") })
        .with_state(state)
}

async fn request_payment(
    State(state): State<RelworxState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, RelworxError> {
    create(&state, &headers, &body, Direction::Request)
}

async fn send_payment(
    State(state): State<RelworxState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, RelworxError> {
    create(&state, &headers, &body, Direction::Send)
}

fn create(
    state: &RelworxState,
    headers: &HeaderMap,
    body: &[u8],
    direction: Direction,
) -> Result<Response, RelworxError> {
    state.authorize(headers)?;
    let body = parse_object(body)
        .ok_or_else(|| error(StatusCode::BAD_REQUEST, "Malformed request body."))?;
    let missing = |key: &str| error(StatusCode::BAD_REQUEST, &format!("{key} is required."));
    let invalid = |message: &str| error(StatusCode::UNPROCESSABLE_ENTITY, message);
    let account_no = text(&body, "account_no").ok_or_else(|| missing("account_no"))?;
    let reference = text(&body, "reference").ok_or_else(|| missing("reference"))?;
    let msisdn = text(&body, "msisdn").ok_or_else(|| missing("msisdn"))?;
    let currency = text(&body, "currency").ok_or_else(|| missing("currency"))?;
    let amount = body.get("amount").ok_or_else(|| missing("amount"))?;
    if account_no != state.config().account_no {
        return Err(error(
            StatusCode::FORBIDDEN,
            "Invalid business account number.",
        ));
    }
    if !(8..=36).contains(&reference.chars().count()) {
        return Err(invalid("reference must be between 8 and 36 characters."));
    }
    let market = MARKETS
        .iter()
        .find(|(prefix, _)| msisdn.starts_with(prefix))
        .filter(|_| msisdn.len() == 13 && is_digits(&msisdn[1..]))
        .ok_or_else(|| invalid("msisdn must be internationally formatted, e.g. +256701345672."))?;
    if market.1 != currency {
        return Err(invalid("currency is not valid for the given msisdn."));
    }
    let amount = amount
        .as_number()
        .cloned()
        .ok_or_else(|| invalid("amount must be a number."))?;
    let amount_hundredths = decimal_hundredths(&amount.to_string())
        .ok_or_else(|| invalid("amount must be positive with at most two decimals."))?;
    optional_description(&body).ok_or_else(|| invalid("description must be a string."))?;

    let internal_reference = ids::hex(32);
    let scenario = RelworxScenario::for_msisdn(msisdn);
    {
        let mut book = state.book();
        if book.customer_references.contains(reference) {
            return Err(invalid("reference has already been used."));
        }
        if book.requests.len() >= state.context.config().transactions_max {
            return Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service temporarily unavailable.",
            ));
        }
        book.customer_references.insert(reference.to_string());
        book.requests.insert(
            internal_reference.clone(),
            RelworxRequest {
                direction,
                customer_reference: reference.to_string(),
                internal_reference: internal_reference.clone(),
                msisdn: msisdn.to_string(),
                amount,
                amount_hundredths,
                currency: currency.to_string(),
                scenario,
                status: "pending",
                provider_transaction_id: None,
                completed_at: None,
            },
        );
    }
    if scenario != RelworxScenario::NeverAnswered {
        let task_state = state.clone();
        let reference = internal_reference.clone();
        state.context.spawn(async move {
            task_state.context.customer_delay().await;
            let Some((callback, copies)) = task_state.complete(&reference) else {
                return;
            };
            for _ in 0..copies {
                task_state.context.deliver(&callback).await;
            }
        });
    }
    let message = match direction {
        Direction::Request => "Request payment in progress.",
        Direction::Send => "Send payment in progress.",
    };
    Ok(axum::Json(json!({
        "success": true,
        "message": message,
        "internal_reference": internal_reference,
    }))
    .into_response())
}

fn optional_description(body: &Value) -> Option<()> {
    match body.get("description") {
        None | Some(Value::Null | Value::String(_)) => Some(()),
        Some(_) => None,
    }
}

impl RelworxState {
    /// The customer answers: sets the final status and returns the signed
    /// webhook (if a URL is configured) with how many copies to send.
    fn complete(&self, internal_reference: &str) -> Option<(Callback, usize)> {
        let now = CivilTime::east_africa(now_unix_ms());
        let mut book = self.book();
        let url = book.webhook_url.clone();
        let request = book.requests.get_mut(internal_reference)?;
        if let RelworxScenario::Fails(_) = request.scenario {
            request.status = "failed";
        } else {
            request.status = "success";
            request.provider_transaction_id = Some(ids::digits(11));
        }
        request.completed_at = Some(now.rfc3339_east_africa());
        let request = request.clone();
        drop(book);
        let url = url?;
        let body = json!({
            "status": request.status,
            "message": request.message(),
            "customer_reference": request.customer_reference,
            "internal_reference": request.internal_reference,
            "msisdn": request.msisdn,
            "amount": request.amount,
            "currency": request.currency,
            "provider": provider_for(&request.msisdn),
            "charge": hundredths_number(request.charge_hundredths()),
            "completed_at": request.completed_at,
        });
        let mut callback = Callback::post("relworx_webhook", &url, body);
        if let Some(key) = &self.config().webhook_key {
            let timestamp = now_unix_ms() / 1000;
            let signature = webhook_signature(
                key,
                &url,
                timestamp,
                &request.customer_reference,
                &request.internal_reference,
                request.status,
                self.config().signature_encoding,
            );
            callback.headers.push((
                "relworx-signature".into(),
                format!("t={timestamp},v={signature}"),
            ));
        }
        Some((callback, request.scenario.webhook_copies()))
    }
}

#[derive(Debug, serde::Deserialize)]
struct StatusQuery {
    internal_reference: Option<String>,
    account_no: Option<String>,
}

/// `GET /mobile-money/check-request-status`.
async fn check_status(
    State(state): State<RelworxState>,
    Query(query): Query<StatusQuery>,
    headers: HeaderMap,
) -> Result<Response, RelworxError> {
    state.authorize(&headers)?;
    let (Some(internal_reference), Some(account_no)) = (query.internal_reference, query.account_no)
    else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "internal_reference and account_no are required.",
        ));
    };
    if account_no != state.config().account_no {
        return Err(error(
            StatusCode::FORBIDDEN,
            "Invalid business account number.",
        ));
    }
    let Some(request) = state.book().requests.get(&internal_reference).cloned() else {
        return Err(error(StatusCode::NOT_FOUND, "Request not found."));
    };
    Ok(axum::Json(json!({
        "success": true,
        "status": request.status,
        "request_status": request.status,
        "message": request.message(),
        "customer_reference": request.customer_reference,
        "internal_reference": request.internal_reference,
        "msisdn": request.msisdn,
        "amount": request.amount,
        "currency": request.currency,
        "provider": provider_for(&request.msisdn),
        "charge": hundredths_number(request.charge_hundredths()),
        "provider_transaction_id": request.provider_transaction_id,
        "completed_at": request.completed_at,
    }))
    .into_response())
}

/// `PUT /simulate/callback-url` `{"url": "..."}` (simulator control).
async fn set_webhook_url(State(state): State<RelworxState>, body: Bytes) -> Response {
    let url = parse_object(&body).and_then(|body| text(&body, "url").map(str::to_string));
    match url.map(|url| state.set_webhook_url(&url)) {
        Some(Ok(())) => StatusCode::NO_CONTENT.into_response(),
        _ => error(StatusCode::BAD_REQUEST, "send {\"url\": \"http://...\"}").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_shared_test_vector() {
        assert_eq!(
            webhook_signature(
                "relworx_webhook_key",
                "https://example.com/webhooks/relworx",
                1_561_370_460,
                "shdfjsue789sh8jshuehu",
                "jshfufehkshffkseuhfskahakhuefak",
                "success",
                RelworxSignatureEncoding::Hex,
            ),
            "7dcd98aabffc65a968418495363ef510388f171d6413e7f3ba6d24791ab6a2aa"
        );
    }

    #[test]
    fn msisdn_endings_choose_scenarios() {
        assert_eq!(
            RelworxScenario::for_msisdn("+256701340001"),
            RelworxScenario::Success
        );
        assert!(matches!(
            RelworxScenario::for_msisdn("+256701340002"),
            RelworxScenario::Fails(_)
        ));
        assert_eq!(
            RelworxScenario::for_msisdn("+256701340005"),
            RelworxScenario::NeverAnswered
        );
        assert_eq!(
            RelworxScenario::for_msisdn("+256701340009"),
            RelworxScenario::WebhookLost
        );
        assert_eq!(
            RelworxScenario::for_msisdn("+256701340010"),
            RelworxScenario::DuplicateWebhook
        );
    }

    #[test]
    fn providers_by_prefix() {
        assert_eq!(provider_for("+256701345672"), "AIRTEL_UGANDA");
        assert_eq!(provider_for("+256773454899"), "mtn_mobile_money");
    }
}
