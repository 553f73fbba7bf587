//! Webhook endpoints, deliveries (one per event × endpoint) and attempts.

use crate::list::{Filter, Page};
use crate::payments::{json_from_db, json_to_db};
use crate::{Conn, StoreError, run};
use malipo_core::objects::{WebhookAttempt, WebhookEndpoint};

/// An endpoint with what only the server sees: its secrets and health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpointRecord {
    pub merchant_id: String,
    pub endpoint: WebhookEndpoint,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub failing_since: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct EndpointRow {
    id: String,
    merchant_id: String,
    livemode: bool,
    url: String,
    description: Option<String>,
    enabled_events: String,
    enabled: bool,
    secret: String,
    previous_secret: Option<String>,
    previous_secret_expires_at: Option<i64>,
    failing_since: Option<i64>,
    disabled_reason: Option<String>,
    created: i64,
    updated: i64,
}

impl TryFrom<EndpointRow> for WebhookEndpointRecord {
    type Error = StoreError;
    fn try_from(row: EndpointRow) -> Result<Self, StoreError> {
        Ok(WebhookEndpointRecord {
            merchant_id: row.merchant_id,
            secret: row.secret,
            previous_secret: row.previous_secret,
            failing_since: row.failing_since,
            endpoint: WebhookEndpoint {
                enabled_events: json_from_db(&row.id, "enabled_events", &row.enabled_events)?,
                id: row.id,
                object: "webhook_endpoint",
                livemode: row.livemode,
                url: row.url,
                description: row.description,
                enabled: row.enabled,
                disabled_reason: row.disabled_reason,
                secret: None,
                previous_secret_expires_at: row.previous_secret_expires_at,
                created: row.created,
                updated: row.updated,
            },
        })
    }
}

/// A delivery of one event to one endpoint, as the worker claims it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeliveryRecord {
    pub id: String,
    pub event_id: String,
    pub endpoint_id: String,
    pub merchant_id: String,
    pub livemode: bool,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_ms: Option<i64>,
    pub created: i64,
    pub updated: i64,
}

#[derive(sqlx::FromRow)]
struct AttemptRow {
    id: String,
    delivery_id: String,
    event_id: String,
    endpoint_id: String,
    livemode: bool,
    url: String,
    http_status: Option<i64>,
    latency_ms: i64,
    response_excerpt: Option<String>,
    error: Option<String>,
    created: i64,
}

impl TryFrom<AttemptRow> for WebhookAttempt {
    type Error = StoreError;
    fn try_from(row: AttemptRow) -> Result<Self, StoreError> {
        let http_status = row
            .http_status
            .and_then(|status| u16::try_from(status).ok());
        Ok(WebhookAttempt {
            id: row.id,
            object: "webhook_attempt",
            livemode: row.livemode,
            event: row.event_id,
            endpoint: row.endpoint_id,
            delivery: row.delivery_id,
            url: row.url,
            succeeded: http_status.is_some_and(|status| (200..300).contains(&status)),
            http_status,
            latency_ms: u64::try_from(row.latency_ms).unwrap_or(0),
            response_excerpt: row.response_excerpt,
            error: row.error,
            created: row.created,
        })
    }
}

impl Conn<'_> {
    pub async fn insert_webhook_endpoint(
        &mut self,
        record: &WebhookEndpointRecord,
    ) -> Result<(), StoreError> {
        let endpoint = &record.endpoint;
        let enabled_events = json_to_db(&endpoint.enabled_events)?;
        run!(self, |c| {
            sqlx::query(
                "INSERT INTO webhook_endpoints (id, merchant_id, livemode, url, description, enabled_events, enabled,
                     secret, previous_secret, previous_secret_expires_at, failing_since, disabled_reason, deleted,
                     created, updated)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, FALSE, $13, $14)",
            )
            .bind(&endpoint.id)
            .bind(&record.merchant_id)
            .bind(endpoint.livemode)
            .bind(&endpoint.url)
            .bind(&endpoint.description)
            .bind(&enabled_events)
            .bind(endpoint.enabled)
            .bind(&record.secret)
            .bind(&record.previous_secret)
            .bind(endpoint.previous_secret_expires_at)
            .bind(record.failing_since)
            .bind(&endpoint.disabled_reason)
            .bind(endpoint.created)
            .bind(endpoint.updated)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    /// Writes back everything about an endpoint that can change.
    pub async fn update_webhook_endpoint(
        &mut self,
        record: &WebhookEndpointRecord,
    ) -> Result<(), StoreError> {
        let endpoint = &record.endpoint;
        let enabled_events = json_to_db(&endpoint.enabled_events)?;
        run!(self, |c| {
            sqlx::query(
                "UPDATE webhook_endpoints SET url = $1, description = $2, enabled_events = $3, enabled = $4,
                     secret = $5, previous_secret = $6, previous_secret_expires_at = $7, failing_since = $8,
                     disabled_reason = $9, updated = $10
                 WHERE id = $11",
            )
            .bind(&endpoint.url)
            .bind(&endpoint.description)
            .bind(&enabled_events)
            .bind(endpoint.enabled)
            .bind(&record.secret)
            .bind(&record.previous_secret)
            .bind(endpoint.previous_secret_expires_at)
            .bind(record.failing_since)
            .bind(&endpoint.disabled_reason)
            .bind(endpoint.updated)
            .bind(&endpoint.id)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    /// Soft-deletes: the endpoint stops receiving, its history stays.
    pub async fn delete_webhook_endpoint(&mut self, id: &str, now: i64) -> Result<(), StoreError> {
        run!(self, |c| {
            sqlx::query("UPDATE webhook_endpoints SET deleted = TRUE, enabled = FALSE, updated = $1 WHERE id = $2")
                .bind(now)
                .bind(id)
                .execute(&mut **c)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    /// An endpoint by id, whoever owns it (the caller checks ownership).
    pub async fn webhook_endpoint(
        &mut self,
        id: &str,
    ) -> Result<Option<WebhookEndpointRecord>, StoreError> {
        let row: Option<EndpointRow> = run!(self, |c| {
            sqlx::query_as("SELECT * FROM webhook_endpoints WHERE id = $1 AND deleted = FALSE")
                .bind(id)
                .fetch_optional(&mut **c)
                .await
        })?;
        row.map(WebhookEndpointRecord::try_from).transpose()
    }

    pub async fn webhook_endpoints(
        &mut self,
        merchant_id: &str,
        livemode: bool,
        page: &Page,
    ) -> Result<(Vec<WebhookEndpointRecord>, bool), StoreError> {
        let filters = [
            Filter::TextEquals("merchant_id", merchant_id.to_owned()),
            Filter::BoolEquals("livemode", livemode),
            Filter::BoolEquals("deleted", false),
        ];
        self.list_records::<EndpointRow, _>("webhook_endpoints", &filters, page)
            .await
    }

    /// The merchant's enabled endpoints in a mode (for fan-out).
    pub async fn enabled_webhook_endpoints(
        &mut self,
        merchant_id: &str,
        livemode: bool,
    ) -> Result<Vec<WebhookEndpointRecord>, StoreError> {
        let rows: Vec<EndpointRow> = run!(self, |c| {
            sqlx::query_as(
                "SELECT * FROM webhook_endpoints
                 WHERE merchant_id = $1 AND livemode = $2 AND enabled = TRUE AND deleted = FALSE ORDER BY id",
            )
            .bind(merchant_id)
            .bind(livemode)
            .fetch_all(&mut **c)
            .await
        })?;
        rows.into_iter()
            .map(WebhookEndpointRecord::try_from)
            .collect()
    }

    pub async fn insert_delivery(&mut self, delivery: &DeliveryRecord) -> Result<(), StoreError> {
        run!(self, |c| {
            sqlx::query(
                "INSERT INTO webhook_deliveries (id, event_id, endpoint_id, merchant_id, livemode, status, attempts,
                     next_attempt_ms, created, updated)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(&delivery.id)
            .bind(&delivery.event_id)
            .bind(&delivery.endpoint_id)
            .bind(&delivery.merchant_id)
            .bind(delivery.livemode)
            .bind(&delivery.status)
            .bind(delivery.attempts)
            .bind(delivery.next_attempt_ms)
            .bind(delivery.created)
            .bind(delivery.updated)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    /// Pending deliveries whose attempt is due, at most `limit`, each leased
    /// until `lease_until_ms` so no other worker attempts it meanwhile (rows
    /// other nodes hold are skipped on PostgreSQL).
    pub async fn claim_due_deliveries(
        &mut self,
        now_ms: i64,
        lease_until_ms: i64,
        limit: i64,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let mut deliveries: Vec<DeliveryRecord> = run!(self, |c, postgres| {
            let sql = if postgres {
                "SELECT * FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_ms <= $1
                 ORDER BY next_attempt_ms, id LIMIT $2 FOR UPDATE SKIP LOCKED"
            } else {
                "SELECT * FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_ms <= $1
                 ORDER BY next_attempt_ms, id LIMIT $2"
            };
            sqlx::query_as(sql)
                .bind(now_ms)
                .bind(limit)
                .fetch_all(&mut **c)
                .await
        })?;
        for delivery in &mut deliveries {
            delivery.next_attempt_ms = Some(lease_until_ms);
            self.update_delivery(delivery).await?;
        }
        Ok(deliveries)
    }

    pub async fn update_delivery(&mut self, delivery: &DeliveryRecord) -> Result<(), StoreError> {
        run!(self, |c| {
            sqlx::query(
                "UPDATE webhook_deliveries SET status = $1, attempts = $2, next_attempt_ms = $3, updated = $4
                 WHERE id = $5",
            )
            .bind(&delivery.status)
            .bind(delivery.attempts)
            .bind(delivery.next_attempt_ms)
            .bind(delivery.updated)
            .bind(&delivery.id)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    pub async fn delivery(&mut self, id: &str) -> Result<Option<DeliveryRecord>, StoreError> {
        let delivery = run!(self, |c| {
            sqlx::query_as("SELECT * FROM webhook_deliveries WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut **c)
                .await
        })?;
        Ok(delivery)
    }

    pub async fn insert_attempt(
        &mut self,
        merchant_id: &str,
        attempt: &WebhookAttempt,
    ) -> Result<(), StoreError> {
        run!(self, |c| {
            sqlx::query(
                "INSERT INTO webhook_attempts (id, delivery_id, event_id, endpoint_id, merchant_id, livemode, url,
                     http_status, latency_ms, response_excerpt, error, created)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(&attempt.id)
            .bind(&attempt.delivery)
            .bind(&attempt.event)
            .bind(&attempt.endpoint)
            .bind(merchant_id)
            .bind(attempt.livemode)
            .bind(&attempt.url)
            .bind(attempt.http_status.map(i64::from))
            .bind(i64::try_from(attempt.latency_ms).unwrap_or(i64::MAX))
            .bind(&attempt.response_excerpt)
            .bind(&attempt.error)
            .bind(attempt.created)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    pub async fn webhook_attempts(
        &mut self,
        filters: &[Filter],
        page: &Page,
    ) -> Result<(Vec<WebhookAttempt>, bool), StoreError> {
        self.list_records::<AttemptRow, _>("webhook_attempts", filters, page)
            .await
    }
}
