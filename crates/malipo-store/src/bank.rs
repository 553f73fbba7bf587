//! Bank transfers: merchants' receiving bank accounts, one deposit per bank
//! transfer payment (its reference, and once confirmed the bank's own
//! reference), and uploaded statements (`migrations/0014_bank_transfers.sql`).
//!
//! A deposit is confirmed by one conditional UPDATE
//! ([`Conn::confirm_bank_deposit`]: `WHERE status = 'pending'`), and the
//! bank reference is UNIQUE, so nothing is confirmed twice and no bank
//! transaction confirms two deposits, on either backend.

use crate::list::{Filter, Page};
use crate::{Conn, StoreError, run};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BankAccountRecord {
    pub id: String,
    pub merchant_id: String,
    pub livemode: bool,
    pub currency: String,
    pub bank_name: String,
    pub account_name: String,
    pub account_number: String,
    pub branch: Option<String>,
    pub swift: Option<String>,
    /// `operator`, `api_key` or `system`.
    pub configured_by_type: String,
    /// The actor's id (operator token or API key); `None` for system.
    pub configured_by: Option<String>,
    pub created: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BankDepositRecord {
    pub id: String,
    pub payment_id: String,
    pub merchant_id: String,
    pub livemode: bool,
    pub bank_account_id: String,
    /// Normalized (no dash), 10 characters.
    pub reference: String,
    pub amount: i64,
    pub currency: String,
    /// `pending`, `confirmed` or `expired`.
    pub status: String,
    pub amount_received: Option<i64>,
    pub bank_reference: Option<String>,
    pub confirmed_by: Option<String>,
    pub confirmed_at: Option<i64>,
    pub statement_id: Option<String>,
    pub expires_at: i64,
    pub created: i64,
    pub updated: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BankStatementRecord {
    pub id: String,
    /// `uploaded` or `confirmed`.
    pub status: String,
    /// The statement object as answered (JSON).
    pub body: String,
    pub uploaded_by: Option<String>,
    pub created: i64,
    pub updated: i64,
}

/// What confirming a deposit records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankDepositConfirmation<'a> {
    pub amount_received: i64,
    pub bank_reference: &'a str,
    pub confirmed_by: Option<&'a str>,
    pub statement_id: Option<&'a str>,
    pub now: i64,
}

impl Conn<'_> {
    pub async fn insert_bank_account(
        &mut self,
        account: &BankAccountRecord,
    ) -> Result<(), StoreError> {
        run!(self, |c| {
            sqlx::query(
                "INSERT INTO bank_accounts (id, merchant_id, livemode, currency, bank_name,
                     account_name, account_number, branch, swift, configured_by_type,
                     configured_by, created)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(&account.id)
            .bind(&account.merchant_id)
            .bind(account.livemode)
            .bind(&account.currency)
            .bind(&account.bank_name)
            .bind(&account.account_name)
            .bind(&account.account_number)
            .bind(&account.branch)
            .bind(&account.swift)
            .bind(&account.configured_by_type)
            .bind(&account.configured_by)
            .bind(account.created)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    /// The merchant's newest bank account for this mode and currency.
    pub async fn bank_account_for(
        &mut self,
        merchant_id: &str,
        livemode: bool,
        currency: &str,
    ) -> Result<Option<BankAccountRecord>, StoreError> {
        Ok(run!(self, |c| {
            sqlx::query_as(
                "SELECT * FROM bank_accounts
                 WHERE merchant_id = $1 AND livemode = $2 AND currency = $3
                 ORDER BY id DESC LIMIT 1",
            )
            .bind(merchant_id)
            .bind(livemode)
            .bind(currency)
            .fetch_optional(&mut **c)
            .await
        })?)
    }

    pub async fn bank_account(
        &mut self,
        id: &str,
    ) -> Result<Option<BankAccountRecord>, StoreError> {
        Ok(run!(self, |c| {
            sqlx::query_as("SELECT * FROM bank_accounts WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut **c)
                .await
        })?)
    }

    pub async fn bank_accounts(
        &mut self,
        filters: &[Filter],
        page: &Page,
    ) -> Result<(Vec<BankAccountRecord>, bool), StoreError> {
        self.list_page::<BankAccountRecord>("bank_accounts", filters, page)
            .await
    }

    pub async fn insert_bank_deposit(
        &mut self,
        deposit: &BankDepositRecord,
    ) -> Result<(), StoreError> {
        run!(self, |c| {
            sqlx::query(
                "INSERT INTO bank_deposits (id, payment_id, merchant_id, livemode, bank_account_id,
                     reference, amount, currency, status, amount_received, bank_reference,
                     confirmed_by, confirmed_at, statement_id, expires_at, created, updated)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
            )
            .bind(&deposit.id)
            .bind(&deposit.payment_id)
            .bind(&deposit.merchant_id)
            .bind(deposit.livemode)
            .bind(&deposit.bank_account_id)
            .bind(&deposit.reference)
            .bind(deposit.amount)
            .bind(&deposit.currency)
            .bind(&deposit.status)
            .bind(deposit.amount_received)
            .bind(&deposit.bank_reference)
            .bind(&deposit.confirmed_by)
            .bind(deposit.confirmed_at)
            .bind(&deposit.statement_id)
            .bind(deposit.expires_at)
            .bind(deposit.created)
            .bind(deposit.updated)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    pub async fn bank_deposit(
        &mut self,
        id: &str,
    ) -> Result<Option<BankDepositRecord>, StoreError> {
        Ok(run!(self, |c| {
            sqlx::query_as("SELECT * FROM bank_deposits WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut **c)
                .await
        })?)
    }

    /// The deposit of a payment, if it is a bank transfer.
    pub async fn bank_deposit_for_payment(
        &mut self,
        payment_id: &str,
    ) -> Result<Option<BankDepositRecord>, StoreError> {
        Ok(run!(self, |c| {
            sqlx::query_as("SELECT * FROM bank_deposits WHERE payment_id = $1")
                .bind(payment_id)
                .fetch_optional(&mut **c)
                .await
        })?)
    }

    /// The deposit with this (normalized) reference.
    pub async fn bank_deposit_by_reference(
        &mut self,
        reference: &str,
    ) -> Result<Option<BankDepositRecord>, StoreError> {
        Ok(run!(self, |c| {
            sqlx::query_as("SELECT * FROM bank_deposits WHERE reference = $1")
                .bind(reference)
                .fetch_optional(&mut **c)
                .await
        })?)
    }

    /// The deposit a bank reference already confirmed, if any.
    pub async fn bank_deposit_by_bank_reference(
        &mut self,
        bank_reference: &str,
    ) -> Result<Option<BankDepositRecord>, StoreError> {
        Ok(run!(self, |c| {
            sqlx::query_as("SELECT * FROM bank_deposits WHERE bank_reference = $1")
                .bind(bank_reference)
                .fetch_optional(&mut **c)
                .await
        })?)
    }

    /// Marks a pending deposit confirmed; answers whether it did (once per
    /// deposit).
    pub async fn confirm_bank_deposit(
        &mut self,
        id: &str,
        confirmation: &BankDepositConfirmation<'_>,
    ) -> Result<bool, StoreError> {
        let changed = run!(self, |c| {
            sqlx::query(
                "UPDATE bank_deposits SET status = 'confirmed', amount_received = $1,
                     bank_reference = $2, confirmed_by = $3, statement_id = $4,
                     confirmed_at = $5, updated = $5
                 WHERE id = $6 AND status = 'pending'",
            )
            .bind(confirmation.amount_received)
            .bind(confirmation.bank_reference)
            .bind(confirmation.confirmed_by)
            .bind(confirmation.statement_id)
            .bind(confirmation.now)
            .bind(id)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(changed == 1)
    }

    /// Marks the pending deposit of an expired payment expired.
    pub async fn expire_bank_deposit(
        &mut self,
        payment_id: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let changed = run!(self, |c| {
            sqlx::query(
                "UPDATE bank_deposits SET status = 'expired', updated = $1
                 WHERE payment_id = $2 AND status = 'pending'",
            )
            .bind(now)
            .bind(payment_id)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(changed == 1)
    }

    pub async fn bank_deposits(
        &mut self,
        filters: &[Filter],
        page: &Page,
    ) -> Result<(Vec<BankDepositRecord>, bool), StoreError> {
        self.list_page::<BankDepositRecord>("bank_deposits", filters, page)
            .await
    }

    pub async fn insert_bank_statement(
        &mut self,
        statement: &BankStatementRecord,
    ) -> Result<(), StoreError> {
        run!(self, |c| {
            sqlx::query(
                "INSERT INTO bank_statements (id, status, body, uploaded_by, created, updated)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&statement.id)
            .bind(&statement.status)
            .bind(&statement.body)
            .bind(&statement.uploaded_by)
            .bind(statement.created)
            .bind(statement.updated)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    pub async fn bank_statement(
        &mut self,
        id: &str,
    ) -> Result<Option<BankStatementRecord>, StoreError> {
        Ok(run!(self, |c| {
            sqlx::query_as("SELECT * FROM bank_statements WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut **c)
                .await
        })?)
    }

    /// Marks an uploaded statement confirmed with its new body; answers
    /// whether it did (once per statement).
    pub async fn confirm_bank_statement(
        &mut self,
        id: &str,
        body: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let changed = run!(self, |c| {
            sqlx::query(
                "UPDATE bank_statements SET status = 'confirmed', body = $1, updated = $2
                 WHERE id = $3 AND status = 'uploaded'",
            )
            .bind(body)
            .bind(now)
            .bind(id)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(changed == 1)
    }
}
