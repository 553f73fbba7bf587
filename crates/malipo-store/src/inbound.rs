//! Connector accounts, the inbound callback log, and replay protection.

use crate::list::{Filter, Page};
use crate::payments::{json_from_db, json_to_db};
use crate::{Conn, StoreError, run};
use malipo_core::objects::InboundWebhook;
use sqlx::Row;

/// A connector account as stored (the gateway builds the API object).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ConnectorAccountRecord {
    pub id: String,
    pub merchant_id: String,
    pub livemode: bool,
    pub provider: String,
    pub name: Option<String>,
    pub webhook_secret: Option<String>,
    /// Comma-separated addresses and CIDR blocks.
    pub ip_allowlist: String,
    /// The provider API credentials, encrypted by the gateway.
    pub credentials_encrypted: Option<String>,
    pub created: i64,
    pub updated: i64,
}

#[derive(sqlx::FromRow)]
struct InboundRow {
    id: String,
    provider: String,
    account_id: Option<String>,
    merchant_id: Option<String>,
    livemode: Option<bool>,
    source_ip: String,
    method: String,
    headers: String,
    body: String,
    verdict: String,
    decided_by: String,
    event_key: Option<String>,
    outcome: String,
    outcome_detail: Option<String>,
    latency_ms: i64,
    created: i64,
}

impl TryFrom<InboundRow> for InboundWebhook {
    type Error = StoreError;
    fn try_from(row: InboundRow) -> Result<Self, StoreError> {
        Ok(InboundWebhook {
            headers: json_from_db(&row.id, "headers", &row.headers)?,
            id: row.id,
            object: "inbound_webhook",
            provider: row.provider,
            account: row.account_id,
            merchant: row.merchant_id,
            livemode: row.livemode,
            source_ip: row.source_ip,
            method: row.method,
            body: row.body,
            verdict: row.verdict,
            decided_by: row.decided_by,
            event_key: row.event_key,
            outcome: row.outcome,
            outcome_detail: row.outcome_detail,
            latency_ms: u64::try_from(row.latency_ms).unwrap_or(0),
            created: row.created,
        })
    }
}

/// Inbound requests per provider and verdict since a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundCount {
    pub provider: String,
    pub verdict: String,
    pub outcome: String,
    pub count: i64,
    pub latency_ms_total: i64,
    pub last_received: i64,
}

impl Conn<'_> {
    pub async fn insert_connector_account(
        &mut self,
        account: &ConnectorAccountRecord,
    ) -> Result<(), StoreError> {
        run!(self, |c| {
            sqlx::query(
                "INSERT INTO connector_accounts (id, merchant_id, livemode, provider, name, webhook_secret,
                     ip_allowlist, created, updated, credentials_encrypted)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(&account.id)
            .bind(&account.merchant_id)
            .bind(account.livemode)
            .bind(&account.provider)
            .bind(&account.name)
            .bind(&account.webhook_secret)
            .bind(&account.ip_allowlist)
            .bind(account.created)
            .bind(account.updated)
            .bind(&account.credentials_encrypted)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    /// Inserts the account unless one would break a uniqueness rule (one
    /// sandbox account per merchant and mode); answers whether it did.
    pub async fn insert_connector_account_if_absent(
        &mut self,
        account: &ConnectorAccountRecord,
    ) -> Result<bool, StoreError> {
        let inserted = run!(self, |c| {
            sqlx::query(
                "INSERT INTO connector_accounts (id, merchant_id, livemode, provider, name, webhook_secret,
                     ip_allowlist, created, updated, credentials_encrypted)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
            )
            .bind(&account.id)
            .bind(&account.merchant_id)
            .bind(account.livemode)
            .bind(&account.provider)
            .bind(&account.name)
            .bind(&account.webhook_secret)
            .bind(&account.ip_allowlist)
            .bind(account.created)
            .bind(account.updated)
            .bind(&account.credentials_encrypted)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(inserted == 1)
    }

    pub async fn connector_account(
        &mut self,
        id: &str,
    ) -> Result<Option<ConnectorAccountRecord>, StoreError> {
        let account = run!(self, |c| {
            sqlx::query_as("SELECT * FROM connector_accounts WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut **c)
                .await
        })?;
        Ok(account)
    }

    /// The merchant's oldest account with `provider` in a mode, if any.
    pub async fn connector_account_for(
        &mut self,
        merchant_id: &str,
        livemode: bool,
        provider: &str,
    ) -> Result<Option<ConnectorAccountRecord>, StoreError> {
        let account = run!(self, |c| {
            sqlx::query_as(
                "SELECT * FROM connector_accounts WHERE merchant_id = $1 AND livemode = $2 AND provider = $3
                 ORDER BY id LIMIT 1",
            )
            .bind(merchant_id)
            .bind(livemode)
            .bind(provider)
            .fetch_optional(&mut **c)
            .await
        })?;
        Ok(account)
    }

    pub async fn connector_accounts(
        &mut self,
        merchant_id: &str,
        livemode: bool,
        page: &Page,
    ) -> Result<(Vec<ConnectorAccountRecord>, bool), StoreError> {
        let filters = [
            Filter::TextEquals("merchant_id", merchant_id.to_owned()),
            Filter::BoolEquals("livemode", livemode),
        ];
        self.list_page::<ConnectorAccountRecord>("connector_accounts", &filters, page)
            .await
    }

    pub async fn insert_inbound_webhook(
        &mut self,
        inbound: &InboundWebhook,
    ) -> Result<(), StoreError> {
        let headers = json_to_db(&inbound.headers)?;
        run!(self, |c| {
            sqlx::query(
                "INSERT INTO inbound_webhooks (id, provider, account_id, merchant_id, livemode, source_ip, method,
                     headers, body, verdict, decided_by, event_key, outcome, outcome_detail, latency_ms, created)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
            )
            .bind(&inbound.id)
            .bind(&inbound.provider)
            .bind(&inbound.account)
            .bind(&inbound.merchant)
            .bind(inbound.livemode)
            .bind(&inbound.source_ip)
            .bind(&inbound.method)
            .bind(&headers)
            .bind(&inbound.body)
            .bind(&inbound.verdict)
            .bind(&inbound.decided_by)
            .bind(&inbound.event_key)
            .bind(&inbound.outcome)
            .bind(&inbound.outcome_detail)
            .bind(i64::try_from(inbound.latency_ms).unwrap_or(i64::MAX))
            .bind(inbound.created)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    pub async fn inbound_webhooks(
        &mut self,
        filters: &[Filter],
        page: &Page,
    ) -> Result<(Vec<InboundWebhook>, bool), StoreError> {
        self.list_records::<InboundRow, _>("inbound_webhooks", filters, page)
            .await
    }

    /// Records that an event was processed; `false` when it already was
    /// (a replay), in which case nothing is written.
    pub async fn claim_inbound_event_key(
        &mut self,
        provider: &str,
        account_id: &str,
        event_key: &str,
        inbound_id: &str,
        created: i64,
    ) -> Result<bool, StoreError> {
        let inserted = run!(self, |c| {
            sqlx::query(
                "INSERT INTO inbound_event_keys (provider, account_id, event_key, inbound_id, created)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (provider, account_id, event_key) DO NOTHING",
            )
            .bind(provider)
            .bind(account_id)
            .bind(event_key)
            .bind(inbound_id)
            .bind(created)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(inserted == 1)
    }

    /// Counts per provider, verdict and outcome of requests received at or
    /// after `since` (Unix seconds).
    pub async fn inbound_counts(&mut self, since: i64) -> Result<Vec<InboundCount>, StoreError> {
        let counts = run!(self, |c| {
            sqlx::query(
                "SELECT provider, verdict, outcome, COUNT(*) AS n, CAST(SUM(latency_ms) AS BIGINT) AS latency,
                     MAX(created) AS last_received
                 FROM inbound_webhooks WHERE created >= $1
                 GROUP BY provider, verdict, outcome ORDER BY provider, verdict, outcome",
            )
            .bind(since)
            .fetch_all(&mut **c)
            .await?
            .iter()
            .map(|row| {
                Ok::<_, sqlx::Error>(InboundCount {
                    provider: row.try_get("provider")?,
                    verdict: row.try_get("verdict")?,
                    outcome: row.try_get("outcome")?,
                    count: row.try_get("n")?,
                    latency_ms_total: row.try_get::<Option<i64>, _>("latency")?.unwrap_or(0),
                    last_received: row.try_get::<Option<i64>, _>("last_received")?.unwrap_or(0),
                })
            })
            .collect::<Result<Vec<_>, _>>()
        })?;
        Ok(counts)
    }
}
