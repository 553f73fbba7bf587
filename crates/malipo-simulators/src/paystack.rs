//! Paystack: initialize a transaction, the hosted checkout page, verify,
//! refunds, and signed webhooks to the URL configured on the simulated
//! dashboard.
//!
//! | path | method | what |
//! |---|---|---|
//! | `/transaction/initialize` | POST | JSON: email, amount (subunit integer), currency, reference, callback_url, channels, metadata; answers `authorization_url`, `access_code`, `reference` |
//! | `/transaction/verify/{reference}` | GET | the transaction (`status`: `abandoned` until paid, then `success` or `failed`) |
//! | `/refund` | POST | `transaction` (reference or id), `amount` (optional: the rest); `pending`, then `processed` after `callback_delay_ms` |
//! | `/refund/{id}` | GET | a refund |
//! | `/checkout/{access_code}` | GET, POST | the hosted page: a form of test cards; submitting pays |
//! | `/simulate/callback-url` | PUT | simulator control: `{"url": "..."}` sets the webhook URL |
//!
//! Every API call needs `Authorization: Bearer <secret key>`; otherwise 401
//! `{"status": false, "message": "Invalid key"}`. Answers wrap
//! `{"status": bool, "message": str, "data": …}`. References take letters,
//! digits, `-`, `.` and `=`; a reused one is 400 `duplicate_reference`.
//!
//! Webhooks carry `x-paystack-signature`: hex HMAC-SHA512 of the exact body
//! keyed with the secret key ([`signature`]). `charge.success` follows a
//! paid transaction (none follows a failed one, as at Paystack);
//! `refund.processed` a processed refund.
//!
//! Test cards ([`TEST_CARDS`], Paystack's documented numbers): any other
//! number is declined ("Declined").

use crate::context::{Callback, SimulatorContext, is_callback_url};
use crate::hosted::{self, TestCard, WebhookTiming};
use crate::json::{parse_object, text};
use crate::{Error, ids};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post, put};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha512;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Succeeds without further checks.
pub const CARD_SUCCESS: &str = "4084084084084081";
/// Declined: "Insufficient Funds".
pub const CARD_INSUFFICIENT_FUNDS: &str = "4084080000005408";
/// The currencies the simulated integration takes.
pub const CURRENCIES: &[&str] = &["NGN", "GHS", "KES", "ZAR", "USD"];

/// The hosted page's test cards.
pub const TEST_CARDS: &[TestCard] = &[
    TestCard {
        number: CARD_SUCCESS,
        description: "succeeds (any CVV, any future expiry)",
    },
    TestCard {
        number: CARD_INSUFFICIENT_FUNDS,
        description: "declined: Insufficient Funds",
    },
];

/// `x-paystack-signature` of `body` under `secret_key`.
pub fn signature(secret_key: &str, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha512>::new_from_slice(secret_key.as_bytes()) else {
        return String::new();
    };
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[derive(Debug, Clone)]
struct Transaction {
    id: u64,
    reference: String,
    access_code: String,
    amount: u64,
    currency: String,
    email: String,
    callback_url: Option<String>,
    metadata: Value,
    /// `abandoned` until the page is submitted, then `success` or `failed`.
    status: &'static str,
    gateway_response: &'static str,
    paid_at: Option<String>,
    created_at: String,
    last4: Option<String>,
    refunded: u64,
}

impl Transaction {
    fn json(&self) -> Value {
        json!({
            "id": self.id,
            "domain": "test",
            "status": self.status,
            "reference": self.reference,
            "receipt_number": null,
            "amount": self.amount,
            "message": null,
            "gateway_response": self.gateway_response,
            "paid_at": self.paid_at,
            "created_at": self.created_at,
            "channel": "card",
            "currency": self.currency,
            "ip_address": "127.0.0.1",
            "metadata": self.metadata,
            "log": null,
            "fees": if self.status == "success" { self.amount * 15 / 1000 } else { 0 },
            "fees_split": null,
            "authorization": self.last4.as_ref().map(|last4| json!({
                "authorization_code": format!("AUTH_{}", self.access_code),
                "bin": "408408", "last4": last4, "exp_month": "12", "exp_year": "2030",
                "channel": "card", "card_type": "visa ", "bank": "TEST BANK",
                "country_code": "NG", "brand": "visa", "reusable": true,
                "signature": format!("SIG_{}", self.access_code), "account_name": null,
            })).unwrap_or_else(|| json!({})),
            "customer": {"id": 1, "first_name": null, "last_name": null, "email": self.email,
                "customer_code": "CUS_simulator", "phone": null, "metadata": null,
                "risk_action": "default", "international_format_phone": null},
            "plan": null, "split": {}, "order_id": null,
            "paidAt": self.paid_at, "createdAt": self.created_at,
            "requested_amount": self.amount, "transaction_date": self.created_at,
        })
    }
}

#[derive(Debug, Clone)]
struct Refund {
    id: u64,
    reference: String,
    amount: u64,
    currency: String,
    status: &'static str,
    created_at: String,
}

impl Refund {
    fn json(&self, transaction: &Transaction) -> Value {
        json!({
            "transaction": {"id": transaction.id, "reference": transaction.reference,
                "amount": transaction.amount, "currency": transaction.currency},
            "integration": 412829, "deducted_amount": 0, "channel": null,
            "merchant_note": "Refund", "customer_note": "Refund",
            "status": self.status, "refunded_by": "simulator",
            "expected_at": self.created_at, "currency": self.currency, "domain": "test",
            "amount": self.amount, "fully_deducted": false, "id": self.id,
            "createdAt": self.created_at, "updatedAt": self.created_at,
        })
    }
}

#[derive(Debug, Default)]
struct Book {
    transactions: HashMap<String, Transaction>,
    access_codes: HashMap<String, String>,
    refunds: HashMap<u64, Refund>,
    next_id: u64,
    webhook_url: Option<String>,
}

/// The Paystack simulator's state; serve it with [`router`].
#[derive(Debug, Clone)]
pub struct PaystackState {
    context: SimulatorContext,
    book: Arc<Mutex<Book>>,
}

/// A Paystack error answer: `{"status": false, "message": …}`, plus
/// `type` and `code` for validation errors that have them.
#[derive(Debug)]
pub(crate) struct PaystackError {
    status: StatusCode,
    message: String,
    code: Option<&'static str>,
}

impl IntoResponse for PaystackError {
    fn into_response(self) -> Response {
        let mut body = json!({"status": false, "message": self.message});
        if let Some(code) = self.code {
            body["meta"] = json!({"nextStep": "Ensure that you're passing a unique reference"});
            body["type"] = json!("validation_error");
            body["code"] = json!(code);
        }
        (self.status, axum::Json(body)).into_response()
    }
}

type ApiResult = Result<Response, PaystackError>;

fn failure(status: StatusCode, message: &str) -> PaystackError {
    PaystackError {
        status,
        message: message.to_string(),
        code: None,
    }
}

fn success(message: &str, data: Value) -> Response {
    axum::Json(json!({"status": true, "message": message, "data": data})).into_response()
}

impl PaystackState {
    pub fn new(context: SimulatorContext) -> PaystackState {
        let webhook_url = context.config().paystack.webhook_url.clone();
        PaystackState {
            book: Arc::new(Mutex::new(Book {
                next_id: 4_099_260_516,
                webhook_url,
                ..Book::default()
            })),
            context,
        }
    }

    fn secret_key(&self) -> &str {
        &self.context.config().paystack.secret_key
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

    fn authorize(&self, headers: &HeaderMap) -> Result<(), PaystackError> {
        if crate::tokens::bearer(headers) == Some(self.secret_key()) {
            Ok(())
        } else {
            Err(failure(StatusCode::UNAUTHORIZED, "Invalid key"))
        }
    }

    /// A signed webhook of `event` with `data`, if a URL is configured.
    fn webhook(&self, event: &str, data: Value) -> Option<Callback> {
        let url = self.book().webhook_url.clone()?;
        let body = json!({"event": event, "data": data});
        let mut callback = Callback::post("paystack_webhook", &url, body);
        let signature = signature(self.secret_key(), callback.body.to_string().as_bytes());
        callback
            .headers
            .push(("x-paystack-signature".into(), signature));
        Some(callback)
    }
}

/// The Paystack routes over `state`.
pub fn router(state: PaystackState) -> Router {
    Router::new()
        .route("/transaction/initialize", post(initialize))
        .route("/transaction/verify/{reference}", get(verify))
        .route("/refund", post(create_refund))
        .route("/refund/{id}", get(fetch_refund))
        .route("/checkout/{access_code}", get(checkout_page).post(pay))
        .route("/simulate/callback-url", put(set_webhook_url))
        .fallback(|| async { failure(StatusCode::NOT_FOUND, "Resource not found") })
        .with_state(state)
}

fn valid_reference(reference: &str) -> bool {
    !reference.is_empty()
        && reference.len() <= 100
        && reference
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'='))
}

async fn initialize(
    State(state): State<PaystackState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    state.authorize(&headers)?;
    let bad = |message: &str| failure(StatusCode::BAD_REQUEST, message);
    let body = parse_object(&body).ok_or_else(|| bad("Invalid JSON body"))?;
    let email = text(&body, "email")
        .filter(|email| email.contains('@'))
        .ok_or_else(|| bad("Invalid Email Address Passed"))?;
    let amount = match body.get("amount") {
        Some(Value::Number(number)) => number.as_u64(),
        Some(Value::String(text)) => text.parse().ok(),
        _ => None,
    }
    .filter(|amount| *amount > 0)
    .ok_or_else(|| bad("Invalid Amount Sent"))?;
    let currency = text(&body, "currency")
        .unwrap_or("NGN")
        .to_ascii_uppercase();
    if !CURRENCIES.contains(&currency.as_str()) {
        return Err(bad("Currency not supported by merchant"));
    }
    let reference = match text(&body, "reference") {
        Some(reference) if valid_reference(reference) => reference.to_string(),
        Some(_) => {
            return Err(bad(
                "Invalid transaction reference: only -, ., = and alphanumeric characters allowed",
            ));
        }
        None => ids::hex(10),
    };
    let callback_url = match body.get("callback_url") {
        None | Some(Value::Null) => None,
        Some(Value::String(url)) if is_callback_url(url) => Some(url.clone()),
        Some(_) => return Err(bad("Invalid callback_url")),
    };
    let access_code = ids::hex(10);
    let origin = hosted::origin(&headers);
    {
        let mut book = state.book();
        if book.transactions.contains_key(&reference) {
            return Err(PaystackError {
                status: StatusCode::BAD_REQUEST,
                message: "Duplicate Transaction Reference".into(),
                code: Some("duplicate_reference"),
            });
        }
        if book.transactions.len() >= state.context.config().transactions_max {
            return Err(failure(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service unavailable",
            ));
        }
        book.next_id += 1;
        let transaction = Transaction {
            id: book.next_id,
            reference: reference.clone(),
            access_code: access_code.clone(),
            amount,
            currency,
            email: email.to_string(),
            callback_url,
            metadata: body.get("metadata").cloned().unwrap_or(Value::Null),
            status: "abandoned",
            gateway_response: "The transaction was not completed",
            paid_at: None,
            created_at: hosted::now_iso(),
            last4: None,
            refunded: 0,
        };
        book.access_codes
            .insert(access_code.clone(), reference.clone());
        book.transactions.insert(reference.clone(), transaction);
    }
    Ok(success(
        "Authorization URL created",
        json!({
            "authorization_url": format!("{origin}/checkout/{access_code}"),
            "access_code": access_code,
            "reference": reference,
        }),
    ))
}

async fn verify(
    State(state): State<PaystackState>,
    Path(reference): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    state.authorize(&headers)?;
    let transaction = state
        .book()
        .transactions
        .get(&reference)
        .cloned()
        .ok_or_else(|| failure(StatusCode::NOT_FOUND, "Transaction reference not found"))?;
    Ok(success("Verification successful", transaction.json()))
}

fn transaction_by_code(state: &PaystackState, access_code: &str) -> Option<Transaction> {
    let book = state.book();
    let reference = book.access_codes.get(access_code)?;
    book.transactions.get(reference).cloned()
}

async fn checkout_page(
    State(state): State<PaystackState>,
    Path(access_code): Path<String>,
) -> Response {
    let Some(transaction) = transaction_by_code(&state, &access_code) else {
        return (
            StatusCode::NOT_FOUND,
            Html(hosted::result_page("Paystack", "Unknown checkout")),
        )
            .into_response();
    };
    let summary = format!(
        "Pay {} {} (subunits) as {}",
        transaction.currency, transaction.amount, transaction.email
    );
    Html(hosted::card_page(
        "Paystack",
        &summary,
        &format!("/checkout/{access_code}"),
        TEST_CARDS,
    ))
    .into_response()
}

/// The customer submits the hosted page: the transaction is paid or
/// declined, the webhook goes as `simulate_webhook` says, and the customer
/// is sent to `callback_url?trxref=…&reference=…`.
async fn pay(
    State(state): State<PaystackState>,
    Path(access_code): Path<String>,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> Response {
    let number = hosted::card_number(&form);
    let timing = WebhookTiming::parse(form.get("simulate_webhook").map(String::as_str));
    let paid = {
        let mut book = state.book();
        let Some(reference) = book.access_codes.get(&access_code).cloned() else {
            return (
                StatusCode::NOT_FOUND,
                Html(hosted::result_page("Paystack", "Unknown checkout")),
            )
                .into_response();
        };
        let Some(transaction) = book.transactions.get_mut(&reference) else {
            return StatusCode::NOT_FOUND.into_response();
        };
        if transaction.status == "abandoned" {
            let (status, response) = match number.as_str() {
                CARD_SUCCESS => ("success", "Successful"),
                CARD_INSUFFICIENT_FUNDS => ("failed", "Insufficient Funds"),
                _ => ("failed", "Declined"),
            };
            transaction.status = status;
            transaction.gateway_response = response;
            transaction.last4 = number
                .get(number.len().saturating_sub(4)..)
                .map(str::to_string);
            if status == "success" {
                transaction.paid_at = Some(hosted::now_iso());
            }
        }
        transaction.clone()
    };
    if paid.status == "success"
        && let Some(webhook) = state.webhook("charge.success", paid.json())
    {
        hosted::deliver_as(&state.context, webhook, timing).await;
    }
    match &paid.callback_url {
        Some(url) => Redirect::to(&hosted::with_query(
            url,
            &[("trxref", &paid.reference), ("reference", &paid.reference)],
        ))
        .into_response(),
        None => Html(hosted::result_page(
            "Paystack",
            &format!("Payment {}: {}", paid.status, paid.gateway_response),
        ))
        .into_response(),
    }
}

async fn create_refund(
    State(state): State<PaystackState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    state.authorize(&headers)?;
    let bad = |message: &str| failure(StatusCode::BAD_REQUEST, message);
    let body = parse_object(&body).ok_or_else(|| bad("Invalid JSON body"))?;
    let transaction_key = body
        .get("transaction")
        .and_then(|value| match value {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        })
        .ok_or_else(|| bad("Transaction reference or id is required"))?;
    let requested = match body.get("amount") {
        None | Some(Value::Null) => None,
        Some(Value::Number(number)) => Some(number.as_u64().ok_or_else(|| bad("Invalid amount"))?),
        Some(Value::String(text)) => Some(text.parse().map_err(|_| bad("Invalid amount"))?),
        Some(_) => return Err(bad("Invalid amount")),
    };
    let (refund, transaction) = {
        let mut book = state.book();
        let reference = book
            .transactions
            .values()
            .find(|transaction| {
                transaction.reference == transaction_key
                    || transaction.id.to_string() == transaction_key
            })
            .map(|transaction| transaction.reference.clone())
            .ok_or_else(|| failure(StatusCode::NOT_FOUND, "Transaction not found"))?;
        book.next_id += 1;
        let id = book.next_id;
        let transaction = book
            .transactions
            .get_mut(&reference)
            .ok_or_else(|| failure(StatusCode::NOT_FOUND, "Transaction not found"))?;
        if transaction.status != "success" {
            return Err(bad("Transaction has not been paid"));
        }
        let left = transaction.amount - transaction.refunded;
        let amount = requested.unwrap_or(left);
        if amount == 0 || amount > left {
            return Err(bad(
                "Refund amount cannot be greater than the transaction amount left",
            ));
        }
        transaction.refunded += amount;
        let refund = Refund {
            id,
            reference: reference.clone(),
            amount,
            currency: transaction.currency.clone(),
            status: "pending",
            created_at: hosted::now_iso(),
        };
        let transaction = transaction.clone();
        book.refunds.insert(id, refund.clone());
        (refund, transaction)
    };
    let task_state = state.clone();
    let id = refund.id;
    state.context.spawn(async move {
        task_state.context.customer_delay().await;
        let processed = {
            let mut book = task_state.book();
            let Some(refund) = book.refunds.get_mut(&id) else {
                return;
            };
            refund.status = "processed";
            refund.clone()
        };
        let data = json!({
            "status": "processed",
            "transaction_reference": processed.reference,
            "refund_reference": processed.id.to_string(),
            "amount": processed.amount.to_string(),
            "currency": processed.currency,
            "processor": "simulator",
            "customer": {"first_name": null, "last_name": null, "email": null},
            "integration": 412829,
            "domain": "test",
        });
        if let Some(webhook) = task_state.webhook("refund.processed", data) {
            task_state.context.deliver(&webhook).await;
        }
    });
    Ok(success(
        "Refund has been queued for processing",
        refund.json(&transaction),
    ))
}

async fn fetch_refund(
    State(state): State<PaystackState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    state.authorize(&headers)?;
    let book = state.book();
    let refund = id
        .parse::<u64>()
        .ok()
        .and_then(|id| book.refunds.get(&id))
        .ok_or_else(|| failure(StatusCode::NOT_FOUND, "Refund not found"))?;
    let transaction = book
        .transactions
        .get(&refund.reference)
        .ok_or_else(|| failure(StatusCode::NOT_FOUND, "Transaction not found"))?;
    Ok(success("Refund retrieved", refund.json(transaction)))
}

/// `PUT /simulate/callback-url` `{"url": "..."}` (simulator control).
async fn set_webhook_url(State(state): State<PaystackState>, body: Bytes) -> Response {
    let url = parse_object(&body).and_then(|body| text(&body, "url").map(str::to_string));
    match url.map(|url| state.set_webhook_url(&url)) {
        Some(Ok(())) => StatusCode::NO_CONTENT.into_response(),
        _ => (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "text/plain")],
            "send {\"url\": \"http://...\"}",
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// providers.md §4's vectors.
    #[test]
    fn signatures_match_the_shared_test_vectors() {
        let key = "sk_test_0123456789abcdef0123456789abcdef01234567";
        assert_eq!(
            signature(
                key,
                br#"{"event":"charge.success","data":{"id":302961,"status":"success","reference":"qTPrJoy9Bx","amount":10000,"currency":"NGN"}}"#
            ),
            "bf0ab04917335673cf1ad5f189432300b7b8689a79c69193f57b0d5f4816e84a05ed43baec972c19738dfe67dd1be3592901a0949e74e52d23903ca1baedbc08"
        );
        assert_eq!(
            signature(
                key,
                br#"{"event":"refund.processed","data":{"status":"processed","transaction_reference":"T2154954_412829_3be32076_6lcg3","refund_reference":"132013318360","amount":"5000","currency":"NGN"}}"#
            ),
            "153480c4330780b4ac4392aa4f7085c47521eeb1aa7faa74d660db7f3d2b17daf3b07474625debf34e102ca75cbea4f1c6d81c20d353f957f7730ad76a555a36"
        );
    }

    #[test]
    fn references_take_paystacks_characters() {
        assert!(valid_reference("pay-01JABC.x=1"));
        assert!(!valid_reference("pay_01JABC"));
        assert!(!valid_reference(""));
    }
}
