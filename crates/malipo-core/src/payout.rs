//! Payout statuses and the named transitions between them.
//!
//! A payout sends money from a merchant's available balance to a mobile
//! money wallet: `pending` (written, its amount moved to the merchant's
//! payouts-in-transit account) -> `processing` (the provider accepted the
//! request) -> `paid` | `failed`. [`PayoutStatus::apply`] is the one table
//! of legal changes; a provider may answer `paid` or `failed` straight
//! from `pending` (it answered at once, or its result came before the
//! acceptance was recorded).

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PayoutStatus {
    /// Written, its amount held in transit; not yet accepted by the provider.
    Pending,
    /// The provider accepted it; the result arrives by callback or poll.
    Processing,
    /// The recipient was credited.
    Paid,
    /// The provider refused it or it failed; the amount went back to the
    /// merchant's available balance.
    Failed,
}

/// A named change of a payout's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayoutTransition {
    /// The provider accepted the request.
    Accept,
    /// The provider reports the recipient credited.
    Pay,
    /// The provider refused or failed it.
    Fail,
}

/// A transition the table forbids, e.g. failing a paid payout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a payout with status `{from}` can't {transition}")]
pub struct IllegalPayoutTransition {
    pub from: PayoutStatus,
    pub transition: PayoutTransition,
}

impl PayoutStatus {
    pub const ALL: [PayoutStatus; 4] = [
        PayoutStatus::Pending,
        PayoutStatus::Processing,
        PayoutStatus::Paid,
        PayoutStatus::Failed,
    ];

    /// The status after `transition`, or why it is not allowed.
    pub fn apply(
        self,
        transition: PayoutTransition,
    ) -> Result<PayoutStatus, IllegalPayoutTransition> {
        use PayoutStatus as S;
        use PayoutTransition as T;
        match (self, transition) {
            (S::Pending, T::Accept) => Ok(S::Processing),
            (S::Pending | S::Processing, T::Pay) => Ok(S::Paid),
            (S::Pending | S::Processing, T::Fail) => Ok(S::Failed),
            (from, transition) => Err(IllegalPayoutTransition { from, transition }),
        }
    }

    /// No transition leaves a terminal status.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Paid | Self::Failed)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Processing => "processing",
            Self::Paid => "paid",
            Self::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == text)
    }
}

impl fmt::Display for PayoutStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for PayoutTransition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Accept => "be accepted",
            Self::Pay => "be paid",
            Self::Fail => "fail",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_table_moves_a_payout() {
        use PayoutStatus as S;
        use PayoutTransition as T;
        assert_eq!(S::Pending.apply(T::Accept), Ok(S::Processing));
        assert_eq!(S::Pending.apply(T::Pay), Ok(S::Paid));
        assert_eq!(S::Processing.apply(T::Pay), Ok(S::Paid));
        assert_eq!(S::Processing.apply(T::Fail), Ok(S::Failed));
        assert!(S::Processing.apply(T::Accept).is_err());
        for terminal in [S::Paid, S::Failed] {
            assert!(terminal.is_terminal());
            for transition in [T::Accept, T::Pay, T::Fail] {
                assert!(
                    terminal.apply(transition).is_err(),
                    "{terminal} {transition}"
                );
            }
        }
        for status in S::ALL {
            assert_eq!(S::parse(status.as_str()), Some(status));
        }
    }
}
