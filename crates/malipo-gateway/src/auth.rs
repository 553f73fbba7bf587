//! Who is calling, and what they did: merchants with API keys, operators
//! with tokens, and the audit log of their actions.
//!
//! Secrets are shown once at creation and stored only as HMAC-SHA256 under a
//! server secret (a keyed hash: a stolen database alone can't be used to
//! test guesses). The first characters are kept as a prefix so a merchant
//! can recognise a key in listings.
//!
//! The audit log: every operator and key-management action and every
//! configuration change is recorded by the use case that makes it, in the
//! same transaction ([`Actor::record`]): who ([`Actor`]: an operator token
//! or API key by id and prefix, never a secret), what (the action), which
//! object, when, from where (source address and request id), and the object
//! before and after with secrets removed ([`audit_state`]).

use crate::{ApiError, ErrorKind, Gateway, GatewayError, GatewayResult, now_seconds};
use hmac::{Hmac, KeyInit, Mac};
use malipo_core::Mode;
use malipo_core::id::{IdKind, new_id, random_secret};
use malipo_core::objects::{List, Scope};
use malipo_hooks::IpAllowList;
use malipo_store::{AuditFilters, AuditRecord, Page, Store, Tx};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;
use std::fmt;
use std::net::IpAddr;
use utoipa::{IntoParams, ToSchema};

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
    /// Where the key is accepted from; empty: anywhere. Enforced by the
    /// HTTP layer, which knows the caller's address.
    pub allowed_ips: IpAllowList,
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

/// The part of a secret kept in clear to recognise it in listings and in
/// the audit log.
pub fn secret_prefix(secret: &str) -> String {
    secret.chars().take(SECRET_PREFIX_LENGTH).collect()
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
        // Stored entries were validated when set; one that no longer parses
        // refuses the key (closed) rather than widening it to any address.
        let allowed_ips = IpAllowList::parse(&record.key.allowed_ips).map_err(|error| {
            GatewayError::Internal(format!("api key {} allowed_ips: {error}", record.key.id).into())
        })?;
        Ok(MerchantContext {
            merchant_id: record.merchant_id,
            mode,
            key_id: record.key.id,
            scopes: record.key.scopes,
            allowed_ips,
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
    /// secret (to print once); otherwise `None`. Audited as `system`.
    pub async fn bootstrap_operator_token(&self) -> GatewayResult<Option<String>> {
        let mut tx = self.store().begin().await?;
        if tx.conn().operator_token_count().await? > 0 {
            return Ok(None);
        }
        let token = self
            .insert_operator_token(&Actor::system(), &mut tx)
            .await?;
        tx.commit().await?;
        Ok(Some(token))
    }

    /// Creates another operator token (CLI `malipo operator token`),
    /// audited as `system`.
    pub async fn create_operator_token(&self) -> GatewayResult<String> {
        let mut tx = self.store().begin().await?;
        let token = self
            .insert_operator_token(&Actor::system(), &mut tx)
            .await?;
        tx.commit().await?;
        Ok(token)
    }

    async fn insert_operator_token(&self, actor: &Actor, tx: &mut Tx) -> GatewayResult<String> {
        let token = format!("op_{}", random_secret(24));
        let prefix = secret_prefix(&token);
        let id = new_id(IdKind::ApiKey);
        let created = now_seconds();
        tx.conn()
            .insert_operator_token(&id, &self.key_hasher().hash(&token), &prefix, created)
            .await?;
        let after = serde_json::json!({"id": id, "object": "operator_token", "prefix": prefix, "created": created});
        actor
            .record(
                tx,
                AuditChange {
                    action: "operator_token.create",
                    object_type: "operator_token",
                    object_id: &id,
                    merchant_id: None,
                    livemode: None,
                    before: None,
                    after: Some(after),
                },
            )
            .await?;
        Ok(token)
    }

    /// The audit log, newest first (operator only).
    pub async fn audit_log(
        &self,
        filters: &AuditLogFilters,
        page: &Page,
    ) -> GatewayResult<List<AuditEntry>> {
        let filters = filters.validate()?;
        let mut reader = self.store().reader().await?;
        let (records, has_more) = reader.conn().audit_entries(&filters, page).await?;
        Ok(List::new(
            records.into_iter().map(AuditEntry::from).collect(),
            has_more,
        ))
    }
}

/// Who performs an action: what the audit log says about the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// An operator token (`/v1/admin/…`).
    Operator,
    /// A merchant's API key.
    ApiKey,
    /// The binary itself: the CLI (`malipo merchant create`, `malipo
    /// operator token`, …), the first start, `serve --demo`.
    System,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Operator => "operator",
            ActorKind::ApiKey => "api_key",
            ActorKind::System => "system",
        }
    }

    fn parse(text: &str) -> Option<ActorKind> {
        match text {
            "operator" => Some(ActorKind::Operator),
            "api_key" => Some(ActorKind::ApiKey),
            "system" => Some(ActorKind::System),
            _ => None,
        }
    }
}

/// Who is acting, and from where. Holds ids and prefixes, never a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub kind: ActorKind,
    /// The operator token's or API key's id (`key_…`); `None` for system.
    pub id: Option<String>,
    /// The first characters of the token or key, as listings show them.
    pub prefix: Option<String>,
    /// The peer address of the request.
    pub source_ip: Option<IpAddr>,
    /// The request's `Request-Id`, to find its log lines.
    pub request_id: Option<String>,
}

/// One change, as the use case that made it describes it.
pub(crate) struct AuditChange<'a> {
    /// `<object type>.<verb>`, e.g. `api_key.revoke`.
    pub action: &'static str,
    pub object_type: &'static str,
    pub object_id: &'a str,
    pub merchant_id: Option<&'a str>,
    pub livemode: Option<bool>,
    /// The object before and after ([`audit_state`]); `None` when it did
    /// not exist.
    pub before: Option<Value>,
    pub after: Option<Value>,
}

impl Actor {
    /// The binary itself (the CLI, the first start, the demo set-up).
    pub fn system() -> Actor {
        Actor {
            kind: ActorKind::System,
            id: None,
            prefix: None,
            source_ip: None,
            request_id: None,
        }
    }

    /// An operator authenticated with `token` (only its prefix is kept).
    pub fn operator(token_id: &str, token: &str) -> Actor {
        Actor {
            kind: ActorKind::Operator,
            id: Some(token_id.to_owned()),
            prefix: Some(secret_prefix(token)),
            ..Actor::system()
        }
    }

    /// A merchant authenticated with `secret` (only its prefix is kept).
    pub fn api_key(context: &MerchantContext, secret: &str) -> Actor {
        Actor {
            kind: ActorKind::ApiKey,
            id: Some(context.key_id.clone()),
            prefix: Some(secret_prefix(secret)),
            ..Actor::system()
        }
    }

    /// The same actor, calling from `source_ip` in request `request_id`.
    pub fn from_request(self, source_ip: Option<IpAddr>, request_id: Option<String>) -> Actor {
        Actor {
            source_ip,
            request_id,
            ..self
        }
    }

    /// Appends the change to the audit log inside the transaction that
    /// makes it: both commit or neither does.
    pub(crate) async fn record(&self, tx: &mut Tx, change: AuditChange<'_>) -> GatewayResult<()> {
        let entry = AuditRecord {
            id: new_audit_id(),
            action: change.action.to_owned(),
            actor_type: self.kind.as_str().to_owned(),
            actor_id: self.id.clone(),
            actor_prefix: self.prefix.clone(),
            source_ip: self.source_ip.map(|ip| ip.to_canonical().to_string()),
            request_id: self.request_id.clone(),
            merchant_id: change.merchant_id.map(str::to_owned),
            livemode: change.livemode,
            object_type: change.object_type.to_owned(),
            object_id: change.object_id.to_owned(),
            before: change.before,
            after: change.after,
            created: now_seconds(),
        };
        tx.conn().insert_audit_entry(&entry).await?;
        Ok(())
    }
}

/// `aud_…`: time-sortable like every id (the core has no audit kind yet, so
/// the request kind's random part is reused under the audit prefix).
fn new_audit_id() -> String {
    let id = new_id(IdKind::Request);
    let random = id.strip_prefix(IdKind::Request.prefix()).unwrap_or(&id);
    format!("{AUDIT_ID_PREFIX}{random}")
}

pub const AUDIT_ID_PREFIX: &str = "aud_";

/// Where a secret would be, by field name: the value is replaced by
/// [`REDACTED`] in audit states, whatever the object.
const SECRET_FIELD_MARKERS: [&str; 6] = [
    "secret",
    "password",
    "passkey",
    "token",
    "private_key",
    "credentials",
];
pub const REDACTED: &str = "[redacted]";

/// An object as the audit log keeps it: serialized, then every field whose
/// name marks a secret (`secret`, `webhook_secret`, `consumer_secret`,
/// `password`, `passkey`, `token`, `credentials`, …) replaced by
/// `"[redacted]"` at any depth. Flags such as `has_webhook_secret`, times
/// such as `previous_secret_expires_at` and absent values stay, so the log
/// still shows that a secret changed.
pub fn audit_state<T: Serialize>(object: &T) -> GatewayResult<Value> {
    let mut value = serde_json::to_value(object).map_err(GatewayError::internal)?;
    redact_secrets(&mut value);
    Ok(value)
}

fn redact_secrets(value: &mut Value) {
    match value {
        Value::Object(fields) => {
            for (name, field) in fields.iter_mut() {
                let name = name.to_ascii_lowercase();
                let sensitive = SECRET_FIELD_MARKERS
                    .iter()
                    .any(|marker| name.contains(marker));
                // Secrets are strings (or maps of them); numbers such as
                // `previous_secret_expires_at` and flags are not.
                if sensitive
                    && matches!(field, Value::String(_) | Value::Object(_) | Value::Array(_))
                {
                    *field = Value::String(REDACTED.into());
                } else {
                    redact_secrets(field);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_secrets),
        _ => {}
    }
}

/// The caller recorded with an audit entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AuditActor {
    /// `operator`, `api_key` or `system`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The operator token's or API key's id.
    pub id: Option<String>,
    /// The first characters of its secret (never the secret).
    pub prefix: Option<String>,
}

/// One recorded action.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AuditEntry {
    /// `aud_…`
    pub id: String,
    /// Always `audit_entry`.
    pub object: &'static str,
    /// `<object type>.<verb>`: `merchant.create`, `api_key.create`,
    /// `api_key.revoke`, `api_key.update`, `connector_account.create`,
    /// `webhook_endpoint.create` / `.update` / `.delete` / `.roll_secret`,
    /// `operator_token.create`.
    pub action: String,
    pub actor: AuditActor,
    /// The caller's address, when the action came over HTTP.
    pub source_ip: Option<String>,
    /// The request's `Request-Id`.
    pub request_id: Option<String>,
    /// The merchant whose object changed, if any.
    pub merchant: Option<String>,
    pub livemode: Option<bool>,
    /// e.g. `api_key`, `webhook_endpoint`.
    pub object_type: String,
    pub object_id: String,
    /// The object before the action (absent for a creation), secrets removed.
    #[schema(value_type = Option<Object>)]
    pub before: Option<Value>,
    /// The object after the action (absent for a deletion), secrets removed.
    #[schema(value_type = Option<Object>)]
    pub after: Option<Value>,
    /// Unix seconds.
    pub created: i64,
}

impl From<AuditRecord> for AuditEntry {
    fn from(record: AuditRecord) -> Self {
        AuditEntry {
            id: record.id,
            object: "audit_entry",
            action: record.action,
            actor: AuditActor {
                kind: ActorKind::parse(&record.actor_type)
                    .map_or(record.actor_type.clone(), |kind| kind.as_str().to_owned()),
                id: record.actor_id,
                prefix: record.actor_prefix,
            },
            source_ip: record.source_ip,
            request_id: record.request_id,
            merchant: record.merchant_id,
            livemode: record.livemode,
            object_type: record.object_type,
            object_id: record.object_id,
            before: record.before,
            after: record.after,
            created: record.created,
        }
    }
}

/// The longest filter value accepted (ids and action names are far shorter).
pub const AUDIT_FILTER_LENGTH_MAX: usize = 255;

/// `GET /v1/admin/audit` filters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
pub struct AuditLogFilters {
    /// Only this action, e.g. `api_key.revoke`.
    pub action: Option<String>,
    /// Only entries about this object, e.g. `we_…`.
    pub object_id: Option<String>,
}

impl AuditLogFilters {
    fn validate(&self) -> Result<AuditFilters, ApiError> {
        for (param, value) in [("action", &self.action), ("object_id", &self.object_id)] {
            if value
                .as_ref()
                .is_some_and(|value| value.is_empty() || value.len() > AUDIT_FILTER_LENGTH_MAX)
            {
                return Err(ApiError::invalid(
                    param,
                    format!("{param} must be 1 to {AUDIT_FILTER_LENGTH_MAX} characters"),
                ));
            }
        }
        Ok(AuditFilters {
            action: self.action.clone(),
            object_id: self.object_id.clone(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn audit_states_never_hold_secrets() {
        let object = json!({
            "id": "ca_1",
            "secret": "whsec_abc",
            "webhook_secret": "shh",
            "has_webhook_secret": true,
            "previous_secret_expires_at": 1700000000,
            "secret_rolled": null,
            "prefix": "sk_test_abcd",
            "credentials": {"consumer_key": "k", "consumer_secret": "s"},
            "nested": [{"Passkey": "p", "name": "ok"}],
            "credential_names": ["consumer_key"],
        });
        let redacted = audit_state(&object).unwrap();
        assert_eq!(
            redacted,
            json!({
                "id": "ca_1",
                "secret": REDACTED,
                "webhook_secret": REDACTED,
                "has_webhook_secret": true,
                "previous_secret_expires_at": 1700000000,
                "secret_rolled": null,
                "prefix": "sk_test_abcd",
                "credentials": REDACTED,
                "nested": [{"Passkey": REDACTED, "name": "ok"}],
                "credential_names": ["consumer_key"],
            })
        );
    }

    #[test]
    fn actors_keep_prefixes_not_secrets() {
        let actor = Actor::operator("key_1", "op_0123456789abcdefghij");
        assert_eq!(actor.prefix.as_deref(), Some("op_012345678"));
        assert!(new_audit_id().starts_with(AUDIT_ID_PREFIX));
        assert!(new_audit_id() < new_audit_id());
    }

    #[test]
    fn filters_are_bounded() {
        let filters = AuditLogFilters {
            action: Some(String::new()),
            object_id: None,
        };
        assert_eq!(
            filters.validate().unwrap_err().param.as_deref(),
            Some("action")
        );
        let filters = AuditLogFilters {
            action: None,
            object_id: Some("x".repeat(AUDIT_FILTER_LENGTH_MAX + 1)),
        };
        assert_eq!(
            filters.validate().unwrap_err().param.as_deref(),
            Some("object_id")
        );
    }
}
