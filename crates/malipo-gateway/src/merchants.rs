//! Onboarding merchants and managing their API keys.

use crate::auth::{
    Actor, AuditChange, MerchantContext, audit_state, new_secret_key, secret_prefix,
};
use crate::idempotency::{IdempotencyGuard, complete};
use crate::{ApiError, Gateway, GatewayResult, now_seconds};
use malipo_core::Mode;
use malipo_core::fee::FeeSchedule;
use malipo_core::id::{IdKind, new_id};
use malipo_core::objects::{ApiKey, List, Merchant, Scope};
use malipo_core::payment::PaymentMethod;
use malipo_hooks::{IpAllowListError, IpNetwork};
use malipo_store::{ApiKeyRecord, MerchantRecord, Page, Tx};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

pub const MERCHANT_NAME_LENGTH_MAX: usize = 200;
pub const KEY_NAME_LENGTH_MAX: usize = 100;
/// The most entries one API key's `allowed_ips` may hold.
pub const KEY_ALLOWED_IPS_MAX: usize = 100;

/// `POST /v1/admin/merchants`
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateMerchant {
    pub name: String,
    pub email: Option<String>,
    /// Fee per payment method; methods not listed use the platform default.
    #[serde(default)]
    pub fee_schedules: BTreeMap<String, FeeSchedule>,
}

/// A merchant with its fee schedules (the operator's view).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MerchantDetails {
    #[serde(flatten)]
    pub merchant: Merchant,
    pub fee_schedules: BTreeMap<String, FeeSchedule>,
}

/// A new merchant and its first keys (secrets shown only here).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedMerchant {
    pub merchant: MerchantDetails,
    pub test_secret_key: ApiKey,
    pub live_secret_key: ApiKey,
}

/// `POST /v1/api_keys`
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    pub name: Option<String>,
    /// Defaults to `["full"]`.
    pub scopes: Option<Vec<Scope>>,
    /// Addresses and CIDR blocks (IPv4 or IPv6, e.g. `203.0.113.7`,
    /// `10.0.0.0/8`) the key is accepted from; absent or empty: any
    /// address. At most 100 entries.
    pub allowed_ips: Option<Vec<String>>,
}

/// `POST /v1/api_keys/{id}` and `POST /v1/admin/merchants/{id}/api_keys/{key}`
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateApiKey {
    /// Replaces the key's allow-list; `[]` accepts any address again.
    pub allowed_ips: Vec<String>,
}

fn details(record: MerchantRecord) -> MerchantDetails {
    MerchantDetails {
        merchant: record.merchant,
        fee_schedules: record.fee_schedules,
    }
}

impl CreateMerchant {
    fn validate(&self) -> Result<(), ApiError> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > MERCHANT_NAME_LENGTH_MAX {
            return Err(ApiError::invalid(
                "name",
                format!("name must be 1 to {MERCHANT_NAME_LENGTH_MAX} characters"),
            ));
        }
        if let Some(email) = &self.email
            && (!email.contains('@') || email.len() > 254)
        {
            return Err(ApiError::invalid("email", "email must be an email address"));
        }
        for (method, schedule) in &self.fee_schedules {
            if PaymentMethod::parse(method).is_none() {
                return Err(ApiError::invalid(
                    format!("fee_schedules[{method}]"),
                    format!("unknown payment method `{method}`"),
                ));
            }
            FeeSchedule::new(schedule.basis_points, schedule.fixed).map_err(|error| {
                ApiError::invalid(
                    format!("fee_schedules[{method}][basis_points]"),
                    error.to_string(),
                )
            })?;
        }
        Ok(())
    }
}

impl Gateway {
    /// Onboards a merchant with a full-scope test key and live key, audited
    /// as `system` (the CLI, `serve --demo`).
    pub async fn create_merchant(&self, request: CreateMerchant) -> GatewayResult<CreatedMerchant> {
        self.create_merchant_as(&Actor::system(), request).await
    }

    /// Onboards a merchant with a full-scope test key and live key; the
    /// merchant and both keys are audited in the same transaction.
    pub async fn create_merchant_as(
        &self,
        actor: &Actor,
        request: CreateMerchant,
    ) -> GatewayResult<CreatedMerchant> {
        request.validate()?;
        let record = MerchantRecord {
            merchant: Merchant {
                id: new_id(IdKind::Merchant),
                object: "merchant",
                name: request.name.trim().to_owned(),
                email: request.email,
                created: now_seconds(),
            },
            fee_schedules: request.fee_schedules,
        };
        let mut tx = self.store().begin().await?;
        tx.conn().insert_merchant(&record).await?;
        let merchant_id = record.merchant.id.clone();
        actor
            .record(
                &mut tx,
                AuditChange {
                    action: "merchant.create",
                    object_type: "merchant",
                    object_id: &merchant_id,
                    merchant_id: Some(&merchant_id),
                    livemode: None,
                    before: None,
                    after: Some(audit_state(&details(record.clone()))?),
                },
            )
            .await?;
        let test = self
            .insert_api_key(
                actor,
                &mut tx,
                &merchant_id,
                Mode::Test,
                NewKey::default_full(),
            )
            .await?;
        let live = self
            .insert_api_key(
                actor,
                &mut tx,
                &merchant_id,
                Mode::Live,
                NewKey::default_full(),
            )
            .await?;
        tx.commit().await?;
        Ok(CreatedMerchant {
            merchant: details(record),
            test_secret_key: test,
            live_secret_key: live,
        })
    }

    pub async fn merchant(&self, id: &str) -> GatewayResult<MerchantDetails> {
        let mut reader = self.store().reader().await?;
        let record = reader
            .conn()
            .merchant(id)
            .await?
            .ok_or_else(|| ApiError::not_found("merchant", id))?;
        Ok(details(record))
    }

    pub async fn merchants(&self, page: &Page) -> GatewayResult<List<MerchantDetails>> {
        let mut reader = self.store().reader().await?;
        let (records, has_more) = reader.conn().merchants(page).await?;
        Ok(List::new(
            records.into_iter().map(details).collect(),
            has_more,
        ))
    }

    /// A new key for a merchant in a mode, audited as `system` (the CLI).
    pub async fn create_api_key_for(
        &self,
        merchant_id: &str,
        mode: Mode,
        request: CreateApiKey,
    ) -> GatewayResult<ApiKey> {
        self.create_api_key_for_as(&Actor::system(), merchant_id, mode, request)
            .await
    }

    /// Operator: a new key for a merchant in a mode, audited in the same
    /// transaction.
    pub async fn create_api_key_for_as(
        &self,
        actor: &Actor,
        merchant_id: &str,
        mode: Mode,
        request: CreateApiKey,
    ) -> GatewayResult<ApiKey> {
        self.create_key(actor, merchant_id, mode, request, None)
            .await
    }

    /// A new key, audited, and the Idempotency-Key's response stored in the
    /// same transaction. The stored response has no secret (secrets are
    /// only ever stored hashed): a replay shows the key without it.
    async fn create_key(
        &self,
        actor: &Actor,
        merchant_id: &str,
        mode: Mode,
        request: CreateApiKey,
        guard: Option<&IdempotencyGuard>,
    ) -> GatewayResult<ApiKey> {
        let (name, scopes, allowed_ips) = validate_key_request(request)?;
        let mut tx = self.store().begin().await?;
        if tx.conn().merchant(merchant_id).await?.is_none() {
            return Err(ApiError::not_found("merchant", merchant_id).into());
        }
        let key = self
            .insert_api_key(
                actor,
                &mut tx,
                merchant_id,
                mode,
                NewKey {
                    name,
                    scopes,
                    allowed_ips,
                },
            )
            .await?;
        let shown_again = ApiKey {
            secret: None,
            ..key.clone()
        };
        complete(&mut tx.conn(), guard, &shown_again).await?;
        tx.commit().await?;
        Ok(key)
    }

    /// Merchant: a new key in the caller's mode (under its Idempotency-Key
    /// when `guard` holds one).
    pub async fn create_api_key(
        &self,
        context: &MerchantContext,
        actor: &Actor,
        guard: Option<IdempotencyGuard>,
        request: CreateApiKey,
    ) -> GatewayResult<ApiKey> {
        context.require(Scope::Full)?;
        self.create_key(
            actor,
            &context.merchant_id,
            context.mode,
            request,
            guard.as_ref(),
        )
        .await
    }

    pub async fn api_keys(
        &self,
        context: &MerchantContext,
        page: &Page,
    ) -> GatewayResult<List<ApiKey>> {
        context.require(Scope::ReadOnly)?;
        let mut reader = self.store().reader().await?;
        let (records, has_more) = reader
            .conn()
            .api_keys(&context.merchant_id, context.livemode(), page)
            .await?;
        Ok(List::new(
            records.into_iter().map(|record| record.key).collect(),
            has_more,
        ))
    }

    pub async fn revoke_api_key(
        &self,
        context: &MerchantContext,
        actor: &Actor,
        id: &str,
    ) -> GatewayResult<ApiKey> {
        context.require(Scope::Full)?;
        let now = now_seconds();
        let mut tx = self.store().begin().await?;
        let record = tx
            .conn()
            .revoke_api_key(&context.merchant_id, context.livemode(), id, now)
            .await?
            .ok_or_else(|| ApiError::not_found("api_key", id))?;
        // Revoking a key revoked in an earlier second changes nothing and is
        // not recorded. (The store answers the key after the update, not
        // whether this request changed it: two revocations within one
        // second are both recorded.)
        if record.key.revoked == Some(now) {
            let before = ApiKey {
                revoked: None,
                ..record.key.clone()
            };
            actor
                .record(
                    &mut tx,
                    AuditChange {
                        action: "api_key.revoke",
                        object_type: "api_key",
                        object_id: &record.key.id,
                        merchant_id: Some(&context.merchant_id),
                        livemode: Some(context.livemode()),
                        before: Some(audit_state(&before)?),
                        after: Some(audit_state(&record.key)?),
                    },
                )
                .await?;
        }
        tx.commit().await?;
        Ok(record.key)
    }

    /// Merchant: replaces the allow-list of one of its keys in the caller's
    /// mode (needs the `full` scope).
    pub async fn update_api_key(
        &self,
        context: &MerchantContext,
        actor: &Actor,
        id: &str,
        request: UpdateApiKey,
    ) -> GatewayResult<ApiKey> {
        context.require(Scope::Full)?;
        self.set_allowed_ips(
            actor,
            &context.merchant_id,
            Some(context.livemode()),
            id,
            request,
        )
        .await
    }

    /// Operator: replaces the allow-list of a merchant's key (test or
    /// live), e.g. for a merchant that locked itself out.
    pub async fn update_api_key_for_as(
        &self,
        actor: &Actor,
        merchant_id: &str,
        id: &str,
        request: UpdateApiKey,
    ) -> GatewayResult<ApiKey> {
        self.set_allowed_ips(actor, merchant_id, None, id, request)
            .await
    }

    /// Replaces a key's allow-list and audits the change (`api_key.update`)
    /// in one transaction. `livemode`: the mode the key must be in (a
    /// merchant's key works on its own mode's keys only).
    async fn set_allowed_ips(
        &self,
        actor: &Actor,
        merchant_id: &str,
        livemode: Option<bool>,
        id: &str,
        request: UpdateApiKey,
    ) -> GatewayResult<ApiKey> {
        let allowed_ips = validate_allowed_ips(&request.allowed_ips)?;
        let mut tx = self.store().begin().await?;
        let before = tx
            .conn()
            .api_key(merchant_id, id)
            .await?
            .filter(|record| livemode.is_none_or(|livemode| record.key.livemode == livemode))
            .ok_or_else(|| ApiError::not_found("api_key", id))?;
        if before.key.revoked.is_some() {
            return Err(ApiError::invalid("id", "a revoked key can't be changed").into());
        }
        if !tx
            .conn()
            .set_api_key_allowed_ips(merchant_id, id, &allowed_ips)
            .await?
        {
            return Err(ApiError::not_found("api_key", id).into());
        }
        let after = ApiKey {
            allowed_ips,
            ..before.key.clone()
        };
        actor
            .record(
                &mut tx,
                AuditChange {
                    action: "api_key.update",
                    object_type: "api_key",
                    object_id: id,
                    merchant_id: Some(merchant_id),
                    livemode: Some(after.livemode),
                    before: Some(audit_state(&before.key)?),
                    after: Some(audit_state(&after)?),
                },
            )
            .await?;
        tx.commit().await?;
        Ok(after)
    }

    async fn insert_api_key(
        &self,
        actor: &Actor,
        tx: &mut Tx,
        merchant_id: &str,
        mode: Mode,
        new_key: NewKey,
    ) -> GatewayResult<ApiKey> {
        let secret = new_secret_key(mode);
        let key = ApiKey {
            id: new_id(IdKind::ApiKey),
            object: "api_key",
            livemode: mode.is_live(),
            name: new_key.name,
            prefix: secret_prefix(&secret),
            scopes: new_key.scopes,
            allowed_ips: new_key.allowed_ips,
            secret: None,
            revoked: None,
            created: now_seconds(),
        };
        let record = ApiKeyRecord {
            merchant_id: merchant_id.to_owned(),
            key,
        };
        tx.conn()
            .insert_api_key(&record, &self.key_hasher().hash(&secret))
            .await?;
        actor
            .record(
                tx,
                AuditChange {
                    action: "api_key.create",
                    object_type: "api_key",
                    object_id: &record.key.id,
                    merchant_id: Some(merchant_id),
                    livemode: Some(mode.is_live()),
                    before: None,
                    after: Some(audit_state(&record.key)?),
                },
            )
            .await?;
        Ok(ApiKey {
            secret: Some(secret),
            ..record.key
        })
    }
}

/// What a new key is made with.
struct NewKey {
    name: Option<String>,
    scopes: Vec<Scope>,
    /// Canonical entries ([`validate_allowed_ips`]).
    allowed_ips: Vec<String>,
}

impl NewKey {
    /// A merchant's first keys: `default`, full scope, any address.
    fn default_full() -> NewKey {
        NewKey {
            name: Some("default".into()),
            scopes: vec![Scope::Full],
            allowed_ips: Vec::new(),
        }
    }
}

/// Parses an allow-list at the edge: every entry an address or CIDR block
/// (the error names the entry's index), at most [`KEY_ALLOWED_IPS_MAX`];
/// answers the entries in canonical form (`10.0.0.0/8`,
/// `::ffff:10.0.0.1` as `10.0.0.1`), each once.
fn validate_allowed_ips(entries: &[String]) -> Result<Vec<String>, ApiError> {
    if entries.len() > KEY_ALLOWED_IPS_MAX {
        return Err(ApiError::invalid(
            "allowed_ips",
            format!("allowed_ips may hold at most {KEY_ALLOWED_IPS_MAX} entries"),
        ));
    }
    let mut canonical: Vec<String> = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let network: IpNetwork = entry.parse().map_err(|error: IpAllowListError| {
            ApiError::invalid(format!("allowed_ips[{index}]"), error.to_string())
        })?;
        let text = network.to_string();
        if !canonical.contains(&text) {
            canonical.push(text);
        }
    }
    Ok(canonical)
}

type KeyRequest = (Option<String>, Vec<Scope>, Vec<String>);

fn validate_key_request(request: CreateApiKey) -> Result<KeyRequest, ApiError> {
    if let Some(name) = &request.name
        && name.chars().count() > KEY_NAME_LENGTH_MAX
    {
        return Err(ApiError::invalid(
            "name",
            format!("name may be at most {KEY_NAME_LENGTH_MAX} characters"),
        ));
    }
    let mut scopes = request.scopes.unwrap_or_else(|| vec![Scope::Full]);
    scopes.sort_by_key(|scope| scope.as_str());
    scopes.dedup();
    if scopes.is_empty() {
        return Err(ApiError::invalid(
            "scopes",
            "scopes must name at least one scope",
        ));
    }
    let allowed_ips = validate_allowed_ips(request.allowed_ips.as_deref().unwrap_or_default())?;
    Ok((request.name, scopes, allowed_ips))
}
