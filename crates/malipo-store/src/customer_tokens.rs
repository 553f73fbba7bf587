//! Customer tokens (`migrations/0021_live_feeds.sql`): short-lived
//! credentials of one customer for the live feeds, stored as a keyed hash.

use crate::{Conn, StoreError, run};

/// A customer token as stored (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CustomerTokenRecord {
    pub id: String,
    pub merchant_id: String,
    pub livemode: bool,
    pub customer_id: String,
    pub prefix: String,
    pub created: i64,
    pub expires_at: i64,
}

impl Conn<'_> {
    pub async fn insert_customer_token(
        &mut self,
        record: &CustomerTokenRecord,
        token_hash: &str,
    ) -> Result<(), StoreError> {
        run!(self, |c| {
            sqlx::query(
                "INSERT INTO customer_tokens
                 (id, merchant_id, livemode, customer_id, token_hash, prefix, created, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&record.id)
            .bind(&record.merchant_id)
            .bind(record.livemode)
            .bind(&record.customer_id)
            .bind(token_hash)
            .bind(&record.prefix)
            .bind(record.created)
            .bind(record.expires_at)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    /// The token with this hash, expired or not (the caller decides).
    pub async fn customer_token_by_hash(
        &mut self,
        token_hash: &str,
    ) -> Result<Option<CustomerTokenRecord>, StoreError> {
        Ok(run!(self, |c| {
            sqlx::query_as(
                "SELECT id, merchant_id, livemode, customer_id, prefix, created, expires_at
                 FROM customer_tokens WHERE token_hash = $1",
            )
            .bind(token_hash)
            .fetch_optional(&mut **c)
            .await
        })?)
    }

    /// Deletes tokens that expired before `now` (at most `limit`); answers
    /// how many.
    pub async fn delete_expired_customer_tokens(
        &mut self,
        now: i64,
        limit: i64,
    ) -> Result<u64, StoreError> {
        Ok(run!(self, |c| {
            sqlx::query(
                "DELETE FROM customer_tokens WHERE id IN
                 (SELECT id FROM customer_tokens WHERE expires_at < $1 LIMIT $2)",
            )
            .bind(now)
            .bind(limit)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?)
    }
}
