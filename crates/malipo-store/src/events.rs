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

#[derive(sqlx::FromRow)]
struct FeedEventRow {
    id: String,
    merchant_id: String,
    livemode: bool,
    event_type: String,
    data: String,
    created: i64,
    feed_sequence: Option<i64>,
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

    /// Marks events as fanned out and numbers them for the live feeds, in
    /// the order of `ids`, after the last number given. The head row stays
    /// locked until the transaction commits, so numbers commit in order and
    /// without holes (see `migrations/0021_live_feeds.sql`).
    pub async fn mark_events_dispatched(&mut self, ids: &[String]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let count = i64::try_from(ids.len()).map_err(|_| crate::corrupt("too many events"))?;
        let head: i64 = run!(self, |c| {
            sqlx::query(
                "UPDATE event_feed_head SET sequence = sequence + $1 WHERE id = 1 RETURNING sequence",
            )
            .bind(count)
            .fetch_one(&mut **c)
            .await?
            .try_get::<i64, _>("sequence")
        })?;
        // The first event gets `base + 1`.
        let base = head - count;
        let ids =
            serde_json::to_string(ids).map_err(|error| crate::corrupt(format!("ids: {error}")))?;
        run!(self, |c, postgres| {
            let sql = if postgres {
                "UPDATE events SET dispatched = TRUE, feed_sequence = $2::bigint + t.position
                 FROM jsonb_array_elements_text($1::jsonb) WITH ORDINALITY AS t(id, position)
                 WHERE events.id = t.id"
            } else {
                "UPDATE events SET dispatched = TRUE,
                     feed_sequence = $2 + 1 + (SELECT CAST(key AS INTEGER) FROM json_each($1) WHERE value = events.id)
                 WHERE id IN (SELECT value FROM json_each($1))"
            };
            sqlx::query(sql)
                .bind(&ids)
                .bind(base)
                .execute(&mut **c)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    /// The last number given to an event for the feeds (0: none yet).
    pub async fn event_feed_head(&mut self) -> Result<u64, StoreError> {
        let head: i64 = run!(self, |c| {
            sqlx::query("SELECT sequence FROM event_feed_head WHERE id = 1")
                .fetch_one(&mut **c)
                .await?
                .try_get::<i64, _>("sequence")
        })?;
        u64::try_from(head).map_err(|_| crate::corrupt("event_feed_head.sequence is negative"))
    }

    /// At most `limit` events numbered after `after` up to `up_to`
    /// (inclusive), in feed order, each with its number; only the owner's
    /// when `owner` (merchant, livemode) is given.
    pub async fn events_for_feeds(
        &mut self,
        owner: Option<(&str, bool)>,
        after: u64,
        up_to: u64,
        limit: u32,
    ) -> Result<Vec<(u64, EventRecord)>, StoreError> {
        let after = i64::try_from(after).map_err(|_| crate::corrupt("sequence too large"))?;
        let up_to = i64::try_from(up_to).map_err(|_| crate::corrupt("sequence too large"))?;
        let limit = i64::from(limit);
        let rows: Vec<FeedEventRow> = run!(self, |c| {
            match owner {
                Some((merchant_id, livemode)) => {
                    sqlx::query_as(
                        "SELECT * FROM events WHERE merchant_id = $1 AND livemode = $2
                         AND feed_sequence > $3 AND feed_sequence <= $4
                         ORDER BY feed_sequence LIMIT $5",
                    )
                    .bind(merchant_id)
                    .bind(livemode)
                    .bind(after)
                    .bind(up_to)
                    .bind(limit)
                    .fetch_all(&mut **c)
                    .await
                }
                None => {
                    sqlx::query_as(
                        "SELECT * FROM events WHERE feed_sequence > $1 AND feed_sequence <= $2
                         ORDER BY feed_sequence LIMIT $3",
                    )
                    .bind(after)
                    .bind(up_to)
                    .bind(limit)
                    .fetch_all(&mut **c)
                    .await
                }
            }
        })?;
        rows.into_iter()
            .map(|row| {
                let sequence = row
                    .feed_sequence
                    .and_then(|sequence| u64::try_from(sequence).ok())
                    .ok_or_else(|| crate::corrupt(format!("event {}: feed_sequence", row.id)))?;
                Ok((
                    sequence,
                    EventRecord {
                        id: row.id,
                        merchant_id: row.merchant_id,
                        livemode: row.livemode,
                        event_type: row.event_type,
                        data: row.data,
                        created: row.created,
                    },
                ))
            })
            .collect()
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

    /// The outbox retention's candidates (the worker's prune job): at most
    /// `limit` events created before `created_before`, oldest first, that
    /// are fanned out and whose webhook deliveries are all finished
    /// (succeeded or failed for good).
    pub async fn prunable_events(
        &mut self,
        created_before: i64,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        Ok(run!(self, |c| {
            sqlx::query_scalar(
                "SELECT id FROM events WHERE created < $1 AND dispatched = TRUE
                 AND NOT EXISTS (SELECT 1 FROM webhook_deliveries
                     WHERE webhook_deliveries.event_id = events.id
                     AND webhook_deliveries.status = 'pending')
                 ORDER BY created, id LIMIT $2",
            )
            .bind(created_before)
            .bind(limit)
            .fetch_all(&mut **c)
            .await
        })?)
    }

    /// Deletes the events `ids` (from [`Self::prunable_events`]) with their
    /// finished deliveries and those deliveries' attempts; an event that
    /// has a pending delivery stays. Answers how many events it deleted.
    pub async fn delete_finished_events(&mut self, ids: &[String]) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        // Each statement checks again, so that a delivery made meanwhile
        // (a redelivery) keeps its event, its own row and its attempts.
        let no_delivery = "NOT EXISTS (SELECT 1 FROM webhook_deliveries
             WHERE webhook_deliveries.event_id = events.id) AND id IN (";
        self.execute_for_ids(
            "DELETE FROM webhook_attempts WHERE delivery_id IN
             (SELECT id FROM webhook_deliveries WHERE status <> 'pending' AND event_id IN (",
            ids,
            "))",
        )
        .await?;
        self.execute_for_ids(
            "DELETE FROM webhook_deliveries WHERE status <> 'pending' AND event_id IN (",
            ids,
            ")",
        )
        .await?;
        // The feeds refuse a resume from before the deleted events.
        let pruned_through: Option<i64> = run!(self, |c| {
            let mut builder = sqlx::QueryBuilder::new(format!(
                "SELECT MAX(feed_sequence) FROM events WHERE {no_delivery}"
            ));
            let mut list = builder.separated(", ");
            for id in ids {
                list.push_bind(id);
            }
            builder.push(")");
            builder.build_query_scalar().fetch_one(&mut **c).await
        })?;
        if let Some(pruned_through) = pruned_through {
            run!(self, |c| {
                sqlx::query(
                    "UPDATE event_feed_head SET pruned_through = $1
                     WHERE id = 1 AND pruned_through < $1",
                )
                .bind(pruned_through)
                .execute(&mut **c)
                .await
                .map(|done| done.rows_affected())
            })?;
        }
        let deleted = self
            .execute_for_ids(&format!("DELETE FROM events WHERE {no_delivery}"), ids, ")")
            .await?;
        Ok(deleted)
    }

    /// The highest feed number among the events the retention deleted (0:
    /// none).
    pub async fn event_feed_pruned_through(&mut self) -> Result<u64, StoreError> {
        let pruned: i64 = run!(self, |c| {
            sqlx::query_scalar("SELECT pruned_through FROM event_feed_head WHERE id = 1")
                .fetch_one(&mut **c)
                .await
        })?;
        u64::try_from(pruned)
            .map_err(|_| crate::corrupt("event_feed_head.pruned_through is negative"))
    }

    /// Runs `head`, the binds `ids` separated by commas, then `tail`;
    /// answers how many rows it changed.
    async fn execute_for_ids(
        &mut self,
        head: &str,
        ids: &[String],
        tail: &str,
    ) -> Result<u64, StoreError> {
        Ok(run!(self, |c| {
            let mut builder = sqlx::QueryBuilder::new(head);
            let mut list = builder.separated(", ");
            for id in ids {
                list.push_bind(id);
            }
            builder.push(tail);
            builder
                .build()
                .execute(&mut **c)
                .await
                .map(|done| done.rows_affected())
        })?)
    }
}
