//! Payouts: insert, read, update, list, and the due polls the worker claims.

use crate::list::{Filter, Page};
use crate::payments::{amount_from_db, failure_from_db, json_from_db, json_to_db};
use crate::{Conn, StoreError, corrupt, run};
use malipo_core::objects::Payout;
use malipo_core::payment::PaymentMethod;
use malipo_core::payout::PayoutStatus;
use sqlx::Row;

/// A payout with what only the gateway sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayoutRecord {
    pub merchant_id: String,
    pub payout: Payout,
    /// The merchant's connector account it goes through (`ca_…`).
    pub account_id: String,
    /// The provider's id for it, from its first answer.
    pub provider_reference: Option<String>,
    /// When the connector was first asked (Unix ms).
    pub started_ms: Option<i64>,
    /// When the worker should next ask the provider (Unix ms); `None` when
    /// nobody needs to.
    pub next_poll_ms: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct PayoutRow {
    id: String,
    merchant_id: String,
    livemode: bool,
    amount: String,
    currency: String,
    method: String,
    connector: String,
    account_id: String,
    status: String,
    destination: String,
    description: Option<String>,
    receipt: Option<String>,
    failure_code: Option<String>,
    failure_message: Option<String>,
    metadata: String,
    provider_reference: Option<String>,
    started_ms: Option<i64>,
    next_poll_ms: Option<i64>,
    created: i64,
    updated: i64,
    customer_id: Option<String>,
}

impl TryFrom<PayoutRow> for PayoutRecord {
    type Error = StoreError;
    fn try_from(row: PayoutRow) -> Result<Self, StoreError> {
        let id = row.id.as_str();
        let payout = Payout {
            object: "payout",
            livemode: row.livemode,
            amount: amount_from_db(id, "amount", &row.amount)?,
            customer: row.customer_id,
            currency: row.currency,
            method: PaymentMethod::parse(&row.method)
                .ok_or_else(|| corrupt(format!("{id}.method")))?,
            connector: row.connector,
            status: PayoutStatus::parse(&row.status)
                .ok_or_else(|| corrupt(format!("{id}.status")))?,
            destination: json_from_db(id, "destination", &row.destination)?,
            description: row.description,
            receipt: row.receipt,
            failure: failure_from_db(row.failure_code, row.failure_message),
            metadata: json_from_db(id, "metadata", &row.metadata)?,
            created: row.created,
            updated: row.updated,
            id: row.id,
        };
        Ok(PayoutRecord {
            merchant_id: row.merchant_id,
            payout,
            account_id: row.account_id,
            provider_reference: row.provider_reference,
            started_ms: row.started_ms,
            next_poll_ms: row.next_poll_ms,
        })
    }
}

impl Conn<'_> {
    pub async fn insert_payout(&mut self, record: &PayoutRecord) -> Result<(), StoreError> {
        let payout = &record.payout;
        let destination = json_to_db(&payout.destination)?;
        let metadata = json_to_db(&payout.metadata)?;
        let (failure_code, failure_message) = match &payout.failure {
            Some(failure) => (Some(failure.code.as_str()), Some(failure.message.as_str())),
            None => (None, None),
        };
        run!(self, |c| {
            sqlx::query(
                "INSERT INTO payouts (id, merchant_id, livemode, amount, currency, method, connector, account_id,
                     status, destination, description, receipt, failure_code, failure_message, metadata,
                     provider_reference, started_ms, next_poll_ms, created, updated, customer_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)",
            )
            .bind(&payout.id)
            .bind(&record.merchant_id)
            .bind(payout.livemode)
            .bind(payout.amount.to_string())
            .bind(&payout.currency)
            .bind(payout.method.as_str())
            .bind(&payout.connector)
            .bind(&record.account_id)
            .bind(payout.status.as_str())
            .bind(&destination)
            .bind(&payout.description)
            .bind(&payout.receipt)
            .bind(failure_code)
            .bind(failure_message)
            .bind(&metadata)
            .bind(&record.provider_reference)
            .bind(record.started_ms)
            .bind(record.next_poll_ms)
            .bind(payout.created)
            .bind(payout.updated)
            .bind(&payout.customer)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    /// Writes back what can change after creation.
    pub async fn update_payout(&mut self, record: &PayoutRecord) -> Result<(), StoreError> {
        let payout = &record.payout;
        let (failure_code, failure_message) = match &payout.failure {
            Some(failure) => (Some(failure.code.as_str()), Some(failure.message.as_str())),
            None => (None, None),
        };
        run!(self, |c| {
            sqlx::query(
                "UPDATE payouts SET status = $1, receipt = $2, failure_code = $3, failure_message = $4,
                     provider_reference = $5, started_ms = $6, next_poll_ms = $7, updated = $8
                 WHERE id = $9",
            )
            .bind(payout.status.as_str())
            .bind(&payout.receipt)
            .bind(failure_code)
            .bind(failure_message)
            .bind(&record.provider_reference)
            .bind(record.started_ms)
            .bind(record.next_poll_ms)
            .bind(payout.updated)
            .bind(&payout.id)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    /// A merchant's payout in one mode, locked until commit on PostgreSQL
    /// (`FOR UPDATE`; SQLite's single writer gives the same).
    pub async fn payout_for_update(
        &mut self,
        merchant_id: &str,
        livemode: bool,
        id: &str,
    ) -> Result<Option<PayoutRecord>, StoreError> {
        let row: Option<PayoutRow> = run!(self, |c, postgres| {
            let sql = if postgres {
                "SELECT * FROM payouts WHERE id = $1 AND merchant_id = $2 AND livemode = $3 FOR UPDATE"
            } else {
                "SELECT * FROM payouts WHERE id = $1 AND merchant_id = $2 AND livemode = $3"
            };
            sqlx::query_as(sql)
                .bind(id)
                .bind(merchant_id)
                .bind(livemode)
                .fetch_optional(&mut **c)
                .await
        })?;
        row.map(PayoutRecord::try_from).transpose()
    }

    /// A payout by id alone (the worker's view), locked like
    /// [`Conn::payout_for_update`].
    pub async fn payout_by_id_for_update(
        &mut self,
        id: &str,
    ) -> Result<Option<PayoutRecord>, StoreError> {
        let row: Option<PayoutRow> = run!(self, |c, postgres| {
            let sql = if postgres {
                "SELECT * FROM payouts WHERE id = $1 FOR UPDATE"
            } else {
                "SELECT * FROM payouts WHERE id = $1"
            };
            sqlx::query_as(sql).bind(id).fetch_optional(&mut **c).await
        })?;
        row.map(PayoutRecord::try_from).transpose()
    }

    /// The id of the payout that went through connector account
    /// `account_id` and that the provider knows by `provider_reference`.
    pub async fn payout_id_by_provider_reference(
        &mut self,
        account_id: &str,
        provider_reference: &str,
    ) -> Result<Option<String>, StoreError> {
        let id = run!(self, |c| {
            sqlx::query("SELECT id FROM payouts WHERE account_id = $1 AND provider_reference = $2")
                .bind(account_id)
                .bind(provider_reference)
                .fetch_optional(&mut **c)
                .await?
                .map(|row| row.try_get::<String, _>("id"))
                .transpose()
        })?;
        Ok(id)
    }

    pub async fn payouts(
        &mut self,
        filters: &[Filter],
        page: &Page,
    ) -> Result<(Vec<PayoutRecord>, bool), StoreError> {
        self.list_records::<PayoutRow, _>("payouts", filters, page)
            .await
    }

    /// Ids of payouts whose status poll is due, oldest due first, at most
    /// `limit`; on PostgreSQL rows another node holds are skipped
    /// (`FOR UPDATE SKIP LOCKED`).
    pub async fn payouts_due_for_poll(
        &mut self,
        now_ms: i64,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        let ids = run!(self, |c, postgres| {
            let sql = if postgres {
                "SELECT id FROM payouts WHERE next_poll_ms IS NOT NULL AND next_poll_ms <= $1
                 ORDER BY next_poll_ms LIMIT $2 FOR UPDATE SKIP LOCKED"
            } else {
                "SELECT id FROM payouts WHERE next_poll_ms IS NOT NULL AND next_poll_ms <= $1
                 ORDER BY next_poll_ms LIMIT $2"
            };
            sqlx::query(sql)
                .bind(now_ms)
                .bind(limit)
                .fetch_all(&mut **c)
                .await?
                .iter()
                .map(|row| row.try_get::<String, _>("id"))
                .collect::<Result<Vec<_>, _>>()
        })?;
        Ok(ids)
    }
}
