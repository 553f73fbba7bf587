//! The NOWPayments connector: crypto payments (`method: "crypto"`).
//!
//! A payment is created with `POST /v1/payment` (JSON: `price_amount` and
//! `price_currency` from the payment's amount and currency, exact decimal;
//! `pay_currency`, the coin the customer pays in, from the payment's
//! `payment_method`; `order_id` = the payment id; `ipn_callback_url` = the
//! account's callback URL; `is_fixed_rate: true`, so the merchant gets the
//! price whatever the coin does). NOWPayments answers an address and the
//! amount of coin to send: the payment is `requires_action` with a
//! `crypto_address` next action.
//!
//! The outcome comes from the signed IPN (`x-nowpayments-sig`, checked by
//! `malipo-hooks` before [`Connector::parse_callback`] reads it) or from
//! `GET /v1/payment/{payment_id}` ([`Connector::payment_status`], the
//! worker's poll):
//!
//! | `payment_status` | Malipo |
//! |---|---|
//! | `waiting` | `requires_action`: send the coin |
//! | `confirming`, `confirmed`, `sending` | `processing`: seen on chain |
//! | `partially_paid` | `requires_action`, `provider_status: partially_paid` and `amount_received`: less than asked arrived |
//! | `finished` | `succeeded` |
//! | `failed` | `failed` (`crypto_payment_failed`) |
//! | `expired` | `failed` (`expired`) |
//! | `refunded` | `failed` (`refunded_by_provider`) |
//!
//! NOWPayments' `payment_id` is a string in the create answer and a
//! number in status answers and IPNs; both are read.
//!
//! Refunds: NOWPayments has no refund API for a received payment (its
//! support returns coins by hand), so a refund is refused up front by
//! [`Connector::check_refund`], naming `payment`.
//!
//! # Credentials (`ConnectorAccount::credentials`)
//! | key | |
//! |---|---|
//! | `api_key` | sent as `x-api-key` (required) |
//! | `base_url` | the API host (optional; default `https://api.nowpayments.io`, sandbox `https://api-sandbox.nowpayments.io`; a simulator's URL in tests) |
//!
//! The connector account's `webhook_secret` is the IPN secret from the
//! NOWPayments dashboard.

use crate::common::{self, Reply, credential, required};
use crate::{
    CallbackClaim, Connector, ConnectorError, FieldError, PaymentOutcome, PaymentRequest,
    RefundCheck, RefundOutcome, RefundRequest, StatusRequest,
};
use async_trait::async_trait;
use malipo_core::objects::{Failure, NextAction};
use serde_json::{Value, json};

/// The provider name of NOWPayments accounts (and of this connector).
pub const NOWPAYMENTS: &str = "nowpayments";
/// NOWPayments' API host.
pub const BASE_URL: &str = "https://api.nowpayments.io";
/// The coins a customer may pay in (NOWPayments' codes); the payment's
/// `payment_method` names one.
pub const PAY_CURRENCIES: &[&str] = &["btc", "eth", "ltc", "sol", "trx", "usdttrc20", "usdterc20"];
/// How long a crypto payment may stay incomplete: a day. NOWPayments'
/// fixed-rate address is valid 20 minutes, but a transfer sent in time can
/// take hours to confirm; NOWPayments reports `expired` itself before then.
pub const PAYMENT_EXPIRY_SECONDS: u64 = 24 * 3600;

/// Whether `code` is a coin this connector takes (any case).
pub fn is_pay_currency(code: &str) -> bool {
    PAY_CURRENCIES
        .iter()
        .any(|known| known.eq_ignore_ascii_case(code))
}

/// What a status answer or an IPN says, in the fields Malipo reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NowPaymentsStatus {
    pub payment_id: String,
    pub payment_status: String,
    /// `order_id`: Malipo's payment id.
    pub order_id: Option<String>,
    pub pay_address: Option<String>,
    pub pay_amount: Option<String>,
    pub pay_currency: Option<String>,
    pub actually_paid: Option<String>,
    pub network: Option<String>,
    pub expires_at: Option<String>,
}

/// Reads a status answer or IPN body; `None` without `payment_id` and
/// `payment_status`.
pub fn parse_status(body: &Value) -> Option<NowPaymentsStatus> {
    let field = |key: &str| {
        body.get(key)
            .and_then(common::scalar_text)
            .filter(|text| !text.is_empty())
    };
    Some(NowPaymentsStatus {
        payment_id: field("payment_id")?,
        payment_status: field("payment_status")?.to_ascii_lowercase(),
        order_id: field("order_id"),
        pay_address: field("pay_address"),
        pay_amount: field("pay_amount"),
        pay_currency: field("pay_currency"),
        actually_paid: field("actually_paid"),
        network: field("network"),
        expires_at: field("expiration_estimate_date"),
    })
}

/// What the customer must do, from `status`, filling what the status
/// answer leaves out (NOWPayments' status has no network or expiry) from
/// the payment's last next action.
fn crypto_address(status: &NowPaymentsStatus, last: Option<&NextAction>) -> Option<NextAction> {
    let (last_network, last_expiry) = match last {
        Some(NextAction::CryptoAddress {
            network,
            expires_at,
            ..
        }) => (Some(network.clone()), expires_at.clone()),
        _ => (None, None),
    };
    let pay_currency = status.pay_currency.clone()?;
    Some(NextAction::CryptoAddress {
        address: status.pay_address.clone()?,
        network: status
            .network
            .clone()
            .or(last_network)
            .unwrap_or_else(|| pay_currency.clone()),
        pay_amount: status.pay_amount.clone()?,
        pay_currency,
        expires_at: status.expires_at.clone().or(last_expiry),
        amount_received: status
            .actually_paid
            .clone()
            .unwrap_or_else(|| "0".to_owned()),
        provider_status: status.payment_status.clone(),
    })
}

/// The outcome `status` means; `None` for a status NOWPayments does not
/// document. `last` is the payment's current next action, `poll_after_ms`
/// when to ask again.
pub fn outcome_of(
    status: &NowPaymentsStatus,
    last: Option<&NextAction>,
    poll_after_ms: u64,
) -> Option<PaymentOutcome> {
    let provider_reference = Some(status.payment_id.clone());
    let failed = |code: &str, message: &str| PaymentOutcome::Failed {
        provider_reference: provider_reference.clone(),
        failure: Failure {
            code: code.to_owned(),
            message: message.to_owned(),
        },
    };
    Some(match status.payment_status.as_str() {
        "finished" => PaymentOutcome::Succeeded {
            provider_reference: provider_reference.clone(),
        },
        "failed" => failed(
            "crypto_payment_failed",
            "NOWPayments could not complete the crypto payment",
        ),
        "expired" => failed(
            "expired",
            "no crypto transfer arrived before the address expired",
        ),
        "refunded" => failed(
            "refunded_by_provider",
            "NOWPayments returned the customer's coins",
        ),
        "waiting" | "partially_paid" => match crypto_address(status, last) {
            Some(next_action) => PaymentOutcome::RequiresAction {
                provider_reference,
                next_action,
                poll_after_ms,
            },
            None => PaymentOutcome::Processing {
                provider_reference,
                next_action: last.cloned(),
                poll_after_ms,
            },
        },
        "confirming" | "confirmed" | "sending" => PaymentOutcome::Processing {
            next_action: crypto_address(status, last).or_else(|| last.cloned()),
            provider_reference,
            poll_after_ms,
        },
        _ => return None,
    })
}

/// The account's NOWPayments settings. Its `Debug` shows no key.
#[derive(Clone)]
struct Settings {
    base_url: String,
    api_key: String,
}

impl Settings {
    fn of(account: &crate::ConnectorAccount) -> Result<Settings, ConnectorError> {
        Ok(Settings {
            api_key: required(account, "api_key")?.to_string(),
            base_url: credential(account, "base_url")
                .unwrap_or(BASE_URL)
                .trim_end_matches('/')
                .to_string(),
        })
    }
}

fn rejection(what: &str, reply: &Reply) -> ConnectorError {
    reply.refusal("NOWPayments", what)
}

#[derive(Debug)]
pub struct NowPaymentsConnector {
    client: reqwest::Client,
}

impl Default for NowPaymentsConnector {
    fn default() -> Self {
        NowPaymentsConnector::new()
    }
}

impl NowPaymentsConnector {
    /// Needs rustls' crypto provider installed (see
    /// `malipo_gateway::install_crypto_provider`).
    pub fn new() -> Self {
        NowPaymentsConnector::with_client(common::http_client())
    }

    /// A connector calling NOWPayments through `client`.
    pub fn with_client(client: reqwest::Client) -> Self {
        NowPaymentsConnector { client }
    }
}

#[async_trait]
impl Connector for NowPaymentsConnector {
    fn name(&self) -> &'static str {
        NOWPAYMENTS
    }

    fn payment_expiry_seconds(&self) -> u64 {
        PAYMENT_EXPIRY_SECONDS
    }

    async fn start_payment(
        &self,
        request: &PaymentRequest<'_>,
    ) -> Result<PaymentOutcome, ConnectorError> {
        let settings = Settings::of(request.account)?;
        let pay_currency = request
            .payment_method
            .filter(|code| is_pay_currency(code))
            .ok_or_else(|| {
                ConnectorError::Rejected(format!(
                    "a crypto payment names the coin in payment_method: one of {}",
                    PAY_CURRENCIES.join(", ")
                ))
            })?
            .to_ascii_lowercase();
        let price = common::decimal_text(request.amount, request.currency, "NOWPayments")?;
        let price_amount: Value = serde_json::from_str(&price).map_err(|_| {
            ConnectorError::Rejected(format!("{price} is not a price NOWPayments takes"))
        })?;
        let mut body = json!({
            "price_amount": price_amount,
            "price_currency": request.currency.to_ascii_lowercase(),
            "pay_currency": pay_currency,
            "order_id": request.payment_id,
            "is_fixed_rate": true,
            "is_fee_paid_by_user": false,
        });
        if let Some(description) = request.description {
            body["order_description"] = json!(description);
        }
        if let Some(url) = &request.account.callback_url {
            body["ipn_callback_url"] = json!(url);
        }
        let http = self
            .client
            .post(format!("{}/v1/payment", settings.base_url))
            .header("x-api-key", &settings.api_key)
            .json(&body);
        let reply = common::send(http, "NOWPayments", "create payment").await?;
        if !reply.is_success() {
            return Err(rejection("create payment", &reply));
        }
        let status = reply.json.as_ref().and_then(parse_status).ok_or_else(|| {
            ConnectorError::Unavailable("NOWPayments answered no payment_id".into())
        })?;
        match outcome_of(&status, None, common::POLL_AFTER_MS_MIN) {
            Some(outcome @ PaymentOutcome::RequiresAction { .. }) => Ok(outcome),
            _ => Err(ConnectorError::Unavailable(format!(
                "NOWPayments answered a new payment as `{}` without an address",
                status.payment_status
            ))),
        }
    }

    async fn payment_status(
        &self,
        request: &StatusRequest<'_>,
    ) -> Result<PaymentOutcome, ConnectorError> {
        let settings = Settings::of(request.account)?;
        let payment_id = request
            .provider_reference
            .filter(|id| common::is_digits(id))
            .ok_or_else(|| {
                ConnectorError::Unavailable(
                    "no NOWPayments payment_id is known for this payment yet".into(),
                )
            })?;
        let http = self
            .client
            .get(format!("{}/v1/payment/{payment_id}", settings.base_url))
            .header("x-api-key", &settings.api_key);
        let reply = common::send(http, "NOWPayments", "payment status").await?;
        if !reply.is_success() {
            return Err(rejection("payment status", &reply));
        }
        let status = reply
            .json
            .as_ref()
            .and_then(parse_status)
            .filter(|status| status.payment_id == payment_id)
            .ok_or_else(|| {
                ConnectorError::Unavailable(format!(
                    "NOWPayments answered no status for payment {payment_id}"
                ))
            })?;
        let poll_after_ms = common::poll_after_ms(request.started_ms, request.now_ms);
        outcome_of(&status, request.next_action, poll_after_ms).ok_or_else(|| {
            ConnectorError::Unavailable(format!(
                "NOWPayments payment_status `{}` is not documented",
                status.payment_status
            ))
        })
    }

    fn check_refund(&self, _refund: &RefundCheck<'_>) -> Result<(), FieldError> {
        Err(FieldError {
            param: "payment",
            message: "NOWPayments has no refund API for a received crypto payment: return the coins from your own wallet, or by a payout".into(),
        })
    }

    async fn refund(&self, _request: &RefundRequest<'_>) -> Result<RefundOutcome, ConnectorError> {
        Err(ConnectorError::Unsupported("refunds of crypto payments"))
    }

    /// An IPN (signed; verified before this reads it): the payment by
    /// NOWPayments' `payment_id` and Malipo's `order_id`, and what its
    /// status means.
    fn parse_callback(&self, raw_body: &[u8]) -> Option<CallbackClaim> {
        parse_ipn(raw_body)
    }
}

/// What an IPN body claims: the payment by NOWPayments' `payment_id` and
/// Malipo's `order_id`, and what its status means.
pub fn parse_ipn(raw_body: &[u8]) -> Option<CallbackClaim> {
    let body: Value = serde_json::from_slice(raw_body).ok()?;
    let status = parse_status(&body)?;
    let outcome = outcome_of(&status, None, common::POLL_AFTER_MS_MIN)?;
    Some(CallbackClaim {
        provider_reference: status.payment_id.clone(),
        payment_id: status.order_id.filter(|id| id.starts_with("pay_")),
        outcome,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipn(status: &str, actually_paid: &str) -> Value {
        serde_json::from_str(&format!(
            r#"{{"payment_id":5745459419,"payment_status":"{status}","pay_address":"3EZ2uTdVDAMFXTfc6uLDDKR6o8qKBZXVkj","price_amount":70.13,"price_currency":"usd","pay_amount":0.00116884,"actually_paid":{actually_paid},"pay_currency":"btc","order_id":"pay_123","purchase_id":"5837122679","outcome_amount":0.001,"outcome_currency":"btc"}}"#
        ))
        .expect("json")
    }

    #[test]
    fn payment_ids_are_read_as_strings_or_numbers() {
        let created = json!({"payment_id": "5745459419", "payment_status": "waiting"});
        let status = json!({"payment_id": 5745459419u64, "payment_status": "waiting"});
        assert_eq!(
            parse_status(&created).expect("created").payment_id,
            parse_status(&status).expect("status").payment_id
        );
    }

    #[test]
    fn partially_paid_asks_for_the_rest_and_shows_what_arrived() {
        let status = parse_status(&ipn("partially_paid", "0.00058442")).expect("status");
        let Some(PaymentOutcome::RequiresAction { next_action, .. }) =
            outcome_of(&status, None, 1000)
        else {
            panic!("partially paid asks the customer to act");
        };
        let NextAction::CryptoAddress {
            amount_received,
            provider_status,
            pay_amount,
            ..
        } = next_action
        else {
            panic!("a crypto address");
        };
        assert_eq!(amount_received, "0.00058442");
        assert_eq!(pay_amount, "0.00116884");
        assert_eq!(provider_status, "partially_paid");
    }

    #[test]
    fn every_documented_status_has_an_outcome() {
        for (status, kind) in [
            ("waiting", "requires_action"),
            ("confirming", "processing"),
            ("confirmed", "processing"),
            ("sending", "processing"),
            ("partially_paid", "requires_action"),
            ("finished", "succeeded"),
            ("failed", "crypto_payment_failed"),
            ("expired", "expired"),
            ("refunded", "refunded_by_provider"),
        ] {
            let parsed = parse_status(&ipn(status, "0")).expect("status");
            let outcome = outcome_of(&parsed, None, 1000).expect(status);
            let seen = match outcome {
                PaymentOutcome::RequiresAction { .. } => "requires_action".to_owned(),
                PaymentOutcome::Processing { .. } => "processing".to_owned(),
                PaymentOutcome::Succeeded { .. } => "succeeded".to_owned(),
                PaymentOutcome::Failed { failure, .. } => failure.code,
                PaymentOutcome::Authorized { .. } => "authorized".to_owned(),
            };
            assert_eq!(seen, kind, "{status}");
        }
        let unknown = parse_status(&ipn("teleported", "0")).expect("status");
        assert_eq!(outcome_of(&unknown, None, 1000), None);
    }

    #[test]
    fn an_ipn_names_the_payment_by_both_ids() {
        let raw = ipn("finished", "0.00116884").to_string();
        let claim = parse_ipn(raw.as_bytes()).expect("claim");
        assert_eq!(claim.provider_reference, "5745459419");
        assert_eq!(claim.payment_id.as_deref(), Some("pay_123"));
        assert!(matches!(claim.outcome, PaymentOutcome::Succeeded { .. }));
    }
}
