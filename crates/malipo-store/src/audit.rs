//! The audit log: append-only. There is a statement to insert an entry and
//! one to list entries, and deliberately none to change or remove one.

use crate::list::{Filter, Page};
use crate::{Conn, StoreError, corrupt, run};
use serde_json::Value;

/// One audit entry as stored. The gateway removes secrets from `before`
/// and `after` before they get here.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub id: String,
    pub action: String,
    /// `operator`, `api_key` or `system`.
    pub actor_type: String,
    pub actor_id: Option<String>,
    pub actor_prefix: Option<String>,
    pub source_ip: Option<String>,
    pub request_id: Option<String>,
    pub merchant_id: Option<String>,
    pub livemode: Option<bool>,
    pub object_type: String,
    pub object_id: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub created: i64,
}

/// `GET /v1/admin/audit` filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilters {
    pub action: Option<String>,
    pub object_id: Option<String>,
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    id: String,
    action: String,
    actor_type: String,
    actor_id: Option<String>,
    actor_prefix: Option<String>,
    source_ip: Option<String>,
    request_id: Option<String>,
    merchant_id: Option<String>,
    livemode: Option<bool>,
    object_type: String,
    object_id: String,
    before_json: Option<String>,
    after_json: Option<String>,
    created: i64,
}

fn json_column(id: &str, column: &str, text: Option<String>) -> Result<Option<Value>, StoreError> {
    text.map(|text| {
        serde_json::from_str(&text).map_err(|error| corrupt(format!("{id}.{column}: {error}")))
    })
    .transpose()
}

fn json_text(value: &Option<Value>) -> Result<Option<String>, StoreError> {
    value
        .as_ref()
        .map(|value| {
            serde_json::to_string(value).map_err(|error| corrupt(format!("json encoding: {error}")))
        })
        .transpose()
}

impl TryFrom<AuditRow> for AuditRecord {
    type Error = StoreError;
    fn try_from(row: AuditRow) -> Result<Self, StoreError> {
        Ok(AuditRecord {
            before: json_column(&row.id, "before_json", row.before_json)?,
            after: json_column(&row.id, "after_json", row.after_json)?,
            id: row.id,
            action: row.action,
            actor_type: row.actor_type,
            actor_id: row.actor_id,
            actor_prefix: row.actor_prefix,
            source_ip: row.source_ip,
            request_id: row.request_id,
            merchant_id: row.merchant_id,
            livemode: row.livemode,
            object_type: row.object_type,
            object_id: row.object_id,
            created: row.created,
        })
    }
}

impl Conn<'_> {
    pub async fn insert_audit_entry(&mut self, entry: &AuditRecord) -> Result<(), StoreError> {
        let before = json_text(&entry.before)?;
        let after = json_text(&entry.after)?;
        run!(self, |c| {
            sqlx::query(
                "INSERT INTO audit_log (id, action, actor_type, actor_id, actor_prefix, source_ip, request_id,
                     merchant_id, livemode, object_type, object_id, before_json, after_json, created)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            )
            .bind(&entry.id)
            .bind(&entry.action)
            .bind(&entry.actor_type)
            .bind(&entry.actor_id)
            .bind(&entry.actor_prefix)
            .bind(&entry.source_ip)
            .bind(&entry.request_id)
            .bind(&entry.merchant_id)
            .bind(entry.livemode)
            .bind(&entry.object_type)
            .bind(&entry.object_id)
            .bind(&before)
            .bind(&after)
            .bind(entry.created)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    /// One page of the audit log, newest first.
    pub async fn audit_entries(
        &mut self,
        filters: &AuditFilters,
        page: &Page,
    ) -> Result<(Vec<AuditRecord>, bool), StoreError> {
        let mut conditions = Vec::new();
        if let Some(action) = &filters.action {
            conditions.push(Filter::TextEquals("action", action.clone()));
        }
        if let Some(object_id) = &filters.object_id {
            conditions.push(Filter::TextEquals("object_id", object_id.clone()));
        }
        self.list_records::<AuditRow, AuditRecord>("audit_log", &conditions, page)
            .await
    }
}
