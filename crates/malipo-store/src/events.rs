//! The event outbox: written in the transaction of the change it reports,
//! then fanned out to webhook deliveries by the worker.

use crate::list::{Filter, Page};
use crate::{Conn, StoreError, run};
use sqlx::Row;

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

#[derive(sqlx::FromRow)]
struct EventRow {
    id: String,
    merchant_id: String,
    livemode: bool,
    event_type: String,
    data: String,
    created: i64,
}

impl TryFrom<EventRow> for EventRecord {
    type Error = StoreError;
    fn try_from(row: EventRow) -> Result<Self, StoreError> {
        Ok(EventRecord {
            id: row.id,
            merchant_id: row.merchant_id,
            livemode: row.livemode,
            event_type: row.event_type,
            data: row.data,
            created: row.created,
        })
    }
}

impl Conn<'_> {
    /// Inserts several events in one statement.
    pub async fn insert_events(&mut self, events: &[EventRecord]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        run!(self, |c| {
            let mut builder = sqlx::QueryBuilder::new(
                "INSERT INTO events (id, merchant_id, livemode, event_type, data, created) ",
            );
            builder.push_values(events, |mut row, event| {
                row.push_bind(&event.id)
                    .push_bind(&event.merchant_id)
                    .push_bind(event.livemode)
                    .push_bind(&event.event_type)
                    .push_bind(&event.data)
                    .push_bind(event.created);
            });
            builder
                .build()
                .execute(&mut **c)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

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

    pub async fn events(
        &mut self,
        filters: &[Filter],
        page: &Page,
    ) -> Result<(Vec<EventRecord>, bool), StoreError> {
        self.list_records::<EventRow, _>("events", filters, page)
            .await
    }

    /// Events not yet fanned out to deliveries, oldest first, at most
    /// `limit`; on PostgreSQL rows another node holds are skipped.
    pub async fn events_to_dispatch(&mut self, limit: i64) -> Result<Vec<EventRecord>, StoreError> {
        let rows: Vec<EventRow> = run!(self, |c, postgres| {
            let sql = if postgres {
                "SELECT * FROM events WHERE dispatched = FALSE ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED"
            } else {
                "SELECT * FROM events WHERE dispatched = FALSE ORDER BY id LIMIT $1"
            };
            sqlx::query_as(sql).bind(limit).fetch_all(&mut **c).await
        })?;
        rows.into_iter().map(EventRecord::try_from).collect()
    }

    /// Marks events as fanned out, in one statement.
    pub async fn mark_events_dispatched(&mut self, ids: &[String]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids =
            serde_json::to_string(ids).map_err(|error| crate::corrupt(format!("ids: {error}")))?;
        run!(self, |c, postgres| {
            let sql = if postgres {
                "UPDATE events SET dispatched = TRUE WHERE id IN (SELECT jsonb_array_elements_text($1::jsonb))"
            } else {
                "UPDATE events SET dispatched = TRUE WHERE id IN (SELECT value FROM json_each($1))"
            };
            sqlx::query(sql)
                .bind(&ids)
                .execute(&mut **c)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    /// The types of a merchant's events, oldest first (for tests and audits).
    pub async fn event_types_for(&mut self, merchant_id: &str) -> Result<Vec<String>, StoreError> {
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
