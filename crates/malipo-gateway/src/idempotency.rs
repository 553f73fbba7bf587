//! The Idempotency-Key protocol (Stripe's), on every POST:
//!
//! 1. [`Gateway::idempotency_begin`] claims the key in its own short
//!    transaction: a replay of a finished request answers its stored
//!    response; the same key with a different request is refused; a key
//!    whose request is still running is refused with a conflict.
//! 2. The use case runs and stores its response in the transaction of its
//!    effect ([`complete`]).
//! 3. A refused request (4xx) stores its error ([`Gateway::idempotency_fail`]);
//!    a server failure releases the key so the client's retry runs again
//!    ([`Gateway::idempotency_release`]).
//!
//! Records are kept [`crate::GatewayConfig::idempotency_retention_hours`]
//! (at least 24 h) and then pruned by the worker.

use crate::auth::MerchantContext;
use crate::{ApiError, ErrorKind, Gateway, GatewayError, GatewayResult, now_ms, now_seconds};
use malipo_store::{Conn, IdempotencyClaim, IdempotencyRecord, StoredResponse};
use serde::Serialize;

/// The longest accepted Idempotency-Key.
pub const IDEMPOTENCY_KEY_LENGTH_MAX: usize = 255;

/// A claimed key, handed to the use case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyGuard {
    pub claim: IdempotencyClaim,
    /// An object an earlier holder of this key created before it died; the
    /// use case resumes with it instead of creating another.
    pub resume_object_id: Option<String>,
}

impl Gateway {
    /// Stores `response` as the key's answer in a transaction of its own:
    /// for a request resumed at its recovery point (the object an earlier
    /// holder of the key made), whose effect is committed already.
    pub(crate) async fn complete_resumed(
        &self,
        guard: Option<&IdempotencyGuard>,
        response: &impl Serialize,
    ) -> GatewayResult<()> {
        let mut tx = self.store().begin().await?;
        complete(&mut tx.conn(), guard, response).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// What to do with a request that carries a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyStart {
    Proceed(IdempotencyGuard),
    /// Answer this stored response again.
    Replay(StoredResponse),
}

/// Stores the use case's successful response with its effect.
pub(crate) async fn complete(
    conn: &mut Conn<'_>,
    guard: Option<&IdempotencyGuard>,
    response: &impl Serialize,
) -> GatewayResult<()> {
    if let Some(guard) = guard {
        let body = serde_json::to_string(response).map_err(GatewayError::internal)?;
        conn.complete_idempotency_key(&guard.claim, &StoredResponse { ok: true, body })
            .await?;
    }
    Ok(())
}

/// Records the object a request created, in the transaction creating it.
pub(crate) async fn recovery_point(
    conn: &mut Conn<'_>,
    guard: Option<&IdempotencyGuard>,
    object_id: &str,
) -> GatewayResult<()> {
    if let Some(guard) = guard {
        conn.set_idempotency_recovery_point(&guard.claim, object_id)
            .await?;
    }
    Ok(())
}

/// What identifies "the same request" for a key: method, path and body.
pub fn request_hash(method: &str, path: &str, body: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(method.as_bytes());
    hasher.update(b" ");
    hasher.update(path.as_bytes());
    hasher.update(b"\n");
    hasher.update(body);
    hex::encode(hasher.finalize())
}

impl Gateway {
    pub async fn idempotency_begin(
        &self,
        context: &MerchantContext,
        key: &str,
        request_hash: String,
    ) -> GatewayResult<IdempotencyStart> {
        if key.is_empty() || key.len() > IDEMPOTENCY_KEY_LENGTH_MAX {
            return Err(ApiError::invalid(
                "Idempotency-Key",
                format!("the Idempotency-Key header must be 1 to {IDEMPOTENCY_KEY_LENGTH_MAX} characters"),
            )
            .into());
        }
        let claim = IdempotencyClaim {
            merchant_id: context.merchant_id.clone(),
            livemode: context.livemode(),
            key: key.to_owned(),
            request_hash,
        };
        let mut tx = self.store().begin().await?;
        let record = tx
            .conn()
            .claim_idempotency_key(&claim, now_ms(), self.config().idempotency_lock_ms)
            .await?;
        tx.commit().await?;
        let mismatch = || {
            ApiError::new(
                ErrorKind::IdempotencyMismatch,
                "idempotency_key_reused",
                "this Idempotency-Key was used with a different request; use a new key for a new request",
            )
            .with_param("Idempotency-Key")
        };
        match record {
            IdempotencyRecord::Claimed { resume_object_id } => {
                Ok(IdempotencyStart::Proceed(IdempotencyGuard {
                    claim,
                    resume_object_id,
                }))
            }
            IdempotencyRecord::InFlight { request_hash } if request_hash != claim.request_hash => {
                Err(mismatch().into())
            }
            IdempotencyRecord::InFlight { .. } => Err(ApiError::new(
                ErrorKind::IdempotencyInFlight,
                "idempotency_key_in_use",
                "a request with this Idempotency-Key is still being processed; retry later",
            )
            .with_param("Idempotency-Key")
            .into()),
            IdempotencyRecord::Completed { request_hash, .. }
                if request_hash != claim.request_hash =>
            {
                Err(mismatch().into())
            }
            IdempotencyRecord::Completed { response, .. } => Ok(IdempotencyStart::Replay(response)),
        }
    }

    /// Stores a refusal as the key's response.
    pub async fn idempotency_fail(
        &self,
        guard: &IdempotencyGuard,
        error: &ApiError,
    ) -> GatewayResult<()> {
        let body = serde_json::to_string(error).map_err(GatewayError::internal)?;
        let mut tx = self.store().begin().await?;
        tx.conn()
            .complete_idempotency_key(&guard.claim, &StoredResponse { ok: false, body })
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Forgets the key after a server-side failure.
    pub async fn idempotency_release(&self, guard: &IdempotencyGuard) -> GatewayResult<()> {
        let mut tx = self.store().begin().await?;
        tx.conn().release_idempotency_key(&guard.claim).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes finished records older than the retention; answers how many.
    pub async fn prune_idempotency_keys(&self) -> GatewayResult<u64> {
        let retention_seconds = i64::from(self.config().idempotency_retention_hours.max(24)) * 3600;
        let mut tx = self.store().begin().await?;
        let deleted = tx
            .conn()
            .prune_idempotency_keys(now_seconds() - retention_seconds)
            .await?;
        tx.commit().await?;
        Ok(deleted)
    }
}
