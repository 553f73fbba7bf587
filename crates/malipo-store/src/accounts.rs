//! Merchants and their API keys.

use crate::list::{Filter, Page};
use crate::{Conn, StoreError, corrupt, run};
use malipo_core::fee::FeeSchedule;
use malipo_core::objects::{ApiKey, Merchant, Scope};
use std::collections::BTreeMap;

/// A merchant with what only the platform sees: its fee schedule per method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerchantRecord {
    pub merchant: Merchant,
    /// Keyed by payment method name; methods not listed use the defaults.
    pub fee_schedules: BTreeMap<String, FeeSchedule>,
}

#[derive(sqlx::FromRow)]
struct MerchantRow {
    id: String,
    name: String,
    email: Option<String>,
    fee_schedules: String,
    created: i64,
}

impl TryFrom<MerchantRow> for MerchantRecord {
    type Error = StoreError;
    fn try_from(row: MerchantRow) -> Result<Self, StoreError> {
        Ok(MerchantRecord {
            fee_schedules: serde_json::from_str(&row.fee_schedules)
                .map_err(|error| corrupt(format!("merchant {} fee_schedules: {error}", row.id)))?,
            merchant: Merchant {
                id: row.id,
                object: "merchant",
                name: row.name,
                email: row.email,
                created: row.created,
            },
        })
    }
}

/// An API key with what only the server sees: its owner and keyed hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub merchant_id: String,
    pub key: ApiKey,
}

#[derive(sqlx::FromRow)]
struct ApiKeyRow {
    id: String,
    merchant_id: String,
    livemode: bool,
    name: Option<String>,
    prefix: String,
    scopes: String,
    created: i64,
    revoked: Option<i64>,
    allowed_ips: String,
}

impl TryFrom<ApiKeyRow> for ApiKeyRecord {
    type Error = StoreError;
    fn try_from(row: ApiKeyRow) -> Result<Self, StoreError> {
        let scopes = row
            .scopes
            .split(',')
            .map(|text| {
                Scope::parse(text)
                    .ok_or_else(|| corrupt(format!("api key {} scope {text}", row.id)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ApiKeyRecord {
            merchant_id: row.merchant_id,
            key: ApiKey {
                id: row.id,
                object: "api_key",
                livemode: row.livemode,
                name: row.name,
                prefix: row.prefix,
                scopes,
                allowed_ips: row
                    .allowed_ips
                    .split(',')
                    .filter(|entry| !entry.is_empty())
                    .map(str::to_owned)
                    .collect(),
                secret: None,
                revoked: row.revoked,
                created: row.created,
            },
        })
    }
}

fn scopes_text(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(|scope| scope.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

impl Conn<'_> {
    pub async fn insert_merchant(&mut self, record: &MerchantRecord) -> Result<(), StoreError> {
        let fee_schedules = serde_json::to_string(&record.fee_schedules)
            .map_err(|error| corrupt(format!("fee schedules: {error}")))?;
        let merchant = &record.merchant;
        run!(self, |c| {
            sqlx::query("INSERT INTO merchants (id, name, email, fee_schedules, created) VALUES ($1, $2, $3, $4, $5)")
                .bind(&merchant.id)
                .bind(&merchant.name)
                .bind(&merchant.email)
                .bind(&fee_schedules)
                .bind(merchant.created)
                .execute(&mut **c)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    pub async fn merchant(&mut self, id: &str) -> Result<Option<MerchantRecord>, StoreError> {
        let row: Option<MerchantRow> = run!(self, |c| {
            sqlx::query_as("SELECT * FROM merchants WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut **c)
                .await
        })?;
        row.map(MerchantRecord::try_from).transpose()
    }

    pub async fn merchants(
        &mut self,
        page: &Page,
    ) -> Result<(Vec<MerchantRecord>, bool), StoreError> {
        self.list_records::<MerchantRow, _>("merchants", &[], page)
            .await
    }

    pub async fn insert_api_key(
        &mut self,
        record: &ApiKeyRecord,
        key_hash: &str,
    ) -> Result<(), StoreError> {
        let key = &record.key;
        run!(self, |c| {
            sqlx::query(
                "INSERT INTO api_keys (id, merchant_id, livemode, name, prefix, key_hash, scopes, created, allowed_ips)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&key.id)
            .bind(&record.merchant_id)
            .bind(key.livemode)
            .bind(&key.name)
            .bind(&key.prefix)
            .bind(key_hash)
            .bind(scopes_text(&key.scopes))
            .bind(key.created)
            .bind(key.allowed_ips.join(","))
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    /// The unrevoked key with this keyed hash.
    pub async fn api_key_by_hash(
        &mut self,
        key_hash: &str,
    ) -> Result<Option<ApiKeyRecord>, StoreError> {
        let row: Option<ApiKeyRow> = run!(self, |c| {
            sqlx::query_as("SELECT * FROM api_keys WHERE key_hash = $1 AND revoked IS NULL")
                .bind(key_hash)
                .fetch_optional(&mut **c)
                .await
        })?;
        row.map(ApiKeyRecord::try_from).transpose()
    }

    pub async fn api_keys(
        &mut self,
        merchant_id: &str,
        livemode: bool,
        page: &Page,
    ) -> Result<(Vec<ApiKeyRecord>, bool), StoreError> {
        let filters = [
            Filter::TextEquals("merchant_id", merchant_id.to_owned()),
            Filter::BoolEquals("livemode", livemode),
        ];
        self.list_records::<ApiKeyRow, _>("api_keys", &filters, page)
            .await
    }

    /// Revokes a merchant's key; answers the key as it is afterwards, or
    /// `None` if the merchant has no such key in this mode.
    pub async fn revoke_api_key(
        &mut self,
        merchant_id: &str,
        livemode: bool,
        id: &str,
        now: i64,
    ) -> Result<Option<ApiKeyRecord>, StoreError> {
        run!(self, |c| {
            sqlx::query(
                "UPDATE api_keys SET revoked = $1
                 WHERE id = $2 AND merchant_id = $3 AND livemode = $4 AND revoked IS NULL",
            )
            .bind(now)
            .bind(id)
            .bind(merchant_id)
            .bind(livemode)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        let row: Option<ApiKeyRow> = run!(self, |c| {
            sqlx::query_as(
                "SELECT * FROM api_keys WHERE id = $1 AND merchant_id = $2 AND livemode = $3",
            )
            .bind(id)
            .bind(merchant_id)
            .bind(livemode)
            .fetch_optional(&mut **c)
            .await
        })?;
        row.map(ApiKeyRecord::try_from).transpose()
    }

    /// A merchant's key by id (revoked or not).
    pub async fn api_key(
        &mut self,
        merchant_id: &str,
        id: &str,
    ) -> Result<Option<ApiKeyRecord>, StoreError> {
        let row: Option<ApiKeyRow> = run!(self, |c| {
            sqlx::query_as("SELECT * FROM api_keys WHERE id = $1 AND merchant_id = $2")
                .bind(id)
                .bind(merchant_id)
                .fetch_optional(&mut **c)
                .await
        })?;
        row.map(ApiKeyRecord::try_from).transpose()
    }

    /// Replaces an unrevoked key's address allow-list (canonical entries;
    /// none allows any address). Answers whether a key was changed.
    pub async fn set_api_key_allowed_ips(
        &mut self,
        merchant_id: &str,
        id: &str,
        allowed_ips: &[String],
    ) -> Result<bool, StoreError> {
        let changed = run!(self, |c| {
            sqlx::query(
                "UPDATE api_keys SET allowed_ips = $1
                 WHERE id = $2 AND merchant_id = $3 AND revoked IS NULL",
            )
            .bind(allowed_ips.join(","))
            .bind(id)
            .bind(merchant_id)
            .execute(&mut **c)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(changed == 1)
    }
}
