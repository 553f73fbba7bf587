//! Accounts: one asset, four counters, and optional balance limits.

use serde::{Deserialize, Serialize};

use crate::TransferError;

/// Amounts are unsigned 128-bit integers in the asset's minor unit.
pub type Amount = u128;

/// Balance limits an account enforces on every transfer that touches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AccountFlags {
    /// The account's debits (posted + pending) may never exceed its posted
    /// credits (e.g. a merchant balance that can't go negative).
    pub debits_must_not_exceed_credits: bool,
    /// The account's credits (posted + pending) may never exceed its posted
    /// debits.
    pub credits_must_not_exceed_debits: bool,
}

/// A ledger account. Balances are never stored as such: they are derived
/// from the four counters, which only ever move by whole transfers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub id: String,
    /// Lowercase asset code, e.g. `kes`, `usd`, `eth`.
    pub asset: String,
    pub flags: AccountFlags,
    /// Reserved by pending transfers that debit this account.
    pub debits_pending: Amount,
    pub debits_posted: Amount,
    /// Reserved by pending transfers that credit this account.
    pub credits_pending: Amount,
    pub credits_posted: Amount,
}

impl Account {
    /// A new account with all four counters at zero.
    pub fn new(id: impl Into<String>, asset: impl Into<String>, flags: AccountFlags) -> Self {
        Account {
            id: id.into(),
            asset: asset.into(),
            flags,
            debits_pending: 0,
            debits_posted: 0,
            credits_pending: 0,
            credits_posted: 0,
        }
    }

    /// Posted credits less posted debits: the balance of a credit-normal
    /// account (a merchant's funds). `None` when debits exceed credits.
    pub fn posted_credit_balance(&self) -> Option<Amount> {
        self.credits_posted.checked_sub(self.debits_posted)
    }

    /// Posted debits less posted credits: the balance of a debit-normal
    /// account (funds held at a provider). `None` when credits exceed debits.
    pub fn posted_debit_balance(&self) -> Option<Amount> {
        self.debits_posted.checked_sub(self.credits_posted)
    }

    /// What a credit-normal account can still spend: posted credits less
    /// posted and pending debits, since a pending debit is already promised.
    /// `None` when that is negative.
    pub fn available_credit_balance(&self) -> Option<Amount> {
        self.credits_posted
            .checked_sub(self.debits_posted)?
            .checked_sub(self.debits_pending)
    }

    /// Checks the limits the account's flags set. Pending debits count
    /// against the limit but pending credits don't help it: money that may
    /// still be voided must not be spent (TigerBeetle's rule).
    pub(crate) fn check_limits(&self) -> Result<(), TransferError> {
        if self.flags.debits_must_not_exceed_credits {
            let debits = self
                .debits_pending
                .checked_add(self.debits_posted)
                .ok_or(TransferError::Overflow)?;
            if debits > self.credits_posted {
                return Err(TransferError::ExceedsCredits);
            }
        }
        if self.flags.credits_must_not_exceed_debits {
            let credits = self
                .credits_pending
                .checked_add(self.credits_posted)
                .ok_or(TransferError::Overflow)?;
            if credits > self.debits_posted {
                return Err(TransferError::ExceedsDebits);
            }
        }
        Ok(())
    }
}
