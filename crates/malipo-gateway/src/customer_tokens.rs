//! Customer tokens: short-lived credentials a merchant hands to one of its
//! customers, so that the customer's own app can open the live feeds
//! (`GET /v1/ws`) without the merchant's secret key.
//!
//! `POST /v1/customers/{id}/tokens` (a full-scope secret key) answers the
//! token once; it is stored like an API key, as a keyed hash with a short
//! prefix. A token reads public channels and that customer's own private
//! channels, in the key's mode, until `expires_at` (a stream opened with it
//! is closed then too). Creating one is audited.

use crate::auth::{Actor, AuditChange, MerchantContext, audit_state, secret_prefix};
use crate::customers::customer_of;
use crate::feeds::FeedIdentity;
use crate::{ApiError, ErrorKind, Gateway, GatewayResult, now_seconds};
use malipo_core::Mode;
use malipo_core::id::{IdKind, new_id, random_secret};
use malipo_core::objects::Scope;
use malipo_store::CustomerTokenRecord;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A token's lifetime when the request names none (15 minutes).
pub const CUSTOMER_TOKEN_LIFETIME_SECONDS_DEFAULT: i64 = 900;
pub const CUSTOMER_TOKEN_LIFETIME_SECONDS_MIN: i64 = 60;
/// The longest a token may live (one hour).
pub const CUSTOMER_TOKEN_LIFETIME_SECONDS_MAX: i64 = 3_600;
/// Expired tokens one prune deletes at most.
const PRUNE_BATCH_MAX: i64 = 10_000;

/// `POST /v1/customers/{id}/tokens`
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"lifetime_seconds": 900}))]
pub struct CreateCustomerToken {
    /// 60 to 3600 seconds; default 900.
    pub lifetime_seconds: Option<i64>,
}

/// A customer's feed credential. `token` is shown only in the answer that
/// created it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct CustomerToken {
    /// `ctok_…`
    pub id: String,
    /// Always `customer_token`.
    pub object: &'static str,
    pub livemode: bool,
    /// `cus_…`
    pub customer: String,
    /// `ct_test_…` or `ct_live_…`: send it as the first message of
    /// `GET /v1/ws`. Only in the creation answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The first characters of the token, to recognise it.
    pub prefix: String,
    pub created: i64,
    /// Unix seconds after which the token opens nothing and its streams
    /// are closed.
    pub expires_at: i64,
}

fn invalid_token() -> ApiError {
    ApiError::new(
        ErrorKind::Authentication,
        "invalid_customer_token",
        "invalid or expired customer token",
    )
}

impl Gateway {
    /// Creates a token for one of the merchant's customers (in the key's
    /// mode); answers it with its secret, the only time it is shown.
    pub async fn create_customer_token(
        &self,
        context: &MerchantContext,
        actor: &Actor,
        customer_id: &str,
        request: CreateCustomerToken,
    ) -> GatewayResult<CustomerToken> {
        context.require(Scope::Full)?;
        let lifetime = request
            .lifetime_seconds
            .unwrap_or(CUSTOMER_TOKEN_LIFETIME_SECONDS_DEFAULT);
        if !(CUSTOMER_TOKEN_LIFETIME_SECONDS_MIN..=CUSTOMER_TOKEN_LIFETIME_SECONDS_MAX)
            .contains(&lifetime)
        {
            return Err(ApiError::invalid(
                "lifetime_seconds",
                format!(
                    "lifetime_seconds must be {CUSTOMER_TOKEN_LIFETIME_SECONDS_MIN} to {CUSTOMER_TOKEN_LIFETIME_SECONDS_MAX}"
                ),
            )
            .into());
        }
        let secret = format!("ct_{}_{}", context.mode.as_str(), random_secret(24));
        let created = now_seconds();
        let record = CustomerTokenRecord {
            id: new_id(IdKind::CustomerToken),
            merchant_id: context.merchant_id.clone(),
            livemode: context.livemode(),
            customer_id: customer_id.to_owned(),
            prefix: secret_prefix(&secret),
            created,
            expires_at: created + lifetime,
        };
        let mut token = CustomerToken {
            id: record.id.clone(),
            object: "customer_token",
            livemode: record.livemode,
            customer: record.customer_id.clone(),
            token: None,
            prefix: record.prefix.clone(),
            created,
            expires_at: record.expires_at,
        };
        let mut tx = self.store().begin().await?;
        customer_of(&mut tx.conn(), context, customer_id, "id").await?;
        tx.conn()
            .insert_customer_token(&record, &self.key_hasher().hash(&secret))
            .await?;
        actor
            .record(
                &mut tx,
                AuditChange {
                    action: "customer_token.create",
                    object_type: "customer_token",
                    object_id: &record.id,
                    merchant_id: Some(&context.merchant_id),
                    livemode: Some(record.livemode),
                    before: None,
                    after: Some(audit_state(&token)?),
                },
            )
            .await?;
        tx.commit().await?;
        metrics::counter!("malipo_customer_tokens_created_total").increment(1);
        token.token = Some(secret);
        Ok(token)
    }

    /// Resolves a customer token that has not expired to the feeds'
    /// identity of its customer.
    pub async fn authenticate_customer_token(&self, secret: &str) -> GatewayResult<FeedIdentity> {
        let mode = if secret.starts_with("ct_test_") {
            Mode::Test
        } else if secret.starts_with("ct_live_") {
            Mode::Live
        } else {
            return Err(invalid_token().into());
        };
        let hash = self.key_hasher().hash(secret);
        let mut reader = self.store().reader().await?;
        let record = reader
            .conn()
            .customer_token_by_hash(&hash)
            .await?
            .ok_or_else(invalid_token)?;
        if record.livemode != mode.is_live() || record.expires_at <= now_seconds() {
            return Err(invalid_token().into());
        }
        Ok(FeedIdentity {
            merchant_id: record.merchant_id,
            livemode: record.livemode,
            customer: Some(record.customer_id),
            credential_id: record.id,
            expires_at: Some(record.expires_at),
        })
    }

    /// Deletes expired customer tokens (the worker's prune step); answers
    /// how many.
    pub async fn prune_customer_tokens(&self) -> GatewayResult<u64> {
        let mut tx = self.store().begin().await?;
        let deleted = tx
            .conn()
            .delete_expired_customer_tokens(now_seconds(), PRUNE_BATCH_MAX)
            .await?;
        tx.commit().await?;
        Ok(deleted)
    }
}
