//! The MTN MoMo Open API connector: Collection (RequestToPay).
//!
//! A payment is a RequestToPay (`POST /collection/v1_0/requesttopay`) with
//! a UUID in `X-Reference-Id`, the one the payment's Malipo id was made
//! from (UUIDv7; unique, and known before the request is sent, so the
//! status poll finds a request whose answer was lost to a crash, and MTN
//! refuses a second request for the payment): MTN answers `202 Accepted`, the
//! customer's phone shows an approval prompt, and the payment stays
//! `processing` with that UUID as its provider reference. The outcome
//! arrives by callback (to `X-Callback-Url`, PUT or POST, unsigned: parse
//! it with [`parse_status`]) or by the status poll
//! (`GET /collection/v1_0/requesttopay/{referenceId}`,
//! [`Connector::payment_status`]). Both map MTN's `status` and `reason`
//! through one table, [`REASON_FAILURE_CODES`] / [`outcome_of`].
//!
//! MTN's callback body is the status object, which does not carry the
//! `X-Reference-Id`: the connector therefore sends the same UUID as
//! `externalId` (which MTN echoes), so a callback names its payment. The
//! payment id goes in `payeeNote`.
//!
//! # Credentials (`ConnectorAccount::credentials`)
//! | key | |
//! |---|---|
//! | `api_user` | the API user id, a UUID (required) |
//! | `api_key` | its API key (required) |
//! | `subscription_key` | the Collection product's `Ocp-Apim-Subscription-Key` (required) |
//! | `target_environment` | `X-Target-Environment`: `sandbox` (default) or the market, e.g. `mtnuganda` |
//! | `base_url` | the API host (optional; a simulator's URL in tests); default the sandbox host for `sandbox`, else production |
//!
//! A live-mode payment on the `sandbox` target environment is refused: the
//! sandbox moves no money.
//!
//! Currencies and phones: the sandbox takes EUR only, with any
//! international number (MTN's test numbers are `46733123450`...); the
//! markets take their own currency ([`TARGET_ENVIRONMENTS`]) and a mobile
//! number of that country, which [`Connector::check_payment`] normalises to
//! international digits (`0772 123456` -> `256772123456` for UGX).
//! Amounts go as exact decimal strings (`"500"`, `"10.50"`).
//!
//! Tokens (`POST /collection/token/`, Basic API user and key) are cached
//! per (host, API user) until shortly before they expire; a call answered
//! 401 drops the token and is tried once more with a fresh one.
//!
//! # Payouts: Disbursement transfers
//! A payout is a Disbursement transfer (`POST /disbursement/v1_0/transfer`)
//! with the UUID of the payout's id as `X-Reference-Id` (also sent as `externalId`, so the
//! callback names it) and the recipient as `payee`; it stays processing
//! until the callback (confirmed with `GET /disbursement/v1_0/transfer/
//! {referenceId}`) or the status poll says `SUCCESSFUL` (the
//! `financialTransactionId` becomes its receipt) or `FAILED` (the same
//! reason table). Disbursement is its own product: credentials
//! `disbursement_subscription_key` (required for payouts), and
//! `disbursement_api_user` / `disbursement_api_key` when its API user is
//! not the Collection one; its tokens are cached apart.
//!
//! Refunds are not supported: MTN refunds collections through the
//! Disbursement product (another subscription key and API user), which
//! `providers.md` does not document and this connector does not implement.

use crate::common::{
    self, Reply, TokenCache, TokenKey, clip, credential, refusal_message, required,
};
use crate::{
    CallbackClaim, Connector, ConnectorAccount, ConnectorError, FieldError, PAYOUT_PHONE_PARAM,
    PaymentOutcome, PaymentRequest, PayoutClaim, PayoutOutcome, PayoutRequest, PayoutStatusRequest,
    RefundOutcome, RefundRequest, StatusRequest,
};
use async_trait::async_trait;
use malipo_core::id::{IdKind, uuid_of};
use malipo_core::objects::{Customer, Failure, NextAction};
use serde_json::{Value, json};

/// MTN's sandbox host.
pub const SANDBOX_BASE_URL: &str = "https://sandbox.momodeveloper.mtn.com";
/// MTN's production host.
pub const PRODUCTION_BASE_URL: &str = "https://proxy.momoapi.mtn.com";
/// The products' path prefixes.
const COLLECTION: &str = "collection";
const DISBURSEMENT: &str = "disbursement";
/// The sandbox's `X-Target-Environment`, which takes EUR only.
pub const SANDBOX_TARGET_ENVIRONMENT: &str = "sandbox";
/// The sandbox's only currency.
pub const SANDBOX_CURRENCY: &str = "eur";
/// Production target environments and the currency each takes.
pub const TARGET_ENVIRONMENTS: &[(&str, &str)] = &[
    ("mtnuganda", "ugx"),
    ("mtnghana", "ghs"),
    ("mtncameroon", "xaf"),
    ("mtncongo", "xaf"),
    ("mtnivorycoast", "xof"),
    ("mtnbenin", "xof"),
    ("mtnzambia", "zmw"),
    ("mtnrwanda", "rwf"),
];
/// MTN fails a request not approved within about five minutes
/// (`COULD_NOT_PERFORM_TRANSACTION`); ten leaves room for a late answer.
pub const PAYMENT_EXPIRY_SECONDS: u64 = 600;
/// MTN's limit on `payerMessage` and `payeeNote`.
pub const NOTE_MAX_CHARS: usize = 160;
/// A status poll answered 404 this soon after the request may be MTN not
/// having stored it yet; later, the request never arrived.
const NOT_FOUND_GRACE_MS: i64 = 60_000;

/// MTN `reason` codes (FAILED transactions and error bodies) and the
/// Malipo failure code each means. A code not listed fails with `declined`.
pub const REASON_FAILURE_CODES: &[(&str, &str)] = &[
    ("NOT_ENOUGH_FUNDS", "insufficient_funds"),
    // "often = insufficient funds" (providers.md); MTN says no more.
    ("INTERNAL_PROCESSING_ERROR", "declined"),
    ("APPROVAL_REJECTED", "cancelled_by_user"),
    ("TRANSACTION_CANCELED", "cancelled_by_user"),
    ("PAYMENT_NOT_APPROVED", "cancelled_by_user"),
    ("EXPIRED", "expired"),
    // Not approved within about five minutes.
    ("COULD_NOT_PERFORM_TRANSACTION", "expired"),
    ("PAYER_LIMIT_REACHED", "limit_exceeded"),
    ("PAYER_NOT_FOUND", "customer_not_found"),
    ("NOT_ALLOWED", "provider_rejected"),
    ("NOT_ALLOWED_TARGET_ENVIRONMENT", "provider_rejected"),
    ("INVALID_CALLBACK_URL_HOST", "provider_rejected"),
    ("INVALID_CURRENCY", "provider_rejected"),
    ("PAYEE_NOT_FOUND", "provider_rejected"),
    ("PAYEE_NOT_ALLOWED_TO_RECEIVE", "provider_rejected"),
    ("RESOURCE_NOT_FOUND", "provider_error"),
    ("RESOURCE_ALREADY_EXIST", "provider_error"),
    ("SERVICE_UNAVAILABLE", "provider_error"),
];

/// The Malipo failure for a FAILED transaction's `reason` code.
pub fn failure_of(reason_code: Option<&str>, reason_message: Option<&str>) -> Failure {
    let code = reason_code.unwrap_or_default().trim();
    let malipo_code = REASON_FAILURE_CODES
        .iter()
        .find(|(known, _)| *known == code)
        .map_or("declined", |(_, malipo)| *malipo);
    let message = match (reason_message.map(str::trim), code) {
        (Some(message), "") if !message.is_empty() => message.to_string(),
        (Some(message), code) if !message.is_empty() && message != code => {
            format!("{message} ({code})")
        }
        (_, "") => "MTN MoMo reported the payment FAILED without a reason".into(),
        (_, code) => format!("MTN MoMo reason {code}"),
    };
    Failure {
        code: malipo_code.into(),
        message,
    }
}

/// A RequestToPay as MTN describes it: the GET status answer and the
/// callback body (the same object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MomoStatus {
    /// `PENDING`, `SUCCESSFUL` or `FAILED` (as sent, uppercased).
    pub status: String,
    /// On FAILED: the reason code, whether `reason` was a string or an
    /// object `{"code", "message"}`.
    pub reason_code: Option<String>,
    pub reason_message: Option<String>,
    /// What the connector sent as `externalId`: the `X-Reference-Id`.
    pub external_id: Option<String>,
    /// MTN's transaction id, once SUCCESSFUL.
    pub financial_transaction_id: Option<String>,
    /// The amount as MTN wrote it (a decimal string).
    pub amount: Option<String>,
    pub currency: Option<String>,
}

/// Reads a status object (GET answer or callback body). Tolerates `reason`
/// as a string (current production) or an object (the old swagger), and
/// numbers where strings are documented.
pub fn parse_status(body: &[u8]) -> Option<MomoStatus> {
    status_of(&serde_json::from_slice(body).ok()?)
}

fn status_of(value: &Value) -> Option<MomoStatus> {
    let field = |key: &str| {
        value
            .get(key)
            .and_then(common::scalar_text)
            .filter(|text| !text.is_empty())
    };
    let status = field("status")?.to_ascii_uppercase();
    let (reason_code, reason_message) = match value.get("reason") {
        Some(Value::Object(reason)) => (
            reason.get("code").and_then(common::scalar_text),
            reason.get("message").and_then(common::scalar_text),
        ),
        Some(reason) => (common::scalar_text(reason), None),
        None => (None, None),
    };
    Some(MomoStatus {
        status,
        reason_code: reason_code.filter(|code| !code.is_empty()),
        reason_message: reason_message.filter(|message| !message.is_empty()),
        external_id: field("externalId"),
        financial_transaction_id: field("financialTransactionId"),
        amount: field("amount"),
        currency: field("currency"),
    })
}

/// The outcome of the RequestToPay `reference` in `status`; `None` for a
/// status MTN does not document.
pub fn outcome_of(
    reference: &str,
    status: &MomoStatus,
    next_action: Option<NextAction>,
    poll_after_ms: u64,
) -> Option<PaymentOutcome> {
    let provider_reference = Some(reference.to_string());
    match status.status.as_str() {
        "SUCCESSFUL" => Some(PaymentOutcome::Succeeded { provider_reference }),
        "FAILED" => Some(PaymentOutcome::Failed {
            provider_reference,
            failure: failure_of(
                status.reason_code.as_deref(),
                status.reason_message.as_deref(),
            ),
        }),
        "PENDING" => Some(PaymentOutcome::Processing {
            provider_reference,
            next_action,
            poll_after_ms,
        }),
        _ => None,
    }
}

/// The payout outcome of transfer `reference` in `status`; `None` for a
/// status MTN does not document.
pub fn payout_outcome_of(
    reference: &str,
    status: &MomoStatus,
    poll_after_ms: u64,
) -> Option<PayoutOutcome> {
    let provider_reference = Some(reference.to_string());
    match status.status.as_str() {
        "SUCCESSFUL" => Some(PayoutOutcome::Paid {
            provider_reference,
            receipt: status.financial_transaction_id.clone(),
        }),
        "FAILED" => Some(PayoutOutcome::Failed {
            provider_reference,
            failure: failure_of(
                status.reason_code.as_deref(),
                status.reason_message.as_deref(),
            ),
        }),
        "PENDING" => Some(PayoutOutcome::Processing {
            provider_reference,
            poll_after_ms: Some(poll_after_ms),
        }),
        _ => None,
    }
}

/// The account's MTN settings for one product (Collection or
/// Disbursement), read from its credentials.
#[derive(Clone)]
struct Settings {
    base_url: String,
    /// `collection` or `disbursement`: the path prefix of its calls.
    product: &'static str,
    api_user: String,
    api_key: String,
    subscription_key: String,
    target_environment: String,
}

impl Settings {
    /// The Collection product's settings.
    fn of(account: &ConnectorAccount) -> Result<Settings, ConnectorError> {
        let api_user = required(account, "api_user")?.to_string();
        let api_key = required(account, "api_key")?.to_string();
        let subscription_key = required(account, "subscription_key")?.to_string();
        Ok(Settings::with_keys(
            account,
            COLLECTION,
            api_user,
            api_key,
            subscription_key,
        ))
    }

    /// The Disbursement product's settings: its own subscription key, and
    /// its own API user and key when the account names them (else the
    /// Collection ones).
    fn disbursement(account: &ConnectorAccount) -> Result<Settings, ConnectorError> {
        let subscription_key = required(account, "disbursement_subscription_key")?.to_string();
        let api_user = match credential(account, "disbursement_api_user") {
            Some(user) => user.to_string(),
            None => required(account, "api_user")?.to_string(),
        };
        let api_key = match credential(account, "disbursement_api_key") {
            Some(key) => key.to_string(),
            None => required(account, "api_key")?.to_string(),
        };
        Ok(Settings::with_keys(
            account,
            DISBURSEMENT,
            api_user,
            api_key,
            subscription_key,
        ))
    }

    fn with_keys(
        account: &ConnectorAccount,
        product: &'static str,
        api_user: String,
        api_key: String,
        subscription_key: String,
    ) -> Settings {
        let target_environment = credential(account, "target_environment")
            .unwrap_or(SANDBOX_TARGET_ENVIRONMENT)
            .to_string();
        let base_url = match credential(account, "base_url") {
            Some(url) => url.trim_end_matches('/').to_string(),
            None if target_environment == SANDBOX_TARGET_ENVIRONMENT => SANDBOX_BASE_URL.into(),
            None => PRODUCTION_BASE_URL.into(),
        };
        Settings {
            base_url,
            product,
            api_user,
            api_key,
            subscription_key,
            target_environment,
        }
    }

    fn is_sandbox(&self) -> bool {
        self.target_environment == SANDBOX_TARGET_ENVIRONMENT
    }

    /// The currency the target environment takes, when Malipo knows it.
    fn currency(&self) -> Option<&'static str> {
        if self.is_sandbox() {
            return Some(SANDBOX_CURRENCY);
        }
        TARGET_ENVIRONMENTS
            .iter()
            .find(|(environment, _)| *environment == self.target_environment)
            .map(|(_, currency)| *currency)
    }
}

/// Every currency some MTN target environment takes.
fn is_momo_currency(currency: &str) -> bool {
    currency.eq_ignore_ascii_case(SANDBOX_CURRENCY)
        || TARGET_ENVIRONMENTS
            .iter()
            .any(|(_, known)| known.eq_ignore_ascii_case(currency))
}

fn currencies_text() -> String {
    let mut codes: Vec<String> = TARGET_ENVIRONMENTS
        .iter()
        .map(|(_, currency)| currency.to_ascii_uppercase())
        .collect();
    codes.dedup();
    format!("EUR (sandbox), {}", codes.join(", "))
}

/// The payer's MSISDN (international digits, no `+`) for a payment in
/// `currency`.
fn msisdn(customer: &Customer, currency: &str) -> Result<String, ConnectorError> {
    let phone = customer.phone.as_deref().ok_or_else(|| {
        ConnectorError::Rejected("an MTN MoMo payment needs customer.phone".into())
    })?;
    if currency.eq_ignore_ascii_case(SANDBOX_CURRENCY) {
        return common::e164_digits(phone).ok_or_else(|| {
            ConnectorError::Rejected(format!(
                "`{phone}` is not an international phone number (8 to 15 digits)"
            ))
        });
    }
    let countries = common::countries_for(currency);
    common::international_phone(phone, &countries)
        .map(|(digits, _)| digits)
        .ok_or_else(|| {
            ConnectorError::Rejected(format!(
                "`{phone}` is not a {} mobile number for an MTN MoMo payment in {}",
                common::country_names(&countries),
                currency.to_ascii_uppercase()
            ))
        })
}

fn phone_prompt(customer: &Customer) -> Option<NextAction> {
    common::phone_prompt(
        customer,
        "Approve the MTN MoMo payment on your phone with your PIN",
    )
}

/// `payerMessage`: what the customer sees.
fn payer_message(request: &PaymentRequest<'_>) -> String {
    request
        .description
        .or(request.reference)
        .map(|text| clip(text, NOTE_MAX_CHARS))
        .filter(|text| !text.is_empty())
        .unwrap_or_else(|| "Payment".into())
}

/// `(code, message)` of an MTN error body: `{"code", "message"}`, or Azure
/// APIM's `{"statusCode", "message"}`, or `{"error"}` from the token call.
fn error_of(reply: &Reply) -> (String, String) {
    let code = reply
        .text("code")
        .or_else(|| reply.text("error"))
        .unwrap_or_else(|| format!("HTTP {}", reply.status));
    let message = reply
        .text("message")
        .unwrap_or_else(|| reply.excerpt.clone());
    (code, message)
}

/// A refused call as a connector error.
/// The `X-Reference-Id` of a payment's RequestToPay or a payout's
/// transfer: the UUID its Malipo id was made from. Known before the
/// request is sent, so a request whose answer was lost (the process died
/// mid-call) can still be asked about; and MTN refuses a second request
/// under the same reference, so nothing is ever requested twice.
fn reference_for(kind: IdKind, id: &str) -> String {
    uuid_of(kind, id)
        .unwrap_or_else(uuid::Uuid::new_v4)
        .to_string()
}

/// The reference to query: the recorded one, else the one
/// [`reference_for`] gave the request.
fn known_reference(
    recorded: Option<&str>,
    kind: IdKind,
    id: &str,
) -> Result<String, ConnectorError> {
    recorded
        .filter(|reference| !reference.is_empty())
        .map(str::to_owned)
        .or_else(|| uuid_of(kind, id).map(|uuid| uuid.to_string()))
        .ok_or_else(|| {
            ConnectorError::Rejected("no X-Reference-Id (provider reference) to query".into())
        })
}

/// What a status query of an asynchronous request found.
enum Queried {
    /// A 404 soon after the request: MTN may not have stored it yet.
    NotYetKnown,
    /// A 404 after the grace: MTN never took the request.
    Unknown(Failure),
    Status(MomoStatus),
}

/// A status MTN's documentation does not list: in doubt, so polled again.
fn undocumented(status: &MomoStatus) -> ConnectorError {
    ConnectorError::Unavailable(format!(
        "MTN MoMo status `{}` is not documented",
        status.status
    ))
}

fn rejection(what: &str, reply: &Reply) -> ConnectorError {
    let (code, message) = error_of(reply);
    let text = format!("MTN MoMo {what}: {code}: {message}");
    if reply.is_server_error() || code == "SERVICE_UNAVAILABLE" {
        ConnectorError::Unavailable(text)
    } else {
        ConnectorError::Rejected(text)
    }
}

/// Its `Debug` shows no token (the token cache redacts itself).
#[derive(Debug)]
pub struct MtnMomoConnector {
    client: reqwest::Client,
    tokens: TokenCache,
}

impl Default for MtnMomoConnector {
    fn default() -> Self {
        MtnMomoConnector::new()
    }
}

impl MtnMomoConnector {
    /// Needs rustls' crypto provider installed (see
    /// `malipo_gateway::install_crypto_provider`).
    pub fn new() -> Self {
        MtnMomoConnector::with_client(common::http_client())
    }

    /// A connector calling MTN through `client`.
    pub fn with_client(client: reqwest::Client) -> Self {
        MtnMomoConnector {
            client,
            tokens: TokenCache::default(),
        }
    }

    /// Tokens are per product: a Collection token is refused by
    /// Disbursement.
    fn token_key(settings: &Settings) -> TokenKey {
        (
            format!("{}/{}", settings.base_url, settings.product),
            settings.api_user.clone(),
        )
    }

    async fn access_token(&self, settings: &Settings) -> Result<String, ConnectorError> {
        self.tokens
            .get(Self::token_key(settings), || self.fetch_token(settings))
            .await
    }

    /// `POST /{product}/token/`: the token and its life in seconds.
    async fn fetch_token(&self, settings: &Settings) -> Result<(String, u64), ConnectorError> {
        let request = self
            .client
            .post(format!("{}/{}/token/", settings.base_url, settings.product))
            .basic_auth(&settings.api_user, Some(&settings.api_key))
            .header("Ocp-Apim-Subscription-Key", &settings.subscription_key)
            .body("");
        let reply = common::send(request, "MTN MoMo", "token").await?;
        if reply.is_server_error() {
            return Err(rejection("token", &reply));
        }
        if !reply.is_success() {
            let (code, message) = error_of(&reply);
            return Err(ConnectorError::Rejected(format!(
                "MTN MoMo refused the API user, API key or subscription key (HTTP {}): {code}: {message}",
                reply.status
            )));
        }
        let token = reply.text("access_token").ok_or_else(|| {
            ConnectorError::Unavailable("MTN MoMo answered no access_token".into())
        })?;
        let expires_in = reply
            .json
            .as_ref()
            .map_or(3_600, |body| common::expires_in(body, 3_600));
        Ok((token, expires_in))
    }

    /// Sends a product call built by `build` with a bearer token; tries
    /// once more with a new token when MTN answers 401.
    async fn call(
        &self,
        settings: &Settings,
        what: &str,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<Reply, ConnectorError> {
        common::call_with_token(
            &self.tokens,
            &Self::token_key(settings),
            || self.fetch_token(settings),
            ("MTN MoMo", what),
            |token| {
                build(token)
                    .header("Ocp-Apim-Subscription-Key", &settings.subscription_key)
                    .header("X-Target-Environment", &settings.target_environment)
            },
        )
        .await
    }

    /// Posts an asynchronous request (RequestToPay, a Disbursement
    /// transfer) under its `X-Reference-Id`, with the account's
    /// callback URL when it has one. `Ok` when MTN took it, and also when
    /// it may have (a server error, no answer): the reference is known, so
    /// the status poll finds out. A refusal is the error.
    async fn submit(
        &self,
        settings: &Settings,
        what: &str,
        url: &str,
        reference: &str,
        body: &Value,
        account: &ConnectorAccount,
    ) -> Result<(), ConnectorError> {
        let callback_url = account
            .callback_url
            .as_deref()
            .filter(|url| !url.is_empty());
        let answer = self
            .call(settings, what, |token| {
                let mut builder = self
                    .client
                    .post(url)
                    .bearer_auth(token)
                    .header("X-Reference-Id", reference)
                    .json(body);
                if let Some(callback_url) = callback_url {
                    builder = builder.header("X-Callback-Url", callback_url);
                }
                builder
            })
            .await;
        match answer {
            Ok(reply) if reply.is_success() => Ok(()),
            Ok(reply) if reply.is_server_error() => {
                tracing::warn!(
                    status = reply.status,
                    "MTN MoMo {what} answered a server error; polling its status"
                );
                Ok(())
            }
            Err(ConnectorError::Unavailable(reason)) => {
                tracing::warn!(%reason, "MTN MoMo {what} unanswered; polling its status");
                Ok(())
            }
            Ok(reply) => Err(rejection(what, &reply)),
            Err(error) => Err(error),
        }
    }

    /// `GET`s the status of an asynchronous request by its reference.
    /// `names` are the request's name for messages and the query's for
    /// logs. A 404 is [`Queried::NotYetKnown`] `within_grace` (MTN may not
    /// have stored it yet), [`Queried::Unknown`] after.
    async fn query(
        &self,
        settings: &Settings,
        (request_name, query_name): (&str, &str),
        url: &str,
        reference: &str,
        within_grace: bool,
    ) -> Result<Queried, ConnectorError> {
        let reply = self
            .call(settings, query_name, |token| {
                self.client.get(url).bearer_auth(token)
            })
            .await?;
        if reply.status == 404 {
            if within_grace {
                return Ok(Queried::NotYetKnown);
            }
            let (code, message) = error_of(&reply);
            return Ok(Queried::Unknown(Failure {
                code: "provider_error".into(),
                message: format!("MTN MoMo has no {request_name} {reference}: {code}: {message}"),
            }));
        }
        if !reply.is_success() {
            return Err(rejection(query_name, &reply));
        }
        let status = reply.json.as_ref().and_then(status_of).ok_or_else(|| {
            ConnectorError::Unavailable(format!(
                "MTN MoMo {query_name} answered no `status`: {}",
                reply.excerpt
            ))
        })?;
        Ok(Queried::Status(status))
    }
}

#[async_trait]
impl Connector for MtnMomoConnector {
    fn name(&self) -> &'static str {
        "mtn_momo"
    }

    fn payment_expiry_seconds(&self) -> u64 {
        PAYMENT_EXPIRY_SECONDS
    }

    fn check_payment(
        &self,
        customer: &mut Customer,
        currency: &str,
        amount: u64,
    ) -> Result<(), FieldError> {
        if !is_momo_currency(currency) {
            return Err(FieldError {
                param: "currency",
                message: format!(
                    "MTN MoMo takes {}, not `{}`",
                    currencies_text(),
                    currency.to_ascii_uppercase()
                ),
            });
        }
        common::decimal_text(amount, currency, "MTN MoMo").map_err(|error| FieldError {
            param: "amount",
            message: refusal_message(error),
        })?;
        customer.phone = Some(msisdn(customer, currency).map_err(|error| FieldError {
            param: "customer[phone]",
            message: refusal_message(error),
        })?);
        Ok(())
    }

    async fn start_payment(
        &self,
        request: &PaymentRequest<'_>,
    ) -> Result<PaymentOutcome, ConnectorError> {
        let settings = Settings::of(request.account)?;
        if request.livemode && settings.is_sandbox() {
            return Err(ConnectorError::Rejected(
                "a live MTN MoMo account needs credential `target_environment` (e.g. `mtnuganda`): the sandbox moves no money".into(),
            ));
        }
        if let Some(currency) = settings.currency()
            && !currency.eq_ignore_ascii_case(request.currency)
        {
            return Err(ConnectorError::Rejected(format!(
                "MTN MoMo target environment `{}` takes {}, not {}",
                settings.target_environment,
                currency.to_ascii_uppercase(),
                request.currency.to_ascii_uppercase()
            )));
        }
        let amount = common::decimal_text(request.amount, request.currency, "MTN MoMo")?;
        let party_id = msisdn(request.customer, request.currency)?;
        // Token failures (wrong credentials) are refusals; only the
        // RequestToPay itself may be in doubt.
        self.access_token(&settings).await?;
        let reference = reference_for(IdKind::Payment, request.payment_id);
        let body = json!({
            "amount": amount,
            "currency": request.currency.to_ascii_uppercase(),
            "externalId": reference,
            "payer": {"partyIdType": "MSISDN", "partyId": party_id},
            "payerMessage": payer_message(request),
            "payeeNote": clip(request.payment_id, NOTE_MAX_CHARS),
        });
        let url = format!("{}/collection/v1_0/requesttopay", settings.base_url);
        self.submit(
            &settings,
            "RequestToPay",
            &url,
            &reference,
            &body,
            request.account,
        )
        .await?;
        Ok(PaymentOutcome::Processing {
            provider_reference: Some(reference),
            next_action: phone_prompt(request.customer),
            poll_after_ms: common::POLL_AFTER_MS_MIN,
        })
    }

    async fn payment_status(
        &self,
        request: &StatusRequest<'_>,
    ) -> Result<PaymentOutcome, ConnectorError> {
        let settings = Settings::of(request.account)?;
        let reference = &known_reference(
            request.provider_reference,
            IdKind::Payment,
            request.payment_id,
        )?;
        let url = format!(
            "{}/collection/v1_0/requesttopay/{reference}",
            settings.base_url
        );
        let poll_after_ms = common::poll_after_ms(request.started_ms, request.now_ms);
        let within_grace = request.now_ms.saturating_sub(request.started_ms) < NOT_FOUND_GRACE_MS;
        match self
            .query(
                &settings,
                ("RequestToPay", "status"),
                &url,
                reference,
                within_grace,
            )
            .await?
        {
            Queried::NotYetKnown => Ok(PaymentOutcome::Processing {
                provider_reference: Some(reference.to_string()),
                next_action: phone_prompt(request.customer),
                poll_after_ms,
            }),
            Queried::Unknown(failure) => Ok(PaymentOutcome::Failed {
                provider_reference: Some(reference.to_string()),
                failure,
            }),
            Queried::Status(status) => outcome_of(
                reference,
                &status,
                phone_prompt(request.customer),
                poll_after_ms,
            )
            .ok_or_else(|| undocumented(&status)),
        }
    }

    /// Not supported: see the module docs.
    async fn refund(&self, _request: &RefundRequest<'_>) -> Result<RefundOutcome, ConnectorError> {
        Err(ConnectorError::Unsupported("MTN MoMo refund"))
    }

    /// A currency some target environment takes, an exact amount, a number
    /// of its country, and Disbursement credentials on the account.
    fn check_payout(
        &self,
        account: &ConnectorAccount,
        phone: &mut String,
        currency: &str,
        amount: u64,
    ) -> Result<(), FieldError> {
        let mut customer = Customer {
            phone: Some(phone.clone()),
            ..Customer::default()
        };
        self.check_payment(&mut customer, currency, amount)
            .map_err(|error| FieldError {
                param: if error.param == "customer[phone]" {
                    PAYOUT_PHONE_PARAM
                } else {
                    error.param
                },
                message: error.message,
            })?;
        *phone = customer.phone.unwrap_or_default();
        let settings = Settings::disbursement(account).map_err(|error| FieldError {
            param: "method",
            message: format!(
                "the merchant's MTN MoMo account can't pay out: {}",
                refusal_message(error)
            ),
        })?;
        if let Some(expected) = settings.currency()
            && !expected.eq_ignore_ascii_case(currency)
        {
            return Err(FieldError {
                param: "currency",
                message: format!(
                    "MTN MoMo target environment `{}` takes {}, not {}",
                    settings.target_environment,
                    expected.to_ascii_uppercase(),
                    currency.to_ascii_uppercase()
                ),
            });
        }
        Ok(())
    }

    /// A Disbursement transfer: processing until its callback or a poll.
    async fn start_payout(
        &self,
        request: &PayoutRequest<'_>,
    ) -> Result<PayoutOutcome, ConnectorError> {
        let settings = Settings::disbursement(request.account)?;
        if request.livemode && settings.is_sandbox() {
            return Err(ConnectorError::Rejected(
                "a live MTN MoMo account needs credential `target_environment` (e.g. `mtnuganda`): the sandbox moves no money".into(),
            ));
        }
        let amount = common::decimal_text(request.amount, request.currency, "MTN MoMo")?;
        // Token failures (wrong credentials) are refusals; only the
        // transfer itself may be in doubt.
        self.access_token(&settings).await?;
        let reference = reference_for(IdKind::Payout, request.payout_id);
        let message = request
            .description
            .map(|text| clip(text, NOTE_MAX_CHARS))
            .filter(|text| !text.is_empty())
            .unwrap_or_else(|| "Payout".into());
        let body = json!({
            "amount": amount,
            "currency": request.currency.to_ascii_uppercase(),
            "externalId": reference,
            "payee": {"partyIdType": "MSISDN", "partyId": request.phone},
            "payerMessage": message,
            "payeeNote": clip(request.payout_id, NOTE_MAX_CHARS),
        });
        let url = format!("{}/disbursement/v1_0/transfer", settings.base_url);
        self.submit(
            &settings,
            "transfer",
            &url,
            &reference,
            &body,
            request.account,
        )
        .await?;
        Ok(PayoutOutcome::Processing {
            provider_reference: Some(reference),
            poll_after_ms: Some(common::POLL_AFTER_MS_MIN),
        })
    }

    /// `GET /disbursement/v1_0/transfer/{referenceId}`.
    async fn payout_status(
        &self,
        request: &PayoutStatusRequest<'_>,
    ) -> Result<PayoutOutcome, ConnectorError> {
        let settings = Settings::disbursement(request.account)?;
        let reference = &known_reference(
            request.provider_reference,
            IdKind::Payout,
            request.payout_id,
        )?;
        let url = format!(
            "{}/disbursement/v1_0/transfer/{reference}",
            settings.base_url
        );
        let poll_after_ms = common::poll_after_ms(request.started_ms, request.now_ms);
        let within_grace = request.now_ms.saturating_sub(request.started_ms) < NOT_FOUND_GRACE_MS;
        match self
            .query(
                &settings,
                ("transfer", "transfer status"),
                &url,
                reference,
                within_grace,
            )
            .await?
        {
            Queried::NotYetKnown => Ok(PayoutOutcome::Processing {
                provider_reference: Some(reference.to_string()),
                poll_after_ms: Some(poll_after_ms),
            }),
            Queried::Unknown(failure) => Ok(PayoutOutcome::Failed {
                provider_reference: Some(reference.to_string()),
                failure,
            }),
            Queried::Status(status) => payout_outcome_of(reference, &status, poll_after_ms)
                .ok_or_else(|| undocumented(&status)),
        }
    }

    /// A transfer callback (the status object): `externalId` is the
    /// reference. Unsigned: the gateway confirms it with [`Connector::payout_status`].
    fn parse_payout_callback(&self, raw_body: &[u8]) -> Option<PayoutClaim> {
        let status = parse_status(raw_body)?;
        let reference = status.external_id.clone()?;
        let outcome = payout_outcome_of(&reference, &status, common::POLL_AFTER_MS_MIN)?;
        Some(PayoutClaim {
            provider_reference: reference,
            payout_id: None,
            outcome,
        })
    }

    /// A callback (the status object): `externalId` is the reference.
    fn parse_callback(&self, raw_body: &[u8]) -> Option<CallbackClaim> {
        let status = parse_status(raw_body)?;
        let reference = status.external_id.clone()?;
        let outcome = outcome_of(&reference, &status, None, common::POLL_AFTER_MS_MIN)?;
        Some(CallbackClaim {
            provider_reference: reference,
            payment_id: None,
            outcome,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn one_table_maps_reasons() {
        let code = |reason: &str| failure_of(Some(reason), None).code;
        assert_eq!(code("NOT_ENOUGH_FUNDS"), "insufficient_funds");
        assert_eq!(code("APPROVAL_REJECTED"), "cancelled_by_user");
        assert_eq!(code("EXPIRED"), "expired");
        assert_eq!(code("COULD_NOT_PERFORM_TRANSACTION"), "expired");
        assert_eq!(code("PAYER_NOT_FOUND"), "customer_not_found");
        assert_eq!(code("PAYER_LIMIT_REACHED"), "limit_exceeded");
        assert_eq!(code("INVALID_CURRENCY"), "provider_rejected");
        assert_eq!(code("SOMETHING_NEW"), "declined");
        assert_eq!(failure_of(None, None).code, "declined");
        assert_eq!(
            failure_of(Some("EXPIRED"), Some("Not approved in time")).message,
            "Not approved in time (EXPIRED)"
        );
        assert_eq!(
            failure_of(Some("EXPIRED"), None).message,
            "MTN MoMo reason EXPIRED"
        );
    }

    #[test]
    fn reads_reason_as_text_or_object() {
        let text = parse_status(
            br#"{"externalId": "r1", "amount": "500", "currency": "EUR", "status": "FAILED", "reason": "APPROVAL_REJECTED"}"#,
        )
        .unwrap();
        assert_eq!(text.reason_code.as_deref(), Some("APPROVAL_REJECTED"));
        assert_eq!(text.reason_message, None);
        let object = parse_status(
            br#"{"externalId": "r1", "status": "FAILED", "reason": {"code": "EXPIRED", "message": "Timed out"}}"#,
        )
        .unwrap();
        assert_eq!(object.reason_code.as_deref(), Some("EXPIRED"));
        assert_eq!(object.reason_message.as_deref(), Some("Timed out"));
        assert_eq!(parse_status(b"[]"), None);
        assert_eq!(parse_status(br#"{"externalId": "r1"}"#), None);
    }

    #[test]
    fn phones_per_currency() {
        let phone = |phone: &str, currency: &str| {
            msisdn(
                &Customer {
                    phone: Some(phone.into()),
                    ..Customer::default()
                },
                currency,
            )
        };
        assert_eq!(phone("46733123450", "eur"), Ok("46733123450".into()));
        assert_eq!(phone("0772123456", "ugx"), Ok("256772123456".into()));
        assert_eq!(phone("024 123 4567", "GHS"), Ok("233241234567".into()));
        assert!(phone("46733123450", "ugx").is_err());
        assert!(phone("0772123456", "eur").is_err());
        assert!(msisdn(&Customer::default(), "ugx").is_err());
        assert!(is_momo_currency("UGX") && is_momo_currency("eur"));
        assert!(!is_momo_currency("kes"));
        assert_eq!(
            currencies_text(),
            "EUR (sandbox), UGX, GHS, XAF, XOF, ZMW, RWF"
        );
    }
}
