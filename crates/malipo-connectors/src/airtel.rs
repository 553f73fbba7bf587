//! The Airtel Money Open API connector: collections (USSD push).
//!
//! A payment is a USSD push (`POST /merchant/v1/payments/`): Airtel answers
//! `DP00800001006` (in progress), the customer's phone asks for the PIN,
//! and the payment stays `processing`. Its `transaction.id` is made from
//! the payment id (its letters and digits), so it is known before Airtel
//! answers and serves as the provider reference. The outcome arrives by
//! the callback Airtel POSTs to the URL configured on the Airtel app
//! (unsigned by default: read it with [`parse_callback_body`]) or by the
//! enquiry (`GET /standard/v1/payments/{id}`, [`Connector::payment_status`]).
//! Transaction statuses `TS` / `TF` / `TIP` / `TA` / `TE` and the
//! `DP008000010xx` response codes map through one table,
//! [`RESPONSE_FAILURE_CODES`] / [`outcome_of`].
//!
//! # Credentials (`ConnectorAccount::credentials`)
//! | key | |
//! |---|---|
//! | `client_id`, `client_secret` | the Airtel app's OAuth client credentials (required) |
//! | `base_url` | the API host (optional; a simulator's URL in tests) |
//! | `environment` | `sandbox` (UAT, default) or `production`, used when `base_url` is absent |
//!
//! A live-mode payment whose account names neither `base_url` nor
//! `environment` is refused rather than silently sent to UAT. Airtel takes
//! no callback URL per request: configure the account's
//! `/v1/hooks/airtel_money/{account}` URL on the Airtel app.
//!
//! Markets: the currency decides the country (`X-Country`, `X-Currency`):
//! UGX Uganda, KES Kenya, TZS Tanzania, RWF Rwanda, ZMW Zambia, NGN
//! Nigeria. [`Connector::check_payment`] normalises the phone to
//! international digits of that country (`0752 000001` -> `256752000001`);
//! Airtel gets it without the country code. Amounts are whole units.
//!
//! Tokens (`POST /auth/oauth2/token`, `expires_in` a string, 180 s in UAT)
//! are cached per (host, client id) until shortly before they expire; a
//! call answered 401 drops the token and is tried once more.
//!
//! Refunds: Airtel's refund (`POST /standard/v1/payments/refund` with the
//! `airtel_money_id`) reverses a whole transaction, so
//! [`Connector::check_refund`] refuses a partial refund (naming `amount`)
//! and [`Connector::refund`] reverses the whole payment
//! ([`AirtelConnector::reverse`]): by the `airtel_money_id` a callback
//! reported, else the one the enquiry answers.

use crate::common::{self, Country, Reply, TokenCache, TokenKey, refusal_message, required};
use crate::{
    CallbackClaim, Connector, ConnectorAccount, ConnectorError, FieldError, PaidDetails,
    PaymentOutcome, PaymentRequest, RefundCheck, RefundOutcome, RefundRequest, StatusRequest,
};
use async_trait::async_trait;
use malipo_core::objects::{Customer, Failure, NextAction};
use serde_json::{Value, json};

/// Airtel's UAT (sandbox) host.
pub const SANDBOX_BASE_URL: &str = "https://openapiuat.airtel.africa";
/// Airtel's production host.
pub const PRODUCTION_BASE_URL: &str = "https://openapi.airtel.africa";
/// The currencies (and so countries) Airtel Money is taken in.
pub const CURRENCIES: &[&str] = &["ugx", "kes", "tzs", "rwf", "zmw", "ngn"];
/// USSD prompts time out within minutes; a push still unanswered after ten
/// will not be.
pub const PAYMENT_EXPIRY_SECONDS: u64 = 600;
/// A length Airtel's `reference` takes.
pub const REFERENCE_MAX_CHARS: usize = 64;
/// `status.result_code` of an accepted call.
const RESULT_CODE_SUCCESS: &str = "ESB000010";
/// An enquiry answered "not found" this soon after the push may be Airtel
/// not having stored it yet; later, the push never arrived.
const NOT_FOUND_GRACE_MS: i64 = 60_000;

/// Airtel `response_code`s that fail a payment, with the Malipo failure
/// code each means. `DP00800001001` succeeds; `...000` (ambiguous) and
/// `...006` (in progress) keep it processing; any code not listed fails
/// with `declined`.
pub const RESPONSE_FAILURE_CODES: &[(&str, &str)] = &[
    ("DP00800001002", "wrong_pin"),
    ("DP00800001003", "limit_exceeded"),
    ("DP00800001004", "invalid_amount"),
    ("DP00800001005", "expired"),
    ("DP00800001007", "insufficient_funds"),
    ("DP00800001008", "cancelled_by_user"),
    ("DP00800001009", "declined"),
    ("DP00800001010", "provider_rejected"),
    ("DP00800001024", "expired"),
    ("DP00800001025", "provider_error"),
    ("DP00800001026", "provider_rejected"),
    ("DP00800001029", "expired"),
];

/// The Malipo failure a response code means (`message` as Airtel wrote it).
pub fn failure_of(response_code: Option<&str>, message: Option<&str>) -> Failure {
    let response_code = response_code.unwrap_or_default().trim();
    let code = RESPONSE_FAILURE_CODES
        .iter()
        .find(|(known, _)| *known == response_code)
        .map_or("declined", |(_, code)| *code);
    let message = match (
        message.map(str::trim).filter(|m| !m.is_empty()),
        response_code,
    ) {
        (Some(message), "") => message.to_string(),
        (Some(message), response_code) => format!("{message} ({response_code})"),
        (None, "") => "Airtel Money reported the payment failed".into(),
        (None, response_code) => format!("Airtel Money response code {response_code}"),
    };
    Failure {
        code: code.into(),
        message,
    }
}

/// The outcome of transaction `id` whose status is `status` (`TS`, `TF`,
/// `TIP`, `TA`, `TE`); `None` for a status Airtel does not document.
pub fn outcome_of(
    id: &str,
    status: &str,
    response_code: Option<&str>,
    message: Option<&str>,
    next_action: Option<NextAction>,
    poll_after_ms: u64,
) -> Option<PaymentOutcome> {
    let provider_reference = Some(id.to_string());
    match status.trim().to_ascii_uppercase().as_str() {
        "TS" => Some(PaymentOutcome::Succeeded { provider_reference }),
        "TF" => Some(PaymentOutcome::Failed {
            provider_reference,
            failure: failure_of(response_code, message),
        }),
        "TE" => Some(PaymentOutcome::Failed {
            provider_reference,
            failure: failure_of(response_code.or(Some("DP00800001029")), message),
        }),
        // In progress, or ambiguous: Airtel may still settle it either way,
        // so it stays processing (and expires if it never does).
        "TIP" | "TA" => Some(PaymentOutcome::Processing {
            provider_reference,
            next_action,
            poll_after_ms,
        }),
        _ => None,
    }
}

/// A callback, as Airtel POSTs it to the app's callback URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AirtelCallback {
    /// The merchant's `transaction.id` (the provider reference).
    pub id: String,
    /// `TS` or `TF`.
    pub status_code: String,
    pub message: Option<String>,
    pub airtel_money_id: Option<String>,
    /// With "callback authentication" on: the (unconfirmed) HMAC.
    pub hash: Option<String>,
}

/// Reads a callback body `{"transaction": {"id", "message", "status_code",
/// "airtel_money_id"}}` (and the optional top-level `hash`).
pub fn parse_callback_body(body: &[u8]) -> Option<AirtelCallback> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let transaction = value.get("transaction").filter(|t| t.is_object())?;
    let field = |key: &str| {
        transaction
            .get(key)
            .and_then(common::scalar_text)
            .filter(|text| !text.is_empty())
    };
    Some(AirtelCallback {
        id: field("id")?,
        status_code: field("status_code")?.to_ascii_uppercase(),
        message: field("message"),
        airtel_money_id: field("airtel_money_id"),
        hash: value
            .get("hash")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

/// The `transaction.id` of a payment: its id's letters and digits.
pub fn transaction_id(payment_id: &str) -> String {
    payment_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect()
}

/// The Airtel market of a currency.
fn market(currency: &str) -> Result<&'static Country, ConnectorError> {
    CURRENCIES
        .iter()
        .find(|known| known.eq_ignore_ascii_case(currency))
        .and_then(|known| common::countries_for(known).into_iter().next())
        .ok_or_else(|| {
            ConnectorError::Rejected(format!(
                "Airtel Money takes {}, not `{}`",
                CURRENCIES.join(", ").to_ascii_uppercase(),
                currency.to_ascii_uppercase()
            ))
        })
}

/// The market of a customer whose phone was normalised to international
/// digits (a status request carries no currency).
fn market_of_phone(customer: &Customer) -> Result<(&'static Country, String), ConnectorError> {
    let phone = customer.phone.as_deref().unwrap_or_default();
    CURRENCIES
        .iter()
        .filter_map(|currency| common::countries_for(currency).into_iter().next())
        .find_map(|country| {
            country
                .national(phone)
                .map(|national| (country, national.to_string()))
        })
        .ok_or_else(|| {
            ConnectorError::Rejected(format!(
                "`{phone}` is not the international number of an Airtel Money market"
            ))
        })
}

/// The subscriber's number in `country`, international digits.
fn msisdn(customer: &Customer, country: &'static Country) -> Result<String, ConnectorError> {
    let phone = customer.phone.as_deref().ok_or_else(|| {
        ConnectorError::Rejected("an Airtel Money payment needs customer.phone".into())
    })?;
    common::international_phone(phone, &[country])
        .map(|(digits, _)| digits)
        .ok_or_else(|| {
            ConnectorError::Rejected(format!(
                "`{phone}` is not a {} mobile number for an Airtel Money payment in {}",
                country.name,
                country.currency.to_ascii_uppercase()
            ))
        })
}

fn phone_prompt(customer: &Customer) -> Option<NextAction> {
    common::phone_prompt(
        customer,
        "Enter your Airtel Money PIN on your phone to approve the payment",
    )
}

/// `reference`: the merchant's reference or description, else the payment id.
fn reference(request: &PaymentRequest<'_>) -> String {
    request
        .reference
        .or(request.description)
        .map(|text| common::clip(text, REFERENCE_MAX_CHARS))
        .filter(|text| !text.is_empty())
        .unwrap_or_else(|| transaction_id(request.payment_id))
}

/// The `status` block of an Airtel answer.
struct StatusBlock {
    result_code: Option<String>,
    response_code: Option<String>,
    message: Option<String>,
}

fn status_block(reply: &Reply) -> StatusBlock {
    let status = reply.json.as_ref().and_then(|body| body.get("status"));
    let field = |key: &str| {
        status
            .and_then(|status| status.get(key))
            .and_then(common::scalar_text)
            .filter(|text| !text.is_empty())
    };
    StatusBlock {
        result_code: field("result_code"),
        response_code: field("response_code"),
        message: field("message"),
    }
}

/// A refused call as a connector error, with Airtel's codes.
fn rejection(what: &str, reply: &Reply) -> ConnectorError {
    let block = status_block(reply);
    let code = block
        .response_code
        .or(block.result_code)
        .or_else(|| reply.text("error"))
        .unwrap_or_else(|| format!("HTTP {}", reply.status));
    let message = block
        .message
        .or_else(|| reply.text("error_description"))
        .unwrap_or_else(|| reply.excerpt.clone());
    let text = format!("Airtel Money {what}: {code}: {message}");
    if reply.is_server_error() {
        ConnectorError::Unavailable(text)
    } else {
        ConnectorError::Rejected(text)
    }
}

/// The account's Airtel settings, read from its credentials.
#[derive(Clone)]
struct Settings {
    base_url: String,
    configured_host: bool,
    client_id: String,
    client_secret: String,
}

impl Settings {
    fn of(account: &ConnectorAccount) -> Result<Settings, ConnectorError> {
        let client_id = required(account, "client_id")?.to_string();
        let client_secret = required(account, "client_secret")?.to_string();
        let (base_url, configured_host) =
            common::base_url(account, SANDBOX_BASE_URL, PRODUCTION_BASE_URL)?;
        Ok(Settings {
            base_url,
            configured_host,
            client_id,
            client_secret,
        })
    }
}

/// Its `Debug` shows no token (the token cache redacts itself).
#[derive(Debug)]
pub struct AirtelConnector {
    client: reqwest::Client,
    tokens: TokenCache,
}

impl Default for AirtelConnector {
    fn default() -> Self {
        AirtelConnector::new()
    }
}

impl AirtelConnector {
    /// Needs rustls' crypto provider installed (see
    /// `malipo_gateway::install_crypto_provider`).
    pub fn new() -> Self {
        AirtelConnector::with_client(common::http_client())
    }

    /// A connector calling Airtel through `client`.
    pub fn with_client(client: reqwest::Client) -> Self {
        AirtelConnector {
            client,
            tokens: TokenCache::default(),
        }
    }

    fn token_key(settings: &Settings) -> TokenKey {
        (settings.base_url.clone(), settings.client_id.clone())
    }

    async fn access_token(&self, settings: &Settings) -> Result<String, ConnectorError> {
        self.tokens
            .get(Self::token_key(settings), || self.fetch_token(settings))
            .await
    }

    /// `POST /auth/oauth2/token`: the token and its life in seconds.
    async fn fetch_token(&self, settings: &Settings) -> Result<(String, u64), ConnectorError> {
        let request = self
            .client
            .post(format!("{}/auth/oauth2/token", settings.base_url))
            .header(reqwest::header::ACCEPT, "*/*")
            .json(&json!({
                "client_id": settings.client_id,
                "client_secret": settings.client_secret,
                "grant_type": "client_credentials",
            }));
        let reply = common::send(request, "Airtel Money", "token").await?;
        if reply.is_server_error() {
            return Err(rejection("token", &reply));
        }
        if !reply.is_success() {
            let error = reply.text("error").unwrap_or_default();
            return Err(ConnectorError::Rejected(format!(
                "Airtel Money refused the client id and secret (HTTP {}): {error}",
                reply.status
            )));
        }
        let token = reply.text("access_token").ok_or_else(|| {
            ConnectorError::Unavailable("Airtel Money answered no access_token".into())
        })?;
        // A string ("180") on Airtel's wire.
        let expires_in = reply
            .json
            .as_ref()
            .map_or(180, |body| common::expires_in(body, 180));
        Ok((token, expires_in))
    }

    /// Sends a call built by `build` with a bearer token and the market
    /// headers; tries once more with a new token when Airtel answers 401.
    async fn call(
        &self,
        settings: &Settings,
        country: &Country,
        what: &str,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<Reply, ConnectorError> {
        common::call_with_token(
            &self.tokens,
            &Self::token_key(settings),
            || self.fetch_token(settings),
            ("Airtel Money", what),
            |token| {
                build(token)
                    .header(reqwest::header::ACCEPT, "*/*")
                    .header("X-Country", country.code)
                    .header("X-Currency", country.currency.to_ascii_uppercase())
            },
        )
        .await
    }

    /// The `airtel_money_id` the enquiry answers for transaction `id`.
    async fn airtel_money_id(
        &self,
        account: &ConnectorAccount,
        currency: &str,
        id: &str,
    ) -> Result<String, ConnectorError> {
        let settings = Settings::of(account)?;
        let country = market(currency)?;
        let url = format!("{}/standard/v1/payments/{id}", settings.base_url);
        let reply = self
            .call(&settings, country, "enquiry", |token| {
                self.client.get(&url).bearer_auth(token)
            })
            .await?;
        if !reply.is_success() {
            return Err(rejection("enquiry", &reply));
        }
        reply
            .json
            .as_ref()
            .and_then(|body| body.pointer("/data/transaction/airtel_money_id"))
            .and_then(common::scalar_text)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| {
                ConnectorError::Rejected(format!(
                    "Airtel Money knows no airtel_money_id for transaction {id}: nothing to refund"
                ))
            })
    }

    /// Reverses the whole transaction `airtel_money_id` in the market of
    /// `currency` (`POST /standard/v1/payments/refund`).
    pub async fn reverse(
        &self,
        account: &ConnectorAccount,
        currency: &str,
        airtel_money_id: &str,
    ) -> Result<RefundOutcome, ConnectorError> {
        let settings = Settings::of(account)?;
        let country = market(currency)?;
        let url = format!("{}/standard/v1/payments/refund", settings.base_url);
        let body = json!({"transaction": {"airtel_money_id": airtel_money_id}});
        let reply = self
            .call(&settings, country, "refund", |token| {
                self.client.post(&url).bearer_auth(token).json(&body)
            })
            .await?;
        let block = status_block(&reply);
        // Airtel's documented sample says `success: false` next to
        // "SUCCESS": the result code is what counts.
        if reply.is_success() && block.result_code.as_deref() == Some(RESULT_CODE_SUCCESS) {
            return Ok(RefundOutcome::Succeeded {
                provider_reference: Some(airtel_money_id.to_string()),
            });
        }
        if reply.is_server_error() {
            return Err(rejection("refund", &reply));
        }
        Ok(RefundOutcome::Failed {
            failure: Failure {
                code: "provider_rejected".into(),
                message: format!(
                    "Airtel Money refused the refund: {}: {}",
                    block.result_code.unwrap_or_default(),
                    block.message.unwrap_or_else(|| reply.excerpt.clone())
                ),
            },
        })
    }
}

#[async_trait]
impl Connector for AirtelConnector {
    fn name(&self) -> &'static str {
        "airtel_money"
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
        let country = market(currency).map_err(|error| FieldError {
            param: "currency",
            message: refusal_message(error),
        })?;
        common::whole_units(amount, currency, "Airtel Money").map_err(|error| FieldError {
            param: "amount",
            message: refusal_message(error),
        })?;
        customer.phone = Some(msisdn(customer, country).map_err(|error| FieldError {
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
        if request.livemode && !settings.configured_host {
            return Err(ConnectorError::Rejected(
                "missing credential `environment` (or `base_url`) for a live Airtel Money account"
                    .into(),
            ));
        }
        let country = market(request.currency)?;
        let amount = common::whole_units(request.amount, request.currency, "Airtel Money")?;
        let phone = msisdn(request.customer, country)?;
        let national = country.national(&phone).unwrap_or(&phone).to_string();
        // Token failures (wrong credentials) are refusals; only the push
        // itself may be in doubt.
        self.access_token(&settings).await?;
        let id = transaction_id(request.payment_id);
        let currency = country.currency.to_ascii_uppercase();
        let body = json!({
            "reference": reference(request),
            "subscriber": {"country": country.code, "currency": currency, "msisdn": national},
            "transaction": {"amount": amount, "country": country.code, "currency": currency, "id": id},
        });
        let url = format!("{}/merchant/v1/payments/", settings.base_url);
        let processing = || PaymentOutcome::Processing {
            provider_reference: Some(id.clone()),
            next_action: phone_prompt(request.customer),
            poll_after_ms: common::POLL_AFTER_MS_MIN,
        };
        let reply = match self
            .call(&settings, country, "payment", |token| {
                self.client.post(&url).bearer_auth(token).json(&body)
            })
            .await
        {
            Ok(reply) => reply,
            // Airtel may have taken the push before failing to answer: the
            // id is known, so the enquiry finds out.
            Err(ConnectorError::Unavailable(reason)) => {
                tracing::warn!(%reason, "Airtel Money push unanswered; polling its status");
                return Ok(processing());
            }
            Err(error) => return Err(error),
        };
        if reply.is_server_error() {
            tracing::warn!(
                status = reply.status,
                "Airtel Money push answered a server error; polling its status"
            );
            return Ok(processing());
        }
        let block = status_block(&reply);
        let accepted = reply.is_success()
            && block.result_code.as_deref() == Some(RESULT_CODE_SUCCESS)
            && block
                .response_code
                .as_deref()
                .is_none_or(|code| code == "DP00800001006" || code == "DP00800001001");
        if accepted {
            Ok(processing())
        } else {
            Err(rejection("payment", &reply))
        }
    }

    async fn payment_status(
        &self,
        request: &StatusRequest<'_>,
    ) -> Result<PaymentOutcome, ConnectorError> {
        let settings = Settings::of(request.account)?;
        let (country, _) = market_of_phone(request.customer)?;
        // Known before Airtel answered: a push whose answer was lost can
        // still be asked about.
        let id = request
            .provider_reference
            .filter(|reference| !reference.is_empty())
            .map_or_else(|| transaction_id(request.payment_id), str::to_string);
        let url = format!("{}/standard/v1/payments/{id}", settings.base_url);
        let reply = self
            .call(&settings, country, "enquiry", |token| {
                self.client.get(&url).bearer_auth(token)
            })
            .await?;
        let poll_after_ms = common::poll_after_ms(request.started_ms, request.now_ms);
        let block = status_block(&reply);
        if reply.status == 404 || block.response_code.as_deref() == Some("DP00800001025") {
            if request.now_ms.saturating_sub(request.started_ms) < NOT_FOUND_GRACE_MS {
                return Ok(PaymentOutcome::Processing {
                    provider_reference: Some(id),
                    next_action: phone_prompt(request.customer),
                    poll_after_ms,
                });
            }
            return Ok(PaymentOutcome::Failed {
                failure: failure_of(Some("DP00800001025"), block.message.as_deref()),
                provider_reference: Some(id),
            });
        }
        if !reply.is_success() {
            return Err(rejection("enquiry", &reply));
        }
        let transaction = reply
            .json
            .as_ref()
            .and_then(|body| body.pointer("/data/transaction"));
        let field = |key: &str| {
            transaction
                .and_then(|transaction| transaction.get(key))
                .and_then(common::scalar_text)
                .filter(|text| !text.is_empty())
        };
        let status = field("status").ok_or_else(|| {
            ConnectorError::Unavailable(format!(
                "Airtel Money enquiry answered no transaction status: {}",
                reply.excerpt
            ))
        })?;
        let message = field("message").or(block.message);
        outcome_of(
            &id,
            &status,
            block.response_code.as_deref(),
            message.as_deref(),
            phone_prompt(request.customer),
            poll_after_ms,
        )
        .ok_or_else(|| {
            ConnectorError::Unavailable(format!(
                "Airtel Money transaction status `{status}` is not documented"
            ))
        })
    }

    /// Airtel reverses whole transactions only.
    fn check_refund(&self, refund: &RefundCheck<'_>) -> Result<(), FieldError> {
        refund.whole_only("Airtel Money")
    }

    /// Reverses the whole payment: by the `airtel_money_id` recorded from
    /// its callback, else the one the enquiry answers.
    async fn refund(&self, request: &RefundRequest<'_>) -> Result<RefundOutcome, ConnectorError> {
        self.check_refund(&RefundCheck {
            amount: request.amount,
            payment_amount: request.payment_amount,
            provider_receipt: request.provider_receipt,
        })
        .map_err(|error| ConnectorError::Rejected(error.message))?;
        let airtel_money_id = match request.provider_receipt.filter(|id| !id.is_empty()) {
            Some(id) => id.to_string(),
            None => {
                let id = request
                    .provider_reference
                    .filter(|reference| !reference.is_empty())
                    .map_or_else(|| transaction_id(request.payment_id), str::to_string);
                self.airtel_money_id(request.account, request.currency, &id)
                    .await?
            }
        };
        self.reverse(request.account, request.currency, &airtel_money_id)
            .await
    }

    /// A successful callback's `airtel_money_id` (Airtel's receipt).
    fn parse_paid_details(&self, raw_body: &[u8]) -> Option<PaidDetails> {
        let callback = parse_callback_body(raw_body)?;
        (callback.status_code == "TS").then_some(PaidDetails {
            provider_reference: callback.id,
            receipt: callback.airtel_money_id,
            amount: None,
            phone: None,
        })
    }

    /// A callback: `transaction.id` and `status_code` (`TS` / `TF`).
    fn parse_callback(&self, raw_body: &[u8]) -> Option<CallbackClaim> {
        let callback = parse_callback_body(raw_body)?;
        let outcome = outcome_of(
            &callback.id,
            &callback.status_code,
            None,
            callback.message.as_deref(),
            None,
            common::POLL_AFTER_MS_MIN,
        )?;
        // Malipo sends the payment's id as Airtel's transaction id, and the
        // callback echoes it: the payment is found even before the answer
        // to the push (its provider reference) has been written.
        Some(CallbackClaim {
            payment_id: callback.id.starts_with("pay_").then(|| callback.id.clone()),
            provider_reference: callback.id,
            outcome,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn one_table_maps_response_codes() {
        let code = |response_code: &str| failure_of(Some(response_code), None).code;
        assert_eq!(code("DP00800001002"), "wrong_pin");
        assert_eq!(code("DP00800001003"), "limit_exceeded");
        assert_eq!(code("DP00800001004"), "invalid_amount");
        assert_eq!(code("DP00800001005"), "expired");
        assert_eq!(code("DP00800001007"), "insufficient_funds");
        assert_eq!(code("DP00800001008"), "cancelled_by_user");
        assert_eq!(code("DP00800001009"), "declined");
        assert_eq!(code("DP00800001010"), "provider_rejected");
        assert_eq!(code("DP00800001024"), "expired");
        assert_eq!(code("DP00800001025"), "provider_error");
        assert_eq!(code("DP00800001026"), "provider_rejected");
        assert_eq!(code("DP00800001029"), "expired");
        assert_eq!(code("DP00800009999"), "declined");
        assert_eq!(
            failure_of(Some("DP00800001007"), Some("Not enough balance")).message,
            "Not enough balance (DP00800001007)"
        );
        let outcome =
            |status: &str, code: Option<&str>| outcome_of("t1", status, code, None, None, 1);
        assert!(matches!(
            outcome("TS", None),
            Some(PaymentOutcome::Succeeded { .. })
        ));
        assert!(matches!(
            outcome("TIP", None),
            Some(PaymentOutcome::Processing { .. })
        ));
        assert!(matches!(
            outcome("TA", Some("DP00800001000")),
            Some(PaymentOutcome::Processing { .. })
        ));
        match outcome("TE", None) {
            Some(PaymentOutcome::Failed { failure, .. }) => assert_eq!(failure.code, "expired"),
            other => panic!("{other:?}"),
        }
        assert_eq!(outcome("XX", None), None);
    }

    #[test]
    fn transaction_ids_come_from_payment_ids() {
        assert_eq!(
            transaction_id("pay_01JABCDEFGHJKMNPQRSTVWXYZ0"),
            "pay01JABCDEFGHJKMNPQRSTVWXYZ0"
        );
    }

    #[test]
    fn markets_by_currency_and_phone() {
        assert_eq!(market("UGX").unwrap().code, "UG");
        assert_eq!(market("ngn").unwrap().dialling_code, "234");
        assert!(market("eur").is_err());
        let customer = Customer {
            phone: Some("256752000001".into()),
            ..Customer::default()
        };
        let (country, national) = market_of_phone(&customer).unwrap();
        assert_eq!((country.code, national.as_str()), ("UG", "752000001"));
        assert!(market_of_phone(&Customer::default()).is_err());
    }
}
