//! Transfers: what a client asks for ([`TransferRequest`]), what the ledger
//! records ([`Transfer`]), and why a request can be refused
//! ([`TransferError`]).

use serde::{Deserialize, Serialize};

use crate::Amount;

/// The longest transfer id accepted, in bytes. Ids are client-chosen, so
/// they are bounded to keep indexes and logs sane.
pub const TRANSFER_ID_MAX_BYTES: usize = 128;

/// What a transfer does to the two accounts' counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferKind {
    /// Moves money at once: adds to `debits_posted` / `credits_posted`.
    Posted,
    /// Reserves money: adds to `debits_pending` / `credits_pending`.
    Pending,
    /// Posts a pending transfer (amount <= the pending amount; the amount 0
    /// means "the full pending amount"; the rest of the reservation is
    /// released).
    PostPending,
    /// Voids a pending transfer: releases the reservation. Its amount must
    /// be 0 or the pending amount: a void always releases all of it.
    VoidPending,
}

/// A transfer as a client asks for it.
///
/// For [`TransferKind::PostPending`] and [`TransferKind::VoidPending`] the
/// accounts and the asset may be left empty: they are then taken from the
/// pending transfer. If given, they must match it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferRequest {
    /// Client-chosen and unique; makes the transfer idempotent.
    pub id: String,
    pub debit_account_id: String,
    pub credit_account_id: String,
    pub amount: Amount,
    pub asset: String,
    pub kind: TransferKind,
    /// Required for `PostPending` / `VoidPending`, forbidden otherwise.
    pub pending_id: Option<String>,
    /// What it is for, e.g. `payment`, `fee`, `refund`.
    pub code: String,
    /// The business object that caused it, e.g. `pay_…`.
    pub source_id: Option<String>,
}

/// A transfer as the ledger records it: the request with the blanks filled
/// in. For a post or void the accounts and the asset are the pending
/// transfer's, and `amount` is resolved: the amount posted, or for a void
/// the amount released.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    pub id: String,
    pub debit_account_id: String,
    pub credit_account_id: String,
    pub amount: Amount,
    pub asset: String,
    pub kind: TransferKind,
    pub pending_id: Option<String>,
    pub code: String,
    pub source_id: Option<String>,
    /// When the ledger accepted it (the `now_ms` the batch was applied at).
    pub created_ms: i64,
}

impl Transfer {
    /// Whether two transfers record the same request, ignoring when they
    /// were created: that is what makes a replay an idempotent no-op.
    pub(crate) fn has_same_fields(&self, other: &Transfer) -> bool {
        // Destructured so that a field added later can't be silently left
        // out of the comparison.
        let Transfer {
            id,
            debit_account_id,
            credit_account_id,
            amount,
            asset,
            kind,
            pending_id,
            code,
            source_id,
            created_ms: _,
        } = self;
        *id == other.id
            && *debit_account_id == other.debit_account_id
            && *credit_account_id == other.credit_account_id
            && *amount == other.amount
            && *asset == other.asset
            && *kind == other.kind
            && *pending_id == other.pending_id
            && *code == other.code
            && *source_id == other.source_id
    }
}

/// Where a pending transfer stands. Only transfers of kind
/// [`TransferKind::Pending`] have one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PendingStatus {
    /// Still reserving its amount.
    Pending,
    /// Posted by a `PostPending` transfer.
    Posted,
    /// Released by a `VoidPending` transfer.
    Voided,
}

/// Why one transfer request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    #[error("the transfer id must not be empty")]
    IdEmpty,
    #[error("the transfer id must be at most {TRANSFER_ID_MAX_BYTES} bytes")]
    IdTooLong,
    #[error("the debit and credit accounts must be different")]
    AccountsMustBeDifferent,
    #[error("the amount of a posted or pending transfer must not be zero")]
    AmountMustNotBeZero,
    #[error("the debit account was not found")]
    DebitAccountNotFound,
    #[error("the credit account was not found")]
    CreditAccountNotFound,
    #[error("the transfer's asset and both accounts' assets must be the same")]
    AssetMismatch,
    #[error("a post or void must name the pending transfer in pending_id")]
    PendingIdRequired,
    #[error("only a post or void may have a pending_id")]
    PendingIdMustBeEmpty,
    #[error("the pending transfer was not found")]
    PendingTransferNotFound,
    #[error("the transfer named by pending_id is not a pending transfer")]
    PendingTransferNotPending,
    #[error("the pending transfer was already posted")]
    PendingTransferAlreadyPosted,
    #[error("the pending transfer was already voided")]
    PendingTransferAlreadyVoided,
    #[error("the amount exceeds the pending transfer's amount")]
    ExceedsPendingAmount,
    #[error("a transfer with this id already exists with different fields")]
    ExistsWithDifferentFields,
    #[error("the transfer id appears more than once in the batch")]
    DuplicateIdInBatch,
    #[error("the debit account's debits would exceed its posted credits")]
    ExceedsCredits,
    #[error("the credit account's credits would exceed its posted debits")]
    ExceedsDebits,
    #[error("an amount or balance would overflow")]
    Overflow,
    #[error("the accounts differ from the pending transfer's")]
    PendingTransferHasDifferentAccounts,
    #[error("a void's amount must be 0 or the pending transfer's amount")]
    PendingTransferHasDifferentAmount,
}

impl TransferError {
    /// A stable snake_case code for APIs and logs; unlike the message, it
    /// never changes.
    pub fn code(&self) -> &'static str {
        match self {
            TransferError::IdEmpty => "id_empty",
            TransferError::IdTooLong => "id_too_long",
            TransferError::AccountsMustBeDifferent => "accounts_must_be_different",
            TransferError::AmountMustNotBeZero => "amount_must_not_be_zero",
            TransferError::DebitAccountNotFound => "debit_account_not_found",
            TransferError::CreditAccountNotFound => "credit_account_not_found",
            TransferError::AssetMismatch => "asset_mismatch",
            TransferError::PendingIdRequired => "pending_id_required",
            TransferError::PendingIdMustBeEmpty => "pending_id_must_be_empty",
            TransferError::PendingTransferNotFound => "pending_transfer_not_found",
            TransferError::PendingTransferNotPending => "pending_transfer_not_pending",
            TransferError::PendingTransferAlreadyPosted => "pending_transfer_already_posted",
            TransferError::PendingTransferAlreadyVoided => "pending_transfer_already_voided",
            TransferError::ExceedsPendingAmount => "exceeds_pending_amount",
            TransferError::ExistsWithDifferentFields => "exists_with_different_fields",
            TransferError::DuplicateIdInBatch => "duplicate_id_in_batch",
            TransferError::ExceedsCredits => "exceeds_credits",
            TransferError::ExceedsDebits => "exceeds_debits",
            TransferError::Overflow => "overflow",
            TransferError::PendingTransferHasDifferentAccounts => {
                "pending_transfer_has_different_accounts"
            }
            TransferError::PendingTransferHasDifferentAmount => {
                "pending_transfer_has_different_amount"
            }
        }
    }
}

/// A refused batch: the first request that failed, and why. Nothing in the
/// batch took effect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("transfer {index} ({id}): {error}")]
pub struct BatchError {
    /// Position of the failed request in the batch.
    pub index: usize,
    /// Its id, as given.
    pub id: String,
    pub error: TransferError,
}
