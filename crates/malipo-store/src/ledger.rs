//! The ledger's persistence: load what a batch touches, let
//! `malipo_ledger::apply_batch` decide, write back what changed.
//!
//! Accounts are locked in id order (`FOR UPDATE` on PostgreSQL) so two
//! batches touching the same accounts queue instead of deadlocking; SQLite's
//! single writer serializes batches anyway.

use crate::{Conn, StoreError, corrupt, run};
use malipo_ledger::{
    Account, AccountFlags, Amount, BatchOutcome, LedgerSnapshot, PendingStatus, Transfer,
    TransferKind, TransferRequest,
};
use sqlx::QueryBuilder;
use std::collections::BTreeSet;

/// The most transfers one batch may carry (bounded statements and memory).
pub const TRANSFERS_PER_BATCH_MAX: usize = 1_000;

#[derive(sqlx::FromRow)]
struct AccountRow {
    id: String,
    asset: String,
    debits_must_not_exceed_credits: bool,
    credits_must_not_exceed_debits: bool,
    debits_pending: String,
    debits_posted: String,
    credits_pending: String,
    credits_posted: String,
}

fn ledger_amount(id: &str, column: &str, text: &str) -> Result<Amount, StoreError> {
    text.parse()
        .map_err(|_| corrupt(format!("ledger {id}.{column} = {text:?}")))
}

impl TryFrom<AccountRow> for Account {
    type Error = StoreError;
    fn try_from(row: AccountRow) -> Result<Self, StoreError> {
        Ok(Account {
            debits_pending: ledger_amount(&row.id, "debits_pending", &row.debits_pending)?,
            debits_posted: ledger_amount(&row.id, "debits_posted", &row.debits_posted)?,
            credits_pending: ledger_amount(&row.id, "credits_pending", &row.credits_pending)?,
            credits_posted: ledger_amount(&row.id, "credits_posted", &row.credits_posted)?,
            flags: AccountFlags {
                debits_must_not_exceed_credits: row.debits_must_not_exceed_credits,
                credits_must_not_exceed_debits: row.credits_must_not_exceed_debits,
            },
            asset: row.asset,
            id: row.id,
        })
    }
}

#[derive(sqlx::FromRow)]
struct TransferRow {
    id: String,
    debit_account_id: String,
    credit_account_id: String,
    amount: String,
    asset: String,
    kind: String,
    pending_id: Option<String>,
    pending_status: Option<String>,
    code: String,
    source_id: Option<String>,
    created_ms: i64,
}

fn kind_to_db(kind: TransferKind) -> &'static str {
    match kind {
        TransferKind::Posted => "posted",
        TransferKind::Pending => "pending",
        TransferKind::PostPending => "post_pending",
        TransferKind::VoidPending => "void_pending",
    }
}

fn kind_from_db(text: &str) -> Option<TransferKind> {
    Some(match text {
        "posted" => TransferKind::Posted,
        "pending" => TransferKind::Pending,
        "post_pending" => TransferKind::PostPending,
        "void_pending" => TransferKind::VoidPending,
        _ => return None,
    })
}

fn pending_status_to_db(status: PendingStatus) -> &'static str {
    match status {
        PendingStatus::Pending => "pending",
        PendingStatus::Posted => "posted",
        PendingStatus::Voided => "voided",
    }
}

fn pending_status_from_db(text: &str) -> Option<PendingStatus> {
    Some(match text {
        "pending" => PendingStatus::Pending,
        "posted" => PendingStatus::Posted,
        "voided" => PendingStatus::Voided,
        _ => return None,
    })
}

impl TransferRow {
    fn into_transfer(self) -> Result<(Transfer, Option<PendingStatus>), StoreError> {
        let pending_status = self
            .pending_status
            .as_deref()
            .map(|text| {
                pending_status_from_db(text)
                    .ok_or_else(|| corrupt(format!("ledger {}.pending_status", self.id)))
            })
            .transpose()?;
        let transfer = Transfer {
            amount: ledger_amount(&self.id, "amount", &self.amount)?,
            kind: kind_from_db(&self.kind)
                .ok_or_else(|| corrupt(format!("ledger {}.kind", self.id)))?,
            debit_account_id: self.debit_account_id,
            credit_account_id: self.credit_account_id,
            asset: self.asset,
            pending_id: self.pending_id,
            code: self.code,
            source_id: self.source_id,
            created_ms: self.created_ms,
            id: self.id,
        };
        Ok((transfer, pending_status))
    }
}

/// Ids as one JSON array parameter, expanded by the database: one statement
/// whatever the batch size, and no SQL built from data.
fn ids_json(ids: &BTreeSet<&str>) -> Result<String, StoreError> {
    serde_json::to_string(ids).map_err(|error| corrupt(format!("ids: {error}")))
}

fn check_batch_size(transfers: usize) -> Result<(), StoreError> {
    if transfers > TRANSFERS_PER_BATCH_MAX {
        return Err(StoreError::BatchTooLarge {
            max: TRANSFERS_PER_BATCH_MAX,
            got: transfers,
        });
    }
    Ok(())
}

impl Conn<'_> {
    /// Creates the accounts that do not exist yet; existing ones are left as
    /// they are (creation is idempotent by id).
    pub async fn ensure_ledger_accounts(
        &mut self,
        accounts: &[Account],
        created: i64,
    ) -> Result<(), StoreError> {
        if accounts.is_empty() {
            return Ok(());
        }
        // Inserted in id order, the order every ledger lock is taken in.
        let mut accounts: Vec<&Account> = accounts.iter().collect();
        accounts.sort_by(|a, b| a.id.cmp(&b.id));
        accounts.dedup_by(|a, b| a.id == b.id);
        run!(self, |c| {
            let mut builder = QueryBuilder::new(
                "INSERT INTO ledger_accounts (id, asset, debits_must_not_exceed_credits,
                     credits_must_not_exceed_debits, debits_pending, debits_posted, credits_pending,
                     credits_posted, created) ",
            );
            builder.push_values(accounts, |mut row, account| {
                row.push_bind(&account.id)
                    .push_bind(&account.asset)
                    .push_bind(account.flags.debits_must_not_exceed_credits)
                    .push_bind(account.flags.credits_must_not_exceed_debits)
                    .push_bind("0")
                    .push_bind("0")
                    .push_bind("0")
                    .push_bind("0")
                    .push_bind(created);
            });
            builder.push(" ON CONFLICT (id) DO NOTHING");
            builder
                .build()
                .execute(&mut **c)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    /// [`Conn::post_transfers`], creating `accounts` first where missing.
    ///
    /// SQLite has one writer, so posting first and creating the accounts
    /// only when the engine reports one missing (it decides before anything
    /// is written) costs nothing in the steady state. On PostgreSQL the
    /// accounts are always ensured first, in id order like every lock the
    /// ledger takes: a transaction that found an account missing, inserted
    /// it and then locked the shared ones could deadlock with one that locked
    /// the shared ones and waits on that insert.
    pub async fn post_transfers_creating_accounts(
        &mut self,
        accounts: &[Account],
        requests: &[TransferRequest],
        created: i64,
        now_ms: i64,
    ) -> Result<BatchOutcome, StoreError> {
        if matches!(self, Conn::Postgres(_)) {
            self.ensure_ledger_accounts(accounts, created).await?;
            return self.post_transfers(requests, now_ms).await;
        }
        match self.post_transfers(requests, now_ms).await {
            Err(StoreError::Ledger(error))
                if matches!(
                    error.error,
                    malipo_ledger::TransferError::DebitAccountNotFound
                        | malipo_ledger::TransferError::CreditAccountNotFound
                ) =>
            {
                self.ensure_ledger_accounts(accounts, created).await?;
                self.post_transfers(requests, now_ms).await
            }
            other => other,
        }
    }

    /// Applies a batch of transfers all-or-nothing within this transaction.
    /// A rule violation is `StoreError::Ledger` and writes nothing (the
    /// caller's transaction should then roll back).
    pub async fn post_transfers(
        &mut self,
        requests: &[TransferRequest],
        now_ms: i64,
    ) -> Result<BatchOutcome, StoreError> {
        check_batch_size(requests.len())?;
        let snapshot = self.ledger_snapshot(requests).await?;
        let outcome = malipo_ledger::apply_batch(&snapshot, requests, now_ms)?;
        self.write_batch_outcome(&outcome).await?;
        Ok(outcome)
    }

    /// Group commit: posts several callers' batches in this one transaction,
    /// each all or nothing (`malipo_ledger::apply_batches`), creating
    /// `accounts` first where missing. Answers each batch's verdict in order;
    /// a refused batch writes nothing and the others are written.
    pub async fn post_transfer_groups(
        &mut self,
        accounts: &[Account],
        batches: &[&[TransferRequest]],
        created: i64,
        now_ms: i64,
    ) -> Result<Vec<Result<(), malipo_ledger::BatchError>>, StoreError> {
        check_batch_size(batches.iter().map(|batch| batch.len()).sum())?;
        if batches.iter().all(|batch| batch.is_empty()) {
            return Ok(batches.iter().map(|_| Ok(())).collect());
        }
        let everything: Vec<TransferRequest> = batches
            .iter()
            .flat_map(|batch| batch.iter().cloned())
            .collect();
        if matches!(self, Conn::Postgres(_)) {
            // In id order before any lock, as post_transfers_creating_accounts explains.
            self.ensure_ledger_accounts(accounts, created).await?;
        }
        let mut snapshot = self.ledger_snapshot(&everything).await?;
        let missing = everything
            .iter()
            .flat_map(|request| [&request.debit_account_id, &request.credit_account_id])
            .any(|id| !id.is_empty() && !snapshot.accounts.contains_key(id));
        if missing && matches!(self, Conn::Sqlite(_)) {
            self.ensure_ledger_accounts(accounts, created).await?;
            snapshot = self.ledger_snapshot(&everything).await?;
        }
        let (outcome, verdicts) = malipo_ledger::apply_batches(&snapshot, batches, now_ms);
        self.write_batch_outcome(&outcome).await?;
        Ok(verdicts)
    }

    /// What the engine needs for `requests` (see `LedgerSnapshot`), the
    /// accounts locked in id order.
    async fn ledger_snapshot(
        &mut self,
        requests: &[TransferRequest],
    ) -> Result<LedgerSnapshot, StoreError> {
        let mut transfer_ids: BTreeSet<&str> =
            requests.iter().map(|request| request.id.as_str()).collect();
        transfer_ids.extend(
            requests
                .iter()
                .filter_map(|request| request.pending_id.as_deref()),
        );
        let mut snapshot = LedgerSnapshot::default();
        for (transfer, pending_status) in self.ledger_transfers_by_ids(&transfer_ids).await? {
            if let Some(status) = pending_status {
                snapshot.pending_status.insert(transfer.id.clone(), status);
            }
            snapshot.transfers.insert(transfer.id.clone(), transfer);
        }
        let mut account_ids: BTreeSet<&str> = BTreeSet::new();
        for request in requests {
            account_ids.insert(&request.debit_account_id);
            account_ids.insert(&request.credit_account_id);
        }
        for transfer in snapshot.transfers.values() {
            account_ids.insert(&transfer.debit_account_id);
            account_ids.insert(&transfer.credit_account_id);
        }
        account_ids.remove("");
        let accounts = self.ledger_accounts_for_update(&account_ids).await?;
        for account in accounts {
            snapshot.accounts.insert(account.id.clone(), account);
        }
        Ok(snapshot)
    }

    async fn write_batch_outcome(&mut self, outcome: &BatchOutcome) -> Result<(), StoreError> {
        if !outcome.changed_accounts.is_empty() {
            // One statement for every changed account: balances travel as a
            // JSON array of [id, debits_pending, debits_posted,
            // credits_pending, credits_posted], amounts as decimal strings.
            let balances: Vec<[String; 5]> = outcome
                .changed_accounts
                .iter()
                .map(|account| {
                    [
                        account.id.clone(),
                        account.debits_pending.to_string(),
                        account.debits_posted.to_string(),
                        account.credits_pending.to_string(),
                        account.credits_posted.to_string(),
                    ]
                })
                .collect();
            let balances = serde_json::to_string(&balances)
                .map_err(|error| corrupt(format!("balances: {error}")))?;
            run!(self, |c, postgres| {
                let sql = if postgres {
                    "UPDATE ledger_accounts AS account SET debits_pending = change.value->>1,
                         debits_posted = change.value->>2, credits_pending = change.value->>3,
                         credits_posted = change.value->>4
                     FROM jsonb_array_elements($1::jsonb) AS change(value)
                     WHERE account.id = change.value->>0"
                } else {
                    "UPDATE ledger_accounts SET debits_pending = json_extract(change.value, '$[1]'),
                         debits_posted = json_extract(change.value, '$[2]'),
                         credits_pending = json_extract(change.value, '$[3]'),
                         credits_posted = json_extract(change.value, '$[4]')
                     FROM json_each($1) AS change
                     WHERE ledger_accounts.id = json_extract(change.value, '$[0]')"
                };
                sqlx::query(sql)
                    .bind(&balances)
                    .execute(&mut **c)
                    .await
                    .map(|done| done.rows_affected())
            })?;
        }
        if !outcome.created.is_empty() {
            let new_pending: BTreeSet<&str> = outcome
                .pending_status_changes
                .iter()
                .filter(|(_, status)| *status == PendingStatus::Pending)
                .map(|(id, _)| id.as_str())
                .collect();
            run!(self, |c| {
                let mut builder = QueryBuilder::new(
                    "INSERT INTO ledger_transfers (id, debit_account_id, credit_account_id, amount, asset, kind,
                         pending_id, pending_status, code, source_id, created_ms) ",
                );
                builder.push_values(&outcome.created, |mut row, transfer| {
                    let pending_status = new_pending
                        .contains(transfer.id.as_str())
                        .then_some("pending");
                    row.push_bind(&transfer.id)
                        .push_bind(&transfer.debit_account_id)
                        .push_bind(&transfer.credit_account_id)
                        .push_bind(transfer.amount.to_string())
                        .push_bind(&transfer.asset)
                        .push_bind(kind_to_db(transfer.kind))
                        .push_bind(&transfer.pending_id)
                        .push_bind(pending_status)
                        .push_bind(&transfer.code)
                        .push_bind(&transfer.source_id)
                        .push_bind(transfer.created_ms);
                });
                builder
                    .build()
                    .execute(&mut **c)
                    .await
                    .map(|done| done.rows_affected())
            })?;
        }
        for (id, status) in &outcome.pending_status_changes {
            if *status == PendingStatus::Pending {
                continue;
            }
            run!(self, |c| {
                sqlx::query("UPDATE ledger_transfers SET pending_status = $1 WHERE id = $2")
                    .bind(pending_status_to_db(*status))
                    .bind(id)
                    .execute(&mut **c)
                    .await
                    .map(|done| done.rows_affected())
            })?;
        }
        Ok(())
    }

    async fn ledger_transfers_by_ids(
        &mut self,
        ids: &BTreeSet<&str>,
    ) -> Result<Vec<(Transfer, Option<PendingStatus>)>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = ids_json(ids)?;
        let rows: Vec<TransferRow> = run!(self, |c, postgres| {
            let sql = if postgres {
                "SELECT * FROM ledger_transfers WHERE id IN (SELECT jsonb_array_elements_text($1::jsonb))"
            } else {
                "SELECT * FROM ledger_transfers WHERE id IN (SELECT value FROM json_each($1))"
            };
            sqlx::query_as(sql).bind(&ids).fetch_all(&mut **c).await
        })?;
        rows.into_iter().map(TransferRow::into_transfer).collect()
    }

    /// Opens the savepoint `malipo_step` in this transaction: a failure
    /// after it can be undone with [`Conn::rollback_to_savepoint`] while
    /// what came before stays (PostgreSQL otherwise aborts the whole
    /// transaction on an error). One at a time: not nested.
    pub async fn savepoint(&mut self) -> Result<(), StoreError> {
        self.execute_fixed("SAVEPOINT malipo_step").await
    }

    /// Keeps what was done since [`Conn::savepoint`].
    pub async fn release_savepoint(&mut self) -> Result<(), StoreError> {
        self.execute_fixed("RELEASE SAVEPOINT malipo_step").await
    }

    /// Undoes what was done since [`Conn::savepoint`], and closes it.
    pub async fn rollback_to_savepoint(&mut self) -> Result<(), StoreError> {
        self.execute_fixed("ROLLBACK TO SAVEPOINT malipo_step")
            .await?;
        self.release_savepoint().await
    }

    async fn execute_fixed(&mut self, sql: &'static str) -> Result<(), StoreError> {
        run!(self, |c| sqlx::query(sql)
            .execute(&mut **c)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// The accounts with these ids, locked in id order on PostgreSQL.
    pub async fn ledger_accounts_for_update(
        &mut self,
        ids: &BTreeSet<&str>,
    ) -> Result<Vec<Account>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = ids_json(ids)?;
        let rows: Vec<AccountRow> = run!(self, |c, postgres| {
            let sql = if postgres {
                "SELECT * FROM ledger_accounts WHERE id IN (SELECT jsonb_array_elements_text($1::jsonb))
                 ORDER BY id FOR UPDATE"
            } else {
                "SELECT * FROM ledger_accounts WHERE id IN (SELECT value FROM json_each($1)) ORDER BY id"
            };
            sqlx::query_as(sql).bind(&ids).fetch_all(&mut **c).await
        })?;
        rows.into_iter().map(Account::try_from).collect()
    }

    /// Accounts whose id starts with `prefix` (e.g. one merchant's accounts).
    pub async fn ledger_accounts_with_prefix(
        &mut self,
        prefix: &str,
    ) -> Result<Vec<Account>, StoreError> {
        let pattern = format!("{}%", prefix.replace('%', "").replace('_', "\\_"));
        let rows: Vec<AccountRow> = run!(self, |c| {
            sqlx::query_as("SELECT * FROM ledger_accounts WHERE id LIKE $1 ESCAPE '\\' ORDER BY id")
                .bind(&pattern)
                .fetch_all(&mut **c)
                .await
        })?;
        rows.into_iter().map(Account::try_from).collect()
    }

    /// Every account and every transfer, for `ledger verify`.
    pub async fn ledger_everything(&mut self) -> Result<(Vec<Account>, Vec<Transfer>), StoreError> {
        let accounts: Vec<AccountRow> = run!(self, |c| {
            sqlx::query_as("SELECT * FROM ledger_accounts ORDER BY id")
                .fetch_all(&mut **c)
                .await
        })?;
        let transfers: Vec<TransferRow> = run!(self, |c| {
            sqlx::query_as("SELECT * FROM ledger_transfers ORDER BY id")
                .fetch_all(&mut **c)
                .await
        })?;
        Ok((
            accounts
                .into_iter()
                .map(Account::try_from)
                .collect::<Result<_, _>>()?,
            transfers
                .into_iter()
                .map(|row| row.into_transfer().map(|(transfer, _)| transfer))
                .collect::<Result<_, _>>()?,
        ))
    }
}
