//! Applying a batch of transfer requests to a snapshot of the ledger.

use std::collections::{BTreeMap, BTreeSet};

use crate::{
    Account, Amount, BatchError, PendingStatus, TRANSFER_ID_MAX_BYTES, Transfer, TransferError,
    TransferKind, TransferRequest,
};

/// What the engine needs to know, loaded by the store for one batch.
///
/// The store must load, for the batch's requests:
/// - every account a request names, and the accounts of every pending
///   transfer a request names (a post or void may leave its accounts empty);
/// - every existing transfer whose id a request uses (for idempotency) and
///   every transfer a request names in `pending_id`;
/// - the [`PendingStatus`] of each of those transfers that is `Pending`.
///
/// Anything else it loads is ignored. Anything missing is reported as not
/// found, never guessed: a pending transfer without a status is "not found"
/// rather than "still pending", so an incomplete snapshot can't post it twice.
#[derive(Debug, Clone, Default)]
pub struct LedgerSnapshot {
    pub accounts: BTreeMap<String, Account>,
    /// Existing transfers whose ids appear in the batch (for idempotency)
    /// and pending transfers referenced by `pending_id`.
    pub transfers: BTreeMap<String, Transfer>,
    /// The status of those transfers that are of `Pending` kind.
    pub pending_status: BTreeMap<String, PendingStatus>,
}

/// The result of applying a batch: what to persist, in one database
/// transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    /// New transfers, in request order.
    pub created: Vec<Transfer>,
    /// Ids that existed with identical fields (idempotent replay, no effect),
    /// in request order.
    pub already_existed: Vec<String>,
    /// Final state of every account whose balances changed, sorted by id.
    pub changed_accounts: Vec<Account>,
    /// Every status change in the order it happened: `Pending` for each new
    /// pending transfer, then `Posted` / `Voided` when one is resolved. A
    /// pending transfer created and posted in the same batch appears twice;
    /// applying the changes in order leaves the right final status.
    pub pending_status_changes: Vec<(String, PendingStatus)>,
}

/// Applies `requests` in order, all or nothing.
///
/// Later requests see the effects of earlier ones. On the first refused
/// request the whole batch is refused and nothing is to be persisted; the
/// snapshot is only read, so a refused batch can't leave partial effects.
/// `now_ms` becomes every created transfer's `created_ms`.
pub fn apply_batch(
    snapshot: &LedgerSnapshot,
    requests: &[TransferRequest],
    now_ms: i64,
) -> Result<BatchOutcome, BatchError> {
    let mut batch = Batch::new(snapshot, now_ms);
    for (index, request) in requests.iter().enumerate() {
        batch.apply(request).map_err(|error| BatchError {
            index,
            id: request.id.clone(),
            error,
        })?;
    }
    Ok(batch.finish())
}

/// Applies several independent batches in order, each all or nothing, the
/// way a store commits many callers' batches in one database transaction
/// (group commit).
///
/// A refused batch leaves no effect and later batches see only the accepted
/// ones, exactly as if each had been applied and persisted on its own. The
/// snapshot must hold what [`LedgerSnapshot`] asks for every request of
/// every batch. Answers the accepted batches' effects merged into one
/// outcome to persist (each changed account once, in its final state), and
/// each batch's verdict in order.
pub fn apply_batches(
    snapshot: &LedgerSnapshot,
    batches: &[&[TransferRequest]],
    now_ms: i64,
) -> (BatchOutcome, Vec<Result<(), BatchError>>) {
    let mut working = snapshot.clone();
    let mut changed_accounts: BTreeMap<String, Account> = BTreeMap::new();
    let mut merged = BatchOutcome {
        created: Vec::new(),
        already_existed: Vec::new(),
        changed_accounts: Vec::new(),
        pending_status_changes: Vec::new(),
    };
    let mut verdicts = Vec::with_capacity(batches.len());
    for requests in batches {
        match apply_batch(&working, requests, now_ms) {
            Ok(outcome) => {
                for account in outcome.changed_accounts {
                    working.accounts.insert(account.id.clone(), account.clone());
                    changed_accounts.insert(account.id.clone(), account);
                }
                for transfer in &outcome.created {
                    working
                        .transfers
                        .insert(transfer.id.clone(), transfer.clone());
                }
                for (id, status) in &outcome.pending_status_changes {
                    working.pending_status.insert(id.clone(), *status);
                }
                merged.created.extend(outcome.created);
                merged.already_existed.extend(outcome.already_existed);
                merged
                    .pending_status_changes
                    .extend(outcome.pending_status_changes);
                verdicts.push(Ok(()));
            }
            Err(error) => verdicts.push(Err(error)),
        }
    }
    merged.changed_accounts = changed_accounts.into_values().collect();
    (merged, verdicts)
}

/// The working state of one batch: the snapshot plus the effects of the
/// requests applied so far.
struct Batch<'a> {
    snapshot: &'a LedgerSnapshot,
    now_ms: i64,
    /// Starts as a copy of the snapshot's accounts; compared with it at the
    /// end to find the changed ones.
    accounts: BTreeMap<String, Account>,
    pending_status: BTreeMap<String, PendingStatus>,
    ids_seen: BTreeSet<&'a str>,
    created: Vec<Transfer>,
    /// Position in `created` of each created transfer, by id, so a later
    /// request can post or void a pending transfer created earlier.
    created_positions: BTreeMap<String, usize>,
    already_existed: Vec<String>,
    pending_status_changes: Vec<(String, PendingStatus)>,
}

/// How a transfer moves one side (debits or credits) of one account.
#[derive(Debug, Clone, Copy, Default)]
struct SideChange {
    release_pending: Amount,
    add_pending: Amount,
    add_posted: Amount,
}

#[derive(Debug, Clone, Copy)]
enum Side {
    Debit,
    Credit,
}

impl<'a> Batch<'a> {
    fn new(snapshot: &'a LedgerSnapshot, now_ms: i64) -> Self {
        Batch {
            snapshot,
            now_ms,
            accounts: snapshot.accounts.clone(),
            pending_status: snapshot.pending_status.clone(),
            ids_seen: BTreeSet::new(),
            created: Vec::new(),
            created_positions: BTreeMap::new(),
            already_existed: Vec::new(),
            pending_status_changes: Vec::new(),
        }
    }

    fn apply(&mut self, request: &'a TransferRequest) -> Result<(), TransferError> {
        validate_shape(request)?;
        if !self.ids_seen.insert(&request.id) {
            return Err(TransferError::DuplicateIdInBatch);
        }
        if let Some(existing) = self.snapshot.transfers.get(&request.id) {
            // Compare the request as it would be recorded, so that a replay
            // which relies on a post's defaults (empty accounts, amount 0)
            // matches the transfer it created.
            let recorded = match self.find_pending_of(request) {
                Some(pending) => fill_from_pending(request, pending, self.now_ms),
                None => transfer_from_request(request, self.now_ms),
            };
            if existing.has_same_fields(&recorded) {
                self.already_existed.push(request.id.clone());
                return Ok(());
            }
            return Err(TransferError::ExistsWithDifferentFields);
        }
        match request.kind {
            TransferKind::Posted | TransferKind::Pending => self.create_immediate(request),
            TransferKind::PostPending | TransferKind::VoidPending => self.resolve_pending(request),
        }
    }

    /// A `Posted` or `Pending` transfer.
    fn create_immediate(&mut self, request: &TransferRequest) -> Result<(), TransferError> {
        if request.amount == 0 {
            return Err(TransferError::AmountMustNotBeZero);
        }
        let transfer = transfer_from_request(request, self.now_ms);
        let change = if transfer.kind == TransferKind::Pending {
            SideChange {
                add_pending: transfer.amount,
                ..SideChange::default()
            }
        } else {
            SideChange {
                add_posted: transfer.amount,
                ..SideChange::default()
            }
        };
        self.move_balances(&transfer, change)?;
        if transfer.kind == TransferKind::Pending {
            self.set_pending_status(&transfer.id, PendingStatus::Pending);
        }
        self.record(transfer);
        Ok(())
    }

    /// A `PostPending` or `VoidPending` transfer.
    fn resolve_pending(&mut self, request: &TransferRequest) -> Result<(), TransferError> {
        let pending = self
            .find_pending_of(request)
            .ok_or(TransferError::PendingTransferNotFound)?
            .clone();
        if pending.kind != TransferKind::Pending {
            return Err(TransferError::PendingTransferNotPending);
        }
        match self.pending_status.get(&pending.id) {
            Some(PendingStatus::Pending) => {}
            Some(PendingStatus::Posted) => return Err(TransferError::PendingTransferAlreadyPosted),
            Some(PendingStatus::Voided) => return Err(TransferError::PendingTransferAlreadyVoided),
            None => return Err(TransferError::PendingTransferNotFound),
        }

        let transfer = fill_from_pending(request, &pending, self.now_ms);
        if transfer.debit_account_id != pending.debit_account_id
            || transfer.credit_account_id != pending.credit_account_id
        {
            return Err(TransferError::PendingTransferHasDifferentAccounts);
        }
        if transfer.asset != pending.asset {
            return Err(TransferError::AssetMismatch);
        }
        let (change, status) = if transfer.kind == TransferKind::PostPending {
            if transfer.amount > pending.amount {
                return Err(TransferError::ExceedsPendingAmount);
            }
            // The whole reservation goes; only the posted part stays.
            let change = SideChange {
                release_pending: pending.amount,
                add_posted: transfer.amount,
                ..SideChange::default()
            };
            (change, PendingStatus::Posted)
        } else {
            if transfer.amount != pending.amount {
                return Err(TransferError::PendingTransferHasDifferentAmount);
            }
            let change = SideChange {
                release_pending: pending.amount,
                ..SideChange::default()
            };
            (change, PendingStatus::Voided)
        };
        self.move_balances(&transfer, change)?;
        self.set_pending_status(&pending.id, status);
        self.record(transfer);
        Ok(())
    }

    /// Looks up both accounts, checks the assets, applies `change` to the
    /// debit side of one and the credit side of the other, checks their
    /// limits, and only then stores them: a refused transfer leaves the
    /// working state as it was.
    fn move_balances(
        &mut self,
        transfer: &Transfer,
        change: SideChange,
    ) -> Result<(), TransferError> {
        let debit_account = self
            .accounts
            .get(&transfer.debit_account_id)
            .ok_or(TransferError::DebitAccountNotFound)?;
        let credit_account = self
            .accounts
            .get(&transfer.credit_account_id)
            .ok_or(TransferError::CreditAccountNotFound)?;
        if debit_account.asset != credit_account.asset || transfer.asset != debit_account.asset {
            return Err(TransferError::AssetMismatch);
        }
        let debit_account = moved(debit_account, Side::Debit, change)?;
        let credit_account = moved(credit_account, Side::Credit, change)?;
        self.accounts
            .insert(debit_account.id.clone(), debit_account);
        self.accounts
            .insert(credit_account.id.clone(), credit_account);
        Ok(())
    }

    /// The transfer a post or void names, whether it existed before the
    /// batch or was created earlier in it.
    fn find_pending_of(&self, request: &TransferRequest) -> Option<&Transfer> {
        let pending_id = request.pending_id.as_deref()?;
        match self.created_positions.get(pending_id) {
            Some(&position) => self.created.get(position),
            None => self.snapshot.transfers.get(pending_id),
        }
    }

    fn set_pending_status(&mut self, pending_id: &str, status: PendingStatus) {
        self.pending_status.insert(pending_id.to_owned(), status);
        self.pending_status_changes
            .push((pending_id.to_owned(), status));
    }

    fn record(&mut self, transfer: Transfer) {
        self.created_positions
            .insert(transfer.id.clone(), self.created.len());
        self.created.push(transfer);
    }

    fn finish(self) -> BatchOutcome {
        let snapshot = self.snapshot;
        // BTreeMap iteration is by id, so the result comes out sorted. An
        // account moved and moved back within the batch is unchanged and is
        // left out: there is nothing to persist.
        let changed_accounts = self
            .accounts
            .into_values()
            .filter(|account| snapshot.accounts.get(&account.id) != Some(account))
            .collect();
        BatchOutcome {
            created: self.created,
            already_existed: self.already_existed,
            changed_accounts,
            pending_status_changes: self.pending_status_changes,
        }
    }
}

/// The checks that need nothing but the request itself.
fn validate_shape(request: &TransferRequest) -> Result<(), TransferError> {
    if request.id.is_empty() {
        return Err(TransferError::IdEmpty);
    }
    if request.id.len() > TRANSFER_ID_MAX_BYTES {
        return Err(TransferError::IdTooLong);
    }
    let names_pending = request
        .pending_id
        .as_deref()
        .is_some_and(|pending_id| !pending_id.is_empty());
    match request.kind {
        TransferKind::Posted | TransferKind::Pending => {
            if request.pending_id.is_some() {
                return Err(TransferError::PendingIdMustBeEmpty);
            }
        }
        TransferKind::PostPending | TransferKind::VoidPending => {
            if !names_pending {
                return Err(TransferError::PendingIdRequired);
            }
        }
    }
    // Empty accounts on a post or void mean "the pending transfer's", which
    // are different by construction.
    if !request.debit_account_id.is_empty() && request.debit_account_id == request.credit_account_id
    {
        return Err(TransferError::AccountsMustBeDifferent);
    }
    Ok(())
}

fn transfer_from_request(request: &TransferRequest, now_ms: i64) -> Transfer {
    Transfer {
        id: request.id.clone(),
        debit_account_id: request.debit_account_id.clone(),
        credit_account_id: request.credit_account_id.clone(),
        amount: request.amount,
        asset: request.asset.clone(),
        kind: request.kind,
        pending_id: request.pending_id.clone(),
        code: request.code.clone(),
        source_id: request.source_id.clone(),
        created_ms: now_ms,
    }
}

/// The transfer a post or void records: blanks taken from the pending
/// transfer, amount 0 meaning the whole pending amount. Nothing is checked
/// here; the caller compares the result with the pending transfer.
fn fill_from_pending(request: &TransferRequest, pending: &Transfer, now_ms: i64) -> Transfer {
    let or_pending = |given: &String, from_pending: &String| {
        if given.is_empty() {
            from_pending.clone()
        } else {
            given.clone()
        }
    };
    Transfer {
        debit_account_id: or_pending(&request.debit_account_id, &pending.debit_account_id),
        credit_account_id: or_pending(&request.credit_account_id, &pending.credit_account_id),
        asset: or_pending(&request.asset, &pending.asset),
        amount: if request.amount == 0 {
            pending.amount
        } else {
            request.amount
        },
        ..transfer_from_request(request, now_ms)
    }
}

/// `account` with `change` applied to one side, if the result is
/// representable and within the account's limits.
fn moved(account: &Account, side: Side, change: SideChange) -> Result<Account, TransferError> {
    let mut account = account.clone();
    let (pending, posted) = match side {
        Side::Debit => (&mut account.debits_pending, &mut account.debits_posted),
        Side::Credit => (&mut account.credits_pending, &mut account.credits_posted),
    };
    // Releasing more than is reserved can only come from an inconsistent
    // snapshot; it is refused like any other unrepresentable balance.
    *pending = pending
        .checked_sub(change.release_pending)
        .and_then(|remaining| remaining.checked_add(change.add_pending))
        .ok_or(TransferError::Overflow)?;
    *posted = posted
        .checked_add(change.add_posted)
        .ok_or(TransferError::Overflow)?;
    account.check_limits()?;
    Ok(account)
}
