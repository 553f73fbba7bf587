//! MTN MoMo Open API: sandbox provisioning, Collection (RequestToPay) and
//! Disbursement (Transfer).
//!
//! | path | method | what |
//! |---|---|---|
//! | `/v1_0/apiuser` | POST | create an API user (`X-Reference-Id` = its id), 201 empty |
//! | `/v1_0/apiuser/{id}` | GET | `providerCallbackHost`, `targetEnvironment` |
//! | `/v1_0/apiuser/{id}/apikey` | POST | 201 `{"apiKey"}` |
//! | `/collection/token/`, `/disbursement/token/` | POST | token (Basic apiUser:apiKey) |
//! | `/collection/v1_0/requesttopay` | POST | 202 empty; callback to `X-Callback-Url` |
//! | `/collection/v1_0/requesttopay/{referenceId}` | GET | status |
//! | `/disbursement/v1_0/transfer` | POST | 202 empty; callback to `X-Callback-Url` |
//! | `/disbursement/v1_0/transfer/{referenceId}` | GET | status |
//! | `/{collection,disbursement}/v1_0/account/balance` | GET | `{"availableBalance", "currency"}` |
//! | `/{collection,disbursement}/v1_0/accountholder/{type}/{id}/active` | GET | `{"result": true}` |
//!
//! Checks, in the order the gateway applies them: `Ocp-Apim-Subscription-Key`
//! of the product (401 Azure APIM body `{"statusCode": 401, "message":
//! "Access denied due to missing|invalid subscription key..."}`), the Bearer
//! token of that product (401 `{"statusCode": 401, "message": "Unauthorized.
//! Access token is missing or invalid."}`, APIM's validate-jwt default),
//! `X-Target-Environment` (403 `NOT_ALLOWED_TARGET_ENVIRONMENT`),
//! `X-Reference-Id` a UUID (400, empty body) and unused (409
//! `RESOURCE_ALREADY_EXIST`), the body (400, empty body: `amount` must be a
//! JSON string), the currency (400 `INVALID_CURRENCY`), the callback host
//! (400 `INVALID_CALLBACK_URL_HOST`). Wrong token credentials get 401
//! `{"error": "login_failed"}`. The status codes of the 400/403 cases and
//! the empty 400 bodies are this simulator's reading of client reports,
//! not documented by MTN.
//!
//! Outcomes follow MTN's sandbox test numbers: see [`MomoScenario`].

use crate::config::{CallbackMethod, MomoReasonFormat};
use crate::context::{Callback, SimulatorContext, is_callback_url};
use crate::ids;
use crate::json::{decimal_hundredths, parse_object, text};
use crate::tokens::{TokenStore, basic, bearer};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Sandbox test number: the transaction FAILS (`INTERNAL_PROCESSING_ERROR`).
pub const TEST_NUMBER_FAILED: &str = "46733123450";
/// Sandbox test number: the customer REJECTS (FAILED, `APPROVAL_REJECTED`).
pub const TEST_NUMBER_REJECTED: &str = "46733123451";
/// Sandbox test number: the customer never approves in time (FAILED, `EXPIRED`).
pub const TEST_NUMBER_TIMEOUT: &str = "46733123452";
/// Sandbox test number: PENDING, then SUCCESSFUL after
/// `ongoing_duration_ms` (MTN: about 30 s).
pub const TEST_NUMBER_ONGOING: &str = "46733123453";
/// Sandbox test number: PENDING for ever, no callback.
pub const TEST_NUMBER_PENDING: &str = "46733123454";
/// Simulator extension: SUCCESSFUL but the callback is never sent.
pub const TEST_NUMBER_CALLBACK_LOST: &str = "46733123455";
/// Simulator extension: SUCCESSFUL and the callback is sent twice.
pub const TEST_NUMBER_DUPLICATE_CALLBACK: &str = "46733123456";

/// How a RequestToPay or Transfer ends, chosen by the payer's (payee's)
/// `partyId`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MomoScenario {
    /// Any other number: SUCCESSFUL after the callback delay.
    Successful,
    /// [`TEST_NUMBER_FAILED`].
    Failed,
    /// [`TEST_NUMBER_REJECTED`].
    Rejected,
    /// [`TEST_NUMBER_TIMEOUT`].
    Timeout,
    /// [`TEST_NUMBER_ONGOING`].
    Ongoing,
    /// [`TEST_NUMBER_PENDING`].
    Pending,
    /// [`TEST_NUMBER_CALLBACK_LOST`].
    CallbackLost,
    /// [`TEST_NUMBER_DUPLICATE_CALLBACK`].
    DuplicateCallback,
}

impl MomoScenario {
    pub fn for_party_id(party_id: &str) -> MomoScenario {
        match party_id {
            TEST_NUMBER_FAILED => MomoScenario::Failed,
            TEST_NUMBER_REJECTED => MomoScenario::Rejected,
            TEST_NUMBER_TIMEOUT => MomoScenario::Timeout,
            TEST_NUMBER_ONGOING => MomoScenario::Ongoing,
            TEST_NUMBER_PENDING => MomoScenario::Pending,
            TEST_NUMBER_CALLBACK_LOST => MomoScenario::CallbackLost,
            TEST_NUMBER_DUPLICATE_CALLBACK => MomoScenario::DuplicateCallback,
            _ => MomoScenario::Successful,
        }
    }

    /// The FAILED reason, or `None` for a successful or unfinished one.
    pub fn failure_reason(self) -> Option<&'static str> {
        match self {
            MomoScenario::Failed => Some("INTERNAL_PROCESSING_ERROR"),
            MomoScenario::Rejected => Some("APPROVAL_REJECTED"),
            MomoScenario::Timeout => Some("EXPIRED"),
            _ => None,
        }
    }

    fn callback_copies(self) -> usize {
        match self {
            MomoScenario::CallbackLost | MomoScenario::Pending => 0,
            MomoScenario::DuplicateCallback => 2,
            _ => 1,
        }
    }
}

fn reason_message(code: &str) -> &'static str {
    match code {
        "INTERNAL_PROCESSING_ERROR" => "An internal error caused the operation to fail.",
        "APPROVAL_REJECTED" => "The customer rejected the approval request.",
        "EXPIRED" => "The transaction was not approved in time.",
        _ => "The transaction failed.",
    }
}

/// A MoMo API product; each has its own subscription key and tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MomoProduct {
    Collection,
    Disbursement,
}

impl MomoProduct {
    /// `payer` for Collection, `payee` for Disbursement.
    fn party_key(self) -> &'static str {
        match self {
            MomoProduct::Collection => "payer",
            MomoProduct::Disbursement => "payee",
        }
    }
}

/// A MoMo error answer.
#[derive(Debug)]
pub(crate) enum MomoError {
    /// Azure APIM refusing the subscription key.
    SubscriptionKey { missing: bool },
    /// APIM's validate-jwt refusing the Bearer token.
    AccessToken,
    /// Token endpoint: wrong API user / key.
    LoginFailed,
    /// 400 with an empty body.
    BadRequest,
    /// `{"code", "message"}` with a status.
    Coded {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
}

impl MomoError {
    fn coded(status: StatusCode, code: &'static str, message: impl Into<String>) -> MomoError {
        MomoError::Coded {
            status,
            code,
            message: message.into(),
        }
    }

    fn not_found() -> MomoError {
        MomoError::coded(
            StatusCode::NOT_FOUND,
            "RESOURCE_NOT_FOUND",
            "Requested resource was not found.",
        )
    }
}

impl IntoResponse for MomoError {
    fn into_response(self) -> Response {
        match self {
            MomoError::SubscriptionKey { missing } => {
                let message = if missing {
                    "Access denied due to missing subscription key. Make sure to include subscription key when making requests to an API."
                } else {
                    "Access denied due to invalid subscription key. Make sure to provide a valid key for an active subscription."
                };
                (
                    StatusCode::UNAUTHORIZED,
                    axum::Json(json!({"statusCode": 401, "message": message})),
                )
                    .into_response()
            }
            MomoError::AccessToken => (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({
                    "statusCode": 401,
                    "message": "Unauthorized. Access token is missing or invalid.",
                })),
            )
                .into_response(),
            MomoError::LoginFailed => (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"error": "login_failed"})),
            )
                .into_response(),
            MomoError::BadRequest => StatusCode::BAD_REQUEST.into_response(),
            MomoError::Coded {
                status,
                code,
                message,
            } => (
                status,
                axum::Json(json!({"code": code, "message": message})),
            )
                .into_response(),
        }
    }
}

#[derive(Debug, Clone)]
struct ApiUser {
    provider_callback_host: Option<String>,
    api_key: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MomoStatus {
    Pending,
    Successful,
    Failed,
}

impl MomoStatus {
    fn as_str(self) -> &'static str {
        match self {
            MomoStatus::Pending => "PENDING",
            MomoStatus::Successful => "SUCCESSFUL",
            MomoStatus::Failed => "FAILED",
        }
    }
}

#[derive(Debug, Clone)]
struct MomoTransaction {
    product: MomoProduct,
    amount: String,
    currency: String,
    external_id: Option<String>,
    party: Value,
    payer_message: Option<String>,
    payee_note: Option<String>,
    scenario: MomoScenario,
    status: MomoStatus,
    financial_transaction_id: Option<String>,
    callback_url: Option<String>,
}

#[derive(Debug)]
struct Book {
    api_users: HashMap<String, ApiUser>,
    tokens: TokenStore<(MomoProduct, String)>,
    transactions: HashMap<(MomoProduct, String), MomoTransaction>,
}

/// The MTN MoMo simulator's state; serve it with [`router`].
#[derive(Debug, Clone)]
pub struct MtnMomoState {
    context: SimulatorContext,
    book: Arc<Mutex<Book>>,
}

impl MtnMomoState {
    /// State with the configured API user (and key) already provisioned.
    pub fn new(context: SimulatorContext) -> MtnMomoState {
        let config = &context.config().mtn_momo;
        let mut api_users = HashMap::new();
        api_users.insert(
            config.api_user.to_ascii_lowercase(),
            ApiUser {
                provider_callback_host: config.provider_callback_host.clone(),
                api_key: Some(config.api_key.clone()),
            },
        );
        MtnMomoState {
            book: Arc::new(Mutex::new(Book {
                api_users,
                tokens: TokenStore::new(),
                transactions: HashMap::new(),
            })),
            context,
        }
    }

    pub fn context(&self) -> &SimulatorContext {
        &self.context
    }

    fn config(&self) -> &crate::MtnMomoConfig {
        &self.context.config().mtn_momo
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        // Every change under this lock is a single insert or field write, so
        // a poisoned lock still holds consistent data.
        self.book
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Checks the subscription key: of `product`, or of any product.
    fn subscription(
        &self,
        headers: &HeaderMap,
        product: Option<MomoProduct>,
    ) -> Result<(), MomoError> {
        let Some(key) = header(headers, "ocp-apim-subscription-key") else {
            return Err(MomoError::SubscriptionKey { missing: true });
        };
        let config = self.config();
        let valid = match product {
            Some(MomoProduct::Collection) => key == config.collection_subscription_key,
            Some(MomoProduct::Disbursement) => key == config.disbursement_subscription_key,
            None => {
                key == config.collection_subscription_key
                    || key == config.disbursement_subscription_key
            }
        };
        if valid {
            Ok(())
        } else {
            Err(MomoError::SubscriptionKey { missing: false })
        }
    }

    /// Checks key, Bearer token and target environment of a product call;
    /// returns the API user the token belongs to.
    fn authorize(&self, headers: &HeaderMap, product: MomoProduct) -> Result<String, MomoError> {
        self.subscription(headers, Some(product))?;
        let scope = bearer(headers).and_then(|token| self.book().tokens.check(token));
        let Some((token_product, api_user)) = scope else {
            return Err(MomoError::AccessToken);
        };
        if token_product != product {
            return Err(MomoError::AccessToken);
        }
        if header(headers, "x-target-environment")
            != Some(self.config().target_environment.as_str())
        {
            return Err(MomoError::coded(
                StatusCode::FORBIDDEN,
                "NOT_ALLOWED_TARGET_ENVIRONMENT",
                "Access to target environment is forbidden.",
            ));
        }
        Ok(api_user)
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

/// The `X-Reference-Id` if it is a UUID (lowercased).
fn reference_id(headers: &HeaderMap) -> Result<String, MomoError> {
    header(headers, "x-reference-id")
        .filter(|id| uuid::Uuid::parse_str(id).is_ok() && id.len() == 36)
        .map(str::to_ascii_lowercase)
        .ok_or(MomoError::BadRequest)
}

/// The MTN MoMo API routes over `state`.
pub fn router(state: MtnMomoState) -> Router {
    Router::new()
        .route("/v1_0/apiuser", post(create_api_user))
        .route("/v1_0/apiuser/{id}", get(get_api_user))
        .route("/v1_0/apiuser/{id}/apikey", post(create_api_key))
        .route("/collection/token/", post(collection_token))
        .route("/disbursement/token/", post(disbursement_token))
        .route("/collection/v1_0/requesttopay", post(request_to_pay))
        .route(
            "/collection/v1_0/requesttopay/{reference}",
            get(request_to_pay_status),
        )
        .route("/disbursement/v1_0/transfer", post(transfer))
        .route(
            "/disbursement/v1_0/transfer/{reference}",
            get(transfer_status),
        )
        .route("/collection/v1_0/account/balance", get(collection_balance))
        .route(
            "/disbursement/v1_0/account/balance",
            get(disbursement_balance),
        )
        .route(
            "/collection/v1_0/accountholder/{kind}/{id}/active",
            get(collection_account_holder),
        )
        .route(
            "/disbursement/v1_0/accountholder/{kind}/{id}/active",
            get(disbursement_account_holder),
        )
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                axum::Json(json!({"statusCode": 404, "message": "Resource not found"})),
            )
        })
        .with_state(state)
}

/// `POST /v1_0/apiuser` (sandbox provisioning).
async fn create_api_user(
    State(state): State<MtnMomoState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, MomoError> {
    state.subscription(&headers, None)?;
    let id = reference_id(&headers)?;
    let body = parse_object(&body).ok_or(MomoError::BadRequest)?;
    let host = text(&body, "providerCallbackHost").ok_or(MomoError::BadRequest)?;
    let mut book = state.book();
    if book.api_users.len() >= state.context.config().transactions_max {
        return Err(MomoError::coded(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVICE_UNAVAILABLE",
            "Service temporarily unavailable.",
        ));
    }
    if book.api_users.contains_key(&id) {
        return Err(MomoError::coded(
            StatusCode::CONFLICT,
            "RESOURCE_ALREADY_EXIST",
            "Duplicated reference id. Creation of resource failed.",
        ));
    }
    book.api_users.insert(
        id,
        ApiUser {
            provider_callback_host: Some(host.to_string()),
            api_key: None,
        },
    );
    Ok(StatusCode::CREATED.into_response())
}

/// `GET /v1_0/apiuser/{id}`.
async fn get_api_user(
    State(state): State<MtnMomoState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, MomoError> {
    state.subscription(&headers, None)?;
    let user = state
        .book()
        .api_users
        .get(&id.to_ascii_lowercase())
        .cloned()
        .ok_or_else(MomoError::not_found)?;
    Ok(axum::Json(json!({
        "providerCallbackHost": user.provider_callback_host.unwrap_or_default(),
        "targetEnvironment": state.config().target_environment,
    }))
    .into_response())
}

/// `POST /v1_0/apiuser/{id}/apikey`: a new key replaces the old one.
async fn create_api_key(
    State(state): State<MtnMomoState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, MomoError> {
    state.subscription(&headers, None)?;
    let key = ids::hex(32);
    let mut book = state.book();
    let user = book
        .api_users
        .get_mut(&id.to_ascii_lowercase())
        .ok_or_else(MomoError::not_found)?;
    user.api_key = Some(key.clone());
    Ok((StatusCode::CREATED, axum::Json(json!({"apiKey": key}))).into_response())
}

async fn collection_token(
    State(state): State<MtnMomoState>,
    headers: HeaderMap,
) -> Result<Response, MomoError> {
    token(&state, &headers, MomoProduct::Collection)
}

async fn disbursement_token(
    State(state): State<MtnMomoState>,
    headers: HeaderMap,
) -> Result<Response, MomoError> {
    token(&state, &headers, MomoProduct::Disbursement)
}

/// `POST /{product}/token/`: Basic apiUser:apiKey.
fn token(
    state: &MtnMomoState,
    headers: &HeaderMap,
    product: MomoProduct,
) -> Result<Response, MomoError> {
    state.subscription(headers, Some(product))?;
    let (user, key) = basic(headers)
        .ok()
        .flatten()
        .ok_or(MomoError::LoginFailed)?;
    let user = user.to_ascii_lowercase();
    let lifetime_seconds = state.config().token_lifetime_seconds;
    let mut book = state.book();
    let known = book
        .api_users
        .get(&user)
        .and_then(|api_user| api_user.api_key.as_deref())
        .is_some_and(|expected| expected == key);
    if !known {
        return Err(MomoError::LoginFailed);
    }
    let token = ids::jwt_shaped(&user);
    book.tokens.issue(
        &token,
        Duration::from_secs(lifetime_seconds),
        (product, user),
    );
    Ok(axum::Json(json!({
        "access_token": token,
        "token_type": "access_token",
        "expires_in": lifetime_seconds,
    }))
    .into_response())
}

async fn request_to_pay(
    State(state): State<MtnMomoState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, MomoError> {
    create(&state, &headers, &body, MomoProduct::Collection)
}

async fn transfer(
    State(state): State<MtnMomoState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, MomoError> {
    create(&state, &headers, &body, MomoProduct::Disbursement)
}

/// An optional string of at most 160 characters.
fn note_field(body: &Value, key: &str) -> Result<Option<String>, MomoError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(note)) if note.chars().count() <= 160 => Ok(Some(note.clone())),
        Some(_) => Err(MomoError::BadRequest),
    }
}

/// The payer / payee party: `partyIdType` MSISDN (digits), EMAIL or
/// PARTY_CODE (UUID).
fn party_field(body: &Value, key: &str) -> Result<(Value, String), MomoError> {
    let party = body
        .get(key)
        .filter(|party| party.is_object())
        .ok_or(MomoError::BadRequest)?;
    let kind = text(party, "partyIdType").ok_or(MomoError::BadRequest)?;
    let id = text(party, "partyId").ok_or(MomoError::BadRequest)?;
    let valid = match kind {
        "MSISDN" => crate::json::is_digits(id),
        "EMAIL" => id.contains('@'),
        "PARTY_CODE" => uuid::Uuid::parse_str(id).is_ok(),
        _ => false,
    };
    if !valid {
        return Err(MomoError::BadRequest);
    }
    Ok((json!({"partyIdType": kind, "partyId": id}), id.to_string()))
}

/// `POST /collection/v1_0/requesttopay` and `/disbursement/v1_0/transfer`.
fn create(
    state: &MtnMomoState,
    headers: &HeaderMap,
    body: &[u8],
    product: MomoProduct,
) -> Result<Response, MomoError> {
    let api_user = state.authorize(headers, product)?;
    let reference = reference_id(headers)?;
    if state
        .book()
        .transactions
        .contains_key(&(product, reference.clone()))
    {
        return Err(MomoError::coded(
            StatusCode::CONFLICT,
            "RESOURCE_ALREADY_EXIST",
            "Duplicated reference id. Creation of resource failed.",
        ));
    }
    let body = parse_object(body).ok_or(MomoError::BadRequest)?;
    // `amount` is a JSON string ("500"); a number is a bad request.
    let amount = body
        .get("amount")
        .and_then(Value::as_str)
        .filter(|amount| decimal_hundredths(amount).is_some())
        .ok_or(MomoError::BadRequest)?
        .to_string();
    let currency = text(&body, "currency")
        .ok_or(MomoError::BadRequest)?
        .to_string();
    let external_id = match body.get("externalId") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => Some(id.clone()),
        Some(_) => return Err(MomoError::BadRequest),
    };
    let (party, party_id) = party_field(&body, product.party_key())?;
    let payer_message = note_field(&body, "payerMessage")?;
    let payee_note = note_field(&body, "payeeNote")?;
    if currency != state.config().currency {
        return Err(MomoError::coded(
            StatusCode::BAD_REQUEST,
            "INVALID_CURRENCY",
            "Currency not supported.",
        ));
    }
    let callback_url = match header(headers, "x-callback-url") {
        None => None,
        Some(url) => {
            let allowed_host = state
                .book()
                .api_users
                .get(&api_user)
                .and_then(|user| user.provider_callback_host.clone());
            let host = reqwest::Url::parse(url)
                .ok()
                .filter(|_| is_callback_url(url))
                .and_then(|parsed| parsed.host_str().map(str::to_string));
            let host_allowed = match (&host, &allowed_host) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(host), Some(allowed)) => host.eq_ignore_ascii_case(allowed),
            };
            if !host_allowed {
                return Err(MomoError::coded(
                    StatusCode::BAD_REQUEST,
                    "INVALID_CALLBACK_URL_HOST",
                    "Callback URL with host not allowed for this API user.",
                ));
            }
            Some(url.to_string())
        }
    };
    let scenario = MomoScenario::for_party_id(&party_id);
    {
        let mut book = state.book();
        if book.transactions.len() >= state.context.config().transactions_max {
            return Err(MomoError::coded(
                StatusCode::SERVICE_UNAVAILABLE,
                "SERVICE_UNAVAILABLE",
                "Service temporarily unavailable.",
            ));
        }
        book.transactions.insert(
            (product, reference.clone()),
            MomoTransaction {
                product,
                amount,
                currency,
                external_id,
                party,
                payer_message,
                payee_note,
                scenario,
                status: MomoStatus::Pending,
                financial_transaction_id: None,
                callback_url,
            },
        );
    }
    if scenario != MomoScenario::Pending {
        let delay = if scenario == MomoScenario::Ongoing {
            Duration::from_millis(state.config().ongoing_duration_ms)
        } else {
            Duration::from_millis(state.context.config().callback_delay_ms)
        };
        let task_state = state.clone();
        state.context.spawn(async move {
            tokio::time::sleep(delay).await;
            let Some((callback, copies)) = task_state.complete(product, &reference) else {
                return;
            };
            for _ in 0..copies {
                task_state.context.deliver(&callback).await;
            }
        });
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

impl MtnMomoState {
    /// The customer answers: sets the final status and returns the callback
    /// (if a URL was given) with how many copies to send.
    fn complete(&self, product: MomoProduct, reference: &str) -> Option<(Callback, usize)> {
        let mut book = self.book();
        let transaction = book
            .transactions
            .get_mut(&(product, reference.to_string()))?;
        if transaction.scenario.failure_reason().is_some() {
            transaction.status = MomoStatus::Failed;
        } else {
            transaction.status = MomoStatus::Successful;
            transaction.financial_transaction_id = Some(ids::digits(9));
        }
        let transaction = transaction.clone();
        drop(book);
        let url = transaction.callback_url.clone()?;
        let method = match self.config().callback_method {
            CallbackMethod::Put => reqwest::Method::PUT,
            CallbackMethod::Post => reqwest::Method::POST,
        };
        let kind = match product {
            MomoProduct::Collection => "requesttopay_callback",
            MomoProduct::Disbursement => "transfer_callback",
        };
        Some((
            Callback {
                kind,
                method,
                url,
                headers: Vec::new(),
                body: self.status_body(&transaction),
            },
            transaction.scenario.callback_copies(),
        ))
    }

    /// The GET status object (also the callback body).
    fn status_body(&self, transaction: &MomoTransaction) -> Value {
        let mut body = serde_json::Map::new();
        if let Some(id) = &transaction.financial_transaction_id {
            body.insert("financialTransactionId".into(), json!(id));
        }
        if let Some(id) = &transaction.external_id {
            body.insert("externalId".into(), json!(id));
        }
        body.insert("amount".into(), json!(transaction.amount));
        body.insert("currency".into(), json!(transaction.currency));
        body.insert(
            transaction.product.party_key().into(),
            transaction.party.clone(),
        );
        if let Some(message) = &transaction.payer_message {
            body.insert("payerMessage".into(), json!(message));
        }
        if let Some(note) = &transaction.payee_note {
            body.insert("payeeNote".into(), json!(note));
        }
        body.insert("status".into(), json!(transaction.status.as_str()));
        if transaction.status == MomoStatus::Failed
            && let Some(reason) = transaction.scenario.failure_reason()
        {
            let reason = match self.config().reason_format {
                MomoReasonFormat::Text => json!(reason),
                MomoReasonFormat::Object => {
                    json!({"code": reason, "message": reason_message(reason)})
                }
            };
            body.insert("reason".into(), reason);
        }
        Value::Object(body)
    }
}

async fn request_to_pay_status(
    State(state): State<MtnMomoState>,
    Path(reference): Path<String>,
    headers: HeaderMap,
) -> Result<Response, MomoError> {
    status(&state, &headers, &reference, MomoProduct::Collection)
}

async fn transfer_status(
    State(state): State<MtnMomoState>,
    Path(reference): Path<String>,
    headers: HeaderMap,
) -> Result<Response, MomoError> {
    status(&state, &headers, &reference, MomoProduct::Disbursement)
}

/// `GET .../{referenceId}`: HTTP 200 whatever the status.
fn status(
    state: &MtnMomoState,
    headers: &HeaderMap,
    reference: &str,
    product: MomoProduct,
) -> Result<Response, MomoError> {
    state.authorize(headers, product)?;
    let transaction = state
        .book()
        .transactions
        .get(&(product, reference.to_ascii_lowercase()))
        .cloned()
        .ok_or_else(MomoError::not_found)?;
    Ok(axum::Json(state.status_body(&transaction)).into_response())
}

async fn collection_balance(
    State(state): State<MtnMomoState>,
    headers: HeaderMap,
) -> Result<Response, MomoError> {
    balance(&state, &headers, MomoProduct::Collection)
}

async fn disbursement_balance(
    State(state): State<MtnMomoState>,
    headers: HeaderMap,
) -> Result<Response, MomoError> {
    balance(&state, &headers, MomoProduct::Disbursement)
}

/// `GET /{product}/v1_0/account/balance`: amounts are strings.
fn balance(
    state: &MtnMomoState,
    headers: &HeaderMap,
    product: MomoProduct,
) -> Result<Response, MomoError> {
    state.authorize(headers, product)?;
    Ok(axum::Json(json!({
        "availableBalance": state.config().available_balance,
        "currency": state.config().currency,
    }))
    .into_response())
}

async fn collection_account_holder(
    State(state): State<MtnMomoState>,
    Path((kind, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, MomoError> {
    account_holder(&state, &headers, &kind, &id, MomoProduct::Collection)
}

async fn disbursement_account_holder(
    State(state): State<MtnMomoState>,
    Path((kind, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, MomoError> {
    account_holder(&state, &headers, &kind, &id, MomoProduct::Disbursement)
}

/// `GET /{product}/v1_0/accountholder/{msisdn|email|party_code}/{id}/active`.
fn account_holder(
    state: &MtnMomoState,
    headers: &HeaderMap,
    kind: &str,
    id: &str,
    product: MomoProduct,
) -> Result<Response, MomoError> {
    state.authorize(headers, product)?;
    let valid = match kind.to_ascii_lowercase().as_str() {
        "msisdn" => crate::json::is_digits(id),
        "email" => id.contains('@'),
        "party_code" => uuid::Uuid::parse_str(id).is_ok(),
        _ => false,
    };
    if !valid {
        return Err(MomoError::BadRequest);
    }
    Ok(axum::Json(json!({"result": true})).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_numbers_choose_scenarios() {
        assert_eq!(
            MomoScenario::for_party_id("46733123450"),
            MomoScenario::Failed
        );
        assert_eq!(
            MomoScenario::for_party_id("46733123451"),
            MomoScenario::Rejected
        );
        assert_eq!(
            MomoScenario::for_party_id("46733123452"),
            MomoScenario::Timeout
        );
        assert_eq!(
            MomoScenario::for_party_id("46733123453"),
            MomoScenario::Ongoing
        );
        assert_eq!(
            MomoScenario::for_party_id("46733123454"),
            MomoScenario::Pending
        );
        assert_eq!(
            MomoScenario::for_party_id("256772123456"),
            MomoScenario::Successful
        );
        assert_eq!(
            MomoScenario::Failed.failure_reason(),
            Some("INTERNAL_PROCESSING_ERROR")
        );
        assert_eq!(MomoScenario::Successful.failure_reason(), None);
    }
}
