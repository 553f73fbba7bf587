//! Flutterwave v3: Standard (hosted) payments, the hosted checkout page,
//! verify by reference or id, refunds, and `charge.completed` webhooks to
//! the URL configured on the simulated dashboard.
//!
//! | path | method | what |
//! |---|---|---|
//! | `/v3/payments` | POST | JSON: tx_ref, amount (major units, string or number), currency, redirect_url, customer.email, payment_options; answers `data.link` |
//! | `/v3/transactions/verify_by_reference?tx_ref=…` | GET | the transaction once the page was submitted; before: 400 "No transaction was found for this id" |
//! | `/v3/transactions/{id}/verify` | GET | the same, by Flutterwave's transaction id |
//! | `/v3/transactions/{id}/refund` | POST | `{"amount": …}` (optional: the rest); `completed` at once |
//! | `/checkout/{token}` | GET, POST | the hosted page: a form of test cards; submitting pays |
//! | `/simulate/callback-url` | PUT | simulator control: `{"url": "..."}` sets the webhook URL |
//!
//! Every API call needs `Authorization: Bearer <secret key>`; otherwise 401
//! `{"status": "error", "message": "Invalid authorization key", "data":
//! null}`. Answers wrap `{"status": "success" | "error", "message", "data"}`.
//!
//! Test cards ([`TEST_CARDS`], Flutterwave's documented numbers):
//! `5531886652142950` and `4187427415564246` succeed, `5258585922666506`
//! fails "Insufficient funds", any other number fails "Declined". The
//! page sends the customer to `redirect_url?status=successful|failed&tx_ref=…&transaction_id=…`.
//!
//! Webhooks (`charge.completed`, for successful and failed charges, with
//! `"event.type": "CARD_TRANSACTION"`) carry `verif-hash` (the dashboard's
//! secret hash itself) and `flutterwave-signature` (base64 HMAC-SHA256 of
//! the body keyed with it, [`signature`]), or one of them as
//! [`FlutterwaveConfig::webhook_headers`] says; the form's
//! `simulate_webhook` field times them as on the other card pages.

use crate::config::FlutterwaveWebhookHeaders;
use crate::context::{Callback, SimulatorContext, is_callback_url};
use crate::hosted::{self, TestCard, WebhookTiming};
use crate::json::{decimal_hundredths, hundredths_number, parse_object, text};
use crate::{Error, ids};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post, put};
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

pub use crate::config::FlutterwaveConfig;

/// Succeeds (Mastercard, PIN 3310, OTP 12345 at Flutterwave).
pub const CARD_SUCCESS: &str = "5531886652142950";
/// Succeeds (Visa, 3-D Secure at Flutterwave).
pub const CARD_SUCCESS_3DS: &str = "4187427415564246";
/// Fails: "Insufficient funds".
pub const CARD_INSUFFICIENT_FUNDS: &str = "5258585922666506";
/// The currencies the simulated account takes.
pub const CURRENCIES: &[&str] = &[
    "NGN", "GHS", "KES", "UGX", "TZS", "RWF", "ZMW", "ZAR", "XAF", "XOF", "USD", "EUR", "GBP",
];

/// The hosted page's test cards.
pub const TEST_CARDS: &[TestCard] = &[
    TestCard {
        number: CARD_SUCCESS,
        description: "succeeds (Mastercard, PIN 3310, OTP 12345)",
    },
    TestCard {
        number: CARD_SUCCESS_3DS,
        description: "succeeds (Visa, 3-D Secure)",
    },
    TestCard {
        number: CARD_INSUFFICIENT_FUNDS,
        description: "fails: Insufficient funds",
    },
];

/// `flutterwave-signature` of `body` under the secret hash.
pub fn signature(secret_hash: &str, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret_hash.as_bytes()) else {
        return String::new();
    };
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[derive(Debug, Clone)]
struct Transaction {
    /// Flutterwave's id, once the page was submitted.
    id: Option<u64>,
    tx_ref: String,
    flw_ref: String,
    hundredths: u128,
    currency: String,
    email: String,
    name: Option<String>,
    redirect_url: Option<String>,
    /// `pending` until the page is submitted, then `successful` or `failed`.
    status: &'static str,
    processor_response: &'static str,
    created_at: String,
    refunded_hundredths: u128,
}

impl Transaction {
    fn json(&self) -> Value {
        let amount = hundredths_number(self.hundredths);
        json!({
            "id": self.id,
            "tx_ref": self.tx_ref,
            "flw_ref": self.flw_ref,
            "device_fingerprint": "N/A",
            "amount": amount,
            "currency": self.currency,
            "charged_amount": amount,
            "app_fee": hundredths_number(self.hundredths * 14 / 1000),
            "merchant_fee": 0,
            "processor_response": self.processor_response,
            "auth_model": "PIN",
            "ip": "127.0.0.1",
            "narration": "CARD Transaction ",
            "status": self.status,
            "payment_type": "card",
            "created_at": self.created_at,
            "account_id": 17321,
            "card": {"first_6digits": "553188", "last_4digits": "2950", "issuer": "MASTERCARD  CREDIT",
                "country": "NG", "type": "MASTERCARD", "expiry": "09/32"},
            "customer": {"id": 215604089, "name": self.name.clone().unwrap_or_else(|| "Anonymous customer".into()),
                "phone_number": null, "email": self.email, "created_at": self.created_at},
        })
    }
}

#[derive(Debug, Default)]
struct Book {
    /// By tx_ref.
    transactions: HashMap<String, Transaction>,
    /// Checkout token -> tx_ref.
    tokens: HashMap<String, String>,
    next_id: u64,
    webhook_url: Option<String>,
}

/// The Flutterwave simulator's state; serve it with [`router`].
#[derive(Debug, Clone)]
pub struct FlutterwaveState {
    context: SimulatorContext,
    book: Arc<Mutex<Book>>,
}

/// A Flutterwave error answer.
#[derive(Debug)]
pub(crate) struct FlutterwaveError {
    status: StatusCode,
    message: String,
}

impl IntoResponse for FlutterwaveError {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(json!({"status": "error", "message": self.message, "data": null})),
        )
            .into_response()
    }
}

type ApiResult = Result<Response, FlutterwaveError>;

fn failure(status: StatusCode, message: &str) -> FlutterwaveError {
    FlutterwaveError {
        status,
        message: message.to_string(),
    }
}

fn success(message: &str, data: Value) -> Response {
    axum::Json(json!({"status": "success", "message": message, "data": data})).into_response()
}

impl FlutterwaveState {
    pub fn new(context: SimulatorContext) -> FlutterwaveState {
        let webhook_url = context.config().flutterwave.webhook_url.clone();
        FlutterwaveState {
            book: Arc::new(Mutex::new(Book {
                next_id: 285_959_875,
                webhook_url,
                ..Book::default()
            })),
            context,
        }
    }

    fn config(&self) -> &FlutterwaveConfig {
        &self.context.config().flutterwave
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        // Each change under this lock is a few inserts or field writes.
        self.book
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sets the webhook URL of the simulated dashboard.
    pub fn set_webhook_url(&self, url: &str) -> Result<(), Error> {
        if !is_callback_url(url) {
            return Err(Error::InvalidRequest(format!("not an http(s) URL: {url}")));
        }
        self.book().webhook_url = Some(url.to_string());
        Ok(())
    }

    fn authorize(&self, headers: &HeaderMap) -> Result<(), FlutterwaveError> {
        if crate::tokens::bearer(headers) == Some(self.config().secret_key.as_str()) {
            Ok(())
        } else {
            Err(failure(
                StatusCode::UNAUTHORIZED,
                "Invalid authorization key",
            ))
        }
    }

    /// A signed `charge.completed` webhook about `transaction`, if a URL is
    /// configured.
    fn webhook(&self, transaction: &Transaction) -> Option<Callback> {
        let url = self.book().webhook_url.clone()?;
        let body = json!({"event": "charge.completed", "data": transaction.json(),
            "event.type": "CARD_TRANSACTION"});
        let mut callback = Callback::post("flutterwave_webhook", &url, body);
        let secret_hash = &self.config().secret_hash;
        let headers = self.config().webhook_headers;
        if headers != FlutterwaveWebhookHeaders::SignatureOnly {
            callback
                .headers
                .push(("verif-hash".into(), secret_hash.clone()));
        }
        if headers != FlutterwaveWebhookHeaders::VerifHashOnly {
            let signature = signature(secret_hash, callback.body.to_string().as_bytes());
            callback
                .headers
                .push(("flutterwave-signature".into(), signature));
        }
        Some(callback)
    }
}

/// The Flutterwave routes over `state`.
pub fn router(state: FlutterwaveState) -> Router {
    Router::new()
        .route("/v3/payments", post(create_payment))
        .route(
            "/v3/transactions/verify_by_reference",
            get(verify_by_reference),
        )
        .route("/v3/transactions/{id}/verify", get(verify_by_id))
        .route("/v3/transactions/{id}/refund", post(refund))
        .route("/checkout/{token}", get(checkout_page).post(pay))
        .route("/simulate/callback-url", put(set_webhook_url))
        .fallback(|| async { failure(StatusCode::NOT_FOUND, "Resource not found") })
        .with_state(state)
}

async fn create_payment(
    State(state): State<FlutterwaveState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    state.authorize(&headers)?;
    let bad = |message: &str| failure(StatusCode::BAD_REQUEST, message);
    let body = parse_object(&body).ok_or_else(|| bad("Invalid JSON body"))?;
    let tx_ref = text(&body, "tx_ref")
        .filter(|tx_ref| !tx_ref.is_empty() && tx_ref.len() <= 100)
        .ok_or_else(|| bad("tx_ref is required"))?
        .to_string();
    let hundredths = match body.get("amount") {
        Some(Value::String(amount)) => decimal_hundredths(amount),
        Some(Value::Number(amount)) => decimal_hundredths(&amount.to_string()),
        _ => None,
    }
    .ok_or_else(|| bad("amount is required and must be a positive number"))?;
    let currency = text(&body, "currency")
        .unwrap_or("NGN")
        .to_ascii_uppercase();
    if !CURRENCIES.contains(&currency.as_str()) {
        return Err(bad("Invalid currency"));
    }
    let email = body
        .pointer("/customer/email")
        .and_then(Value::as_str)
        .filter(|email| email.contains('@'))
        .ok_or_else(|| bad("customer.email is required"))?
        .to_string();
    let redirect_url = match body.get("redirect_url") {
        None | Some(Value::Null) => None,
        Some(Value::String(url)) if is_callback_url(url) => Some(url.clone()),
        Some(_) => return Err(bad("Invalid redirect_url")),
    };
    let token = ids::hex(16);
    let origin = hosted::origin(&headers);
    {
        let mut book = state.book();
        if book.transactions.contains_key(&tx_ref) {
            return Err(bad("A transaction with this tx_ref already exists"));
        }
        if book.transactions.len() >= state.context.config().transactions_max {
            return Err(failure(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service unavailable",
            ));
        }
        let transaction = Transaction {
            id: None,
            flw_ref: format!("FLW-MOCK-{}", ids::hex(16)),
            tx_ref: tx_ref.clone(),
            hundredths,
            currency,
            email,
            name: body
                .pointer("/customer/name")
                .and_then(Value::as_str)
                .map(str::to_string),
            redirect_url,
            status: "pending",
            processor_response: "Pending",
            created_at: hosted::now_iso(),
            refunded_hundredths: 0,
        };
        book.tokens.insert(token.clone(), tx_ref.clone());
        book.transactions.insert(tx_ref, transaction);
    }
    Ok(success(
        "Hosted Link",
        json!({"link": format!("{origin}/checkout/{token}")}),
    ))
}

/// A transaction the page was submitted for, as verify answers it.
fn verified(transaction: Option<Transaction>) -> ApiResult {
    match transaction.filter(|transaction| transaction.id.is_some()) {
        Some(transaction) => Ok(success(
            "Transaction fetched successfully",
            transaction.json(),
        )),
        None => Err(failure(
            StatusCode::BAD_REQUEST,
            "No transaction was found for this id",
        )),
    }
}

async fn verify_by_reference(
    State(state): State<FlutterwaveState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> ApiResult {
    state.authorize(&headers)?;
    let tx_ref = query.get("tx_ref").cloned().unwrap_or_default();
    let transaction = state.book().transactions.get(&tx_ref).cloned();
    verified(transaction)
}

fn transaction_by_id(state: &FlutterwaveState, id: &str) -> Option<Transaction> {
    let id: u64 = id.parse().ok()?;
    state
        .book()
        .transactions
        .values()
        .find(|transaction| transaction.id == Some(id))
        .cloned()
}

async fn verify_by_id(
    State(state): State<FlutterwaveState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    state.authorize(&headers)?;
    verified(transaction_by_id(&state, &id))
}

async fn refund(
    State(state): State<FlutterwaveState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    state.authorize(&headers)?;
    let bad = |message: &str| failure(StatusCode::BAD_REQUEST, message);
    let body = if body.is_empty() {
        json!({})
    } else {
        parse_object(&body).ok_or_else(|| bad("Invalid JSON body"))?
    };
    let requested = match body.get("amount") {
        None | Some(Value::Null) => None,
        Some(Value::String(amount)) => {
            Some(decimal_hundredths(amount).ok_or_else(|| bad("Invalid amount"))?)
        }
        Some(Value::Number(amount)) => {
            Some(decimal_hundredths(&amount.to_string()).ok_or_else(|| bad("Invalid amount"))?)
        }
        Some(_) => return Err(bad("Invalid amount")),
    };
    let tx_ref = transaction_by_id(&state, &id)
        .map(|transaction| transaction.tx_ref)
        .ok_or_else(|| failure(StatusCode::NOT_FOUND, "Transaction not found"))?;
    let mut book = state.book();
    book.next_id += 1;
    let refund_id = book.next_id;
    let transaction = book
        .transactions
        .get_mut(&tx_ref)
        .ok_or_else(|| failure(StatusCode::NOT_FOUND, "Transaction not found"))?;
    if transaction.status != "successful" {
        return Err(bad("Only successful transactions can be refunded"));
    }
    let left = transaction.hundredths - transaction.refunded_hundredths;
    let amount = requested.unwrap_or(left);
    if amount == 0 || amount > left {
        return Err(bad(
            "Refund amount is greater than the amount left on the transaction",
        ));
    }
    transaction.refunded_hundredths += amount;
    Ok(success(
        "Transaction refund initiated",
        json!({
            "id": refund_id, "account_id": 17321, "tx_id": transaction.id,
            "flw_ref": transaction.flw_ref, "wallet_id": 17761,
            "amount_refunded": hundredths_number(amount), "status": "completed",
            "destination": "payment_source", "meta": {"source": "availablebalance"},
            "created_at": hosted::now_iso(),
        }),
    ))
}

fn transaction_by_token(state: &FlutterwaveState, token: &str) -> Option<Transaction> {
    let book = state.book();
    let tx_ref = book.tokens.get(token)?;
    book.transactions.get(tx_ref).cloned()
}

async fn checkout_page(
    State(state): State<FlutterwaveState>,
    Path(token): Path<String>,
) -> Response {
    let Some(transaction) = transaction_by_token(&state, &token) else {
        return (
            StatusCode::NOT_FOUND,
            Html(hosted::result_page("Flutterwave", "Unknown checkout")),
        )
            .into_response();
    };
    let summary = format!(
        "Pay {} {} as {}",
        transaction.currency,
        hundredths_number(transaction.hundredths),
        transaction.email
    );
    Html(hosted::card_page(
        "Flutterwave",
        &summary,
        &format!("/checkout/{token}"),
        TEST_CARDS,
    ))
    .into_response()
}

/// The customer submits the hosted page: the charge succeeds or fails, the
/// webhook goes as `simulate_webhook` says, and the customer is sent to
/// `redirect_url?status=…&tx_ref=…&transaction_id=…`.
async fn pay(
    State(state): State<FlutterwaveState>,
    Path(token): Path<String>,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> Response {
    let number = hosted::card_number(&form);
    let timing = WebhookTiming::parse(form.get("simulate_webhook").map(String::as_str));
    let charged = {
        let mut book = state.book();
        let Some(tx_ref) = book.tokens.get(&token).cloned() else {
            return (
                StatusCode::NOT_FOUND,
                Html(hosted::result_page("Flutterwave", "Unknown checkout")),
            )
                .into_response();
        };
        book.next_id += 1;
        let id = book.next_id;
        let Some(transaction) = book.transactions.get_mut(&tx_ref) else {
            return StatusCode::NOT_FOUND.into_response();
        };
        let first = transaction.status == "pending";
        if first {
            let (status, response) = match number.as_str() {
                CARD_SUCCESS | CARD_SUCCESS_3DS => ("successful", "Approved. Successful"),
                CARD_INSUFFICIENT_FUNDS => ("failed", "Insufficient funds"),
                _ => ("failed", "Declined"),
            };
            transaction.id = Some(id);
            transaction.status = status;
            transaction.processor_response = response;
        }
        (transaction.clone(), first)
    };
    let (transaction, first) = charged;
    if first && let Some(webhook) = state.webhook(&transaction) {
        hosted::deliver_as(&state.context, webhook, timing).await;
    }
    let id = transaction.id.unwrap_or_default().to_string();
    match &transaction.redirect_url {
        Some(url) => Redirect::to(&hosted::with_query(
            url,
            &[
                ("status", transaction.status),
                ("tx_ref", &transaction.tx_ref),
                ("transaction_id", &id),
            ],
        ))
        .into_response(),
        None => Html(hosted::result_page(
            "Flutterwave",
            &format!(
                "Payment {}: {}",
                transaction.status, transaction.processor_response
            ),
        ))
        .into_response(),
    }
}

/// `PUT /simulate/callback-url` `{"url": "..."}` (simulator control).
async fn set_webhook_url(State(state): State<FlutterwaveState>, body: Bytes) -> Response {
    let url = parse_object(&body).and_then(|body| text(&body, "url").map(str::to_string));
    match url.map(|url| state.set_webhook_url(&url)) {
        Some(Ok(())) => StatusCode::NO_CONTENT.into_response(),
        _ => failure(StatusCode::BAD_REQUEST, "send {\"url\": \"http://...\"}").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// providers.md §5's vector.
    #[test]
    fn signatures_match_the_shared_test_vector() {
        assert_eq!(
            signature(
                "my_secret_hash",
                br#"{"event":"charge.completed","data":{"id":285959875,"tx_ref":"Links-616626414629","status":"successful","amount":100,"currency":"NGN"}}"#
            ),
            "Ms57A29vlXGh3MatCH8yIS5+FOnDUK9W07WSrsn+Kt4="
        );
    }
}
