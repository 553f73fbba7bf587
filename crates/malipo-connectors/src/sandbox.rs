//! The sandbox connector: a provider that lives inside Malipo and decides
//! each payment by the last four digits of `customer.phone`, like a real
//! provider's test numbers. It needs no network and no credentials.
//!
//! | phone ends in | outcome |
//! |---|---|
//! | `0000` | succeeds at once |
//! | `0002` | fails at once: `insufficient_funds` |
//! | `0003` | `processing`, then succeeds about a second later |
//! | `0004` | `processing`, then fails about a second later: `cancelled_by_user` |
//! | `0005` | stays `processing` until the payment expires |
//! | anything else (or no phone) | succeeds at once |
//!
//! Payouts (and customers' withdrawals) by `method: "sandbox"` are decided
//! the same way, by the last four digits of `destination.phone`, and at
//! once: `0002` fails (`recipient_invalid`, the money comes back), anything
//! else is paid. There is no payout status query (the answer is always
//! immediate).
//!
//! Like a real provider, the sandbox reports delayed outcomes with a signed
//! callback to the account's callback URL (`/v1/hooks/sandbox/{account}`,
//! HMAC-SHA256 of the body in `Malipo-Sandbox-Signature` with the account's
//! webhook secret), so the gateway's inbound path is exercised end to end.
//! Status polls are the fallback when a callback is lost: the answer to a
//! poll depends only on the phone and the time since the payment started, so
//! the sandbox keeps no state and any node of a cluster answers the same.

use crate::{
    Connector, ConnectorAccount, ConnectorError, FieldError, PaymentOutcome, PaymentRequest,
    PayoutOutcome, PayoutRequest, RefundOutcome, RefundRequest, StatusRequest,
};
use async_trait::async_trait;
use malipo_core::objects::{Customer, Failure, NextAction};

/// How long the `0003` / `0004` numbers stay processing.
pub const DELAYED_OUTCOME_MS: i64 = 1_000;
/// When the worker should ask about a processing sandbox payment: after the
/// callback was due, as the fallback for a lost one.
pub const POLL_INTERVAL_MS: u64 = 2_500;
/// The header carrying the callback's signature.
pub const SIGNATURE_HEADER: &str = "malipo-sandbox-signature";
/// The credential holding the account's callback secret.
pub const WEBHOOK_SECRET_CREDENTIAL: &str = "webhook_secret";
/// Default payment expiry for sandbox payments: 10 minutes.
pub const PAYMENT_EXPIRY_SECONDS_DEFAULT: u64 = 600;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TestNumber {
    SucceedAtOnce,
    FailAtOnce,
    SucceedLater,
    FailLater,
    NeverComplete,
}

fn test_number(customer: &Customer) -> TestNumber {
    let phone = customer.phone.as_deref().unwrap_or("");
    match phone.get(phone.len().saturating_sub(4)..) {
        Some("0002") => TestNumber::FailAtOnce,
        Some("0003") => TestNumber::SucceedLater,
        Some("0004") => TestNumber::FailLater,
        Some("0005") => TestNumber::NeverComplete,
        _ => TestNumber::SucceedAtOnce,
    }
}

#[derive(Debug, Clone)]
pub struct SandboxConnector {
    payment_expiry_seconds: u64,
    client: reqwest::Client,
}

impl SandboxConnector {
    /// Needs rustls' crypto provider installed (see
    /// `malipo_gateway::install_crypto_provider`).
    pub fn new(payment_expiry_seconds: u64) -> Self {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        SandboxConnector {
            payment_expiry_seconds,
            client,
        }
    }

    /// Sends the delayed outcome of a `0003` / `0004` payment as a signed
    /// callback, like a provider would; losing it is harmless (the status
    /// poll finds the outcome).
    fn schedule_callback(&self, request: &PaymentRequest<'_>, number: TestNumber) {
        let (Some(url), Some(secret)) = (
            request.account.callback_url.clone(),
            request
                .account
                .credentials
                .get(WEBHOOK_SECRET_CREDENTIAL)
                .cloned(),
        ) else {
            return;
        };
        let (status, failure_code) = match number {
            TestNumber::SucceedLater => ("succeeded", None),
            TestNumber::FailLater => ("failed", Some("cancelled_by_user")),
            _ => return,
        };
        let body = serde_json::json!({
            "id": format!("sbxevt_{}", request.payment_id),
            "type": "payment.completed",
            "payment": request.payment_id,
            "status": status,
            "failure_code": failure_code,
        })
        .to_string();
        let client = self.client.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(
                DELAYED_OUTCOME_MS.unsigned_abs(),
            ))
            .await;
            let signature = malipo_hooks::sign_hmac_body(
                malipo_hooks::HmacAlgorithm::Sha256,
                malipo_hooks::SignatureEncoding::Hex,
                secret.as_bytes(),
                body.as_bytes(),
            );
            let sent = client
                .post(&url)
                .header("content-type", "application/json")
                .header(SIGNATURE_HEADER, signature)
                .body(body)
                .send()
                .await;
            if let Err(error) = sent {
                tracing::warn!(%error, "sandbox callback not delivered; the status poll will find the outcome");
            }
        });
    }
}

impl Default for SandboxConnector {
    fn default() -> Self {
        SandboxConnector::new(PAYMENT_EXPIRY_SECONDS_DEFAULT)
    }
}

/// A sandbox payout's outcome: by the recipient's last four digits.
fn payout_outcome(payout_id: &str, phone: &str) -> PayoutOutcome {
    let provider_reference = reference(payout_id);
    if phone.ends_with("0002") {
        PayoutOutcome::Failed {
            provider_reference,
            failure: failure(
                "recipient_invalid",
                "The sandbox recipient (a number ending in 0002) can't receive money",
            ),
        }
    } else {
        PayoutOutcome::Paid {
            receipt: Some(format!("SBX{}", payout_id.trim_start_matches("po_"))),
            provider_reference,
        }
    }
}

fn reference(payment_id: &str) -> Option<String> {
    Some(format!("sbx_{payment_id}"))
}

fn failure(code: &str, message: &str) -> Failure {
    Failure {
        code: code.into(),
        message: message.into(),
    }
}

fn processing(payment_id: &str, customer: &Customer) -> PaymentOutcome {
    PaymentOutcome::Processing {
        provider_reference: reference(payment_id),
        next_action: customer
            .phone
            .as_ref()
            .map(|phone| NextAction::PhonePrompt {
                phone: phone.clone(),
                message: "Approve the sandbox payment prompt on your phone".into(),
            }),
        poll_after_ms: POLL_INTERVAL_MS,
    }
}

#[async_trait]
impl Connector for SandboxConnector {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    fn payment_expiry_seconds(&self) -> u64 {
        self.payment_expiry_seconds
    }

    fn answers_in_process(&self) -> bool {
        true
    }

    async fn start_payment(
        &self,
        request: &PaymentRequest<'_>,
    ) -> Result<PaymentOutcome, ConnectorError> {
        let number = test_number(request.customer);
        self.schedule_callback(request, number);
        Ok(match number {
            TestNumber::SucceedAtOnce => PaymentOutcome::Succeeded {
                provider_reference: reference(request.payment_id),
            },
            TestNumber::FailAtOnce => PaymentOutcome::Failed {
                provider_reference: reference(request.payment_id),
                failure: failure(
                    "insufficient_funds",
                    "The customer's account has insufficient funds",
                ),
            },
            TestNumber::SucceedLater | TestNumber::FailLater | TestNumber::NeverComplete => {
                processing(request.payment_id, request.customer)
            }
        })
    }

    async fn payment_status(
        &self,
        request: &StatusRequest<'_>,
    ) -> Result<PaymentOutcome, ConnectorError> {
        let elapsed_ms = request.now_ms.saturating_sub(request.started_ms);
        let provider_reference = reference(request.payment_id);
        Ok(match test_number(request.customer) {
            TestNumber::SucceedAtOnce => PaymentOutcome::Succeeded { provider_reference },
            TestNumber::FailAtOnce => PaymentOutcome::Failed {
                provider_reference,
                failure: failure(
                    "insufficient_funds",
                    "The customer's account has insufficient funds",
                ),
            },
            TestNumber::SucceedLater if elapsed_ms >= DELAYED_OUTCOME_MS => {
                PaymentOutcome::Succeeded { provider_reference }
            }
            TestNumber::FailLater if elapsed_ms >= DELAYED_OUTCOME_MS => PaymentOutcome::Failed {
                provider_reference,
                failure: failure(
                    "cancelled_by_user",
                    "The customer declined the payment prompt",
                ),
            },
            _ => processing(request.payment_id, request.customer),
        })
    }

    async fn refund(&self, request: &RefundRequest<'_>) -> Result<RefundOutcome, ConnectorError> {
        Ok(RefundOutcome::Succeeded {
            provider_reference: Some(format!("sbx_{}", request.refund_id)),
        })
    }

    fn check_payout(
        &self,
        _account: &ConnectorAccount,
        _phone: &mut String,
        _currency: &str,
        _amount: u64,
    ) -> Result<(), FieldError> {
        Ok(())
    }

    async fn start_payout(
        &self,
        request: &PayoutRequest<'_>,
    ) -> Result<PayoutOutcome, ConnectorError> {
        Ok(payout_outcome(request.payout_id, request.phone))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer(phone: &str) -> Customer {
        Customer {
            phone: Some(phone.into()),
            ..Customer::default()
        }
    }

    #[test]
    fn decides_by_the_last_four_digits() {
        assert_eq!(
            test_number(&customer("254700000000")),
            TestNumber::SucceedAtOnce
        );
        assert_eq!(
            test_number(&customer("254700000002")),
            TestNumber::FailAtOnce
        );
        assert_eq!(
            test_number(&customer("254700000003")),
            TestNumber::SucceedLater
        );
        assert_eq!(
            test_number(&customer("254700000004")),
            TestNumber::FailLater
        );
        assert_eq!(
            test_number(&customer("254700000005")),
            TestNumber::NeverComplete
        );
        assert_eq!(
            test_number(&customer("254712345678")),
            TestNumber::SucceedAtOnce
        );
        assert_eq!(test_number(&Customer::default()), TestNumber::SucceedAtOnce);
        assert_eq!(test_number(&customer("05")), TestNumber::SucceedAtOnce);
    }

    #[test]
    fn payouts_fail_only_for_0002() {
        assert!(matches!(
            payout_outcome("po_1", "254700000002"),
            PayoutOutcome::Failed { failure, .. } if failure.code == "recipient_invalid"
        ));
        for phone in ["254700000000", "254700000004", "2"] {
            assert!(matches!(
                payout_outcome("po_1", phone),
                PayoutOutcome::Paid {
                    receipt: Some(_),
                    ..
                }
            ));
        }
    }
}
