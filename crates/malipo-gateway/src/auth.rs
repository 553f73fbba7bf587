//! Who is calling: merchants with API keys, operators with tokens.
//!
//! Secrets are shown once at creation and stored only as HMAC-SHA256 under a
//! server secret (a keyed hash: a stolen database alone can't be used to
//! test guesses). The first characters are kept as a prefix so a merchant
//! can recognise a key in listings.

use crate::{ApiError, ErrorKind, Gateway, GatewayResult, now_seconds};
use hmac::{Hmac, KeyInit, Mac};
use malipo_core::Mode;
use malipo_core::id::{IdKind, new_id, random_secret};
use malipo_core::objects::Scope;
use malipo_store::Store;
use sha2::Sha256;
use std::fmt;

const HASH_SECRET_SETTING: &str = "api_key_hash_secret";
/// How many characters of a secret are stored in clear to recognise it.
pub const SECRET_PREFIX_LENGTH: usize = 12;

/// Hashes secrets with the server's key. `Debug` never shows the key.
#[derive(Clone)]
pub struct KeyHasher {
    key: Vec<u8>,
}

impl fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHasher([redacted])")
    }
}

impl KeyHasher {
    /// Loads the server's hashing secret, creating it on first start. Two
    /// nodes starting together agree: the first insert wins.
    pub async fn load_or_create(store: &Store) -> GatewayResult<KeyHasher> {
        let mut tx = store.begin().await?;
        let key = tx
            .conn()
            .setting_insert_once(HASH_SECRET_SETTING, &random_secret(32))
            .await?;
        tx.commit().await?;
        Ok(KeyHasher {
            key: key.into_bytes(),
        })
    }

    pub fn hash(&self, secret: &str) -> String {
        // HMAC takes keys of any length; the error arm can't happen.
        let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key) else {
            return String::new();
        };
        mac.update(secret.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

/// A merchant's authenticated request: which merchant, which world, what
/// the key may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerchantContext {
    pub merchant_id: String,
    pub mode: Mode,
    pub key_id: String,
    pub scopes: Vec<Scope>,
}

impl MerchantContext {
    pub fn livemode(&self) -> bool {
        self.mode.is_live()
    }

    /// Refuses with 403 unless one of the key's scopes allows `needed`.
    pub fn require(&self, needed: Scope) -> Result<(), ApiError> {
        if self.scopes.iter().any(|scope| scope.allows(needed)) {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorKind::Permission,
                "insufficient_scope",
                format!(
                    "this API key lacks the `{}` scope needed here",
                    needed.as_str()
                ),
            ))
        }
    }
}

/// A new secret key: `sk_test_…` or `sk_live_…`.
pub(crate) fn new_secret_key(mode: Mode) -> String {
    format!("sk_{}_{}", mode.as_str(), random_secret(20))
}

fn unauthenticated(message: &str) -> ApiError {
    ApiError::new(ErrorKind::Authentication, "invalid_api_key", message)
}

impl Gateway {
    /// Resolves `Authorization: Bearer sk_…` to a merchant context.
    pub async fn authenticate_merchant(&self, secret: &str) -> GatewayResult<MerchantContext> {
        let mode = if secret.starts_with("sk_test_") {
            Mode::Test
        } else if secret.starts_with("sk_live_") {
            Mode::Live
        } else {
            return Err(unauthenticated(
                "invalid API key: expected `Bearer sk_test_…` or `Bearer sk_live_…`",
            )
            .into());
        };
        let hash = self.key_hasher().hash(secret);
        let mut reader = self.store().reader().await?;
        let Some(record) = reader.conn().api_key_by_hash(&hash).await? else {
            return Err(unauthenticated("invalid or revoked API key").into());
        };
        if record.key.livemode != mode.is_live() {
            return Err(unauthenticated("invalid API key").into());
        }
        Ok(MerchantContext {
            merchant_id: record.merchant_id,
            mode,
            key_id: record.key.id,
            scopes: record.key.scopes,
        })
    }

    /// Resolves an operator token; answers the token's id.
    pub async fn authenticate_operator(&self, token: &str) -> GatewayResult<String> {
        if !token.starts_with("op_") {
            return Err(ApiError::new(
                ErrorKind::Authentication,
                "invalid_operator_token",
                "invalid operator token",
            )
            .into());
        }
        let hash = self.key_hasher().hash(token);
        let mut reader = self.store().reader().await?;
        reader
            .conn()
            .operator_token_by_hash(&hash)
            .await?
            .ok_or_else(|| {
                ApiError::new(
                    ErrorKind::Authentication,
                    "invalid_operator_token",
                    "invalid operator token",
                )
                .into()
            })
    }

    /// On a database with no operator token, creates one and answers its
    /// secret (to print once); otherwise `None`.
    pub async fn bootstrap_operator_token(&self) -> GatewayResult<Option<String>> {
        let mut tx = self.store().begin().await?;
        if tx.conn().operator_token_count().await? > 0 {
            return Ok(None);
        }
        let token = self.insert_operator_token(&mut tx).await?;
        tx.commit().await?;
        Ok(Some(token))
    }

    /// Creates another operator token (CLI `malipo operator token`).
    pub async fn create_operator_token(&self) -> GatewayResult<String> {
        let mut tx = self.store().begin().await?;
        let token = self.insert_operator_token(&mut tx).await?;
        tx.commit().await?;
        Ok(token)
    }

    async fn insert_operator_token(&self, tx: &mut malipo_store::Tx) -> GatewayResult<String> {
        let token = format!("op_{}", random_secret(24));
        let prefix: String = token.chars().take(SECRET_PREFIX_LENGTH).collect();
        tx.conn()
            .insert_operator_token(
                &new_id(IdKind::ApiKey),
                &self.key_hasher().hash(&token),
                &prefix,
                now_seconds(),
            )
            .await?;
        Ok(token)
    }
}
