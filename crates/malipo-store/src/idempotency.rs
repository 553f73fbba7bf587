//! Idempotency-Key records.
//!
//! A key is claimed in its own short transaction before the work starts, so
//! a concurrent request with the same key sees it in flight (409). The work's
//! own transaction then stores the response, so the effect and the record of
//! it commit together. A claim whose worker died is taken over once its lock
//! has run out.

use crate::{Conn, StoreError, run};
use sqlx::Row;

/// A key this request holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyClaim {
    pub merchant_id: String,
    pub livemode: bool,
    pub key: String,
    /// A hash of the method, path and body: the same key with another
    /// request is a client error.
    pub request_hash: String,
}

/// The first response to a key: `ok` says whether `body` is the object or
/// an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub ok: bool,
    pub body: String,
}

/// What claiming a key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyRecord {
    /// This request holds the key now. `resume_object_id` is the object an
    /// earlier holder of the key created before it died, if any.
    Claimed { resume_object_id: Option<String> },
    /// Another request holds it.
    InFlight { request_hash: String },
    /// A request with this key finished; replay its response.
    Completed {
        request_hash: String,
        response: StoredResponse,
    },
}

impl Conn<'_> {
    pub async fn claim_idempotency_key(
        &mut self,
        claim: &IdempotencyClaim,
        now_ms: i64,
        lock_ms: i64,
    ) -> Result<IdempotencyRecord, StoreError> {
        let locked_until_ms = now_ms.saturating_add(lock_ms);
        let inserted = run!(self, |c| {
            sqlx::query(
                "INSERT INTO idempotency_keys (merchant_id, livemode, idempotency_key, request_hash,
                     locked_until_ms, created)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (merchant_id, livemode, idempotency_key) DO NOTHING",
            )
            .bind(&claim.merchant_id)
            .bind(claim.livemode)
            .bind(&claim.key)
            .bind(&claim.request_hash)
            .bind(locked_until_ms)
            .bind(now_ms / 1000)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        if inserted == 1 {
            return Ok(IdempotencyRecord::Claimed {
                resume_object_id: None,
            });
        }
        let existing = run!(self, |c| {
            sqlx::query(
                "SELECT request_hash, locked_until_ms, response_ok, response_body, object_id FROM idempotency_keys
                 WHERE merchant_id = $1 AND livemode = $2 AND idempotency_key = $3",
            )
            .bind(&claim.merchant_id)
            .bind(claim.livemode)
            .bind(&claim.key)
            .fetch_optional(&mut **c)
            .await?
            .map(|row| {
                Ok::<_, sqlx::Error>((
                    row.try_get::<String, _>("request_hash")?,
                    row.try_get::<i64, _>("locked_until_ms")?,
                    row.try_get::<Option<bool>, _>("response_ok")?,
                    row.try_get::<Option<String>, _>("response_body")?,
                    row.try_get::<Option<String>, _>("object_id")?,
                ))
            })
            .transpose()
        })?;
        let Some((request_hash, old_locked_until_ms, response_ok, response_body, object_id)) =
            existing
        else {
            // Pruned between the two statements: the caller may simply retry.
            return Ok(IdempotencyRecord::InFlight {
                request_hash: claim.request_hash.clone(),
            });
        };
        if let (Some(ok), Some(body)) = (response_ok, response_body) {
            return Ok(IdempotencyRecord::Completed {
                request_hash,
                response: StoredResponse { ok, body },
            });
        }
        if old_locked_until_ms < now_ms && request_hash == claim.request_hash {
            // The holder died without finishing: take the key over, unless
            // another request took it over first (compare-and-set on the lock).
            let taken = run!(self, |c| {
                sqlx::query(
                    "UPDATE idempotency_keys SET locked_until_ms = $1
                     WHERE merchant_id = $2 AND livemode = $3 AND idempotency_key = $4
                       AND locked_until_ms = $5 AND response_ok IS NULL",
                )
                .bind(locked_until_ms)
                .bind(&claim.merchant_id)
                .bind(claim.livemode)
                .bind(&claim.key)
                .bind(old_locked_until_ms)
                .execute(&mut **c)
                .await
                .map(|done| done.rows_affected())
            })?;
            if taken == 1 {
                return Ok(IdempotencyRecord::Claimed {
                    resume_object_id: object_id,
                });
            }
        }
        Ok(IdempotencyRecord::InFlight { request_hash })
    }

    pub async fn complete_idempotency_key(
        &mut self,
        claim: &IdempotencyClaim,
        response: &StoredResponse,
    ) -> Result<(), StoreError> {
        run!(self, |c| {
            sqlx::query(
                "UPDATE idempotency_keys SET response_ok = $1, response_body = $2
                 WHERE merchant_id = $3 AND livemode = $4 AND idempotency_key = $5",
            )
            .bind(response.ok)
            .bind(&response.body)
            .bind(&claim.merchant_id)
            .bind(claim.livemode)
            .bind(&claim.key)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    /// Records the object the claimed request has created, in the
    /// transaction that creates it (see [`IdempotencyRecord::Claimed`]).
    pub async fn set_idempotency_recovery_point(
        &mut self,
        claim: &IdempotencyClaim,
        object_id: &str,
    ) -> Result<(), StoreError> {
        run!(self, |c| {
            sqlx::query(
                "UPDATE idempotency_keys SET object_id = $1
                 WHERE merchant_id = $2 AND livemode = $3 AND idempotency_key = $4",
            )
            .bind(object_id)
            .bind(&claim.merchant_id)
            .bind(claim.livemode)
            .bind(&claim.key)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    /// Forgets a claim whose request failed on the server's side, so the
    /// client's retry runs again instead of replaying a 500.
    pub async fn release_idempotency_key(
        &mut self,
        claim: &IdempotencyClaim,
    ) -> Result<(), StoreError> {
        run!(self, |c| {
            sqlx::query(
                "DELETE FROM idempotency_keys
                 WHERE merchant_id = $1 AND livemode = $2 AND idempotency_key = $3 AND response_ok IS NULL",
            )
            .bind(&claim.merchant_id)
            .bind(claim.livemode)
            .bind(&claim.key)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    /// Deletes records created before `created_before` (Unix seconds);
    /// answers how many.
    pub async fn prune_idempotency_keys(&mut self, created_before: i64) -> Result<u64, StoreError> {
        let deleted = run!(self, |c| {
            sqlx::query(
                "DELETE FROM idempotency_keys WHERE created < $1 AND response_ok IS NOT NULL",
            )
            .bind(created_before)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(deleted)
    }
}
