//! Test helpers: request builders and an in-memory stand-in for the store.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;

use malipo_ledger::{
    Account, AccountFlags, Amount, BatchError, BatchOutcome, LedgerSnapshot, PendingStatus,
    Transfer, TransferKind, TransferRequest, apply_batch,
};

pub const KES: &str = "kes";
pub const USD: &str = "usd";

pub fn no_limits() -> AccountFlags {
    AccountFlags::default()
}

pub fn debits_limited() -> AccountFlags {
    AccountFlags {
        debits_must_not_exceed_credits: true,
        credits_must_not_exceed_debits: false,
    }
}

pub fn credits_limited() -> AccountFlags {
    AccountFlags {
        debits_must_not_exceed_credits: false,
        credits_must_not_exceed_debits: true,
    }
}

pub fn request(
    id: &str,
    kind: TransferKind,
    debit: &str,
    credit: &str,
    amount: Amount,
) -> TransferRequest {
    TransferRequest {
        id: id.to_owned(),
        debit_account_id: debit.to_owned(),
        credit_account_id: credit.to_owned(),
        amount,
        asset: KES.to_owned(),
        kind,
        pending_id: None,
        code: "payment".to_owned(),
        source_id: None,
    }
}

pub fn posted(id: &str, debit: &str, credit: &str, amount: Amount) -> TransferRequest {
    request(id, TransferKind::Posted, debit, credit, amount)
}

pub fn pending(id: &str, debit: &str, credit: &str, amount: Amount) -> TransferRequest {
    request(id, TransferKind::Pending, debit, credit, amount)
}

/// A post that leaves the accounts and the asset to the pending transfer.
pub fn post(id: &str, pending_id: &str, amount: Amount) -> TransferRequest {
    TransferRequest {
        pending_id: Some(pending_id.to_owned()),
        asset: String::new(),
        ..request(id, TransferKind::PostPending, "", "", amount)
    }
}

/// A void that leaves the accounts, the asset and the amount to the pending
/// transfer.
pub fn void(id: &str, pending_id: &str) -> TransferRequest {
    TransferRequest {
        pending_id: Some(pending_id.to_owned()),
        asset: String::new(),
        ..request(id, TransferKind::VoidPending, "", "", 0)
    }
}

/// The request that would replay `transfer` exactly.
pub fn replay_of(transfer: &Transfer) -> TransferRequest {
    TransferRequest {
        id: transfer.id.clone(),
        debit_account_id: transfer.debit_account_id.clone(),
        credit_account_id: transfer.credit_account_id.clone(),
        amount: transfer.amount,
        asset: transfer.asset.clone(),
        kind: transfer.kind,
        pending_id: transfer.pending_id.clone(),
        code: transfer.code.clone(),
        source_id: transfer.source_id.clone(),
    }
}

/// An in-memory stand-in for the store: it loads snapshots the way the store
/// must and persists outcomes the way the store would.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    pub accounts: BTreeMap<String, Account>,
    pub transfers: BTreeMap<String, Transfer>,
    pub pending_status: BTreeMap<String, PendingStatus>,
}

impl Ledger {
    pub fn with_accounts(accounts: impl IntoIterator<Item = Account>) -> Self {
        Ledger {
            accounts: accounts
                .into_iter()
                .map(|account| (account.id.clone(), account))
                .collect(),
            ..Ledger::default()
        }
    }

    /// Everything the ledger holds.
    pub fn full_snapshot(&self) -> LedgerSnapshot {
        LedgerSnapshot {
            accounts: self.accounts.clone(),
            transfers: self.transfers.clone(),
            pending_status: self.pending_status.clone(),
        }
    }

    /// Only what `LedgerSnapshot`'s documentation says the store must load.
    pub fn snapshot_for(&self, requests: &[TransferRequest]) -> LedgerSnapshot {
        let mut snapshot = LedgerSnapshot::default();
        let mut account_ids: Vec<&str> = Vec::new();
        for request in requests {
            account_ids.push(&request.debit_account_id);
            account_ids.push(&request.credit_account_id);
            if let Some(existing) = self.transfers.get(&request.id) {
                snapshot
                    .transfers
                    .insert(existing.id.clone(), existing.clone());
            }
            if let Some(referenced) = request
                .pending_id
                .as_ref()
                .and_then(|pending_id| self.transfers.get(pending_id))
            {
                account_ids.push(&referenced.debit_account_id);
                account_ids.push(&referenced.credit_account_id);
                snapshot
                    .transfers
                    .insert(referenced.id.clone(), referenced.clone());
            }
        }
        for id in account_ids {
            if let Some(account) = self.accounts.get(id) {
                snapshot.accounts.insert(id.to_owned(), account.clone());
            }
        }
        for id in snapshot.transfers.keys() {
            if let Some(status) = self.pending_status.get(id) {
                snapshot.pending_status.insert(id.clone(), *status);
            }
        }
        snapshot
    }

    /// Applies a batch as the store would: load, apply, persist on success.
    pub fn apply(
        &mut self,
        requests: &[TransferRequest],
        now_ms: i64,
    ) -> Result<BatchOutcome, BatchError> {
        let outcome = apply_batch(&self.snapshot_for(requests), requests, now_ms)?;
        self.persist(&outcome);
        Ok(outcome)
    }

    pub fn persist(&mut self, outcome: &BatchOutcome) {
        for account in &outcome.changed_accounts {
            self.accounts.insert(account.id.clone(), account.clone());
        }
        for transfer in &outcome.created {
            let previous = self.transfers.insert(transfer.id.clone(), transfer.clone());
            assert!(previous.is_none(), "transfer {} created twice", transfer.id);
        }
        for (id, status) in &outcome.pending_status_changes {
            self.pending_status.insert(id.clone(), *status);
        }
    }

    pub fn account(&self, id: &str) -> &Account {
        self.accounts
            .get(id)
            .unwrap_or_else(|| panic!("no account {id}"))
    }

    pub fn all_accounts(&self) -> Vec<Account> {
        self.accounts.values().cloned().collect()
    }

    pub fn all_transfers(&self) -> Vec<Transfer> {
        self.transfers.values().cloned().collect()
    }
}
