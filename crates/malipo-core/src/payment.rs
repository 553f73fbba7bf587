//! Payment statuses and the named transitions between them.
//!
//! Every status change of a payment goes through [`PaymentStatus::apply`]:
//! this table is the one place that says which changes are legal.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a payment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Created with `confirm: false`; waits for `POST /v1/payments/{id}/confirm`.
    RequiresConfirmation,
    /// Sent to the provider; the outcome arrives by callback or status poll.
    Processing,
    /// The customer must act (approve a phone prompt, follow a redirect,
    /// pay to a reference); see `next_action`.
    RequiresAction,
    /// The provider authorised the amount (`capture_method: "manual"`);
    /// it moves only when the merchant captures
    /// (`POST /v1/payments/{id}/capture`), and is released by a cancel or
    /// when the authorisation expires.
    RequiresCapture,
    Succeeded,
    Failed,
    Canceled,
    Expired,
}

/// A named change of status. The name says why the status changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentTransition {
    /// The merchant confirmed and the provider accepted the request.
    StartProcessing,
    /// The provider needs the customer to do something.
    RequireAction,
    /// The provider authorised a manual-capture payment: it waits for the
    /// merchant's capture.
    Authorize,
    /// The provider captured (all or part of) an authorised payment.
    Capture,
    Succeed,
    Fail,
    /// The merchant canceled before the provider took the money.
    Cancel,
    /// Nobody completed the payment before its `expires_at`.
    Expire,
}

/// A transition that the table forbids, e.g. canceling a succeeded payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a payment with status `{from}` can't {transition}")]
pub struct IllegalTransition {
    pub from: PaymentStatus,
    pub transition: PaymentTransition,
}

impl PaymentStatus {
    pub const ALL: [PaymentStatus; 8] = [
        PaymentStatus::RequiresConfirmation,
        PaymentStatus::Processing,
        PaymentStatus::RequiresAction,
        PaymentStatus::RequiresCapture,
        PaymentStatus::Succeeded,
        PaymentStatus::Failed,
        PaymentStatus::Canceled,
        PaymentStatus::Expired,
    ];

    /// The status after `transition`, or why it is not allowed.
    pub fn apply(self, transition: PaymentTransition) -> Result<PaymentStatus, IllegalTransition> {
        use PaymentStatus as S;
        use PaymentTransition as T;
        let next = match (self, transition) {
            (S::RequiresConfirmation | S::RequiresAction, T::StartProcessing) => S::Processing,
            (S::RequiresConfirmation | S::Processing, T::RequireAction) => S::RequiresAction,
            (S::RequiresConfirmation | S::Processing | S::RequiresAction, T::Authorize) => {
                S::RequiresCapture
            }
            (S::RequiresCapture, T::Capture) => S::Succeeded,
            (S::RequiresConfirmation | S::Processing | S::RequiresAction, T::Succeed) => {
                S::Succeeded
            }
            (
                S::RequiresConfirmation | S::Processing | S::RequiresAction | S::RequiresCapture,
                T::Fail,
            ) => S::Failed,
            // Once the provider holds the request (processing) the money may
            // already be moving, so only a payment nobody has sent can be
            // canceled; an authorisation (requires_capture) is canceled at
            // the provider first, and no money has moved.
            (S::RequiresConfirmation | S::RequiresAction | S::RequiresCapture, T::Cancel) => {
                S::Canceled
            }
            (
                S::RequiresConfirmation | S::Processing | S::RequiresAction | S::RequiresCapture,
                T::Expire,
            ) => S::Expired,
            (from, transition) => return Err(IllegalTransition { from, transition }),
        };
        Ok(next)
    }

    /// No transition leaves a terminal status.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Canceled | Self::Expired
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RequiresConfirmation => "requires_confirmation",
            Self::Processing => "processing",
            Self::RequiresAction => "requires_action",
            Self::RequiresCapture => "requires_capture",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
            Self::Expired => "expired",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == text)
    }
}

impl fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for PaymentTransition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::StartProcessing => "start processing",
            Self::RequireAction => "require a customer action",
            Self::Authorize => "be authorised for a later capture",
            Self::Capture => "be captured",
            Self::Succeed => "succeed",
            Self::Fail => "fail",
            Self::Cancel => "be canceled",
            Self::Expire => "expire",
        })
    }
}

/// When an authorised payment's money moves: at once (`automatic`, the
/// default) or when the merchant captures it (`manual`, for connectors
/// that can hold an authorisation: Stripe).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum CaptureMethod {
    #[default]
    Automatic,
    Manual,
}

impl CaptureMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Automatic => "automatic",
            Self::Manual => "manual",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Automatic, Self::Manual]
            .into_iter()
            .find(|method| method.as_str() == text)
    }
}

/// How the customer pays. Only `sandbox` has a connector so far; the others
/// are accepted by name so the API shape is stable, and refused with a clear
/// error until their connector exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMethod {
    Sandbox,
    Mpesa,
    MtnMomo,
    AirtelMoney,
    Card,
    BankTransfer,
    Voucher,
    Crypto,
}

impl PaymentMethod {
    pub const ALL: [PaymentMethod; 8] = [
        PaymentMethod::Sandbox,
        PaymentMethod::Mpesa,
        PaymentMethod::MtnMomo,
        PaymentMethod::AirtelMoney,
        PaymentMethod::Card,
        PaymentMethod::BankTransfer,
        PaymentMethod::Voucher,
        PaymentMethod::Crypto,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sandbox => "sandbox",
            Self::Mpesa => "mpesa",
            Self::MtnMomo => "mtn_momo",
            Self::AirtelMoney => "airtel_money",
            Self::Card => "card",
            Self::BankTransfer => "bank_transfer",
            Self::Voucher => "voucher",
            Self::Crypto => "crypto",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|method| method.as_str() == text)
    }
}

impl fmt::Display for PaymentMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PaymentStatus as S;
    use PaymentTransition as T;

    #[test]
    fn terminal_statuses_accept_no_transition() {
        let transitions = [
            T::StartProcessing,
            T::RequireAction,
            T::Authorize,
            T::Capture,
            T::Succeed,
            T::Fail,
            T::Cancel,
            T::Expire,
        ];
        for status in S::ALL.into_iter().filter(|s| s.is_terminal()) {
            for transition in transitions {
                assert!(
                    status.apply(transition).is_err(),
                    "{status} -> {transition}"
                );
            }
        }
    }

    #[test]
    fn happy_paths() {
        assert_eq!(
            S::RequiresConfirmation.apply(T::StartProcessing),
            Ok(S::Processing)
        );
        assert_eq!(S::Processing.apply(T::Succeed), Ok(S::Succeeded));
        assert_eq!(S::Processing.apply(T::Fail), Ok(S::Failed));
        assert_eq!(S::Processing.apply(T::Expire), Ok(S::Expired));
        assert_eq!(S::RequiresAction.apply(T::Cancel), Ok(S::Canceled));
    }

    #[test]
    fn a_processing_payment_cannot_be_canceled() {
        let error = S::Processing.apply(T::Cancel).expect_err("illegal");
        assert_eq!(
            error.to_string(),
            "a payment with status `processing` can't be canceled"
        );
    }

    #[test]
    fn an_authorisation_is_captured_canceled_or_expires_and_nothing_else() {
        assert_eq!(S::Processing.apply(T::Authorize), Ok(S::RequiresCapture));
        assert_eq!(
            S::RequiresAction.apply(T::Authorize),
            Ok(S::RequiresCapture)
        );
        assert_eq!(S::RequiresCapture.apply(T::Capture), Ok(S::Succeeded));
        assert_eq!(S::RequiresCapture.apply(T::Cancel), Ok(S::Canceled));
        assert_eq!(S::RequiresCapture.apply(T::Expire), Ok(S::Expired));
        assert_eq!(S::RequiresCapture.apply(T::Fail), Ok(S::Failed));
        // Only an authorisation is captured, and a provider's plain
        // "succeeded" never skips the capture.
        for status in [S::RequiresConfirmation, S::Processing, S::RequiresAction] {
            assert!(status.apply(T::Capture).is_err(), "{status}");
        }
        assert!(S::RequiresCapture.apply(T::Succeed).is_err());
        assert!(S::RequiresCapture.apply(T::Authorize).is_err());
        assert_eq!(CaptureMethod::parse("manual"), Some(CaptureMethod::Manual));
        assert_eq!(CaptureMethod::parse("later"), None);
    }

    #[test]
    fn names_round_trip() {
        for status in S::ALL {
            assert_eq!(S::parse(status.as_str()), Some(status));
        }
        for method in PaymentMethod::ALL {
            assert_eq!(PaymentMethod::parse(method.as_str()), Some(method));
        }
    }
}
