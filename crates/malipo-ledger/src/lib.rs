//! Malipo's double-entry ledger engine, on TigerBeetle's model: pure rules,
//! no IO, no clock (callers pass `now_ms`), no SQL.
//!
//! # The model
//!
//! - An [`Account`] holds one asset and four counters: `debits_pending`,
//!   `debits_posted`, `credits_pending` and `credits_posted`, in the asset's
//!   minor unit ([`Amount`], a `u128`). Balances are derived from the
//!   counters, never stored on their own.
//! - A [`Transfer`] moves an amount of one asset from a debit account to a
//!   credit account. It adds the same amount to one account's debits and to
//!   the other's credits, and it is never changed or deleted afterwards: a
//!   mistake is corrected by another transfer.
//! - Two phases, for money that is promised before it is final (an
//!   authorised card payment, a payout in flight): a
//!   [`TransferKind::Pending`] transfer reserves its amount in the
//!   `*_pending` counters; a [`TransferKind::PostPending`] moves some or all
//!   of it to `*_posted` and releases the rest; a
//!   [`TransferKind::VoidPending`] releases all of it. A pending transfer is
//!   resolved at most once ([`PendingStatus`]).
//! - [`AccountFlags`] set balance limits checked after every transfer, as in
//!   TigerBeetle: with `debits_must_not_exceed_credits`,
//!   `debits_pending + debits_posted <= credits_posted` (pending debits count
//!   against the limit, pending credits don't help it), and symmetrically
//!   with `credits_must_not_exceed_debits`.
//!
//! # How it is used
//!
//! The store loads a [`LedgerSnapshot`] of what a batch touches, calls
//! [`apply_batch`], and persists the [`BatchOutcome`] (new transfers,
//! changed accounts, pending status changes) in one database transaction.
//! [`verify`] recomputes every balance from the transfers, for reconciliation
//! and audits.
//!
//! # Invariants
//!
//! 1. Per asset, the sum of `debits_posted` over all accounts equals the sum
//!    of `credits_posted`, and likewise for the pending counters.
//! 2. An account's flags are never violated.
//! 3. A batch is all or nothing: [`apply_batch`] only reads the snapshot and
//!    returns either the whole outcome or the first error.
//! 4. Requests are idempotent by their client-chosen id: replaying one with
//!    identical fields is a no-op; the same id with different fields is an
//!    error.
//! 5. Every account's counters equal what its transfers add up to
//!    ([`verify`] checks this).
//! 6. Nothing panics on any input: all arithmetic is checked, and an
//!    unrepresentable result is [`TransferError::Overflow`].

mod account;
mod engine;
mod transfer;
mod verify;

pub use account::{Account, AccountFlags, Amount};
pub use engine::{BatchOutcome, LedgerSnapshot, apply_batch, apply_batches};
pub use transfer::{
    BatchError, PendingStatus, TRANSFER_ID_MAX_BYTES, Transfer, TransferError, TransferKind,
    TransferRequest,
};
pub use verify::{AssetTotals, VerifyReport, verify};
