//! Payments: insert, read, update, list, and the due-work queries the worker
//! claims (status polls and expiries).

use crate::list::{Filter, Page};
use crate::{Conn, StoreError, corrupt, run};
use malipo_core::objects::{Failure, Payment};
use malipo_core::payment::{CaptureMethod, PaymentMethod, PaymentStatus};
use sqlx::QueryBuilder;
use sqlx::Row;

/// A payment with what only the gateway sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRecord {
    pub merchant_id: String,
    pub payment: Payment,
    /// The part of `fee` already given back by refunds.
    pub fee_refunded: u64,
    /// The provider's id for the payment.
    pub provider_reference: Option<String>,
    /// The provider's receipt for the money received (an M-Pesa receipt,
    /// Airtel's `airtel_money_id`), when a callback reported it; unique per
    /// connector.
    pub provider_receipt: Option<String>,
    /// Whether pending ledger transfers hold the amount (see the migration).
    pub funds_reserved: bool,
    /// When the connector was first asked (Unix ms).
    pub started_ms: Option<i64>,
    /// When the worker should next ask the connector (Unix ms); `None` when
    /// nobody needs to poll.
    pub next_poll_ms: Option<i64>,
    /// A capture or cancel of an authorisation sent to the provider and not
    /// yet recorded (see [`PendingOperation`]).
    pub pending_operation: Option<PendingOperation>,
}

/// A provider call on an authorised (`requires_capture`) payment, written
/// before the call so that a second one waits, and a crash in between is
/// finished by the recovery poll with what was asked. `at_ms` is when it
/// was asked (Unix ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingOperation {
    /// Capture `amount`, of which `fee` is Malipo's (decided when asked).
    Capture { amount: u64, fee: u64, at_ms: i64 },
    /// Cancel the authorisation.
    Cancel { at_ms: i64 },
}

impl PendingOperation {
    /// When the step was asked (Unix ms).
    pub fn at_ms(self) -> i64 {
        match self {
            PendingOperation::Capture { at_ms, .. } | PendingOperation::Cancel { at_ms } => at_ms,
        }
    }

    /// `capture:<amount>:<fee>:<at_ms>` or `cancel:<at_ms>`.
    pub fn to_db(self) -> String {
        match self {
            PendingOperation::Capture { amount, fee, at_ms } => {
                format!("capture:{amount}:{fee}:{at_ms}")
            }
            PendingOperation::Cancel { at_ms } => format!("cancel:{at_ms}"),
        }
    }

    pub fn from_db(text: &str) -> Option<PendingOperation> {
        let mut parts = text.split(':');
        let operation = match parts.next()? {
            "capture" => {
                let amount: u64 = parts.next()?.parse().ok()?;
                let fee: u64 = parts.next()?.parse().ok()?;
                let at_ms = parts.next()?.parse().ok()?;
                (fee <= amount).then_some(PendingOperation::Capture { amount, fee, at_ms })?
            }
            "cancel" => PendingOperation::Cancel {
                at_ms: parts.next()?.parse().ok()?,
            },
            _ => return None,
        };
        parts.next().is_none().then_some(operation)
    }
}

#[cfg(test)]
mod tests {
    use super::PendingOperation;

    #[test]
    fn pending_operations_round_trip() {
        for operation in [
            PendingOperation::Capture {
                amount: 5_000,
                fee: 145,
                at_ms: 1_700_000_000_000,
            },
            PendingOperation::Cancel { at_ms: 7 },
        ] {
            assert_eq!(
                PendingOperation::from_db(&operation.to_db()),
                Some(operation)
            );
        }
        for bad in [
            "capture:1:2:3",
            "cancel",
            "capture:5:1",
            "refund:1",
            "cancel:1:2",
        ] {
            assert_eq!(PendingOperation::from_db(bad), None, "{bad}");
        }
    }
}

#[derive(sqlx::FromRow)]
struct PaymentRow {
    id: String,
    merchant_id: String,
    livemode: bool,
    amount: String,
    currency: String,
    method: String,
    connector: String,
    status: String,
    reference: Option<String>,
    description: Option<String>,
    customer: String,
    amount_refunded: String,
    fee: String,
    fee_refunded: String,
    next_action: Option<String>,
    return_url: Option<String>,
    payment_method: Option<String>,
    failure_code: Option<String>,
    failure_message: Option<String>,
    metadata: String,
    provider_reference: Option<String>,
    provider_receipt: Option<String>,
    funds_reserved: bool,
    started_ms: Option<i64>,
    next_poll_ms: Option<i64>,
    expires_at: i64,
    created: i64,
    updated: i64,
    capture_method: String,
    credit_customer_id: Option<String>,
    amount_capturable: String,
    amount_received: String,
    pending_operation: Option<String>,
    conversion: Option<String>,
}

pub(crate) fn amount_from_db(id: &str, column: &str, text: &str) -> Result<u64, StoreError> {
    text.parse()
        .map_err(|_| corrupt(format!("{id}.{column} = {text:?} is not an amount")))
}

pub(crate) fn json_from_db<T: serde::de::DeserializeOwned>(
    id: &str,
    column: &str,
    text: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|error| corrupt(format!("{id}.{column}: {error}")))
}

pub(crate) fn json_to_db<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|error| corrupt(format!("json encoding: {error}")))
}

pub(crate) fn failure_from_db(code: Option<String>, message: Option<String>) -> Option<Failure> {
    code.map(|code| Failure {
        code,
        message: message.unwrap_or_default(),
    })
}

impl TryFrom<PaymentRow> for PaymentRecord {
    type Error = StoreError;
    fn try_from(row: PaymentRow) -> Result<Self, StoreError> {
        let id = row.id.as_str();
        let amount = amount_from_db(id, "amount", &row.amount)?;
        let fee = amount_from_db(id, "fee", &row.fee)?;
        let payment = Payment {
            object: "payment",
            livemode: row.livemode,
            amount,
            currency: row.currency,
            method: PaymentMethod::parse(&row.method)
                .ok_or_else(|| corrupt(format!("{id}.method")))?,
            connector: row.connector,
            status: PaymentStatus::parse(&row.status)
                .ok_or_else(|| corrupt(format!("{id}.status")))?,
            capture_method: CaptureMethod::parse(&row.capture_method)
                .ok_or_else(|| corrupt(format!("{id}.capture_method")))?,
            amount_capturable: amount_from_db(id, "amount_capturable", &row.amount_capturable)?,
            amount_received: amount_from_db(id, "amount_received", &row.amount_received)?,
            reference: row.reference,
            description: row.description,
            customer: json_from_db(id, "customer", &row.customer)?,
            credit_customer: row.credit_customer_id,
            amount_refunded: amount_from_db(id, "amount_refunded", &row.amount_refunded)?,
            fee,
            net: amount.saturating_sub(fee),
            next_action: row
                .next_action
                .as_deref()
                .map(|text| json_from_db(id, "next_action", text))
                .transpose()?,
            return_url: row.return_url,
            payment_method: row.payment_method,
            failure: failure_from_db(row.failure_code, row.failure_message),
            metadata: json_from_db(id, "metadata", &row.metadata)?,
            expires_at: row.expires_at,
            created: row.created,
            updated: row.updated,
            conversion: row
                .conversion
                .as_deref()
                .map(|text| json_from_db(id, "conversion", text))
                .transpose()?,
            id: row.id,
        };
        let pending_operation = row
            .pending_operation
            .as_deref()
            .map(|text| {
                PendingOperation::from_db(text)
                    .ok_or_else(|| corrupt(format!("{}.pending_operation", payment.id)))
            })
            .transpose()?;
        Ok(PaymentRecord {
            merchant_id: row.merchant_id,
            fee_refunded: amount_from_db(&payment.id, "fee_refunded", &row.fee_refunded)?,
            payment,
            pending_operation,
            provider_reference: row.provider_reference,
            provider_receipt: row.provider_receipt,
            funds_reserved: row.funds_reserved,
            started_ms: row.started_ms,
            next_poll_ms: row.next_poll_ms,
        })
    }
}

impl Conn<'_> {
    pub async fn insert_payment(&mut self, record: &PaymentRecord) -> Result<(), StoreError> {
        self.insert_payments(&[record]).await
    }

    /// Inserts new payments in one statement (group commit).
    pub async fn insert_payments(&mut self, records: &[&PaymentRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        struct Columns<'r> {
            record: &'r PaymentRecord,
            customer: String,
            metadata: String,
            next_action: Option<String>,
            conversion: Option<String>,
        }
        let rows = records
            .iter()
            .map(|record| {
                Ok(Columns {
                    record,
                    customer: json_to_db(&record.payment.customer)?,
                    metadata: json_to_db(&record.payment.metadata)?,
                    next_action: record
                        .payment
                        .next_action
                        .as_ref()
                        .map(json_to_db)
                        .transpose()?,
                    conversion: record
                        .payment
                        .conversion
                        .as_ref()
                        .map(json_to_db)
                        .transpose()?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        run!(self, |c| {
            let mut builder = QueryBuilder::new(
                "INSERT INTO payments (id, merchant_id, livemode, amount, currency, method, connector, status,
                     reference, description, customer, amount_refunded, fee, fee_refunded, next_action,
                     failure_code, failure_message, metadata, provider_reference, provider_receipt, funds_reserved,
                     started_ms, next_poll_ms, expires_at, created, updated, return_url, payment_method,
                     capture_method, amount_capturable, amount_received, pending_operation,
                     credit_customer_id, conversion) ",
            );
            builder.push_values(&rows, |mut row, columns| {
                let record = columns.record;
                let payment = &record.payment;
                let (failure_code, failure_message) = failure_columns(payment.failure.as_ref());
                row.push_bind(&payment.id)
                    .push_bind(&record.merchant_id)
                    .push_bind(payment.livemode)
                    .push_bind(payment.amount.to_string())
                    .push_bind(&payment.currency)
                    .push_bind(payment.method.as_str())
                    .push_bind(&payment.connector)
                    .push_bind(payment.status.as_str())
                    .push_bind(&payment.reference)
                    .push_bind(&payment.description)
                    .push_bind(&columns.customer)
                    .push_bind(payment.amount_refunded.to_string())
                    .push_bind(payment.fee.to_string())
                    .push_bind(record.fee_refunded.to_string())
                    .push_bind(&columns.next_action)
                    .push_bind(failure_code)
                    .push_bind(failure_message)
                    .push_bind(&columns.metadata)
                    .push_bind(&record.provider_reference)
                    .push_bind(&record.provider_receipt)
                    .push_bind(record.funds_reserved)
                    .push_bind(record.started_ms)
                    .push_bind(record.next_poll_ms)
                    .push_bind(payment.expires_at)
                    .push_bind(payment.created)
                    .push_bind(payment.updated)
                    .push_bind(&payment.return_url)
                    .push_bind(&payment.payment_method)
                    .push_bind(payment.capture_method.as_str())
                    .push_bind(payment.amount_capturable.to_string())
                    .push_bind(payment.amount_received.to_string())
                    .push_bind(record.pending_operation.map(PendingOperation::to_db))
                    .push_bind(&payment.credit_customer)
                    .push_bind(&columns.conversion);
            });
            builder
                .build()
                .execute(&mut **c)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    /// Writes back everything about a payment that can change after creation.
    pub async fn update_payment(&mut self, record: &PaymentRecord) -> Result<(), StoreError> {
        let payment = &record.payment;
        let next_action = payment.next_action.as_ref().map(json_to_db).transpose()?;
        let (failure_code, failure_message) = failure_columns(payment.failure.as_ref());
        run!(self, |c| {
            sqlx::query(
                "UPDATE payments SET status = $1, amount_refunded = $2, fee_refunded = $3, next_action = $4,
                     failure_code = $5, failure_message = $6, provider_reference = $7, started_ms = $8,
                     next_poll_ms = $9, updated = $10, funds_reserved = $11, provider_receipt = $12,
                     fee = $13, amount_capturable = $14, amount_received = $15, pending_operation = $16,
                     expires_at = $17
                 WHERE id = $18",
            )
            .bind(payment.status.as_str())
            .bind(payment.amount_refunded.to_string())
            .bind(record.fee_refunded.to_string())
            .bind(&next_action)
            .bind(failure_code)
            .bind(failure_message)
            .bind(&record.provider_reference)
            .bind(record.started_ms)
            .bind(record.next_poll_ms)
            .bind(payment.updated)
            .bind(record.funds_reserved)
            .bind(&record.provider_receipt)
            .bind(payment.fee.to_string())
            .bind(payment.amount_capturable.to_string())
            .bind(payment.amount_received.to_string())
            .bind(record.pending_operation.map(PendingOperation::to_db))
            .bind(payment.expires_at)
            .bind(&payment.id)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    /// A merchant's payment in one mode. Inside a transaction on PostgreSQL
    /// the row is locked until commit (`FOR UPDATE`), so concurrent changes
    /// of one payment (two refunds, a poll and a cancel) queue instead of
    /// overwriting each other; SQLite has one writer, which gives the same.
    pub async fn payment_for_update(
        &mut self,
        merchant_id: &str,
        livemode: bool,
        id: &str,
    ) -> Result<Option<PaymentRecord>, StoreError> {
        let row: Option<PaymentRow> = run!(self, |c, postgres| {
            let sql = if postgres {
                "SELECT * FROM payments WHERE id = $1 AND merchant_id = $2 AND livemode = $3 FOR UPDATE"
            } else {
                "SELECT * FROM payments WHERE id = $1 AND merchant_id = $2 AND livemode = $3"
            };
            sqlx::query_as(sql)
                .bind(id)
                .bind(merchant_id)
                .bind(livemode)
                .fetch_optional(&mut **c)
                .await
        })?;
        row.map(PaymentRecord::try_from).transpose()
    }

    /// A payment by id alone (the worker's and the operator's view), locked
    /// like [`Conn::payment_for_update`].
    pub async fn payment_by_id_for_update(
        &mut self,
        id: &str,
    ) -> Result<Option<PaymentRecord>, StoreError> {
        let row: Option<PaymentRow> = run!(self, |c, postgres| {
            let sql = if postgres {
                "SELECT * FROM payments WHERE id = $1 FOR UPDATE"
            } else {
                "SELECT * FROM payments WHERE id = $1"
            };
            sqlx::query_as(sql).bind(id).fetch_optional(&mut **c).await
        })?;
        row.map(PaymentRecord::try_from).transpose()
    }

    /// The id of the payment a provider knows by `provider_reference`.
    pub async fn payment_id_by_provider_reference(
        &mut self,
        connector: &str,
        provider_reference: &str,
    ) -> Result<Option<String>, StoreError> {
        self.payment_id_by(
            "SELECT id FROM payments WHERE connector = $1 AND provider_reference = $2",
            connector,
            provider_reference,
        )
        .await
    }

    /// The id of the payment whose money the provider's receipt names.
    pub async fn payment_id_by_provider_receipt(
        &mut self,
        connector: &str,
        provider_receipt: &str,
    ) -> Result<Option<String>, StoreError> {
        self.payment_id_by(
            "SELECT id FROM payments WHERE connector = $1 AND provider_receipt = $2",
            connector,
            provider_receipt,
        )
        .await
    }

    /// The `id` `sql` selects with a connector and one value bound.
    async fn payment_id_by(
        &mut self,
        sql: &'static str,
        connector: &str,
        value: &str,
    ) -> Result<Option<String>, StoreError> {
        let id = run!(self, |c| {
            sqlx::query(sql)
                .bind(connector)
                .bind(value)
                .fetch_optional(&mut **c)
                .await?
                .map(|row| row.try_get::<String, _>("id"))
                .transpose()
        })?;
        Ok(id)
    }

    /// The oldest unfinished payment of a merchant's, through `connector`,
    /// whose `reference` is `reference` (what a customer types as the
    /// account number of a paybill payment).
    pub async fn open_payment_id_by_reference(
        &mut self,
        merchant_id: &str,
        livemode: bool,
        connector: &str,
        reference: &str,
    ) -> Result<Option<String>, StoreError> {
        let id = run!(self, |c| {
            sqlx::query(
                "SELECT id FROM payments
                 WHERE merchant_id = $1 AND livemode = $2 AND reference = $3 AND connector = $4
                     AND status IN ('requires_confirmation', 'processing', 'requires_action')
                 ORDER BY id LIMIT 1",
            )
            .bind(merchant_id)
            .bind(livemode)
            .bind(reference)
            .bind(connector)
            .fetch_optional(&mut **c)
            .await?
            .map(|row| row.try_get::<String, _>("id"))
            .transpose()
        })?;
        Ok(id)
    }

    pub async fn payments(
        &mut self,
        filters: &[Filter],
        page: &Page,
    ) -> Result<(Vec<PaymentRecord>, bool), StoreError> {
        self.list_records::<PaymentRow, _>("payments", filters, page)
            .await
    }

    /// Ids of payments whose status poll is due, oldest due first, at most
    /// `limit`. On PostgreSQL rows another node holds are skipped
    /// (`FOR UPDATE SKIP LOCKED`), so nodes share the work without waiting.
    pub async fn payments_due_for_poll(
        &mut self,
        now_ms: i64,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        let ids = run!(self, |c, postgres| {
            let sql = if postgres {
                "SELECT id FROM payments WHERE next_poll_ms IS NOT NULL AND next_poll_ms <= $1
                 ORDER BY next_poll_ms LIMIT $2 FOR UPDATE SKIP LOCKED"
            } else {
                "SELECT id FROM payments WHERE next_poll_ms IS NOT NULL AND next_poll_ms <= $1
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

    /// Ids of unfinished payments past their expiry, at most `limit`
    /// (skipping rows other nodes hold, on PostgreSQL).
    pub async fn payments_due_for_expiry(
        &mut self,
        now: i64,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        let ids = run!(self, |c, postgres| {
            let sql = if postgres {
                "SELECT id FROM payments WHERE expires_at <= $1
                   AND status IN ('requires_confirmation', 'processing', 'requires_action', 'requires_capture')
                 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED"
            } else {
                "SELECT id FROM payments WHERE expires_at <= $1
                   AND status IN ('requires_confirmation', 'processing', 'requires_action', 'requires_capture')
                 ORDER BY expires_at LIMIT $2"
            };
            sqlx::query(sql)
                .bind(now)
                .bind(limit)
                .fetch_all(&mut **c)
                .await?
                .iter()
                .map(|row| row.try_get::<String, _>("id"))
                .collect::<Result<Vec<_>, _>>()
        })?;
        Ok(ids)
    }

    /// How many payments are in each status (for `/metrics`).
    pub async fn payment_counts_by_status(&mut self) -> Result<Vec<(String, i64)>, StoreError> {
        let counts = run!(self, |c| {
            sqlx::query("SELECT status, COUNT(*) AS n FROM payments GROUP BY status")
                .fetch_all(&mut **c)
                .await?
                .iter()
                .map(|row| {
                    Ok::<_, sqlx::Error>((
                        row.try_get::<String, _>("status")?,
                        row.try_get::<i64, _>("n")?,
                    ))
                })
                .collect::<Result<Vec<_>, _>>()
        })?;
        Ok(counts)
    }
}

fn failure_columns(failure: Option<&Failure>) -> (Option<&str>, Option<&str>) {
    match failure {
        Some(failure) => (Some(failure.code.as_str()), Some(failure.message.as_str())),
        None => (None, None),
    }
}
