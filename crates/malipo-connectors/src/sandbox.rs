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
//! The answer to a status poll depends only on the phone and the time since
//! the payment started, so the sandbox keeps no state and any node of a
//! cluster answers the same.

use crate::{
    Connector, ConnectorError, PaymentOutcome, PaymentRequest, RefundOutcome, RefundRequest,
    StatusRequest,
};
use async_trait::async_trait;
use malipo_core::objects::{Customer, Failure, NextAction};

/// How long the `0003` / `0004` numbers stay processing.
pub const DELAYED_OUTCOME_MS: i64 = 1_000;
/// How often the worker should ask about a processing sandbox payment.
pub const POLL_INTERVAL_MS: u64 = 250;
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
}

impl SandboxConnector {
    pub fn new(payment_expiry_seconds: u64) -> Self {
        SandboxConnector {
            payment_expiry_seconds,
        }
    }
}

impl Default for SandboxConnector {
    fn default() -> Self {
        SandboxConnector::new(PAYMENT_EXPIRY_SECONDS_DEFAULT)
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

    async fn start_payment(
        &self,
        request: &PaymentRequest<'_>,
    ) -> Result<PaymentOutcome, ConnectorError> {
        Ok(match test_number(request.customer) {
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
}
