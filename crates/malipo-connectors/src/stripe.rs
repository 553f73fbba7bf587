//! The Stripe connector: card payments as PaymentIntents.
//!
//! The merchant collects the card with Stripe's own library (Stripe.js /
//! Elements) and gives Malipo the resulting `payment_method` token
//! (`pm_…`): Malipo never sees the card number. A payment is one
//! `POST /v1/payment_intents` (form-encoded, bracket notation) with
//! `confirm=true`, the token, the merchant's `return_url`,
//! `metadata[malipo_payment]` and the payment id as `Idempotency-Key` (a
//! retry after a crash gets the same intent). Stripe answers:
//! - `succeeded`: the payment succeeds;
//! - `requires_action` with `next_action.redirect_to_url` (3-D Secure): the
//!   payment is `requires_action` with a `redirect` to the bank's page,
//!   which sends the customer back to `return_url`; the outcome then comes
//!   from the signed webhook or the poll (`GET /v1/payment_intents/{id}`);
//! - HTTP 402 `card_error` (a decline): the payment fails, its
//!   `decline_code` / `code` mapped by [`crate::cards::decline`]
//!   (`insufficient_funds`, `card_declined`, `expired_card`, …);
//! - `processing`: the poll follows it.
//!
//! Webhooks (`Stripe-Signature`, checked by `malipo-hooks`):
//! `payment_intent.succeeded` / `.payment_failed` / `.canceled` name the
//! intent (the provider reference) and, in `metadata.malipo_payment`, the
//! payment. A failed 3-D Secure leaves the intent
//! `requires_payment_method` with a `last_payment_error`: the payment fails.
//!
//! Manual capture (`capture_method: manual`): the intent is created with
//! `capture_method=manual`, so a good card leaves it `requires_capture`
//! with `amount_capturable` ([`PaymentOutcome::Authorized`]; 3-D Secure
//! first when the bank asks, then the `payment_intent.amount_capturable_updated`
//! webhook). `POST /v1/payment_intents/{id}/capture` with
//! `amount_to_capture` takes all or part of it (Stripe releases the rest);
//! `POST /v1/payment_intents/{id}/cancel` releases it all. Stripe cancels
//! an uncaptured intent after 7 days: Malipo expires the payment an hour
//! before ([`AUTHORIZATION_EXPIRY_SECONDS`]).
//!
//! Amounts: Malipo's minor units converted exactly to Stripe's
//! (zero-decimal currencies such as UGX, JPY, RWF go as whole units,
//! three-decimal ones such as KWD in thousandths, ending in 0).
//!
//! # Credentials (`ConnectorAccount::credentials`)
//! | key | |
//! |---|---|
//! | `secret_key` | `sk_test_…` / `sk_live_…`, sent as `Authorization: Bearer` (required) |
//! | `base_url` | the API host (optional; default `https://api.stripe.com`; a simulator's URL in tests) |
//!
//! The connector account's `webhook_secret` is the endpoint's `whsec_…`.

use crate::CaptureRequest;
use crate::cards::{self, Settings};
use crate::common::{self, Reply, refusal_message};
use crate::{
    CallbackClaim, Connector, ConnectorError, FieldError, PaymentOutcome, PaymentRequest,
    RefundClaim, RefundOutcome, RefundRequest, StatusRequest,
};
use async_trait::async_trait;
use malipo_core::Asset;
use malipo_core::objects::{Customer, Failure};
use malipo_core::payment::CaptureMethod;
use serde_json::Value;

/// The provider name of Stripe accounts (and of this connector).
pub const STRIPE: &str = "stripe";
/// Stripe's API host.
pub const BASE_URL: &str = "https://api.stripe.com";
/// Stripe keeps an uncaptured card authorisation 7 days; Malipo gives up
/// an hour earlier, so it never captures one Stripe already released.
pub const AUTHORIZATION_EXPIRY_SECONDS: u64 = 7 * 24 * 3600 - 3600;
/// Currencies Stripe counts in whole units.
pub const ZERO_DECIMAL: &[&str] = &[
    "bif", "clp", "djf", "gnf", "isk", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd",
    "vuv", "xaf", "xof", "xpf",
];
/// Currencies Stripe counts in thousandths (the last digit must be 0).
pub const THREE_DECIMAL: &[&str] = &["bhd", "jod", "kwd", "omr", "tnd"];

/// Stripe's exponent for `currency`.
fn stripe_exponent(currency: &str) -> u32 {
    let lowercase = currency.to_ascii_lowercase();
    if ZERO_DECIMAL.contains(&lowercase.as_str()) {
        0
    } else if THREE_DECIMAL.contains(&lowercase.as_str()) {
        3
    } else {
        2
    }
}

/// `amount` (Malipo's minor units of `currency`) in Stripe's units, exactly;
/// refused when Stripe can't represent it (a fraction of a zero-decimal
/// currency, a crypto asset).
pub fn stripe_amount(amount: u64, currency: &str) -> Result<u64, ConnectorError> {
    let asset = Asset::parse(currency)
        .map_err(|_| ConnectorError::Rejected(format!("Stripe does not take `{currency}`")))?;
    let malipo = u32::from(asset.exponent());
    if malipo > 3 {
        return Err(ConnectorError::Rejected(format!(
            "Stripe does not take `{}`",
            currency.to_ascii_uppercase()
        )));
    }
    let stripe = stripe_exponent(currency);
    let converted = if stripe >= malipo {
        amount.checked_mul(10u64.pow(stripe - malipo))
    } else {
        let scale = 10u64.pow(malipo - stripe);
        amount.is_multiple_of(scale).then(|| amount / scale)
    };
    let converted = converted.ok_or_else(|| {
        ConnectorError::Rejected(format!(
            "Stripe counts {} in whole units of 10^-{stripe}: {amount} minor units can't be sent exactly",
            currency.to_ascii_uppercase()
        ))
    })?;
    if stripe == 3 && !converted.is_multiple_of(10) {
        return Err(ConnectorError::Rejected(format!(
            "Stripe takes {} amounts ending in 0",
            currency.to_ascii_uppercase()
        )));
    }
    Ok(converted)
}

/// Malipo's minor units of `currency` for a Stripe amount (refund answers).
fn malipo_amount(amount: u64, currency: &str) -> Option<u64> {
    let malipo = u32::from(Asset::parse(currency).ok()?.exponent());
    let stripe = stripe_exponent(currency);
    if malipo >= stripe {
        amount.checked_mul(10u64.pow(malipo - stripe))
    } else {
        Some(amount / 10u64.pow(stripe - malipo))
    }
}

/// The outcome of a PaymentIntent object (an API answer or an event's
/// `data.object`); `None` for a status Stripe does not document.
pub fn outcome_of(
    intent: &Value,
    return_url: Option<&str>,
    poll_after_ms: u64,
) -> Option<PaymentOutcome> {
    let id = intent.get("id").and_then(Value::as_str)?;
    let provider_reference = Some(id.to_string());
    let status = intent.get("status").and_then(Value::as_str)?;
    Some(match status {
        "succeeded" => PaymentOutcome::Succeeded { provider_reference },
        "requires_action" => {
            let url = intent
                .pointer("/next_action/redirect_to_url/url")
                .and_then(Value::as_str)?;
            PaymentOutcome::RequiresAction {
                provider_reference,
                next_action: cards::redirect(url.to_string(), return_url),
                poll_after_ms,
            }
        }
        "requires_capture" => {
            let currency = intent.get("currency").and_then(Value::as_str)?;
            let capturable = intent.get("amount_capturable").and_then(Value::as_u64)?;
            PaymentOutcome::Authorized {
                provider_reference,
                amount_capturable: malipo_amount(capturable, currency)?,
                expires_after_seconds: AUTHORIZATION_EXPIRY_SECONDS,
            }
        }
        "processing" | "requires_confirmation" => PaymentOutcome::Processing {
            provider_reference,
            next_action: None,
            poll_after_ms,
        },
        "requires_payment_method" => match intent.get("last_payment_error") {
            Some(error) if error.is_object() => PaymentOutcome::Failed {
                provider_reference,
                failure: failure_of(error),
            },
            // Never confirmed with a card: nothing to wait for.
            _ => PaymentOutcome::Failed {
                provider_reference,
                failure: Failure {
                    code: "provider_rejected".into(),
                    message: "the PaymentIntent has no payment method".into(),
                },
            },
        },
        "canceled" => PaymentOutcome::Failed {
            provider_reference,
            failure: Failure {
                code: "canceled".into(),
                message: "the PaymentIntent was canceled at Stripe".into(),
            },
        },
        _ => return None,
    })
}

/// A Stripe error object (`last_payment_error`, a 402's `error`) as a
/// Malipo failure: `decline_code`, else `code`, decides.
pub fn failure_of(error: &Value) -> Failure {
    let text = |key: &str| error.get(key).and_then(Value::as_str).unwrap_or_default();
    let reason = match text("decline_code") {
        "" => text("code"),
        decline => decline,
    };
    cards::decline(reason, text("message"))
}

fn rejection(what: &str, reply: &Reply) -> ConnectorError {
    reply.refusal_quoting("Stripe", what, "/error/message")
}

#[derive(Debug)]
pub struct StripeConnector {
    client: reqwest::Client,
}

impl Default for StripeConnector {
    fn default() -> Self {
        StripeConnector::new()
    }
}

impl StripeConnector {
    /// Needs rustls' crypto provider installed (see
    /// `malipo_gateway::install_crypto_provider`).
    pub fn new() -> Self {
        StripeConnector::with_client(common::http_client())
    }

    /// A connector calling Stripe through `client`.
    pub fn with_client(client: reqwest::Client) -> Self {
        StripeConnector { client }
    }

    /// Sends a form (bracket notation, as given) to `path`.
    async fn post_form(
        &self,
        settings: &Settings,
        path: &str,
        pairs: &[(&str, String)],
        idempotency_key: &str,
        what: &str,
    ) -> Result<Reply, ConnectorError> {
        let mut body = reqwest::Url::parse("http://form.invalid/").map_err(|error| {
            ConnectorError::Rejected(format!("cannot encode the form: {error}"))
        })?;
        body.query_pairs_mut()
            .extend_pairs(pairs.iter().map(|(key, value)| (*key, value.as_str())));
        let http = self
            .client
            .post(format!("{}{path}", settings.base_url))
            .bearer_auth(&settings.secret_key)
            .header("Idempotency-Key", idempotency_key)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body.query().unwrap_or_default().to_string());
        common::send(http, "Stripe", what).await
    }

    /// `POST /v1/payment_intents/{id}/{action}`: the intent it answers.
    async fn act_on_intent(
        &self,
        request: &CaptureRequest<'_>,
        action: &str,
        pairs: &[(&str, String)],
    ) -> Result<Value, ConnectorError> {
        let settings = Settings::of(BASE_URL, request.account)?;
        let id = request
            .provider_reference
            .filter(|id| id.starts_with("pi_"))
            .ok_or_else(|| {
                ConnectorError::Rejected("no PaymentIntent id (provider reference)".into())
            })?;
        // A retry of the same step (same amount) is the same request to Stripe.
        let key = match action {
            "capture" => format!("{}.capture.{}", request.payment_id, request.amount),
            _ => format!("{}.{action}", request.payment_id),
        };
        let what = format!("{action} payment intent");
        let reply = self
            .post_form(
                &settings,
                &format!("/v1/payment_intents/{id}/{action}"),
                pairs,
                &key,
                &what,
            )
            .await?;
        if !reply.is_success() {
            return Err(rejection(&what, &reply));
        }
        Ok(reply.json.unwrap_or(Value::Null))
    }
}

#[async_trait]
impl Connector for StripeConnector {
    fn name(&self) -> &'static str {
        STRIPE
    }

    fn payment_expiry_seconds(&self) -> u64 {
        cards::PAYMENT_EXPIRY_SECONDS
    }

    fn supports_manual_capture(&self) -> bool {
        true
    }

    /// `amount_to_capture` in Stripe's units; the intent must answer
    /// `succeeded`.
    async fn capture_payment(
        &self,
        request: &CaptureRequest<'_>,
    ) -> Result<PaymentOutcome, ConnectorError> {
        let pairs = [(
            "amount_to_capture",
            stripe_amount(request.amount, request.currency)?.to_string(),
        )];
        let intent = self.act_on_intent(request, "capture", &pairs).await?;
        match outcome_of(&intent, None, common::POLL_AFTER_MS_MIN) {
            Some(outcome @ PaymentOutcome::Succeeded { .. }) => Ok(outcome),
            _ => Err(ConnectorError::Unavailable(format!(
                "Stripe answered a capture with status {}",
                intent.get("status").unwrap_or(&Value::Null)
            ))),
        }
    }

    async fn cancel_payment(&self, request: &CaptureRequest<'_>) -> Result<(), ConnectorError> {
        let intent = self.act_on_intent(request, "cancel", &[]).await?;
        match intent.get("status").and_then(Value::as_str) {
            Some("canceled") => Ok(()),
            status => Err(ConnectorError::Unavailable(format!(
                "Stripe answered a cancel with status {status:?}"
            ))),
        }
    }

    fn check_payment(
        &self,
        _customer: &mut Customer,
        currency: &str,
        amount: u64,
    ) -> Result<(), FieldError> {
        Asset::parse(currency)
            .ok()
            .filter(|asset| asset.exponent() <= 3)
            .ok_or_else(|| FieldError {
                param: "currency",
                message: format!("Stripe does not take `{}`", currency.to_ascii_uppercase()),
            })?;
        stripe_amount(amount, currency).map_err(|error| FieldError {
            param: "amount",
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
                "a live payment can't use a Stripe test key (sk_test_…)".into(),
            ));
        }
        let payment_method = request.payment_method.ok_or_else(|| {
            ConnectorError::Rejected(
                "a Stripe card payment needs payment_method (a pm_… token from Stripe.js)".into(),
            )
        })?;
        let mut pairs = vec![
            (
                "amount",
                stripe_amount(request.amount, request.currency)?.to_string(),
            ),
            ("currency", request.currency.to_ascii_lowercase()),
            ("payment_method_types[]", "card".to_string()),
            ("payment_method", payment_method.to_string()),
            ("confirm", "true".to_string()),
            ("metadata[malipo_payment]", request.payment_id.to_string()),
        ];
        if request.capture_method == CaptureMethod::Manual {
            pairs.push(("capture_method", "manual".to_string()));
        }
        if let Some(return_url) = request.return_url {
            pairs.push(("return_url", return_url.to_string()));
        }
        if let Some(description) = request.description.or(request.reference) {
            pairs.push(("description", description.to_string()));
        }
        let reply = self
            .post_form(
                &settings,
                "/v1/payment_intents",
                &pairs,
                request.payment_id,
                "create payment intent",
            )
            .await?;
        if reply.status == 402 {
            // A decline: the error names the intent and why.
            let error = reply
                .json
                .as_ref()
                .and_then(|body| body.get("error"))
                .cloned()
                .unwrap_or(Value::Null);
            return Ok(PaymentOutcome::Failed {
                provider_reference: error
                    .pointer("/payment_intent/id")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                failure: failure_of(&error),
            });
        }
        if !reply.is_success() {
            return Err(rejection("create payment intent", &reply));
        }
        let intent = reply.json.unwrap_or(Value::Null);
        outcome_of(&intent, request.return_url, common::POLL_AFTER_MS_MIN).ok_or_else(|| {
            ConnectorError::Unavailable(format!(
                "Stripe answered an unknown PaymentIntent: {}",
                intent.get("status").unwrap_or(&Value::Null)
            ))
        })
    }

    async fn payment_status(
        &self,
        request: &StatusRequest<'_>,
    ) -> Result<PaymentOutcome, ConnectorError> {
        let settings = Settings::of(BASE_URL, request.account)?;
        let id = request
            .provider_reference
            .filter(|id| id.starts_with("pi_"))
            .ok_or_else(|| {
                ConnectorError::Rejected("no PaymentIntent id (provider reference) to ask".into())
            })?;
        let http = self
            .client
            .get(format!("{}/v1/payment_intents/{id}", settings.base_url))
            .bearer_auth(&settings.secret_key);
        let reply = common::send(http, "Stripe", "retrieve payment intent").await?;
        if !reply.is_success() {
            return Err(rejection("retrieve payment intent", &reply));
        }
        let intent = reply.json.unwrap_or(Value::Null);
        let return_url = match request.next_action {
            Some(malipo_core::objects::NextAction::Redirect { return_url, .. }) => {
                return_url.as_deref()
            }
            _ => None,
        };
        outcome_of(
            &intent,
            return_url,
            common::poll_after_ms(request.started_ms, request.now_ms),
        )
        .ok_or_else(|| {
            ConnectorError::Unavailable("Stripe answered an unknown PaymentIntent".into())
        })
    }

    async fn refund(&self, request: &RefundRequest<'_>) -> Result<RefundOutcome, ConnectorError> {
        let settings = Settings::of(BASE_URL, request.account)?;
        let id = request
            .provider_reference
            .filter(|id| id.starts_with("pi_"))
            .ok_or_else(|| ConnectorError::Rejected("no PaymentIntent to refund".into()))?;
        let pairs = [
            ("payment_intent", id.to_string()),
            (
                "amount",
                stripe_amount(request.amount, request.currency)?.to_string(),
            ),
            ("metadata[malipo_refund]", request.refund_id.to_string()),
        ];
        let reply = self
            .post_form(
                &settings,
                "/v1/refunds",
                &pairs,
                request.refund_id,
                "refund",
            )
            .await?;
        if reply.is_server_error() {
            return Err(rejection("refund", &reply));
        }
        if !reply.is_success() {
            return Ok(RefundOutcome::Failed {
                failure: Failure {
                    code: "provider_rejected".into(),
                    message: rejection("refund", &reply).to_string(),
                },
            });
        }
        let refund = reply.json.unwrap_or(Value::Null);
        let provider_reference = refund.get("id").and_then(Value::as_str).map(str::to_string);
        let refunded = refund
            .get("amount")
            .and_then(Value::as_u64)
            .and_then(|amount| malipo_amount(amount, request.currency));
        if refunded != Some(request.amount) {
            return Err(ConnectorError::Unavailable(format!(
                "Stripe refunded {refunded:?} instead of {}",
                request.amount
            )));
        }
        Ok(match refund.get("status").and_then(Value::as_str) {
            Some("succeeded") => RefundOutcome::Succeeded { provider_reference },
            Some("failed" | "canceled") => RefundOutcome::Failed {
                failure: Failure {
                    code: "provider_rejected".into(),
                    message: format!(
                        "Stripe could not refund: {}",
                        refund
                            .get("failure_reason")
                            .and_then(Value::as_str)
                            .unwrap_or("no reason given")
                    ),
                },
            },
            _ => RefundOutcome::Pending { provider_reference },
        })
    }

    /// `refund.*` events: the refund (`re_…`) and its final status; a
    /// refund still pending claims nothing.
    fn parse_refund_callback(&self, raw_body: &[u8]) -> Option<RefundClaim> {
        let event: Value = serde_json::from_slice(raw_body).ok()?;
        if !event
            .get("type")
            .and_then(Value::as_str)?
            .starts_with("refund.")
        {
            return None;
        }
        let refund = event.pointer("/data/object")?;
        let id = refund.get("id").and_then(Value::as_str)?.to_string();
        let outcome = match refund.get("status").and_then(Value::as_str)? {
            "succeeded" => RefundOutcome::Succeeded {
                provider_reference: Some(id.clone()),
            },
            "failed" | "canceled" => RefundOutcome::Failed {
                failure: Failure {
                    code: "provider_rejected".into(),
                    message: format!(
                        "Stripe could not refund: {}",
                        refund
                            .get("failure_reason")
                            .and_then(Value::as_str)
                            .unwrap_or("no reason given")
                    ),
                },
            },
            _ => return None,
        };
        Some(RefundClaim {
            provider_reference: id,
            outcome,
            original_transaction: None,
        })
    }

    /// `payment_intent.*` events: the intent and, from its metadata, the
    /// payment. Other events (refunds, charges) claim nothing.
    fn parse_callback(&self, raw_body: &[u8]) -> Option<CallbackClaim> {
        let event: Value = serde_json::from_slice(raw_body).ok()?;
        let kind = event.get("type").and_then(Value::as_str)?;
        if !kind.starts_with("payment_intent.") {
            return None;
        }
        let intent = event.pointer("/data/object")?;
        let outcome = outcome_of(intent, None, common::POLL_AFTER_MS_MIN)?;
        Some(CallbackClaim {
            provider_reference: intent.get("id").and_then(Value::as_str)?.to_string(),
            payment_id: intent
                .pointer("/metadata/malipo_payment")
                .and_then(Value::as_str)
                .map(str::to_string),
            outcome,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn amounts_are_exact_in_stripe_units() {
        assert_eq!(stripe_amount(1_050, "usd").unwrap(), 1_050);
        // Zero-decimal at Stripe and in Malipo: whole units both sides.
        assert_eq!(stripe_amount(5_000, "ugx").unwrap(), 5_000);
        assert_eq!(stripe_amount(5_000, "RWF").unwrap(), 5_000);
        assert_eq!(stripe_amount(150_000, "kes").unwrap(), 150_000);
        assert_eq!(stripe_exponent("xaf"), 0);
        assert_eq!(stripe_exponent("kwd"), 3);
        assert_eq!(stripe_exponent("ngn"), 2);
        assert!(stripe_amount(1, "btc").is_err());
        assert!(stripe_amount(1, "xyz").is_err());
        assert_eq!(malipo_amount(5_000, "ugx"), Some(5_000));
        assert_eq!(malipo_amount(1_050, "usd"), Some(1_050));
    }

    #[test]
    fn declines_and_intents_map_to_outcomes() {
        let declined = json!({"id": "pi_1", "status": "requires_payment_method",
            "last_payment_error": {"code": "card_declined", "decline_code": "insufficient_funds",
                "message": "Your card has insufficient funds."}});
        assert!(matches!(
            outcome_of(&declined, None, 0),
            Some(PaymentOutcome::Failed { failure, .. }) if failure.code == "insufficient_funds"
        ));
        let three_ds = json!({"id": "pi_2", "status": "requires_action",
            "next_action": {"type": "redirect_to_url",
                "redirect_to_url": {"url": "https://hooks.stripe.com/3ds", "return_url": "https://shop"}}});
        assert!(matches!(
            outcome_of(&three_ds, Some("https://shop"), 0),
            Some(PaymentOutcome::RequiresAction { .. })
        ));
        let authentication =
            json!({"code": "payment_intent_authentication_failure", "message": "x"});
        assert_eq!(failure_of(&authentication).code, "authentication_failed");
        assert_eq!(
            outcome_of(&json!({"id": "pi_3", "status": "weird"}), None, 0),
            None
        );
        let authorized = json!({"id": "pi_4", "status": "requires_capture",
            "amount": 5000, "amount_capturable": 5000, "currency": "usd"});
        assert_eq!(
            outcome_of(&authorized, None, 0),
            Some(PaymentOutcome::Authorized {
                provider_reference: Some("pi_4".into()),
                amount_capturable: 5000,
                expires_after_seconds: AUTHORIZATION_EXPIRY_SECONDS,
            })
        );
    }
}
