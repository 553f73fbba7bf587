//! The Paystack connector: card payments on Paystack's hosted checkout.
//!
//! A payment is a transaction initialized with `POST /transaction/initialize`
//! (JSON: the customer's email, the amount in the currency's subunit, the
//! payment id as `reference` — `pay_…` written `pay-…`, since Paystack takes
//! only letters, digits, `-`, `.` and `=` — the merchant's `return_url` as
//! `callback_url`, `channels: ["card"]`). Paystack answers an
//! `authorization_url`: the payment is `requires_action` with a `redirect`
//! next action to it, and the customer types the card there, never into
//! Malipo.
//!
//! Paystack sends the customer back to `return_url` with the reference, but
//! a redirect proves nothing: the outcome comes from the signed
//! `charge.success` webhook (`x-paystack-signature`, HMAC-SHA512 of the raw
//! body keyed with the secret key, checked by `malipo-hooks` before
//! [`Connector::parse_callback`] reads it) or from
//! `GET /transaction/verify/{reference}` ([`Connector::payment_status`], the
//! worker's poll), whichever comes first; the other then changes nothing.
//! Paystack sends no webhook for a failed charge: the poll finds those.
//!
//! Refunds: `POST /refund` with the reference and the amount; Paystack
//! queues them (`pending`), so the refund answers pending with Paystack's
//! refund id; `refund.processed` / `refund.failed` webhooks follow.
//!
//! # Credentials (`ConnectorAccount::credentials`)
//! | key | |
//! |---|---|
//! | `secret_key` | `sk_test_…` / `sk_live_…`, sent as `Authorization: Bearer` (required) |
//! | `base_url` | the API host (optional; default `https://api.paystack.co`; a simulator's URL in tests) |
//!
//! The connector account's `webhook_secret` is the same secret key
//! (Paystack signs webhooks with it). A live payment with a `sk_test_` key
//! is refused. Currencies: NGN, GHS, KES, ZAR, USD, amounts in the subunit
//! (kobo, pesewas, cents) exactly as Malipo holds them.

use crate::cards::{self, Settings};
use crate::common::{self, Reply, refusal_message};
use crate::{
    CallbackClaim, Connector, ConnectorError, FieldError, PaymentOutcome, PaymentRequest,
    RefundClaim, RefundOutcome, RefundRequest, StatusRequest,
};
use async_trait::async_trait;
use malipo_core::objects::{Customer, Failure};
use serde_json::{Value, json};

/// The provider name of Paystack accounts (and of this connector).
pub const PAYSTACK: &str = "paystack";
/// Paystack's API host.
pub const BASE_URL: &str = "https://api.paystack.co";
/// The currencies Paystack takes (lowercase).
pub const CURRENCIES: &[&str] = &["ngn", "ghs", "kes", "zar", "usd"];
/// Transaction statuses that mean the customer has not finished yet.
pub const WAITING_STATUSES: &[&str] = &[
    "abandoned",
    "ongoing",
    "pending",
    "processing",
    "queued",
    "send_pin",
    "send_otp",
    "send_birthday",
    "send_phone",
    "send_address",
    "open_url",
];

/// A Paystack webhook body: its event and the fields Malipo reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaystackWebhook {
    /// e.g. `charge.success`, `refund.processed`.
    pub event: String,
    /// `data.reference` of charge events, `data.transaction_reference` of
    /// refund events.
    pub reference: Option<String>,
    pub status: Option<String>,
    /// `data.refund_reference` (refund events).
    pub refund_reference: Option<String>,
}

/// Reads a webhook body (amounts are ignored: they are Malipo's own; a
/// refund's `amount` comes as a string or a number).
pub fn parse_webhook(body: &[u8]) -> Option<PaystackWebhook> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let data = value.get("data")?;
    let field = |key: &str| {
        data.get(key)
            .and_then(common::scalar_text)
            .filter(|text| !text.is_empty())
    };
    Some(PaystackWebhook {
        event: value.get("event").and_then(common::scalar_text)?,
        reference: field("reference").or_else(|| field("transaction_reference")),
        status: field("status"),
        refund_reference: field("refund_reference"),
    })
}

/// The outcome of transaction `reference` in `status`, with Paystack's
/// `gateway_response`; `None` for a status Paystack does not document.
pub fn outcome_of(
    reference: &str,
    status: &str,
    gateway_response: Option<&str>,
    request: Option<&StatusRequest<'_>>,
) -> Option<PaymentOutcome> {
    let provider_reference = Some(reference.to_string());
    let status = status.trim().to_ascii_lowercase();
    let response = gateway_response.unwrap_or_default();
    match status.as_str() {
        "success" => Some(PaymentOutcome::Succeeded { provider_reference }),
        "failed" => Some(PaymentOutcome::Failed {
            provider_reference,
            failure: cards::decline(response, response),
        }),
        "reversed" => Some(PaymentOutcome::Failed {
            provider_reference,
            failure: Failure {
                code: "reversed".into(),
                message: format!("Paystack reversed the transaction: {response}"),
            },
        }),
        waiting if WAITING_STATUSES.contains(&waiting) => {
            let poll_after_ms = request.map_or(common::POLL_AFTER_MS_MIN, |request| {
                common::poll_after_ms(request.started_ms, request.now_ms)
            });
            let last = cards::last_redirect(request.and_then(|request| request.next_action));
            Some(match last {
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
            })
        }
        _ => None,
    }
}

/// `data` of a successful answer (`{"status": true, "data": …}`).
fn data(reply: &Reply) -> Option<&Value> {
    let body = reply.json.as_ref()?;
    (reply.is_success() && body.get("status").and_then(Value::as_bool) == Some(true))
        .then(|| body.get("data"))
        .flatten()
}

fn rejection(what: &str, reply: &Reply) -> ConnectorError {
    reply.refusal("Paystack", what)
}

#[derive(Debug)]
pub struct PaystackConnector {
    client: reqwest::Client,
}

impl Default for PaystackConnector {
    fn default() -> Self {
        PaystackConnector::new()
    }
}

impl PaystackConnector {
    /// Needs rustls' crypto provider installed (see
    /// `malipo_gateway::install_crypto_provider`).
    pub fn new() -> Self {
        PaystackConnector::with_client(common::http_client())
    }

    /// A connector calling Paystack through `client`.
    pub fn with_client(client: reqwest::Client) -> Self {
        PaystackConnector { client }
    }

    /// `GET /transaction/verify/{reference}`.
    async fn verify(
        &self,
        settings: &Settings,
        reference: &str,
    ) -> Result<(String, Option<String>, Value), ConnectorError> {
        let mut url = reqwest::Url::parse(&settings.base_url).map_err(|error| {
            ConnectorError::Rejected(format!("invalid credential `base_url`: {error}"))
        })?;
        url.path_segments_mut()
            .map_err(|()| ConnectorError::Rejected("invalid credential `base_url`".into()))?
            .extend(["transaction", "verify", reference]);
        let http = self.client.get(url).bearer_auth(&settings.secret_key);
        let reply = common::send(http, "Paystack", "verify").await?;
        let data = data(&reply).ok_or_else(|| rejection("verify", &reply))?;
        let field = |key: &str| data.get(key).and_then(common::scalar_text);
        if field("reference").as_deref() != Some(reference) {
            return Err(ConnectorError::Unavailable(format!(
                "Paystack verified another reference than {reference}"
            )));
        }
        let status = field("status").ok_or_else(|| {
            ConnectorError::Unavailable("Paystack answered no transaction status".into())
        })?;
        Ok((status, field("gateway_response"), data.clone()))
    }
}

#[async_trait]
impl Connector for PaystackConnector {
    fn name(&self) -> &'static str {
        PAYSTACK
    }

    fn payment_expiry_seconds(&self) -> u64 {
        cards::PAYMENT_EXPIRY_SECONDS
    }

    fn check_payment(
        &self,
        customer: &mut Customer,
        currency: &str,
        _amount: u64,
    ) -> Result<(), FieldError> {
        cards::check_currency("Paystack", CURRENCIES, currency).map_err(|error| FieldError {
            param: "currency",
            message: refusal_message(error),
        })?;
        cards::email("Paystack", customer).map_err(|error| FieldError {
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
        if request.livemode && settings.secret_key.starts_with("sk_test_") {
            return Err(ConnectorError::Rejected(
                "a live payment can't use a Paystack test key (sk_test_…)".into(),
            ));
        }
        if request.payment_method.is_some() {
            return Err(ConnectorError::Rejected(
                "Paystack takes the card on its hosted page: no payment_method".into(),
            ));
        }
        cards::check_currency("Paystack", CURRENCIES, request.currency)?;
        let reference = cards::reference_of(request.payment_id)?;
        let mut body = json!({
            "email": cards::email("Paystack", request.customer)?,
            "amount": request.amount,
            "currency": request.currency.to_ascii_uppercase(),
            "reference": reference,
            "channels": ["card"],
            "metadata": {"malipo_payment": request.payment_id},
        });
        if let Some(return_url) = request.return_url {
            body["callback_url"] = json!(return_url);
        }
        let http = self
            .client
            .post(format!("{}/transaction/initialize", settings.base_url))
            .bearer_auth(&settings.secret_key)
            .json(&body);
        let reply = common::send(http, "Paystack", "initialize").await?;
        let data = data(&reply).ok_or_else(|| rejection("initialize", &reply))?;
        let url = data
            .get("authorization_url")
            .and_then(common::scalar_text)
            .ok_or_else(|| {
                ConnectorError::Unavailable("Paystack answered no authorization_url".into())
            })?;
        Ok(PaymentOutcome::RequiresAction {
            provider_reference: Some(reference),
            next_action: cards::redirect(url, request.return_url),
            poll_after_ms: common::POLL_AFTER_MS_MIN,
        })
    }

    /// Verifies the transaction with Paystack: the only answer (with the
    /// signed webhook) that marks a payment succeeded.
    async fn payment_status(
        &self,
        request: &StatusRequest<'_>,
    ) -> Result<PaymentOutcome, ConnectorError> {
        let settings = Settings::of(BASE_URL, request.account)?;
        let reference = match request.provider_reference {
            Some(reference) if !reference.is_empty() => reference.to_string(),
            _ => cards::reference_of(request.payment_id)?,
        };
        let (status, gateway_response, _) = self.verify(&settings, &reference).await?;
        outcome_of(
            &reference,
            &status,
            gateway_response.as_deref(),
            Some(request),
        )
        .ok_or_else(|| {
            ConnectorError::Unavailable(format!(
                "Paystack transaction status `{status}` is not documented"
            ))
        })
    }

    async fn refund(&self, request: &RefundRequest<'_>) -> Result<RefundOutcome, ConnectorError> {
        let settings = Settings::of(BASE_URL, request.account)?;
        let reference = match request.provider_reference {
            Some(reference) if !reference.is_empty() => reference.to_string(),
            _ => cards::reference_of(request.payment_id)?,
        };
        let http = self
            .client
            .post(format!("{}/refund", settings.base_url))
            .bearer_auth(&settings.secret_key)
            .json(&json!({
                "transaction": reference,
                "amount": request.amount,
                "currency": request.currency.to_ascii_uppercase(),
                "merchant_note": request.refund_id,
            }));
        let reply = common::send(http, "Paystack", "refund").await?;
        if reply.is_server_error() {
            return Err(rejection("refund", &reply));
        }
        let Some(data) = data(&reply) else {
            return Ok(RefundOutcome::Failed {
                failure: Failure {
                    code: "provider_rejected".into(),
                    message: reply.text("message").unwrap_or_else(|| {
                        format!("Paystack refused the refund: {}", reply.excerpt)
                    }),
                },
            });
        };
        let provider_reference = data.get("id").and_then(common::scalar_text);
        Ok(
            match data
                .get("status")
                .and_then(common::scalar_text)
                .unwrap_or_default()
                .as_str()
            {
                "processed" => RefundOutcome::Succeeded { provider_reference },
                "failed" => RefundOutcome::Failed {
                    failure: Failure {
                        code: "provider_rejected".into(),
                        message: "Paystack could not process the refund".into(),
                    },
                },
                _ => RefundOutcome::Pending { provider_reference },
            },
        )
    }

    /// `refund.processed` / `refund.failed`: the pending refund, named by
    /// `refund_reference`, which this connector takes to be the refund id
    /// `POST /refund` answered (as the simulator does; providers.md's
    /// samples do not show both for one refund).
    fn parse_refund_callback(&self, raw_body: &[u8]) -> Option<RefundClaim> {
        let webhook = parse_webhook(raw_body)?;
        let provider_reference = webhook.refund_reference?;
        let outcome = match webhook.event.as_str() {
            "refund.processed" => RefundOutcome::Succeeded {
                provider_reference: Some(provider_reference.clone()),
            },
            "refund.failed" => RefundOutcome::Failed {
                failure: Failure {
                    code: "provider_rejected".into(),
                    message: "Paystack could not process the refund".into(),
                },
            },
            _ => return None,
        };
        Some(RefundClaim {
            provider_reference,
            outcome,
            original_transaction: None,
        })
    }

    /// `charge.success`: the payment (its reference is the payment id)
    /// succeeded. Refund events name no payment outcome: `None`.
    fn parse_callback(&self, raw_body: &[u8]) -> Option<CallbackClaim> {
        let webhook = parse_webhook(raw_body)?;
        if webhook.event != "charge.success" {
            return None;
        }
        let reference = webhook.reference?;
        let outcome = outcome_of(&reference, webhook.status.as_deref()?, None, None)?;
        Some(CallbackClaim {
            payment_id: cards::payment_id_of(&reference),
            provider_reference: reference,
            outcome,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn connector() -> PaystackConnector {
        let _ = rustls::crypto::ring::default_provider().install_default();
        PaystackConnector::new()
    }

    #[test]
    fn webhooks_name_their_payment() {
        let charge = br#"{"event":"charge.success","data":{"id":302961,"status":"success","reference":"pay-01JTEST","amount":10000,"currency":"NGN"}}"#;
        let claim = connector().parse_callback(charge).unwrap();
        assert_eq!(claim.payment_id.as_deref(), Some("pay_01JTEST"));
        assert_eq!(
            claim.outcome,
            PaymentOutcome::Succeeded {
                provider_reference: Some("pay-01JTEST".into())
            }
        );
        // providers.md's refund sample: amount as a string, no payment outcome.
        let refund = br#"{"event":"refund.processed","data":{"status":"processed","transaction_reference":"T2154954_412829_3be32076_6lcg3","refund_reference":"132013318360","amount":"5000","currency":"NGN"}}"#;
        let webhook = parse_webhook(refund).unwrap();
        assert_eq!(webhook.refund_reference.as_deref(), Some("132013318360"));
        assert!(connector().parse_callback(refund).is_none());
        let claim = connector().parse_refund_callback(refund).unwrap();
        assert_eq!(claim.provider_reference, "132013318360");
        assert!(matches!(claim.outcome, RefundOutcome::Succeeded { .. }));
        assert!(connector().parse_refund_callback(charge).is_none());
    }

    #[test]
    fn statuses_map_to_outcomes() {
        assert!(matches!(
            outcome_of("r", "failed", Some("Insufficient Funds"), None),
            Some(PaymentOutcome::Failed { failure, .. }) if failure.code == "insufficient_funds"
        ));
        assert!(matches!(
            outcome_of("r", "abandoned", None, None),
            Some(PaymentOutcome::Processing { .. })
        ));
        assert_eq!(outcome_of("r", "mystery", None, None), None);
    }
}
