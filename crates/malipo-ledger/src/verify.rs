//! Recomputing the ledger from its transfers, to check the stored balances.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::{Account, Amount, PendingStatus, Transfer, TransferKind};

/// The stored balances of one asset, summed over its accounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AssetTotals {
    pub asset: String,
    pub debits_posted: Amount,
    pub credits_posted: Amount,
    pub debits_pending: Amount,
    pub credits_pending: Amount,
    /// Total debits equal total credits, posted and pending alike (and no
    /// sum overflowed; an overflowed sum is shown as `Amount::MAX`).
    pub balanced: bool,
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// One entry per asset held by an account, sorted by asset.
    pub assets: Vec<AssetTotals>,
    /// Sorted ids of the accounts whose stored balances differ from the ones
    /// recomputed from the transfers, including accounts a transfer names
    /// that are missing, accounts listed twice, and accounts a transfer of
    /// another asset touches.
    pub mismatched_accounts: Vec<String>,
    /// Every asset balanced and no account mismatched.
    pub ok: bool,
}

/// Recomputes every account's four counters from `transfers` alone and
/// compares them with `accounts`.
///
/// A pending transfer's status is derived from the transfers too: it is
/// resolved if a `PostPending` or `VoidPending` names it, and then reserves
/// nothing. The asset totals are summed over the *stored* balances: the
/// recomputed ones balance by construction (each transfer adds the same
/// amount to a debit and a credit), so it is the stored ones that are worth
/// checking; any account whose stored balances disagree with its transfers
/// is listed as mismatched.
pub fn verify(accounts: &[Account], transfers: &[Transfer]) -> VerifyReport {
    let mut stored: BTreeMap<&str, &Account> = BTreeMap::new();
    let mut mismatched: BTreeSet<&str> = BTreeSet::new();
    for account in accounts {
        if stored.insert(&account.id, account).is_some() {
            mismatched.insert(&account.id);
        }
    }

    let resolved: BTreeMap<&str, PendingStatus> = transfers
        .iter()
        .filter_map(|transfer| {
            let status = match transfer.kind {
                TransferKind::PostPending => PendingStatus::Posted,
                TransferKind::VoidPending => PendingStatus::Voided,
                TransferKind::Posted | TransferKind::Pending => return None,
            };
            Some((transfer.pending_id.as_deref()?, status))
        })
        .collect();

    let mut recomputed: BTreeMap<&str, Counters> =
        stored.keys().map(|&id| (id, Counters::default())).collect();
    for transfer in transfers {
        let (pending, posted) = match transfer.kind {
            TransferKind::Posted | TransferKind::PostPending => (0, transfer.amount),
            TransferKind::Pending if resolved.contains_key(transfer.id.as_str()) => (0, 0),
            TransferKind::Pending => (transfer.amount, 0),
            // A void moves nothing: the pending transfer it resolves simply
            // stops counting.
            TransferKind::VoidPending => (0, 0),
        };
        for (account_id, side) in [
            (&transfer.debit_account_id, Side::Debit),
            (&transfer.credit_account_id, Side::Credit),
        ] {
            match stored.get(account_id.as_str()) {
                Some(account) if account.asset == transfer.asset => {}
                _ => {
                    mismatched.insert(account_id);
                }
            }
            recomputed
                .entry(account_id)
                .or_default()
                .add(side, pending, posted);
        }
    }

    for (id, counters) in &recomputed {
        let matches = stored
            .get(id)
            .is_some_and(|account| counters.matches(account));
        if !matches {
            mismatched.insert(id);
        }
    }

    let assets = asset_totals(accounts);
    let mismatched_accounts: Vec<String> = mismatched.into_iter().map(str::to_owned).collect();
    let ok = mismatched_accounts.is_empty() && assets.iter().all(|totals| totals.balanced);
    VerifyReport {
        assets,
        mismatched_accounts,
        ok,
    }
}

#[derive(Debug, Clone, Copy)]
enum Side {
    Debit,
    Credit,
}

/// Recomputed counters; `None` once a sum overflowed, which can never match
/// a stored balance.
#[derive(Debug, Clone, Copy)]
struct Counters {
    debits_pending: Option<Amount>,
    debits_posted: Option<Amount>,
    credits_pending: Option<Amount>,
    credits_posted: Option<Amount>,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            debits_pending: Some(0),
            debits_posted: Some(0),
            credits_pending: Some(0),
            credits_posted: Some(0),
        }
    }
}

impl Counters {
    fn add(&mut self, side: Side, pending: Amount, posted: Amount) {
        let (pending_total, posted_total) = match side {
            Side::Debit => (&mut self.debits_pending, &mut self.debits_posted),
            Side::Credit => (&mut self.credits_pending, &mut self.credits_posted),
        };
        *pending_total = pending_total.and_then(|total| total.checked_add(pending));
        *posted_total = posted_total.and_then(|total| total.checked_add(posted));
    }

    fn matches(&self, account: &Account) -> bool {
        self.debits_pending == Some(account.debits_pending)
            && self.debits_posted == Some(account.debits_posted)
            && self.credits_pending == Some(account.credits_pending)
            && self.credits_posted == Some(account.credits_posted)
    }
}

fn asset_totals(accounts: &[Account]) -> Vec<AssetTotals> {
    let mut by_asset: BTreeMap<&str, Counters> = BTreeMap::new();
    for account in accounts {
        let totals = by_asset.entry(&account.asset).or_default();
        totals.add(Side::Debit, account.debits_pending, account.debits_posted);
        totals.add(
            Side::Credit,
            account.credits_pending,
            account.credits_posted,
        );
    }
    by_asset
        .into_iter()
        .map(|(asset, totals)| {
            let balanced = totals.debits_posted.is_some()
                && totals.debits_pending.is_some()
                && totals.debits_posted == totals.credits_posted
                && totals.debits_pending == totals.credits_pending;
            AssetTotals {
                asset: asset.to_owned(),
                debits_posted: totals.debits_posted.unwrap_or(Amount::MAX),
                credits_posted: totals.credits_posted.unwrap_or(Amount::MAX),
                debits_pending: totals.debits_pending.unwrap_or(Amount::MAX),
                credits_pending: totals.credits_pending.unwrap_or(Amount::MAX),
                balanced,
            }
        })
        .collect()
}
