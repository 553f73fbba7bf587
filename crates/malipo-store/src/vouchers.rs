//! Vouchers: batches, the vouchers themselves (by the keyed hash of their
//! code, never the code), redemptions, and the expiry job's queries.
//!
//! A redemption is one conditional UPDATE ([`Conn::redeem_voucher`]): the
//! database checks and subtracts in the same statement, so concurrent
//! redemptions of one code can never take more than it holds, on either
//! backend (PostgreSQL re-checks the WHERE clause after a concurrent update
//! commits; SQLite has one writer).

use crate::list::{Filter, Page};
use crate::{Conn, StoreError, corrupt, run};
use sqlx::QueryBuilder;

/// Rows per INSERT statement (10 columns: well under both backends'
/// parameter limits).
const VOUCHER_ROWS_PER_INSERT_MAX: usize = 1_000;

/// A batch as issued (the operator's view; no codes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoucherBatchRecord {
    pub id: String,
    pub livemode: bool,
    /// Redeemable only at this merchant; `None`: at every merchant.
    pub merchant_id: Option<String>,
    pub currency: String,
    pub face_value: i64,
    pub voucher_count: i64,
    pub expires_at: i64,
    pub description: Option<String>,
    pub created: i64,
}

/// One voucher, without its code (only `code_hash` is ever stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoucherRecord {
    pub id: String,
    pub batch_id: String,
    pub livemode: bool,
    pub merchant_id: Option<String>,
    pub code_hash: String,
    pub currency: String,
    pub face_value: i64,
    pub remaining: i64,
    /// `active`, `used` or `expired`.
    pub status: String,
    pub expires_at: i64,
    pub created: i64,
    pub updated: i64,
}

#[derive(sqlx::FromRow)]
struct VoucherBatchRow {
    id: String,
    livemode: bool,
    merchant_id: Option<String>,
    currency: String,
    face_value: i64,
    voucher_count: i64,
    expires_at: i64,
    description: Option<String>,
    created: i64,
}

impl TryFrom<VoucherBatchRow> for VoucherBatchRecord {
    type Error = StoreError;
    fn try_from(row: VoucherBatchRow) -> Result<Self, StoreError> {
        if row.face_value <= 0 || row.voucher_count <= 0 {
            return Err(corrupt(format!("{}.face_value", row.id)));
        }
        Ok(VoucherBatchRecord {
            id: row.id,
            livemode: row.livemode,
            merchant_id: row.merchant_id,
            currency: row.currency,
            face_value: row.face_value,
            voucher_count: row.voucher_count,
            expires_at: row.expires_at,
            description: row.description,
            created: row.created,
        })
    }
}

#[derive(sqlx::FromRow)]
struct VoucherRow {
    id: String,
    batch_id: String,
    livemode: bool,
    merchant_id: Option<String>,
    code_hash: String,
    currency: String,
    face_value: i64,
    remaining: i64,
    status: String,
    expires_at: i64,
    created: i64,
    updated: i64,
}

impl TryFrom<VoucherRow> for VoucherRecord {
    type Error = StoreError;
    fn try_from(row: VoucherRow) -> Result<Self, StoreError> {
        if row.remaining < 0 || row.remaining > row.face_value {
            return Err(corrupt(format!("{}.remaining", row.id)));
        }
        Ok(VoucherRecord {
            id: row.id,
            batch_id: row.batch_id,
            livemode: row.livemode,
            merchant_id: row.merchant_id,
            code_hash: row.code_hash,
            currency: row.currency,
            face_value: row.face_value,
            remaining: row.remaining,
            status: row.status,
            expires_at: row.expires_at,
            created: row.created,
            updated: row.updated,
        })
    }
}

impl Conn<'_> {
    pub async fn insert_voucher_batch(
        &mut self,
        batch: &VoucherBatchRecord,
    ) -> Result<(), StoreError> {
        run!(self, |c| {
            sqlx::query(
                "INSERT INTO voucher_batches (id, livemode, merchant_id, currency, face_value,
                     voucher_count, expires_at, description, created)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&batch.id)
            .bind(batch.livemode)
            .bind(&batch.merchant_id)
            .bind(&batch.currency)
            .bind(batch.face_value)
            .bind(batch.voucher_count)
            .bind(batch.expires_at)
            .bind(&batch.description)
            .bind(batch.created)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    /// Inserts vouchers, a bounded number of rows per statement.
    pub async fn insert_vouchers(&mut self, vouchers: &[VoucherRecord]) -> Result<(), StoreError> {
        for chunk in vouchers.chunks(VOUCHER_ROWS_PER_INSERT_MAX) {
            run!(self, |c| {
                let mut builder = QueryBuilder::new(
                    "INSERT INTO vouchers (id, batch_id, livemode, merchant_id, code_hash, currency,
                         face_value, remaining, status, expires_at, created, updated) ",
                );
                builder.push_values(chunk, |mut row, voucher| {
                    row.push_bind(&voucher.id)
                        .push_bind(&voucher.batch_id)
                        .push_bind(voucher.livemode)
                        .push_bind(&voucher.merchant_id)
                        .push_bind(&voucher.code_hash)
                        .push_bind(&voucher.currency)
                        .push_bind(voucher.face_value)
                        .push_bind(voucher.remaining)
                        .push_bind(&voucher.status)
                        .push_bind(voucher.expires_at)
                        .push_bind(voucher.created)
                        .push_bind(voucher.updated);
                });
                builder
                    .build()
                    .execute(&mut **c)
                    .await
                    .map(|done| done.rows_affected())
            })?;
        }
        Ok(())
    }

    /// The voucher whose code hashes to `code_hash`, if any.
    pub async fn voucher_by_code_hash(
        &mut self,
        code_hash: &str,
    ) -> Result<Option<VoucherRecord>, StoreError> {
        let row: Option<VoucherRow> = run!(self, |c| {
            sqlx::query_as("SELECT * FROM vouchers WHERE code_hash = $1")
                .bind(code_hash)
                .fetch_optional(&mut **c)
                .await
        })?;
        row.map(VoucherRecord::try_from).transpose()
    }

    /// Takes `amount` from an active, unexpired voucher holding at least
    /// that much, in one conditional statement; answers whether it did.
    /// The voucher becomes `used` when nothing remains.
    pub async fn redeem_voucher(
        &mut self,
        id: &str,
        amount: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        // Placeholders first appear in number order: SQLite numbers `$n`
        // parameters by first appearance.
        let changed = run!(self, |c| {
            sqlx::query(
                "UPDATE vouchers SET remaining = remaining - $1,
                     status = CASE WHEN remaining - $1 = 0 THEN 'used' ELSE 'active' END,
                     updated = $2
                 WHERE id = $3 AND remaining >= $1 AND status = 'active' AND expires_at > $2",
            )
            .bind(amount)
            .bind(now)
            .bind(id)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(changed == 1)
    }

    /// A voucher by id.
    pub async fn voucher(&mut self, id: &str) -> Result<Option<VoucherRecord>, StoreError> {
        let row: Option<VoucherRow> = run!(self, |c| {
            sqlx::query_as("SELECT * FROM vouchers WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut **c)
                .await
        })?;
        row.map(VoucherRecord::try_from).transpose()
    }

    /// Gives `amount` back to a voucher that has not expired (a refund of
    /// a payment it paid), in one conditional statement; answers whether
    /// it did. A `used` voucher becomes `active` again; it never holds
    /// more than its face value.
    pub async fn refund_to_voucher(
        &mut self,
        id: &str,
        amount: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let changed = run!(self, |c| {
            sqlx::query(
                "UPDATE vouchers SET remaining = remaining + $1, status = 'active', updated = $2
                 WHERE id = $3 AND status IN ('active', 'used') AND expires_at > $2
                     AND remaining + $1 <= face_value",
            )
            .bind(amount)
            .bind(now)
            .bind(id)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(changed == 1)
    }

    /// Records which payment took how much of which voucher.
    pub async fn insert_voucher_redemption(
        &mut self,
        payment_id: &str,
        voucher_id: &str,
        amount: i64,
        created: i64,
    ) -> Result<(), StoreError> {
        run!(self, |c| {
            sqlx::query(
                "INSERT INTO voucher_redemptions (payment_id, voucher_id, amount, created)
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(payment_id)
            .bind(voucher_id)
            .bind(amount)
            .bind(created)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    /// Active vouchers past their expiry, oldest first, at most `limit`;
    /// on PostgreSQL locked, skipping rows another node holds.
    pub async fn vouchers_due_for_expiry(
        &mut self,
        now: i64,
        limit: i64,
    ) -> Result<Vec<VoucherRecord>, StoreError> {
        let rows: Vec<VoucherRow> = run!(self, |c, postgres| {
            let sql = if postgres {
                "SELECT * FROM vouchers WHERE status = 'active' AND expires_at <= $1
                 ORDER BY expires_at, id LIMIT $2 FOR UPDATE SKIP LOCKED"
            } else {
                "SELECT * FROM vouchers WHERE status = 'active' AND expires_at <= $1
                 ORDER BY expires_at, id LIMIT $2"
            };
            sqlx::query_as(sql)
                .bind(now)
                .bind(limit)
                .fetch_all(&mut **c)
                .await
        })?;
        rows.into_iter().map(VoucherRecord::try_from).collect()
    }

    /// Marks an active, expired voucher `expired` with nothing remaining;
    /// answers whether it did (only once per voucher).
    pub async fn expire_voucher(&mut self, id: &str, now: i64) -> Result<bool, StoreError> {
        let changed = run!(self, |c| {
            sqlx::query(
                "UPDATE vouchers SET status = 'expired', remaining = 0, updated = $1
                 WHERE id = $2 AND status = 'active' AND expires_at <= $1",
            )
            .bind(now)
            .bind(id)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(changed == 1)
    }

    pub async fn voucher_batches(
        &mut self,
        filters: &[Filter],
        page: &Page,
    ) -> Result<(Vec<VoucherBatchRecord>, bool), StoreError> {
        self.list_records::<VoucherBatchRow, _>("voucher_batches", filters, page)
            .await
    }

    pub async fn vouchers(
        &mut self,
        filters: &[Filter],
        page: &Page,
    ) -> Result<(Vec<VoucherRecord>, bool), StoreError> {
        self.list_records::<VoucherRow, _>("vouchers", filters, page)
            .await
    }
}
