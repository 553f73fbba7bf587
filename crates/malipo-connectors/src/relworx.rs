//! The Relworx connector (API v2): mobile-money collections through an
//! aggregator, for MTN MoMo and Airtel Money in Uganda.
//!
//! A payment is a request (`POST /mobile-money/request-payment`) with the
//! payment id as `reference`: Relworx answers "Request payment in
//! progress." with its `internal_reference`, which becomes the provider
//! reference; the customer's phone asks for the PIN. The outcome arrives
//! by the webhook configured on the business account, signed
//! (`Relworx-Signature`, checked by `malipo-hooks` before it gets here;
//! read it with [`parse_webhook`]), or by the status check
//! (`GET /mobile-money/check-request-status`, [`Connector::payment_status`]).
//! Statuses `pending` / `success` / `failed` map through [`outcome_of`];
//! Relworx reports no failure codes, only a message, which
//! [`FAILURE_KEYWORDS`] reads.
//!
//! Merchants do not pick Relworx as a method: [`ViaRelworx`] carries an
//! `mtn_momo` or `airtel_money` payment in UGX through the merchant's
//! Relworx account when the gateway gave it one (the merchant has a
//! `relworx` connector account and none for the method itself).
//!
//! # Credentials (`ConnectorAccount::credentials`)
//! | key | |
//! |---|---|
//! | `api_key` | the API key, sent as `Authorization: Bearer` (required) |
//! | `account_no` | the business account number, e.g. `RELJH012BV45P` (required) |
//! | `base_url` | the API base (optional; default `https://payments.relworx.com/api`; a simulator's URL in tests) |
//!
//! The webhook key is the connector account's `webhook_secret`; configure
//! the account's `/v1/hooks/relworx/{account}` URL on the business account.
//!
//! Markets: UGX (+256), KES (+254), TZS (+255); phones are normalised to
//! international digits and sent with `+`. Amounts are whole units.
//!
//! Payouts: `POST /mobile-money/send-payment` with the same body and the
//! payout id as `reference`; "Send payment in progress." leaves it
//! processing with the `internal_reference`, until the signed webhook
//! (whose `customer_reference` is the payout id) or the status check.
//!
//! Refunds are not supported: Relworx documents no refund, only payouts
//! (`send-payment`), which are not refunds of a collection.

use crate::common::{self, Reply, refusal_message, required};
use crate::{
    CallbackClaim, Connector, ConnectorAccount, ConnectorError, FieldError, PAYOUT_PHONE_PARAM,
    PaidDetails, PaymentOutcome, PaymentRequest, PayoutClaim, PayoutOutcome, PayoutRequest,
    PayoutStatusRequest, RefundCheck, RefundClaim, RefundOutcome, RefundRequest, StatusRequest,
};
use async_trait::async_trait;
use malipo_core::objects::{Customer, Failure, NextAction};
use serde_json::{Value, json};
use std::fmt;
use std::sync::Arc;

/// The provider name of Relworx accounts (and of this connector).
pub const RELWORX: &str = "relworx";
/// Relworx's API base.
pub const BASE_URL: &str = "https://payments.relworx.com/api";
/// The `Accept` header that selects API v2.
pub const ACCEPT_V2: &str = "application/vnd.relworx.v2";
/// The currencies Relworx collects in.
pub const CURRENCIES: &[&str] = &["ugx", "kes", "tzs"];
/// The payment methods [`ViaRelworx`] may carry through a Relworx account
/// (the connector names of the direct providers).
pub const CARRIED_PROVIDERS: &[&str] = &["mtn_momo", "airtel_money"];
/// The currency [`ViaRelworx`] carries them in (MTN and Airtel Uganda).
pub const CARRIED_CURRENCY: &str = "ugx";
/// Prompts time out within minutes; ten leaves room for a late webhook.
pub const PAYMENT_EXPIRY_SECONDS: u64 = 600;
/// Relworx's limits on `reference`.
pub const REFERENCE_CHARS_MIN: usize = 8;
pub const REFERENCE_CHARS_MAX: usize = 36;
/// Description length sent.
const DESCRIPTION_MAX_CHARS: usize = 100;

/// Words of a failed request's message and the Malipo failure code each
/// means; the first that appears wins, otherwise `declined`.
pub const FAILURE_KEYWORDS: &[(&str, &str)] = &[
    ("insufficient", "insufficient_funds"),
    ("balance", "insufficient_funds"),
    ("pin", "wrong_pin"),
    ("cancel", "cancelled_by_user"),
    ("declined", "cancelled_by_user"),
    ("rejected", "cancelled_by_user"),
    ("timeout", "expired"),
    ("timed out", "expired"),
    ("expired", "expired"),
    ("limit", "limit_exceeded"),
];

/// The Malipo failure a failed request's `message` means.
pub fn failure_of(message: Option<&str>) -> Failure {
    let message = message
        .map(str::trim)
        .filter(|message| !message.is_empty())
        .unwrap_or("Relworx reported the request failed");
    let lowercase = message.to_ascii_lowercase();
    let code = FAILURE_KEYWORDS
        .iter()
        .find(|(word, _)| lowercase.contains(word))
        .map_or("declined", |(_, code)| *code);
    Failure {
        code: code.into(),
        message: message.to_string(),
    }
}

/// The outcome of request `internal_reference` whose status is `status`;
/// `None` for a status Relworx does not document.
pub fn outcome_of(
    internal_reference: &str,
    status: &str,
    message: Option<&str>,
    next_action: Option<NextAction>,
    poll_after_ms: u64,
) -> Option<PaymentOutcome> {
    let provider_reference = Some(internal_reference.to_string());
    match status.trim().to_ascii_lowercase().as_str() {
        "success" | "successful" => Some(PaymentOutcome::Succeeded { provider_reference }),
        "failed" => Some(PaymentOutcome::Failed {
            provider_reference,
            failure: failure_of(message),
        }),
        "pending" => Some(PaymentOutcome::Processing {
            provider_reference,
            next_action,
            poll_after_ms,
        }),
        _ => None,
    }
}

/// The payout outcome of request `internal_reference` in `status`; `None`
/// for a status Relworx does not document.
pub fn payout_outcome_of(
    internal_reference: &str,
    status: &str,
    message: Option<&str>,
    poll_after_ms: u64,
) -> Option<PayoutOutcome> {
    let provider_reference = Some(internal_reference.to_string());
    Some(
        match outcome_of(internal_reference, status, message, None, poll_after_ms)? {
            PaymentOutcome::Succeeded { .. } => PayoutOutcome::Paid {
                provider_reference,
                receipt: None,
            },
            PaymentOutcome::Failed { failure, .. } => PayoutOutcome::Failed {
                provider_reference,
                failure,
            },
            // Relworx has no authorisations: `Authorized` never comes.
            PaymentOutcome::Processing { .. }
            | PaymentOutcome::RequiresAction { .. }
            | PaymentOutcome::Authorized { .. } => PayoutOutcome::Processing {
                provider_reference,
                poll_after_ms: Some(poll_after_ms),
            },
        },
    )
}

/// A webhook body, as Relworx POSTs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelworxWebhook {
    /// `success` or `failed`.
    pub status: String,
    pub message: Option<String>,
    /// What Malipo sent as `reference`: the payment id.
    pub customer_reference: String,
    pub internal_reference: String,
    pub msisdn: Option<String>,
    pub currency: Option<String>,
    /// e.g. `mtn_mobile_money`, `AIRTEL_UGANDA`.
    pub provider: Option<String>,
}

/// Reads a webhook body (numbers for `amount` and `charge` are ignored:
/// the amount is Malipo's own).
pub fn parse_webhook(body: &[u8]) -> Option<RelworxWebhook> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let field = |key: &str| {
        value
            .get(key)
            .and_then(common::scalar_text)
            .filter(|text| !text.is_empty())
    };
    Some(RelworxWebhook {
        status: field("status")?,
        message: field("message"),
        customer_reference: field("customer_reference")?,
        internal_reference: field("internal_reference")?,
        msisdn: field("msisdn"),
        currency: field("currency"),
        provider: field("provider"),
    })
}

/// The Relworx market of a currency, or a refusal.
fn countries(currency: &str) -> Result<Vec<&'static common::Country>, ConnectorError> {
    if !CURRENCIES
        .iter()
        .any(|known| known.eq_ignore_ascii_case(currency))
    {
        return Err(ConnectorError::Rejected(format!(
            "Relworx takes {}, not `{}`",
            CURRENCIES.join(", ").to_ascii_uppercase(),
            currency.to_ascii_uppercase()
        )));
    }
    Ok(common::countries_for(currency))
}

/// The customer's phone as international digits of the currency's country.
fn msisdn(customer: &Customer, currency: &str) -> Result<String, ConnectorError> {
    let countries = countries(currency)?;
    let phone = customer
        .phone
        .as_deref()
        .ok_or_else(|| ConnectorError::Rejected("a Relworx payment needs customer.phone".into()))?;
    common::international_phone(phone, &countries)
        .map(|(digits, _)| digits)
        .ok_or_else(|| {
            ConnectorError::Rejected(format!(
                "`{phone}` is not a {} mobile number for a payment in {}",
                common::country_names(&countries),
                currency.to_ascii_uppercase()
            ))
        })
}

fn phone_prompt(customer: &Customer) -> Option<NextAction> {
    common::phone_prompt(
        customer,
        "Enter your mobile money PIN on your phone to approve the payment",
    )
}

/// `reference`: the payment id, which the webhook echoes back as
/// `customer_reference`.
fn reference(payment_id: &str) -> Result<&str, ConnectorError> {
    if (REFERENCE_CHARS_MIN..=REFERENCE_CHARS_MAX).contains(&payment_id.chars().count()) {
        Ok(payment_id)
    } else {
        Err(ConnectorError::Rejected(format!(
            "a Relworx reference is {REFERENCE_CHARS_MIN} to {REFERENCE_CHARS_MAX} characters; `{payment_id}` is not"
        )))
    }
}

fn rejection(what: &str, reply: &Reply) -> ConnectorError {
    let message = reply
        .text("message")
        .unwrap_or_else(|| reply.excerpt.clone());
    let text = format!("Relworx {what} (HTTP {}): {message}", reply.status);
    if reply.is_server_error() {
        ConnectorError::Unavailable(text)
    } else {
        ConnectorError::Rejected(text)
    }
}

/// The account's Relworx settings, read from its credentials.
#[derive(Clone)]
struct Settings {
    base_url: String,
    api_key: String,
    account_no: String,
}

impl Settings {
    fn of(account: &ConnectorAccount) -> Result<Settings, ConnectorError> {
        Ok(Settings {
            api_key: required(account, "api_key")?.to_string(),
            account_no: required(account, "account_no")?.to_string(),
            base_url: common::credential(account, "base_url")
                .unwrap_or(BASE_URL)
                .trim_end_matches('/')
                .to_string(),
        })
    }
}

#[derive(Debug)]
pub struct RelworxConnector {
    client: reqwest::Client,
}

impl Default for RelworxConnector {
    fn default() -> Self {
        RelworxConnector::new()
    }
}

impl RelworxConnector {
    /// Needs rustls' crypto provider installed (see
    /// `malipo_gateway::install_crypto_provider`).
    pub fn new() -> Self {
        RelworxConnector::with_client(common::http_client())
    }

    /// A connector calling Relworx through `client`.
    pub fn with_client(client: reqwest::Client) -> Self {
        RelworxConnector { client }
    }

    fn authorized(
        &self,
        request: reqwest::RequestBuilder,
        settings: &Settings,
    ) -> reqwest::RequestBuilder {
        request
            .bearer_auth(&settings.api_key)
            .header(reqwest::header::ACCEPT, ACCEPT_V2)
    }

    /// `request-payment` or `send-payment` (`operation`) of `amount` (whole
    /// units) to or from `phone` (international digits), under `reference`:
    /// answers Relworx's `internal_reference`.
    async fn start(
        &self,
        account: &ConnectorAccount,
        operation: &str,
        (reference_id, phone, currency, amount): (&str, &str, &str, u64),
        description: String,
    ) -> Result<String, ConnectorError> {
        let settings = Settings::of(account)?;
        let body = json!({
            "account_no": settings.account_no,
            "reference": reference(reference_id)?,
            "msisdn": format!("+{phone}"),
            "currency": currency.to_ascii_uppercase(),
            "amount": amount,
            "description": description,
        });
        let http = self
            .client
            .post(format!("{}/mobile-money/{operation}", settings.base_url));
        let reply = common::send(
            self.authorized(http, &settings).json(&body),
            "Relworx",
            operation,
        )
        .await?;
        if reply.status == 401 {
            return Err(ConnectorError::Rejected(format!(
                "Relworx refused the API key (HTTP 401): {}",
                reply.text("message").unwrap_or_default()
            )));
        }
        let accepted = reply.is_success()
            && reply
                .json
                .as_ref()
                .and_then(|body| body.get("success"))
                .and_then(Value::as_bool)
                == Some(true);
        if !accepted {
            return Err(rejection(operation, &reply));
        }
        reply.text("internal_reference").ok_or_else(|| {
            ConnectorError::Unavailable(format!(
                "Relworx accepted the {operation} without an internal_reference"
            ))
        })
    }

    /// `check-request-status` of `internal_reference`: its status and message.
    async fn request_status(
        &self,
        account: &ConnectorAccount,
        internal_reference: Option<&str>,
    ) -> Result<(String, String, Option<String>), ConnectorError> {
        let settings = Settings::of(account)?;
        let internal_reference = internal_reference
            .filter(|reference| !reference.is_empty())
            .ok_or_else(|| {
                ConnectorError::Rejected(
                    "no internal_reference (provider reference) to check; the webhook will tell"
                        .into(),
                )
            })?;
        let url = reqwest::Url::parse_with_params(
            &format!("{}/mobile-money/check-request-status", settings.base_url),
            [
                ("internal_reference", internal_reference),
                ("account_no", settings.account_no.as_str()),
            ],
        )
        .map_err(|error| {
            ConnectorError::Rejected(format!("invalid credential `base_url`: {error}"))
        })?;
        let http = self.client.get(url);
        let reply = common::send(
            self.authorized(http, &settings),
            "Relworx",
            "check-request-status",
        )
        .await?;
        if !reply.is_success() {
            return Err(rejection("check-request-status", &reply));
        }
        let status = reply
            .text("status")
            .or_else(|| reply.text("request_status"))
            .ok_or_else(|| {
                ConnectorError::Unavailable(format!(
                    "Relworx answered no request status: {}",
                    reply.excerpt
                ))
            })?;
        Ok((
            internal_reference.to_string(),
            status,
            reply.text("message"),
        ))
    }
}

#[async_trait]
impl Connector for RelworxConnector {
    fn name(&self) -> &'static str {
        RELWORX
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
        countries(currency).map_err(|error| FieldError {
            param: "currency",
            message: refusal_message(error),
        })?;
        common::whole_units(amount, currency, "Relworx").map_err(|error| FieldError {
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
        let amount = common::whole_units(request.amount, request.currency, "Relworx")?;
        let phone = msisdn(request.customer, request.currency)?;
        let description = request
            .description
            .or(request.reference)
            .map(|text| common::clip(text, DESCRIPTION_MAX_CHARS))
            .filter(|text| !text.is_empty())
            .unwrap_or_else(|| "Payment".into());
        let internal_reference = self
            .start(
                request.account,
                "request-payment",
                (request.payment_id, &phone, request.currency, amount),
                description,
            )
            .await?;
        Ok(PaymentOutcome::Processing {
            provider_reference: Some(internal_reference),
            next_action: phone_prompt(request.customer),
            poll_after_ms: common::POLL_AFTER_MS_MIN,
        })
    }

    async fn payment_status(
        &self,
        request: &StatusRequest<'_>,
    ) -> Result<PaymentOutcome, ConnectorError> {
        let (internal_reference, status, message) = self
            .request_status(request.account, request.provider_reference)
            .await?;
        outcome_of(
            &internal_reference,
            &status,
            message.as_deref(),
            phone_prompt(request.customer),
            common::poll_after_ms(request.started_ms, request.now_ms),
        )
        .ok_or_else(|| {
            ConnectorError::Unavailable(format!("Relworx status `{status}` is not documented"))
        })
    }

    /// Not supported: see the module docs.
    async fn refund(&self, _request: &RefundRequest<'_>) -> Result<RefundOutcome, ConnectorError> {
        Err(ConnectorError::Unsupported("a Relworx refund"))
    }

    /// A webhook: the internal reference, the payment id (echoed as
    /// `customer_reference`) and the status.
    fn parse_callback(&self, raw_body: &[u8]) -> Option<CallbackClaim> {
        let webhook = parse_webhook(raw_body)?;
        let outcome = outcome_of(
            &webhook.internal_reference,
            &webhook.status,
            webhook.message.as_deref(),
            None,
            common::POLL_AFTER_MS_MIN,
        )?;
        Some(CallbackClaim {
            provider_reference: webhook.internal_reference,
            payment_id: Some(webhook.customer_reference),
            outcome,
        })
    }

    /// UGX, KES or TZS in whole units to a number of that country.
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
        Settings::of(account).map_err(|error| FieldError {
            param: "method",
            message: format!(
                "the merchant's Relworx account can't pay out: {}",
                refusal_message(error)
            ),
        })?;
        Ok(())
    }

    /// `send-payment`: processing until the webhook or the status check.
    async fn start_payout(
        &self,
        request: &PayoutRequest<'_>,
    ) -> Result<PayoutOutcome, ConnectorError> {
        let amount = common::whole_units(request.amount, request.currency, "Relworx")?;
        let customer = Customer {
            phone: Some(request.phone.to_string()),
            ..Customer::default()
        };
        let phone = msisdn(&customer, request.currency)?;
        let description = request
            .description
            .map(|text| common::clip(text, DESCRIPTION_MAX_CHARS))
            .filter(|text| !text.is_empty())
            .unwrap_or_else(|| "Payout".into());
        let internal_reference = self
            .start(
                request.account,
                "send-payment",
                (request.payout_id, &phone, request.currency, amount),
                description,
            )
            .await?;
        Ok(PayoutOutcome::Processing {
            provider_reference: Some(internal_reference),
            poll_after_ms: Some(common::POLL_AFTER_MS_MIN),
        })
    }

    async fn payout_status(
        &self,
        request: &PayoutStatusRequest<'_>,
    ) -> Result<PayoutOutcome, ConnectorError> {
        let (internal_reference, status, message) = self
            .request_status(request.account, request.provider_reference)
            .await?;
        payout_outcome_of(
            &internal_reference,
            &status,
            message.as_deref(),
            common::poll_after_ms(request.started_ms, request.now_ms),
        )
        .ok_or_else(|| {
            ConnectorError::Unavailable(format!("Relworx status `{status}` is not documented"))
        })
    }

    /// A webhook about a send-payment: the payout id comes back as
    /// `customer_reference`.
    fn parse_payout_callback(&self, raw_body: &[u8]) -> Option<PayoutClaim> {
        let webhook = parse_webhook(raw_body)?;
        let outcome = payout_outcome_of(
            &webhook.internal_reference,
            &webhook.status,
            webhook.message.as_deref(),
            common::POLL_AFTER_MS_MIN,
        )?;
        Some(PayoutClaim {
            provider_reference: webhook.internal_reference,
            payout_id: Some(webhook.customer_reference),
            outcome,
        })
    }
}

/// A method (MTN MoMo, Airtel Money) reached directly or through Relworx:
/// the account the gateway chose decides. Given a `relworx` account the
/// payment goes to Relworx, in UGX only (Relworx carries MTN and Airtel
/// Uganda); given any other, to the direct connector. Checks, expiry and
/// callbacks are the direct connector's; the payment keeps the direct
/// connector's name, with Relworx's internal reference as its provider
/// reference.
pub struct ViaRelworx {
    direct: Arc<dyn Connector>,
    relworx: Arc<RelworxConnector>,
}

impl fmt::Debug for ViaRelworx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ViaRelworx")
            .field("direct", &self.direct.name())
            .finish_non_exhaustive()
    }
}

impl ViaRelworx {
    pub fn new(direct: Arc<dyn Connector>, relworx: Arc<RelworxConnector>) -> Self {
        ViaRelworx { direct, relworx }
    }

    fn through_relworx(account: &ConnectorAccount) -> bool {
        account.provider == RELWORX
    }
}

#[async_trait]
impl Connector for ViaRelworx {
    fn name(&self) -> &'static str {
        self.direct.name()
    }

    fn payment_expiry_seconds(&self) -> u64 {
        self.direct
            .payment_expiry_seconds()
            .max(self.relworx.payment_expiry_seconds())
    }

    fn check_payment(
        &self,
        customer: &mut Customer,
        currency: &str,
        amount: u64,
    ) -> Result<(), FieldError> {
        self.direct.check_payment(customer, currency, amount)
    }

    async fn start_payment(
        &self,
        request: &PaymentRequest<'_>,
    ) -> Result<PaymentOutcome, ConnectorError> {
        if !Self::through_relworx(request.account) {
            return self.direct.start_payment(request).await;
        }
        if !request.currency.eq_ignore_ascii_case(CARRIED_CURRENCY) {
            return Err(ConnectorError::Rejected(format!(
                "the merchant's Relworx account carries {} payments in UGX only, not {}; add a `{}` connector account for other currencies",
                request.method,
                request.currency.to_ascii_uppercase(),
                self.direct.name()
            )));
        }
        self.relworx.start_payment(request).await
    }

    async fn payment_status(
        &self,
        request: &StatusRequest<'_>,
    ) -> Result<PaymentOutcome, ConnectorError> {
        if Self::through_relworx(request.account) {
            self.relworx.payment_status(request).await
        } else {
            self.direct.payment_status(request).await
        }
    }

    async fn refund(&self, request: &RefundRequest<'_>) -> Result<RefundOutcome, ConnectorError> {
        if Self::through_relworx(request.account) {
            self.relworx.refund(request).await
        } else {
            self.direct.refund(request).await
        }
    }

    fn parse_callback(&self, raw_body: &[u8]) -> Option<CallbackClaim> {
        self.direct.parse_callback(raw_body)
    }

    /// The direct provider's limits (Relworx takes no refunds at all).
    fn check_refund(&self, refund: &RefundCheck<'_>) -> Result<(), FieldError> {
        self.direct.check_refund(refund)
    }

    fn parse_refund_callback(&self, raw_body: &[u8]) -> Option<RefundClaim> {
        self.direct.parse_refund_callback(raw_body)
    }

    fn parse_paid_details(&self, raw_body: &[u8]) -> Option<PaidDetails> {
        self.direct.parse_paid_details(raw_body)
    }

    /// Through a Relworx account: send-payment, in UGX only; else the
    /// direct provider's payouts (or its refusal).
    fn check_payout(
        &self,
        account: &ConnectorAccount,
        phone: &mut String,
        currency: &str,
        amount: u64,
    ) -> Result<(), FieldError> {
        if !Self::through_relworx(account) {
            return self.direct.check_payout(account, phone, currency, amount);
        }
        if !currency.eq_ignore_ascii_case(CARRIED_CURRENCY) {
            return Err(FieldError {
                param: "currency",
                message: format!(
                    "the merchant's Relworx account carries {} payouts in UGX only, not {}",
                    self.direct.name(),
                    currency.to_ascii_uppercase()
                ),
            });
        }
        self.relworx.check_payout(account, phone, currency, amount)
    }

    async fn start_payout(
        &self,
        request: &PayoutRequest<'_>,
    ) -> Result<PayoutOutcome, ConnectorError> {
        if Self::through_relworx(request.account) {
            self.relworx.start_payout(request).await
        } else {
            self.direct.start_payout(request).await
        }
    }

    async fn payout_status(
        &self,
        request: &PayoutStatusRequest<'_>,
    ) -> Result<PayoutOutcome, ConnectorError> {
        if Self::through_relworx(request.account) {
            self.relworx.payout_status(request).await
        } else {
            self.direct.payout_status(request).await
        }
    }

    fn parse_payout_callback(&self, raw_body: &[u8]) -> Option<PayoutClaim> {
        self.direct.parse_payout_callback(raw_body)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn failure_messages_map_to_codes() {
        let code = |message: &str| failure_of(Some(message)).code;
        assert_eq!(
            code("Request payment failed: insufficient funds."),
            "insufficient_funds"
        );
        assert_eq!(
            code("Request payment failed: declined by the customer."),
            "cancelled_by_user"
        );
        assert_eq!(code("Transaction timed out"), "expired");
        assert_eq!(code("Wrong PIN entered"), "wrong_pin");
        assert_eq!(code("Something else"), "declined");
        assert_eq!(
            failure_of(None).message,
            "Relworx reported the request failed"
        );
    }

    #[test]
    fn references_fit_relworx_limits() {
        assert_eq!(
            reference("pay_01JABCDEFGHJKMNPQRSTVWXYZ0").unwrap(),
            "pay_01JABCDEFGHJKMNPQRSTVWXYZ0"
        );
        assert!(reference("pay_1").is_err());
    }
}
