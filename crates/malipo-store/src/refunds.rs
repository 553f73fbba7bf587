//! Refunds and balance transactions.

use crate::list::{Filter, Page};
use crate::payments::{amount_from_db, failure_from_db, json_from_db, json_to_db};
use crate::{Conn, StoreError, corrupt, run};
use malipo_core::objects::{BalanceTransaction, Refund};
use malipo_core::refund::{RefundReason, RefundStatus};
use sqlx::QueryBuilder;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRecord {
    pub merchant_id: String,
    pub refund: Refund,
    pub provider_reference: Option<String>,
}

#[derive(sqlx::FromRow)]
struct RefundRow {
    id: String,
    merchant_id: String,
    livemode: bool,
    payment_id: String,
    amount: String,
    currency: String,
    status: String,
    reason: Option<String>,
    fee_refunded: String,
    failure_code: Option<String>,
    failure_message: Option<String>,
    metadata: String,
    provider_reference: Option<String>,
    created: i64,
    updated: i64,
}

impl TryFrom<RefundRow> for RefundRecord {
    type Error = StoreError;
    fn try_from(row: RefundRow) -> Result<Self, StoreError> {
        let id = row.id.as_str();
        let refund = Refund {
            object: "refund",
            livemode: row.livemode,
            payment: row.payment_id,
            amount: amount_from_db(id, "amount", &row.amount)?,
            currency: row.currency,
            status: RefundStatus::parse(&row.status)
                .ok_or_else(|| corrupt(format!("{id}.status")))?,
            reason: row
                .reason
                .as_deref()
                .map(|text| {
                    RefundReason::parse(text).ok_or_else(|| corrupt(format!("{id}.reason")))
                })
                .transpose()?,
            fee_refunded: amount_from_db(id, "fee_refunded", &row.fee_refunded)?,
            failure: failure_from_db(row.failure_code, row.failure_message),
            metadata: json_from_db(id, "metadata", &row.metadata)?,
            created: row.created,
            updated: row.updated,
            id: row.id,
        };
        Ok(RefundRecord {
            merchant_id: row.merchant_id,
            refund,
            provider_reference: row.provider_reference,
        })
    }
}

#[derive(sqlx::FromRow)]
struct BalanceTransactionRow {
    id: String,
    livemode: bool,
    kind: String,
    amount: i64,
    fee: i64,
    net: i64,
    currency: String,
    source_id: String,
    created: i64,
}

impl From<BalanceTransactionRow> for BalanceTransaction {
    fn from(row: BalanceTransactionRow) -> Self {
        BalanceTransaction {
            id: row.id,
            object: "balance_transaction",
            livemode: row.livemode,
            kind: row.kind,
            amount: row.amount,
            fee: row.fee,
            net: row.net,
            currency: row.currency,
            source: row.source_id,
            created: row.created,
        }
    }
}

impl Conn<'_> {
    pub async fn insert_refund(&mut self, record: &RefundRecord) -> Result<(), StoreError> {
        let refund = &record.refund;
        let metadata = json_to_db(&refund.metadata)?;
        let (failure_code, failure_message) = match &refund.failure {
            Some(failure) => (Some(failure.code.as_str()), Some(failure.message.as_str())),
            None => (None, None),
        };
        run!(self, |c| {
            sqlx::query(
                "INSERT INTO refunds (id, merchant_id, livemode, payment_id, amount, currency, status, reason,
                     fee_refunded, failure_code, failure_message, metadata, provider_reference, created, updated)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            )
            .bind(&refund.id)
            .bind(&record.merchant_id)
            .bind(refund.livemode)
            .bind(&refund.payment)
            .bind(refund.amount.to_string())
            .bind(&refund.currency)
            .bind(refund.status.as_str())
            .bind(refund.reason.map(|reason| reason.as_str()))
            .bind(refund.fee_refunded.to_string())
            .bind(failure_code)
            .bind(failure_message)
            .bind(&metadata)
            .bind(&record.provider_reference)
            .bind(refund.created)
            .bind(refund.updated)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    /// Writes back what can change after creation: status, failure, the
    /// provider's reference.
    pub async fn update_refund(&mut self, record: &RefundRecord) -> Result<(), StoreError> {
        let refund = &record.refund;
        let (failure_code, failure_message) = match &refund.failure {
            Some(failure) => (Some(failure.code.as_str()), Some(failure.message.as_str())),
            None => (None, None),
        };
        run!(self, |c| {
            sqlx::query(
                "UPDATE refunds SET status = $1, failure_code = $2, failure_message = $3, provider_reference = $4,
                     updated = $5
                 WHERE id = $6",
            )
            .bind(refund.status.as_str())
            .bind(failure_code)
            .bind(failure_message)
            .bind(&record.provider_reference)
            .bind(refund.updated)
            .bind(&refund.id)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    pub async fn refund(
        &mut self,
        merchant_id: &str,
        livemode: bool,
        id: &str,
    ) -> Result<Option<RefundRecord>, StoreError> {
        let row: Option<RefundRow> = run!(self, |c| {
            sqlx::query_as(
                "SELECT * FROM refunds WHERE id = $1 AND merchant_id = $2 AND livemode = $3",
            )
            .bind(id)
            .bind(merchant_id)
            .bind(livemode)
            .fetch_optional(&mut **c)
            .await
        })?;
        row.map(RefundRecord::try_from).transpose()
    }

    /// The refund a provider knows by `provider_reference` (e.g. an M-Pesa
    /// reversal's ConversationID), of one merchant in one mode.
    pub async fn refund_by_provider_reference(
        &mut self,
        merchant_id: &str,
        livemode: bool,
        provider_reference: &str,
    ) -> Result<Option<RefundRecord>, StoreError> {
        let row: Option<RefundRow> = run!(self, |c| {
            sqlx::query_as(
                "SELECT * FROM refunds WHERE provider_reference = $1 AND merchant_id = $2 AND livemode = $3",
            )
            .bind(provider_reference)
            .bind(merchant_id)
            .bind(livemode)
            .fetch_optional(&mut **c)
            .await
        })?;
        row.map(RefundRecord::try_from).transpose()
    }

    pub async fn refunds(
        &mut self,
        filters: &[Filter],
        page: &Page,
    ) -> Result<(Vec<RefundRecord>, bool), StoreError> {
        self.list_records::<RefundRow, _>("refunds", filters, page)
            .await
    }

    pub async fn insert_balance_transaction(
        &mut self,
        merchant_id: &str,
        transaction: &BalanceTransaction,
    ) -> Result<(), StoreError> {
        self.insert_balance_transactions(&[(merchant_id, transaction)])
            .await
    }

    /// Inserts balance transactions, each with its merchant, in one
    /// statement (group commit).
    pub async fn insert_balance_transactions(
        &mut self,
        transactions: &[(&str, &BalanceTransaction)],
    ) -> Result<(), StoreError> {
        if transactions.is_empty() {
            return Ok(());
        }
        run!(self, |c| {
            let mut builder = QueryBuilder::new(
                "INSERT INTO balance_transactions (id, merchant_id, livemode, kind, amount, fee, net, currency,
                     source_id, created) ",
            );
            builder.push_values(transactions, |mut row, (merchant_id, transaction)| {
                row.push_bind(&transaction.id)
                    .push_bind(*merchant_id)
                    .push_bind(transaction.livemode)
                    .push_bind(&transaction.kind)
                    .push_bind(transaction.amount)
                    .push_bind(transaction.fee)
                    .push_bind(transaction.net)
                    .push_bind(&transaction.currency)
                    .push_bind(&transaction.source)
                    .push_bind(transaction.created);
            });
            builder
                .build()
                .execute(&mut **c)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    pub async fn balance_transactions(
        &mut self,
        filters: &[Filter],
        page: &Page,
    ) -> Result<(Vec<BalanceTransaction>, bool), StoreError> {
        let (rows, has_more) = self
            .list_page::<BalanceTransactionRow>("balance_transactions", filters, page)
            .await?;
        Ok((
            rows.into_iter().map(BalanceTransaction::from).collect(),
            has_more,
        ))
    }
}
