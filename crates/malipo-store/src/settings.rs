//! Server-wide settings (e.g. the key that hashes API keys) and operator tokens.

use crate::{Conn, StoreError, run};
use sqlx::Row;

impl Conn<'_> {
    pub async fn setting(&mut self, name: &str) -> Result<Option<String>, StoreError> {
        let value = run!(self, |c| {
            sqlx::query("SELECT value FROM settings WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut **c)
                .await?
                .map(|row| row.try_get::<String, _>("value"))
                .transpose()
        })?;
        Ok(value)
    }

    /// Stores `value` under `name` unless a value is already there; answers
    /// the value that is stored afterwards (so racing nodes agree).
    pub async fn setting_insert_once(
        &mut self,
        name: &str,
        value: &str,
    ) -> Result<String, StoreError> {
        run!(self, |c| {
            sqlx::query(
                "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(value)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        self.setting(name)
            .await?
            .ok_or_else(|| crate::corrupt(format!("setting {name} vanished")))
    }

    pub async fn operator_token_count(&mut self) -> Result<i64, StoreError> {
        let count = run!(self, |c| {
            sqlx::query("SELECT COUNT(*) AS n FROM operator_tokens WHERE revoked IS NULL")
                .fetch_one(&mut **c)
                .await?
                .try_get::<i64, _>("n")
        })?;
        Ok(count)
    }

    pub async fn insert_operator_token(
        &mut self,
        id: &str,
        token_hash: &str,
        prefix: &str,
        created: i64,
    ) -> Result<(), StoreError> {
        run!(self, |c| {
            sqlx::query("INSERT INTO operator_tokens (id, token_hash, prefix, created) VALUES ($1, $2, $3, $4)")
                .bind(id)
                .bind(token_hash)
                .bind(prefix)
                .bind(created)
                .execute(&mut **c)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    /// The id of the live operator token with this hash, if any.
    pub async fn operator_token_by_hash(
        &mut self,
        token_hash: &str,
    ) -> Result<Option<String>, StoreError> {
        let id = run!(self, |c| {
            sqlx::query("SELECT id FROM operator_tokens WHERE token_hash = $1 AND revoked IS NULL")
                .bind(token_hash)
                .fetch_optional(&mut **c)
                .await?
                .map(|row| row.try_get::<String, _>("id"))
                .transpose()
        })?;
        Ok(id)
    }
}
