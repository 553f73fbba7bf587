//! The Flutterwave connector: card payments on Flutterwave Standard, the
//! v3 hosted checkout.
//!
//! A payment is `POST /v3/payments` (JSON: the payment id as `tx_ref`, the
//! amount as an exact decimal string in major units, the currency, the
//! merchant's `return_url` as `redirect_url`, `payment_options: "card"`,
//! the customer's email). Flutterwave answers a hosted `link`: the payment
//! is `requires_action` with a `redirect` to it, and the customer types the
//! card there, never into Malipo. Flutterwave then sends the customer to
//! `redirect_url?status=…&tx_ref=…&transaction_id=…`, which proves nothing.
//!
//! Only `GET /v3/transactions/verify_by_reference?tx_ref=…` marks a payment
//! (Flutterwave's own advice): its `status` (`successful`, `failed`,
//! `pending`) counts only when its `tx_ref`, `currency` and `amount` are
//! the payment's; another amount or currency fails the payment with
//! `amount_mismatch`. The worker's poll asks it, and so does a
//! `charge.completed` webhook, once `malipo-hooks` has checked its
//! `verif-hash` (the dashboard's secret hash, compared in constant time) or
//! `flutterwave-signature` (base64 HMAC-SHA256 of the raw body keyed with
//! the secret hash): the webhook names the payment, the verify call
//! decides ([`Connector::confirms_callbacks`]).
//!
//! Refunds: the transaction's id comes from the same verify call, then
//! `POST /v3/transactions/{id}/refund` with the amount; `completed`
//! succeeds the refund, `pending` leaves it pending.
//!
//! # Credentials (`ConnectorAccount::credentials`)
//! | key | |
//! |---|---|
//! | `secret_key` | `FLWSECK_TEST-…-X` / `FLWSECK-…-X`, sent as `Authorization: Bearer` (required) |
//! | `base_url` | the API host (optional; default `https://api.flutterwave.com`; a simulator's URL in tests) |
//!
//! The connector account's `webhook_secret` is the dashboard's secret hash.
//! A live payment with a test key (`FLWSECK_TEST`) is refused.

use crate::cards::{self, Settings};
use crate::common::{self, Reply, decimal_text, refusal_message};
use crate::{
    CallbackClaim, Connector, ConnectorError, FieldError, PaymentOutcome, PaymentRequest,
    RefundOutcome, RefundRequest, StatusRequest,
};
use async_trait::async_trait;
use malipo_core::Asset;
use malipo_core::objects::{Customer, Failure};
use serde_json::{Value, json};

/// The provider name of Flutterwave accounts (and of this connector).
pub const FLUTTERWAVE: &str = "flutterwave";
/// Flutterwave's API host (paths start with `/v3`).
pub const BASE_URL: &str = "https://api.flutterwave.com";
/// The card currencies Malipo sends to Flutterwave (lowercase).
pub const CURRENCIES: &[&str] = &[
    "ngn", "ghs", "kes", "ugx", "tzs", "rwf", "zmw", "zar", "xaf", "xof", "usd", "eur", "gbp",
];
/// The prefix of Flutterwave's test secret keys.
const TEST_KEY_PREFIX: &str = "FLWSECK_TEST";

/// `amount` (a JSON number or string of major units, as Flutterwave
/// writes amounts) in minor units of `currency`, exactly; `None` when it
/// has more decimals than the currency or is not a plain decimal.
pub fn minor_units(amount: &Value, currency: &str) -> Option<u64> {
    let text = common::scalar_text(amount)?;
    let exponent = usize::from(Asset::parse(currency).ok()?.exponent());
    let (whole, fraction) = text.split_once('.').unwrap_or((text.as_str(), ""));
    let fraction = fraction.trim_end_matches('0');
    if whole.is_empty()
        || !common::is_digits(whole)
        || (!fraction.is_empty() && !common::is_digits(fraction))
        || fraction.len() > exponent
    {
        return None;
    }
    let digits = format!("{whole}{fraction:0<exponent$}");
    digits.parse().ok()
}

/// What a verified transaction (`data` of a verify answer) means for the
/// payment of `amount` minor units of `currency` known by `tx_ref`;
/// `None` when it is about another transaction or its status is unknown.
pub fn outcome_of(
    data: &Value,
    tx_ref: &str,
    amount: u64,
    currency: &str,
    request: Option<&StatusRequest<'_>>,
) -> Option<PaymentOutcome> {
    let text = |key: &str| data.get(key).and_then(common::scalar_text);
    if text("tx_ref").as_deref() != Some(tx_ref) {
        return None;
    }
    let provider_reference = Some(tx_ref.to_string());
    match text("status")?.to_ascii_lowercase().as_str() {
        "successful" => {
            let paid_currency = text("currency").unwrap_or_default();
            let paid = data
                .get("amount")
                .and_then(|paid| minor_units(paid, currency));
            if !paid_currency.eq_ignore_ascii_case(currency) || paid != Some(amount) {
                return Some(PaymentOutcome::Failed {
                    provider_reference,
                    failure: Failure {
                        code: "amount_mismatch".into(),
                        message: format!(
                            "Flutterwave reports {} {} paid for a payment of {amount} {} minor units; nothing was credited: reconcile it, or refund it at Flutterwave",
                            data.get("amount").unwrap_or(&Value::Null),
                            paid_currency,
                            currency.to_ascii_uppercase(),
                        ),
                    },
                });
            }
            Some(PaymentOutcome::Succeeded { provider_reference })
        }
        "failed" => {
            let response = text("processor_response").unwrap_or_default();
            Some(PaymentOutcome::Failed {
                provider_reference,
                failure: cards::decline(&response, &response),
            })
        }
        "pending" => Some(waiting(provider_reference, request)),
        _ => None,
    }
}

/// The customer has not finished: back to the hosted page they were sent to.
fn waiting(
    provider_reference: Option<String>,
    request: Option<&StatusRequest<'_>>,
) -> PaymentOutcome {
    let poll_after_ms = request.map_or(common::POLL_AFTER_MS_MIN, |request| {
        common::poll_after_ms(request.started_ms, request.now_ms)
    });
    match cards::last_redirect(request.and_then(|request| request.next_action)) {
        Some(next_action) => PaymentOutcome::RequiresAction {
            provider_reference,
            next_action,
            poll_after_ms,
        },
        None => PaymentOutcome::Processing {
            provider_reference,
            next_action: None,
            poll_after_ms,
        },
    }
}

/// A webhook body: `event`, and `data.tx_ref`.
fn webhook_reference(body: &[u8]) -> Option<(String, String)> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let event = value.get("event").and_then(common::scalar_text)?;
    let tx_ref = value
        .pointer("/data/tx_ref")
        .and_then(common::scalar_text)
        .filter(|tx_ref| !tx_ref.is_empty())?;
    Some((event, tx_ref))
}

/// `data` of a successful answer (`{"status": "success", "data": …}`).
fn data(reply: &Reply) -> Option<&Value> {
    let body = reply.json.as_ref()?;
    (reply.is_success() && body.get("status").and_then(Value::as_str) == Some("success"))
        .then(|| body.get("data"))
        .flatten()
}

fn rejection(what: &str, reply: &Reply) -> ConnectorError {
    reply.refusal("Flutterwave", what)
}

#[derive(Debug)]
pub struct FlutterwaveConnector {
    client: reqwest::Client,
}

impl Default for FlutterwaveConnector {
    fn default() -> Self {
        FlutterwaveConnector::new()
    }
}

impl FlutterwaveConnector {
    /// Needs rustls' crypto provider installed (see
    /// `malipo_gateway::install_crypto_provider`).
    pub fn new() -> Self {
        FlutterwaveConnector::with_client(common::http_client())
    }

    /// A connector calling Flutterwave through `client`.
    pub fn with_client(client: reqwest::Client) -> Self {
        FlutterwaveConnector { client }
    }

    /// `GET /v3/transactions/verify_by_reference?tx_ref=…`: the
    /// transaction's `data`, or `None` while Flutterwave has no transaction
    /// for the reference (the customer has not paid yet).
    async fn verify(
        &self,
        settings: &Settings,
        tx_ref: &str,
    ) -> Result<Option<Value>, ConnectorError> {
        let mut url = reqwest::Url::parse(&format!(
            "{}/v3/transactions/verify_by_reference",
            settings.base_url
        ))
        .map_err(|error| {
            ConnectorError::Rejected(format!("invalid credential `base_url`: {error}"))
        })?;
        url.query_pairs_mut().append_pair("tx_ref", tx_ref);
        let http = self.client.get(url).bearer_auth(&settings.secret_key);
        let reply = common::send(http, "Flutterwave", "verify").await?;
        if let Some(data) = data(&reply) {
            return Ok(Some(data.clone()));
        }
        let not_found = reply
            .text("message")
            .is_some_and(|message| message.to_ascii_lowercase().contains("no transaction"));
        if matches!(reply.status, 400 | 404) && not_found {
            return Ok(None);
        }
        Err(match rejection("verify", &reply) {
            // A verify that fails is never a decline: ask again later.
            ConnectorError::Rejected(text) => ConnectorError::Unavailable(text),
            other => other,
        })
    }
}

#[async_trait]
impl Connector for FlutterwaveConnector {
    fn name(&self) -> &'static str {
        FLUTTERWAVE
    }

    fn payment_expiry_seconds(&self) -> u64 {
        cards::PAYMENT_EXPIRY_SECONDS
    }

    /// `verif-hash` is a static shared secret: a webhook only names the
    /// transaction, and the verify call decides.
    fn confirms_callbacks(&self) -> bool {
        true
    }

    fn check_payment(
        &self,
        customer: &mut Customer,
        currency: &str,
        amount: u64,
    ) -> Result<(), FieldError> {
        cards::check_currency("Flutterwave", CURRENCIES, currency).map_err(|error| FieldError {
            param: "currency",
            message: refusal_message(error),
        })?;
        decimal_text(amount, currency, "Flutterwave").map_err(|error| FieldError {
            param: "currency",
            message: refusal_message(error),
        })?;
        cards::email("Flutterwave", customer).map_err(|error| FieldError {
            param: "customer[email]",
            message: refusal_message(error),
        })?;
        Ok(())
    }

    async fn start_payment(
        &self,
        request: &PaymentRequest<'_>,
    ) -> Result<PaymentOutcome, ConnectorError> {
        let settings = Settings::of(BASE_URL, request.account)?;
        if request.livemode && settings.secret_key.starts_with(TEST_KEY_PREFIX) {
            return Err(ConnectorError::Rejected(
                "a live payment can't use a Flutterwave test key (FLWSECK_TEST…)".into(),
            ));
        }
        if request.payment_method.is_some() {
            return Err(ConnectorError::Rejected(
                "Flutterwave takes the card on its hosted page: no payment_method".into(),
            ));
        }
        cards::check_currency("Flutterwave", CURRENCIES, request.currency)?;
        let mut customer = json!({"email": cards::email("Flutterwave", request.customer)?});
        if let Some(name) = &request.customer.name {
            customer["name"] = json!(name);
        }
        if let Some(phone) = &request.customer.phone {
            customer["phonenumber"] = json!(phone);
        }
        let mut body = json!({
            "tx_ref": request.payment_id,
            "amount": decimal_text(request.amount, request.currency, "Flutterwave")?,
            "currency": request.currency.to_ascii_uppercase(),
            "payment_options": "card",
            "customer": customer,
            "customizations": {"title": request.description.or(request.reference).unwrap_or("Payment")},
            "meta": {"malipo_payment": request.payment_id},
        });
        if let Some(return_url) = request.return_url {
            body["redirect_url"] = json!(return_url);
        }
        let http = self
            .client
            .post(format!("{}/v3/payments", settings.base_url))
            .bearer_auth(&settings.secret_key)
            .json(&body);
        let reply = common::send(http, "Flutterwave", "create payment").await?;
        let data = data(&reply).ok_or_else(|| rejection("create payment", &reply))?;
        let link = data
            .get("link")
            .and_then(common::scalar_text)
            .ok_or_else(|| ConnectorError::Unavailable("Flutterwave answered no link".into()))?;
        Ok(PaymentOutcome::RequiresAction {
            provider_reference: Some(request.payment_id.to_string()),
            next_action: cards::redirect(link, request.return_url),
            poll_after_ms: common::POLL_AFTER_MS_MIN,
        })
    }

    /// Verifies the transaction by its `tx_ref`, checking amount and
    /// currency: the only answer that marks a payment.
    async fn payment_status(
        &self,
        request: &StatusRequest<'_>,
    ) -> Result<PaymentOutcome, ConnectorError> {
        let settings = Settings::of(BASE_URL, request.account)?;
        let tx_ref = request.provider_reference.unwrap_or(request.payment_id);
        let Some(data) = self.verify(&settings, tx_ref).await? else {
            return Ok(waiting(Some(tx_ref.to_string()), Some(request)));
        };
        outcome_of(
            &data,
            tx_ref,
            request.amount,
            request.currency,
            Some(request),
        )
        .ok_or_else(|| {
            ConnectorError::Unavailable(format!(
                "Flutterwave answered another transaction or an unknown status: {}",
                data.get("status").unwrap_or(&Value::Null)
            ))
        })
    }

    async fn refund(&self, request: &RefundRequest<'_>) -> Result<RefundOutcome, ConnectorError> {
        let settings = Settings::of(BASE_URL, request.account)?;
        let tx_ref = request.provider_reference.unwrap_or(request.payment_id);
        let id = self
            .verify(&settings, tx_ref)
            .await?
            .filter(|data| data.get("status").and_then(Value::as_str) == Some("successful"))
            .and_then(|data| data.get("id").and_then(common::scalar_text))
            .filter(|id| common::is_digits(id))
            .ok_or_else(|| {
                ConnectorError::Rejected(format!(
                    "Flutterwave has no successful transaction {tx_ref} to refund"
                ))
            })?;
        let http = self
            .client
            .post(format!("{}/v3/transactions/{id}/refund", settings.base_url))
            .bearer_auth(&settings.secret_key)
            .json(&json!({
                "amount": decimal_text(request.amount, request.currency, "Flutterwave")?,
                "comments": request.refund_id,
            }));
        let reply = common::send(http, "Flutterwave", "refund").await?;
        if reply.is_server_error() {
            return Err(rejection("refund", &reply));
        }
        let Some(data) = data(&reply) else {
            return Ok(RefundOutcome::Failed {
                failure: Failure {
                    code: "provider_rejected".into(),
                    message: rejection("refund", &reply).to_string(),
                },
            });
        };
        let refunded = data
            .get("amount_refunded")
            .and_then(|amount| minor_units(amount, request.currency));
        if refunded != Some(request.amount) {
            return Err(ConnectorError::Unavailable(format!(
                "Flutterwave refunded {refunded:?} instead of {}",
                request.amount
            )));
        }
        let provider_reference = data.get("id").and_then(common::scalar_text);
        Ok(
            match data
                .get("status")
                .and_then(common::scalar_text)
                .unwrap_or_default()
                .as_str()
            {
                "completed" | "successful" => RefundOutcome::Succeeded { provider_reference },
                "failed" => RefundOutcome::Failed {
                    failure: Failure {
                        code: "provider_rejected".into(),
                        message: "Flutterwave could not process the refund".into(),
                    },
                },
                _ => RefundOutcome::Pending { provider_reference },
            },
        )
    }

    /// `charge.completed`: names the payment by `tx_ref` (the payment id).
    /// What it claims is only a hint: the gateway confirms it with
    /// [`Connector::payment_status`] before anything changes.
    fn parse_callback(&self, raw_body: &[u8]) -> Option<CallbackClaim> {
        let (event, tx_ref) = webhook_reference(raw_body)?;
        if event != "charge.completed" {
            return None;
        }
        Some(CallbackClaim {
            payment_id: tx_ref.starts_with("pay_").then(|| tx_ref.clone()),
            provider_reference: tx_ref,
            outcome: PaymentOutcome::Processing {
                provider_reference: None,
                next_action: None,
                poll_after_ms: common::POLL_AFTER_MS_MIN,
            },
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_exact_in_major_units() {
        assert_eq!(minor_units(&json!(100), "ngn"), Some(10_000));
        assert_eq!(minor_units(&json!(100.5), "ngn"), Some(10_050));
        assert_eq!(minor_units(&json!("5000.00"), "ngn"), Some(500_000));
        assert_eq!(minor_units(&json!(5000), "ugx"), Some(5_000));
        assert_eq!(minor_units(&json!(1.005), "ngn"), None);
        assert_eq!(minor_units(&json!(0.5), "ugx"), None);
        assert_eq!(minor_units(&json!("-1"), "ngn"), None);
        assert_eq!(minor_units(&json!("1e3"), "ngn"), None);
    }

    #[test]
    fn only_the_payments_amount_and_currency_succeed() {
        let paid = |amount: Value, currency: &str| {
            json!({"id": 285959875, "tx_ref": "pay_1", "status": "successful",
                "amount": amount, "currency": currency})
        };
        assert!(matches!(
            outcome_of(&paid(json!(100), "NGN"), "pay_1", 10_000, "ngn", None),
            Some(PaymentOutcome::Succeeded { .. })
        ));
        for (amount, currency) in [(json!(99.99), "NGN"), (json!(100), "GHS")] {
            assert!(matches!(
                outcome_of(&paid(amount, currency), "pay_1", 10_000, "ngn", None),
                Some(PaymentOutcome::Failed { failure, .. }) if failure.code == "amount_mismatch"
            ));
        }
        assert_eq!(
            outcome_of(&paid(json!(100), "NGN"), "pay_2", 10_000, "ngn", None),
            None
        );
        let declined = json!({"tx_ref": "pay_1", "status": "failed",
            "processor_response": "Insufficient funds"});
        assert!(matches!(
            outcome_of(&declined, "pay_1", 10_000, "ngn", None),
            Some(PaymentOutcome::Failed { failure, .. }) if failure.code == "insufficient_funds"
        ));
    }

    #[test]
    fn webhooks_only_name_their_payment() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let body = br#"{"event":"charge.completed","data":{"id":285959875,"tx_ref":"pay_01JTEST","status":"successful","amount":100,"currency":"NGN"}}"#;
        let claim = FlutterwaveConnector::new().parse_callback(body).unwrap();
        assert_eq!(claim.payment_id.as_deref(), Some("pay_01JTEST"));
        assert_eq!(claim.provider_reference, "pay_01JTEST");
        assert!(matches!(claim.outcome, PaymentOutcome::Processing { .. }));
        assert!(
            FlutterwaveConnector::new()
                .parse_callback(br#"{"event":"transfer.completed","data":{"tx_ref":"x"}}"#)
                .is_none()
        );
    }
}
