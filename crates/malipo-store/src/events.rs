//! The event outbox: written in the transaction of the change it reports.

use crate::{Conn, StoreError, run};

/// An event as stored: `data` is the JSON of the object after the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    pub id: String,
    pub merchant_id: String,
    pub livemode: bool,
    pub event_type: String,
    pub data: String,
    pub created: i64,
}

impl Conn<'_> {
    pub async fn insert_event(&mut self, event: &EventRecord) -> Result<(), StoreError> {
        run!(self, |c| {
            sqlx::query(
                "INSERT INTO events (id, merchant_id, livemode, event_type, data, created)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&event.id)
            .bind(&event.merchant_id)
            .bind(event.livemode)
            .bind(&event.event_type)
            .bind(&event.data)
            .bind(event.created)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    /// The types of a merchant's events, oldest first (for tests and audits).
    pub async fn event_types_for(&mut self, merchant_id: &str) -> Result<Vec<String>, StoreError> {
        use sqlx::Row;
        let types = run!(self, |c| {
            sqlx::query("SELECT event_type FROM events WHERE merchant_id = $1 ORDER BY id")
                .bind(merchant_id)
                .fetch_all(&mut **c)
                .await?
                .iter()
                .map(|row| row.try_get::<String, _>("event_type"))
                .collect::<Result<Vec<_>, _>>()
        })?;
        Ok(types)
    }
}
