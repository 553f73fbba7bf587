//! Stripe: PaymentIntents (create, retrieve, confirm, cancel), refunds, the
//! 3-D Secure challenge page, and `Stripe-Signature` webhooks to the URL
//! configured on the simulated dashboard.
//!
//! | path | method | what |
//! |---|---|---|
//! | `/v1/payment_intents` | POST | form: amount, currency, payment_method, confirm, return_url, capture_method, description, metadata[…] |
//! | `/v1/payment_intents/{id}` | GET | retrieve |
//! | `/v1/payment_intents/{id}/confirm` | POST | form: payment_method, return_url |
//! | `/v1/payment_intents/{id}/capture` | POST | form: amount_to_capture (optional: all); only from `requires_capture`, the rest is released |
//! | `/v1/payment_intents/{id}/cancel` | POST | form: cancellation_reason (optional); not once `succeeded` or `canceled` |
//! | `/v1/refunds` | POST | form: payment_intent, amount (optional: the rest), reason; `succeeded` at once |
//! | `/v1/refunds/{id}` | GET | retrieve |
//! | `/3ds/{id}` | GET, POST | the 3-D Secure challenge (a form: complete or fail) |
//! | `/simulate/callback-url` | PUT | simulator control: `{"url": "..."}` sets the webhook URL |
//!
//! Every API call needs `Authorization: Bearer <secret key>` (or Basic with
//! the key as user); bodies are `application/x-www-form-urlencoded` with
//! bracket notation; answers are JSON; errors are
//! `{"error": {"type", "code", "decline_code", "message", "param"}}` with
//! Stripe's statuses (400, 401, 402 for declines, 404). An
//! `Idempotency-Key` replays the first answer for the same key.
//!
//! Payment methods ([`PAYMENT_METHODS`], Stripe's test tokens and card
//! numbers): `pm_card_visa` succeeds, `pm_card_chargeDeclined` is declined
//! (`card_declined` / `generic_decline`), `…InsufficientFunds` (decline
//! code `insufficient_funds`), `…ExpiredCard`, `…IncorrectCvc`, and
//! `pm_card_authenticationRequired` needs 3-D Secure: the PaymentIntent is
//! `requires_action` with `next_action.redirect_to_url` to the challenge
//! page; completing it succeeds, failing it returns the intent to
//! `requires_payment_method` with `payment_intent_authentication_failure`.
//!
//! Manual capture (`capture_method=manual`): a good card leaves the intent
//! `requires_capture` with `amount_capturable` (webhook
//! `payment_intent.amount_capturable_updated`); a capture makes it
//! `succeeded` with `amount_received` the captured amount, a cancel
//! `canceled` with `amount_capturable` 0. Capturing in another status is
//! 400 `payment_intent_unexpected_state`, as at Stripe.
//!
//! Webhooks: `payment_intent.succeeded`, `payment_intent.payment_failed`,
//! `payment_intent.amount_capturable_updated`, `payment_intent.canceled`,
//! `refund.created`, signed
//! `Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">` with the
//! endpoint secret ([`signature_header`]), sent after
//! `callback_delay_ms` (the challenge page: as its `simulate_webhook` says).

use crate::clock::now_unix_ms;
use crate::context::{Callback, SimulatorContext, is_callback_url};
use crate::hosted::{self, WebhookTiming};
use crate::json::{parse_object, text};
use crate::{Error, ids};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post, put};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// What confirming with a payment method does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardBehaviour {
    Succeeds,
    /// Declined with this `code` and `decline_code`.
    Declined {
        code: &'static str,
        decline_code: &'static str,
        message: &'static str,
    },
    /// Needs 3-D Secure: `requires_action` with a redirect.
    RequiresAuthentication,
}

/// Stripe's test payment methods: (token, card number, behaviour).
pub const PAYMENT_METHODS: &[(&str, &str, CardBehaviour)] = &[
    ("pm_card_visa", "4242424242424242", CardBehaviour::Succeeds),
    (
        "pm_card_chargeDeclined",
        "4000000000000002",
        CardBehaviour::Declined {
            code: "card_declined",
            decline_code: "generic_decline",
            message: "Your card was declined.",
        },
    ),
    (
        "pm_card_chargeDeclinedInsufficientFunds",
        "4000000000009995",
        CardBehaviour::Declined {
            code: "card_declined",
            decline_code: "insufficient_funds",
            message: "Your card has insufficient funds.",
        },
    ),
    (
        "pm_card_chargeDeclinedExpiredCard",
        "4000000000000069",
        CardBehaviour::Declined {
            code: "expired_card",
            decline_code: "expired_card",
            message: "Your card has expired.",
        },
    ),
    (
        "pm_card_chargeDeclinedIncorrectCvc",
        "4000000000000127",
        CardBehaviour::Declined {
            code: "incorrect_cvc",
            decline_code: "incorrect_cvc",
            message: "Your card's security code is incorrect.",
        },
    ),
    (
        "pm_card_authenticationRequired",
        "4000002500003155",
        CardBehaviour::RequiresAuthentication,
    ),
];

/// `Stripe-Signature` for `body` signed at `timestamp` with `secret` (the
/// whole `whsec_…` string is the key).
pub fn signature_header(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// A Stripe error answer.
#[derive(Debug)]
pub(crate) struct StripeError {
    status: StatusCode,
    body: Value,
}

impl IntoResponse for StripeError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(json!({"error": self.body}))).into_response()
    }
}

fn invalid(message: &str, param: Option<&str>) -> StripeError {
    StripeError {
        status: StatusCode::BAD_REQUEST,
        body: json!({"type": "invalid_request_error", "message": message, "param": param}),
    }
}

fn missing(kind: &str, id: &str) -> StripeError {
    StripeError {
        status: StatusCode::NOT_FOUND,
        body: json!({"type": "invalid_request_error", "code": "resource_missing",
            "message": format!("No such {kind}: '{id}'"), "param": "id"}),
    }
}

type ApiResult = Result<Response, StripeError>;

/// A form body as (key, value) pairs, in order.
fn form(body: &[u8]) -> Vec<(String, String)> {
    // `Url` parses `application/x-www-form-urlencoded` exactly as a query.
    let text = String::from_utf8_lossy(body);
    reqwest::Url::parse(&format!("http://form.invalid/?{text}"))
        .map(|url| url.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

fn field<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(name, _)| name == key)
        .map(|(_, value)| value.as_str())
}

/// `metadata[k]=v` pairs as an object.
fn metadata(pairs: &[(String, String)]) -> Value {
    let map: Map<String, Value> = pairs
        .iter()
        .filter_map(|(name, value)| {
            name.strip_prefix("metadata[")
                .and_then(|rest| rest.strip_suffix(']'))
                .map(|key| (key.to_string(), Value::String(value.clone())))
        })
        .collect();
    Value::Object(map)
}

#[derive(Debug, Clone)]
struct Intent {
    object: Value,
    return_url: Option<String>,
    refunded: u64,
}

impl Intent {
    fn id(&self) -> String {
        self.object["id"].as_str().unwrap_or_default().to_string()
    }

    fn status(&self) -> &str {
        self.object["status"].as_str().unwrap_or_default()
    }

    fn set(&mut self, key: &str, value: Value) {
        self.object[key] = value;
    }
}

#[derive(Debug, Default)]
struct Book {
    intents: HashMap<String, Intent>,
    refunds: HashMap<String, Value>,
    /// Idempotency-Key -> the answer given (status, body).
    idempotent: HashMap<String, (u16, Value)>,
    webhook_url: Option<String>,
}

/// The Stripe simulator's state; serve it with [`router`].
#[derive(Debug, Clone)]
pub struct StripeState {
    context: SimulatorContext,
    book: Arc<Mutex<Book>>,
}

impl StripeState {
    pub fn new(context: SimulatorContext) -> StripeState {
        let webhook_url = context.config().stripe.webhook_url.clone();
        StripeState {
            book: Arc::new(Mutex::new(Book {
                webhook_url,
                ..Book::default()
            })),
            context,
        }
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

    fn authorize(&self, headers: &HeaderMap) -> Result<(), StripeError> {
        let key = self.context.config().stripe.secret_key.as_str();
        let bearer = crate::tokens::bearer(headers) == Some(key);
        let basic = matches!(crate::tokens::basic(headers), Ok(Some((user, _))) if user == key);
        if bearer || basic {
            Ok(())
        } else {
            Err(StripeError {
                status: StatusCode::UNAUTHORIZED,
                body: json!({"type": "invalid_request_error",
                    "message": "Invalid API Key provided: sk_test_****"}),
            })
        }
    }

    /// A signed event of `kind` about `object`, if a URL is configured.
    fn event(&self, kind: &str, object: &Value) -> Option<Callback> {
        let url = self.book().webhook_url.clone()?;
        let now = now_unix_ms() / 1000;
        let body = json!({
            "id": format!("evt_{}", ids::token(24)), "object": "event",
            "api_version": "2023-10-16", "created": now,
            "data": {"object": object}, "livemode": false, "pending_webhooks": 1,
            "request": {"id": null, "idempotency_key": null}, "type": kind,
        });
        let mut callback = Callback::post("stripe_webhook", &url, body);
        let header = signature_header(
            &self.context.config().stripe.webhook_secret,
            now,
            callback.body.to_string().as_bytes(),
        );
        callback.headers.push(("stripe-signature".into(), header));
        Some(callback)
    }

    /// Sends `callback` (if any) as `timing` says.
    async fn send(&self, callback: Option<Callback>, timing: WebhookTiming) {
        if let Some(callback) = callback {
            hosted::deliver_as(&self.context, callback, timing).await;
        }
    }
}

/// The Stripe routes over `state`.
pub fn router(state: StripeState) -> Router {
    Router::new()
        .route("/v1/payment_intents", post(create_intent))
        .route("/v1/payment_intents/{id}", get(retrieve_intent))
        .route("/v1/payment_intents/{id}/confirm", post(confirm_intent))
        .route("/v1/payment_intents/{id}/capture", post(capture_intent))
        .route("/v1/payment_intents/{id}/cancel", post(cancel_intent))
        .route("/v1/refunds", post(create_refund))
        .route("/v1/refunds/{id}", get(retrieve_refund))
        .route("/3ds/{id}", get(challenge_page).post(challenge))
        .route("/simulate/callback-url", put(set_webhook_url))
        .fallback(|| async { invalid("Unrecognized request URL.", None) })
        .with_state(state)
}

/// Answers for an `Idempotency-Key` already used, or runs `run` and keeps
/// its answer.
fn idempotent(
    state: &StripeState,
    headers: &HeaderMap,
    run: impl FnOnce() -> Result<Value, StripeError>,
) -> ApiResult {
    let key = headers
        .get("idempotency-key")
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    if let Some(key) = &key
        && let Some((status, body)) = state.book().idempotent.get(key).cloned()
    {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
        return Ok((status, [("idempotent-replayed", "true")], axum::Json(body)).into_response());
    }
    let (status, body) = match run() {
        Ok(body) => (StatusCode::OK, body),
        Err(error) => (error.status, json!({"error": error.body})),
    };
    if let Some(key) = key {
        state
            .book()
            .idempotent
            .insert(key, (status.as_u16(), body.clone()));
    }
    Ok((status, axum::Json(body)).into_response())
}

async fn create_intent(
    State(state): State<StripeState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    state.authorize(&headers)?;
    let pairs = form(&body);
    let origin = hosted::origin(&headers);
    let (answer, webhook) = {
        let mut webhook = None;
        let answer = idempotent(&state, &headers, || {
            let amount = field(&pairs, "amount")
                .and_then(|amount| amount.parse::<u64>().ok())
                .filter(|amount| *amount > 0)
                .ok_or_else(|| invalid("Missing required param: amount.", Some("amount")))?;
            let currency = field(&pairs, "currency")
                .filter(|currency| {
                    currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_lowercase())
                })
                .ok_or_else(|| invalid("Invalid currency.", Some("currency")))?;
            let capture_method = field(&pairs, "capture_method").unwrap_or("automatic");
            if !matches!(capture_method, "automatic" | "automatic_async" | "manual") {
                return Err(invalid("Invalid capture_method.", Some("capture_method")));
            }
            let id = format!("pi_{}", ids::token(24));
            let object = json!({
                "id": id, "object": "payment_intent", "amount": amount,
                "amount_capturable": 0, "amount_received": 0, "currency": currency,
                "status": "requires_payment_method", "capture_method": capture_method,
                "confirmation_method": "automatic",
                "client_secret": format!("{id}_secret_{}", ids::token(24)),
                "customer": null, "description": field(&pairs, "description"),
                "last_payment_error": null, "latest_charge": null, "livemode": false,
                "metadata": metadata(&pairs), "next_action": null, "payment_method": null,
                "payment_method_types": ["card"], "canceled_at": null,
                "cancellation_reason": null, "created": now_unix_ms() / 1000,
            });
            let mut intent = Intent {
                object,
                return_url: field(&pairs, "return_url").map(str::to_string),
                refunded: 0,
            };
            let confirm = field(&pairs, "confirm") == Some("true");
            let result = if confirm {
                confirm_with(&mut intent, &pairs, &origin)
            } else {
                Ok(None)
            };
            let object = intent.object.clone();
            state.book().intents.insert(id, intent);
            webhook = result.as_ref().ok().cloned().flatten().or_else(|| {
                result
                    .as_ref()
                    .err()
                    .map(|_| ("payment_intent.payment_failed", object.clone()))
            });
            result.map(|_| object)
        })?;
        (answer, webhook)
    };
    if let Some((kind, object)) = webhook {
        let callback = state.event(kind, &object);
        state.send(callback, WebhookTiming::AfterRedirect).await;
    }
    Ok(answer)
}

/// Confirms `intent` with the form's payment method: answers the webhook
/// the change sends (if any), or the decline (402) or a refusal.
fn confirm_with(
    intent: &mut Intent,
    pairs: &[(String, String)],
    origin: &str,
) -> Result<Option<(&'static str, Value)>, StripeError> {
    if !matches!(
        intent.status(),
        "requires_payment_method" | "requires_confirmation"
    ) {
        return Err(invalid(
            &format!(
                "This PaymentIntent's status is {}; it can't be confirmed.",
                intent.status()
            ),
            None,
        ));
    }
    if let Some(return_url) = field(pairs, "return_url") {
        intent.return_url = Some(return_url.to_string());
    }
    let token = field(pairs, "payment_method")
        .ok_or_else(|| invalid("You must provide a payment_method.", Some("payment_method")))?;
    let (_, _, behaviour) = PAYMENT_METHODS
        .iter()
        .find(|(pm, number, _)| *pm == token || *number == token)
        .ok_or_else(|| missing("PaymentMethod", token))?;
    let id = intent.id();
    intent.set("payment_method", json!(format!("pm_{}", ids::token(24))));
    intent.set("last_payment_error", Value::Null);
    match *behaviour {
        CardBehaviour::Succeeds => Ok(Some((succeed(intent), intent.object.clone()))),
        CardBehaviour::RequiresAuthentication => {
            let return_url = intent.return_url.clone().ok_or_else(|| {
                invalid(
                    "This payment requires authentication: provide a return_url.",
                    Some("return_url"),
                )
            })?;
            intent.set("status", json!("requires_action"));
            intent.set(
                "next_action",
                json!({"type": "redirect_to_url", "redirect_to_url": {
                    "url": format!("{origin}/3ds/{id}"), "return_url": return_url}}),
            );
            Ok(None)
        }
        CardBehaviour::Declined {
            code,
            decline_code,
            message,
        } => {
            let error = json!({"type": "card_error", "code": code, "decline_code": decline_code,
                "message": message, "param": null,
                "doc_url": format!("https://stripe.com/docs/error-codes/{}", code.replace('_', "-"))});
            intent.set("status", json!("requires_payment_method"));
            intent.set("last_payment_error", error.clone());
            let mut body = error;
            body["payment_intent"] = intent.object.clone();
            Err(StripeError {
                status: StatusCode::PAYMENT_REQUIRED,
                body,
            })
        }
    }
}

/// The card went through: the intent succeeds, or with manual capture is
/// authorised (`requires_capture`); answers the webhook's type.
fn succeed(intent: &mut Intent) -> &'static str {
    let amount = intent.object["amount"].clone();
    intent.set("next_action", Value::Null);
    intent.set("latest_charge", json!(format!("ch_{}", ids::token(24))));
    if intent.object["capture_method"] == "manual" {
        intent.set("status", json!("requires_capture"));
        intent.set("amount_capturable", amount);
        "payment_intent.amount_capturable_updated"
    } else {
        intent.set("status", json!("succeeded"));
        intent.set("amount_received", amount);
        "payment_intent.succeeded"
    }
}

async fn retrieve_intent(
    State(state): State<StripeState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    state.authorize(&headers)?;
    let intent = state
        .book()
        .intents
        .get(&id)
        .map(|intent| intent.object.clone())
        .ok_or_else(|| missing("payment_intent", &id))?;
    Ok(axum::Json(intent).into_response())
}

async fn confirm_intent(
    State(state): State<StripeState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    state.authorize(&headers)?;
    let pairs = form(&body);
    let origin = hosted::origin(&headers);
    let (result, object) = {
        let mut book = state.book();
        let intent = book
            .intents
            .get_mut(&id)
            .ok_or_else(|| missing("payment_intent", &id))?;
        let result = confirm_with(intent, &pairs, &origin);
        (result, intent.object.clone())
    };
    let webhook = match &result {
        Ok(webhook) => webhook.clone(),
        Err(error) if error.status == StatusCode::PAYMENT_REQUIRED => {
            Some(("payment_intent.payment_failed", object.clone()))
        }
        Err(_) => None,
    };
    if let Some((kind, object)) = webhook {
        let callback = state.event(kind, &object);
        state.send(callback, WebhookTiming::AfterRedirect).await;
    }
    result.map(|_| axum::Json(object).into_response())
}

async fn cancel_intent(
    State(state): State<StripeState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    state.authorize(&headers)?;
    let pairs = form(&body);
    let reason = field(&pairs, "cancellation_reason");
    if reason.is_some_and(|reason| {
        !matches!(
            reason,
            "duplicate" | "fraudulent" | "requested_by_customer" | "abandoned"
        )
    }) {
        return Err(invalid(
            "Invalid cancellation_reason.",
            Some("cancellation_reason"),
        ));
    }
    let object = {
        let mut book = state.book();
        let intent = book
            .intents
            .get_mut(&id)
            .ok_or_else(|| missing("payment_intent", &id))?;
        if matches!(intent.status(), "succeeded" | "canceled") {
            return Err(invalid(
                &format!(
                    "You cannot cancel this PaymentIntent because it has a status of {}.",
                    intent.status()
                ),
                None,
            ));
        }
        intent.set("status", json!("canceled"));
        intent.set("next_action", Value::Null);
        intent.set("amount_capturable", json!(0));
        intent.set("cancellation_reason", json!(reason));
        intent.set("canceled_at", json!(now_unix_ms() / 1000));
        intent.object.clone()
    };
    let callback = state.event("payment_intent.canceled", &object);
    state.send(callback, WebhookTiming::AfterRedirect).await;
    Ok(axum::Json(object).into_response())
}

/// `POST /v1/payment_intents/{id}/capture`: only a `requires_capture`
/// intent; `amount_to_capture` (default: all) up to `amount_capturable`.
async fn capture_intent(
    State(state): State<StripeState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    state.authorize(&headers)?;
    let pairs = form(&body);
    let mut captured = None;
    let answer = idempotent(&state, &headers, || {
        let mut book = state.book();
        let intent = book
            .intents
            .get_mut(&id)
            .ok_or_else(|| missing("payment_intent", &id))?;
        if intent.status() != "requires_capture" {
            return Err(StripeError {
                status: StatusCode::BAD_REQUEST,
                body: json!({"type": "invalid_request_error",
                    "code": "payment_intent_unexpected_state",
                    "message": format!(
                        "This PaymentIntent could not be captured because it has a status of {}. Only a PaymentIntent with one of the following statuses may be captured: requires_capture.",
                        intent.status()
                    ),
                    "param": null, "payment_intent": intent.object.clone()}),
            });
        }
        let capturable = intent.object["amount_capturable"].as_u64().unwrap_or(0);
        let amount = match field(&pairs, "amount_to_capture") {
            Some(text) => text
                .parse::<u64>()
                .ok()
                .filter(|amount| *amount > 0)
                .ok_or_else(|| {
                    invalid(
                        "Invalid integer: amount_to_capture.",
                        Some("amount_to_capture"),
                    )
                })?,
            None => capturable,
        };
        if amount > capturable {
            return Err(invalid(
                &format!(
                    "The amount_to_capture ({amount}) is greater than the amount_capturable ({capturable})."
                ),
                Some("amount_to_capture"),
            ));
        }
        intent.set("status", json!("succeeded"));
        intent.set("amount_received", json!(amount));
        intent.set("amount_capturable", json!(0));
        captured = Some(intent.object.clone());
        Ok(intent.object.clone())
    })?;
    if let Some(object) = captured {
        let callback = state.event("payment_intent.succeeded", &object);
        state.send(callback, WebhookTiming::AfterRedirect).await;
    }
    Ok(answer)
}

async fn challenge_page(State(state): State<StripeState>, Path(id): Path<String>) -> Response {
    let known = state
        .book()
        .intents
        .get(&id)
        .map(|intent| intent.status() == "requires_action");
    match known {
        Some(true) => Html(format!(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>3D Secure (simulator)</title></head>\n\
             <body><h1>3D Secure 2 test page</h1>\n<form method=\"post\" action=\"/3ds/{id}\">\n\
             <input type=\"hidden\" name=\"simulate_webhook\" value=\"before_redirect\">\n\
             <button name=\"outcome\" value=\"complete\">Complete authentication</button>\n\
             <button name=\"outcome\" value=\"fail\">Fail authentication</button>\n</form></body></html>\n",
            id = hosted::escape(&id)
        ))
        .into_response(),
        _ => (
            StatusCode::NOT_FOUND,
            Html(hosted::result_page("Stripe", "Nothing to authenticate")),
        )
            .into_response(),
    }
}

/// The customer completes (or fails) 3-D Secure: the intent succeeds (or
/// goes back to `requires_payment_method`), the webhook goes as
/// `simulate_webhook` says, and the customer returns to `return_url`.
async fn challenge(
    State(state): State<StripeState>,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> Response {
    let timing = WebhookTiming::parse(form.get("simulate_webhook").map(String::as_str));
    let complete = form.get("outcome").map(String::as_str) == Some("complete");
    let changed = {
        let mut book = state.book();
        let Some(intent) = book.intents.get_mut(&id) else {
            return StatusCode::NOT_FOUND.into_response();
        };
        if intent.status() != "requires_action" {
            None
        } else if complete {
            let kind = succeed(intent);
            Some((kind, intent.clone()))
        } else {
            intent.set("status", json!("requires_payment_method"));
            intent.set("next_action", Value::Null);
            intent.set(
                "last_payment_error",
                json!({"type": "invalid_request_error",
                    "code": "payment_intent_authentication_failure",
                    "message": "We are unable to authenticate your payment method. Please choose a different payment method and try again."}),
            );
            Some(("payment_intent.payment_failed", intent.clone()))
        }
    };
    let Some((kind, intent)) = changed else {
        return Html(hosted::result_page("Stripe", "Nothing to authenticate")).into_response();
    };
    let callback = state.event(kind, &intent.object);
    state.send(callback, timing).await;
    let status = if complete { "succeeded" } else { "failed" };
    match &intent.return_url {
        Some(url) => Redirect::to(&hosted::with_query(
            url,
            &[
                ("payment_intent", &intent.id()),
                (
                    "payment_intent_client_secret",
                    intent.object["client_secret"].as_str().unwrap_or_default(),
                ),
                ("redirect_status", status),
            ],
        ))
        .into_response(),
        None => Html(hosted::result_page("Stripe", &format!("Payment {status}"))).into_response(),
    }
}

async fn create_refund(
    State(state): State<StripeState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    state.authorize(&headers)?;
    let pairs = form(&body);
    let mut refund_object = None;
    let answer = idempotent(&state, &headers, || {
        let id = field(&pairs, "payment_intent").ok_or_else(|| {
            invalid(
                "Missing required param: payment_intent.",
                Some("payment_intent"),
            )
        })?;
        let mut book = state.book();
        let intent = book
            .intents
            .get_mut(id)
            .ok_or_else(|| missing("payment_intent", id))?;
        if intent.status() != "succeeded" {
            return Err(invalid(
                "This PaymentIntent does not have a successful charge to refund.",
                Some("payment_intent"),
            ));
        }
        let received = intent.object["amount_received"].as_u64().unwrap_or(0);
        let left = received.saturating_sub(intent.refunded);
        let amount = match field(&pairs, "amount") {
            Some(text) => text
                .parse::<u64>()
                .ok()
                .filter(|amount| *amount > 0)
                .ok_or_else(|| invalid("Invalid integer: amount.", Some("amount")))?,
            None => left,
        };
        if amount > left {
            return Err(invalid(
                &format!(
                    "Refund amount ({amount}) is greater than unrefunded amount on charge ({left})"
                ),
                Some("amount"),
            ));
        }
        intent.refunded += amount;
        let refund = json!({
            "id": format!("re_{}", ids::token(24)), "object": "refund", "amount": amount,
            "charge": intent.object["latest_charge"], "payment_intent": id,
            "currency": intent.object["currency"], "reason": field(&pairs, "reason"),
            "status": "succeeded", "failure_reason": null,
            "created": now_unix_ms() / 1000, "metadata": metadata(&pairs),
        });
        book.refunds.insert(
            refund["id"].as_str().unwrap_or_default().to_string(),
            refund.clone(),
        );
        refund_object = Some(refund.clone());
        Ok(refund)
    })?;
    if let Some(refund) = refund_object {
        let callback = state.event("refund.created", &refund);
        state.send(callback, WebhookTiming::AfterRedirect).await;
    }
    Ok(answer)
}

async fn retrieve_refund(
    State(state): State<StripeState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    state.authorize(&headers)?;
    let refund = state
        .book()
        .refunds
        .get(&id)
        .cloned()
        .ok_or_else(|| missing("refund", &id))?;
    Ok(axum::Json(refund).into_response())
}

/// `PUT /simulate/callback-url` `{"url": "..."}` (simulator control).
async fn set_webhook_url(State(state): State<StripeState>, body: Bytes) -> Response {
    let url = parse_object(&body).and_then(|body| text(&body, "url").map(str::to_string));
    match url.map(|url| state.set_webhook_url(&url)) {
        Some(Ok(())) => StatusCode::NO_CONTENT.into_response(),
        _ => invalid("send {\"url\": \"http://...\"}", Some("url")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// providers.md §6's vectors.
    #[test]
    fn signatures_match_the_shared_test_vectors() {
        assert_eq!(
            signature_header(
                "whsec_test_secret",
                1_700_000_000,
                br#"{"id":"evt_test_webhook","object":"event"}"#
            ),
            "t=1700000000,v1=d95c6b7477fbd7e9f90b1b0ef5f9c7ac25abca5382460e0d988c2b2a5b71b990"
        );
        assert_eq!(
            signature_header(
                "whsec_5f8e0f3c2d1b4a6978e0d1c2b3a4f5e6",
                1_492_774_577,
                b"{\n  \"id\": \"evt_1\",\n  \"object\": \"event\",\n  \"type\": \"payment_intent.succeeded\"\n}"
            ),
            "t=1492774577,v1=055dc4aa8d1f88e06a0c41e6d1e464c4da88b95883cca1ef0dca67dc99a3ad38"
        );
    }

    #[test]
    fn forms_read_bracket_notation() {
        let pairs = form(b"amount=2000&currency=usd&metadata%5Bmalipo_payment%5D=pay_1&payment_method_types%5B%5D=card");
        assert_eq!(field(&pairs, "amount"), Some("2000"));
        assert_eq!(metadata(&pairs), json!({"malipo_payment": "pay_1"}));
        assert_eq!(field(&pairs, "payment_method_types[]"), Some("card"));
    }
}
