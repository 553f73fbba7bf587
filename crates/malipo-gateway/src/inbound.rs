//! Provider callbacks: one endpoint for every provider,
//! `POST /v1/hooks/{provider}/{account}`.
//!
//! Each request goes through the checks in order, and the first that fails
//! decides (its verdict is recorded): known provider and account → source IP
//! allow-list → rate limit → signature (per the provider's scheme from
//! `malipo-hooks`, constant-time) and timestamp → replay (the provider's
//! event id, or the body's hash, seen before: answered as the provider
//! expects, not processed again). Every request is kept for audit with its
//! secrets redacted; a verified callback is processed in the same
//! transaction that records it and its event key, so a crash mid-way leaves
//! nothing half done and the provider's retry is processed once.

use crate::auth::MerchantContext;
use crate::{ApiError, Gateway, GatewayError, GatewayResult, now_seconds};
use malipo_connectors::PaymentOutcome;
use malipo_core::id::{IdKind, new_id, random_secret};
use malipo_core::objects::{ConnectorAccount, Failure, InboundWebhook, List, Scope};
use malipo_hooks::{InboundRequest, IpAllowList, ProviderDefinition, Verdict};
use malipo_store::{Conn, ConnectorAccountRecord, Filter, Page};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;
use utoipa::{IntoParams, ToSchema};

/// The largest callback body kept and processed.
pub const INBOUND_BODY_BYTES_MAX: usize = 256 * 1024;

/// `POST /v1/connector_accounts`
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConnectorAccount {
    /// A provider Malipo knows, e.g. `mpesa`, `paystack`, `sandbox`.
    pub provider: Option<String>,
    pub name: Option<String>,
    /// The secret the provider signs its callbacks with (required for
    /// providers that sign).
    pub webhook_secret: Option<String>,
    /// Addresses and CIDR blocks callbacks may come from; empty allows any.
    #[serde(default)]
    pub ip_allowlist: Vec<String>,
    /// The provider's API credentials (e.g. `consumer_key`,
    /// `consumer_secret`, `shortcode`, `passkey` for M-Pesa), encrypted at
    /// rest and never shown again.
    #[serde(default)]
    pub credentials: BTreeMap<String, String>,
}

/// Limits on a connector account's credentials.
pub const CREDENTIALS_MAX: usize = 20;
pub const CREDENTIAL_NAME_LENGTH_MAX: usize = 64;
pub const CREDENTIAL_VALUE_LENGTH_MAX: usize = 4096;

fn validate_credentials(credentials: &BTreeMap<String, String>) -> Result<(), ApiError> {
    if credentials.len() > CREDENTIALS_MAX {
        return Err(ApiError::invalid(
            "credentials",
            format!("at most {CREDENTIALS_MAX} credentials"),
        ));
    }
    for (name, value) in credentials {
        let valid_name = !name.is_empty()
            && name.len() <= CREDENTIAL_NAME_LENGTH_MAX
            && name
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_');
        if !valid_name {
            return Err(ApiError::invalid(
                format!("credentials[{name}]"),
                format!(
                    "credential names are 1 to {CREDENTIAL_NAME_LENGTH_MAX} letters, digits or underscores"
                ),
            ));
        }
        if value.len() > CREDENTIAL_VALUE_LENGTH_MAX {
            return Err(ApiError::invalid(
                format!("credentials[{name}]"),
                format!("credential values may be at most {CREDENTIAL_VALUE_LENGTH_MAX} bytes"),
            ));
        }
    }
    Ok(())
}

/// What to answer a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookAnswer {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: String,
}

impl HookAnswer {
    pub(crate) fn plain(status: u16, message: &str) -> HookAnswer {
        HookAnswer {
            status,
            content_type: Some("application/json".into()),
            body: serde_json::json!({ "error": message }).to_string(),
        }
    }

    fn success(definition: &ProviderDefinition) -> HookAnswer {
        let response = &definition.success_response;
        HookAnswer {
            status: response.status,
            content_type: response.content_type.clone(),
            body: response.body.clone(),
        }
    }
}

/// A provider callback as the HTTP layer received it.
#[derive(Debug, Clone)]
pub struct IncomingCallback<'a> {
    pub provider: &'a str,
    pub account: &'a str,
    pub source_ip: IpAddr,
    pub method: &'a str,
    pub headers: Vec<(String, String)>,
    pub raw_body: &'a [u8],
    /// The full URL the provider called (some schemes sign it).
    pub url: String,
}

/// Fixed one-minute windows of callback counts per (provider, account).
#[derive(Debug, Default)]
pub struct RateWindows {
    windows: Mutex<BTreeMap<String, (i64, u32)>>,
}

/// The most (provider, account) windows kept; older ones are dropped.
const RATE_WINDOWS_MAX: usize = 10_000;

impl RateWindows {
    /// Counts one request; answers whether it is within `per_minute`.
    fn admit(&self, key: &str, per_minute: u32, now: i64) -> bool {
        let minute = now / 60;
        let Ok(mut windows) = self.windows.lock() else {
            return true;
        };
        if windows.len() >= RATE_WINDOWS_MAX {
            windows.retain(|_, (window, _)| *window == minute);
        }
        let entry = windows.entry(key.to_owned()).or_insert((minute, 0));
        if entry.0 != minute {
            *entry = (minute, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        entry.1 <= per_minute
    }
}

/// The body a sandbox callback carries.
#[derive(Debug, Deserialize)]
struct SandboxCallback {
    payment: String,
    status: String,
    failure_code: Option<String>,
}

/// `GET /v1/admin/webhooks/inbound` filters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
pub struct InboundFilters {
    pub provider: Option<String>,
    pub verdict: Option<String>,
    pub outcome: Option<String>,
    pub account: Option<String>,
}

/// One provider as operators see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProviderSummary {
    pub name: String,
    pub display_name: String,
    /// `{public_url}/v1/hooks/{name}/{account}`
    pub callback_url_template: String,
    /// The headers carrying its signature (empty: unsigned).
    pub signature_headers: Vec<String>,
    /// The scheme, e.g. `hmac_body`, `stripe_timestamped`, `none`.
    pub scheme: serde_json::Value,
    /// Unsigned callbacks are confirmed with the provider's status API.
    pub confirms_by_status_query: bool,
    pub methods: Vec<String>,
    pub rate_limit_per_minute: u32,
}

/// Counts for one provider over a period.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProviderStats {
    pub provider: String,
    pub received: i64,
    /// Verified or unsigned-and-accepted requests over all received.
    pub accepted: i64,
    pub success_rate: f64,
    pub latency_ms_average: f64,
    pub by_verdict: BTreeMap<String, i64>,
    pub by_outcome: BTreeMap<String, i64>,
    pub last_received: Option<i64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InboundStats {
    /// Always `inbound_webhook_stats`.
    pub object: &'static str,
    pub since: i64,
    pub providers: Vec<ProviderStats>,
}

fn accepted_verdict(verdict: &str) -> bool {
    verdict == "verified" || verdict == "unsigned" || verdict == "replayed"
}

impl Gateway {
    fn connector_account_object(&self, record: &ConnectorAccountRecord) -> ConnectorAccount {
        ConnectorAccount {
            id: record.id.clone(),
            object: "connector_account",
            livemode: record.livemode,
            provider: record.provider.clone(),
            name: record.name.clone(),
            callback_url: self.hook_url(record),
            ip_allowlist: record
                .ip_allowlist
                .split(',')
                .filter(|entry| !entry.is_empty())
                .map(str::to_owned)
                .collect(),
            has_webhook_secret: record
                .webhook_secret
                .as_deref()
                .is_some_and(|secret| !secret.is_empty()),
            credential_names: self
                .connector_credentials(record)
                .map(|credentials| credentials.into_keys().collect())
                .unwrap_or_default(),
            created: record.created,
            updated: record.updated,
        }
    }

    /// Where a connector account's provider calls back.
    fn hook_url(&self, record: &ConnectorAccountRecord) -> String {
        format!(
            "{}/v1/hooks/{}/{}",
            self.public_url(),
            record.provider,
            record.id
        )
    }

    /// A connector account as its connector gets it: credentials
    /// decrypted, callback URL, provider.
    pub(crate) fn connector_account_of(
        &self,
        record: ConnectorAccountRecord,
    ) -> GatewayResult<malipo_connectors::ConnectorAccount> {
        Ok(malipo_connectors::ConnectorAccount {
            credentials: self.connector_credentials(&record)?,
            callback_url: Some(self.hook_url(&record)),
            provider: record.provider,
            id: record.id,
        })
    }

    /// A connector account's decrypted API credentials, for its connector.
    pub fn connector_credentials(
        &self,
        record: &ConnectorAccountRecord,
    ) -> GatewayResult<BTreeMap<String, String>> {
        match &record.credentials_encrypted {
            None => Ok(BTreeMap::new()),
            Some(sealed) => self
                .secret_box()
                .open_credentials(sealed)
                .map_err(GatewayError::internal),
        }
    }

    /// [`Gateway::create_connector_account_as`] audited as `system` (the
    /// CLI, `serve --demo`).
    pub async fn create_connector_account(
        &self,
        context: &MerchantContext,
        request: CreateConnectorAccount,
    ) -> GatewayResult<ConnectorAccount> {
        self.create_connector_account_as(context, &crate::auth::Actor::system(), request)
            .await
    }

    /// A merchant configures a provider account; audited in the same
    /// transaction (without its secrets: the object shows only whether a
    /// webhook secret is set and the credentials' names).
    pub async fn create_connector_account_as(
        &self,
        context: &MerchantContext,
        actor: &crate::auth::Actor,
        request: CreateConnectorAccount,
    ) -> GatewayResult<ConnectorAccount> {
        context.require(Scope::Full)?;
        let provider = request
            .provider
            .ok_or_else(|| ApiError::missing("provider"))?;
        let Some(definition) = self.providers().get(&provider) else {
            let known: Vec<_> = self
                .providers()
                .iter()
                .map(|definition| definition.name.clone())
                .collect();
            return Err(ApiError::invalid(
                "provider",
                format!("unknown provider `{provider}`; known: {}", known.join(", ")),
            )
            .into());
        };
        let allowlist: IpAllowList = request
            .ip_allowlist
            .join(",")
            .parse()
            .map_err(|error| ApiError::invalid("ip_allowlist", format!("{error}")))?;
        let secret = request.webhook_secret.filter(|secret| !secret.is_empty());
        if !definition.requires_status_query() && secret.is_none() {
            return Err(ApiError::invalid(
                "webhook_secret",
                format!(
                    "{} signs its callbacks: give the secret to check them with",
                    definition.display_name
                ),
            )
            .into());
        }
        if secret.as_ref().is_some_and(|secret| secret.len() > 512) {
            return Err(ApiError::invalid(
                "webhook_secret",
                "webhook_secret may be at most 512 characters",
            )
            .into());
        }
        validate_credentials(&request.credentials)?;
        if definition.name == "mpesa" {
            crate::c2b::check_credentials(&request.credentials)?;
        }
        let credentials_encrypted = if request.credentials.is_empty() {
            None
        } else {
            Some(
                self.secret_box()
                    .seal_credentials(&request.credentials)
                    .map_err(GatewayError::internal)?,
            )
        };
        let now = now_seconds();
        let record = ConnectorAccountRecord {
            credentials_encrypted,
            id: new_id(IdKind::ConnectorAccount),
            merchant_id: context.merchant_id.clone(),
            livemode: context.livemode(),
            provider: definition.name.clone(),
            name: request.name,
            webhook_secret: secret,
            ip_allowlist: allowlist
                .networks()
                .iter()
                .map(|network| network.to_string())
                .collect::<Vec<_>>()
                .join(","),
            created: now,
            updated: now,
        };
        let object = self.connector_account_object(&record);
        let mut tx = self.store().begin().await?;
        tx.conn()
            .insert_connector_account(&record)
            .await
            .map_err(|error| {
                // One sandbox account per merchant and mode (created on the
                // first sandbox payment, or by an earlier request).
                if error.is_unique_violation() {
                    GatewayError::Api(
                        ApiError::new(
                            crate::ErrorKind::Conflict,
                            "connector_account_exists",
                            format!(
                                "this merchant already has a `{}` account in this mode",
                                record.provider
                            ),
                        )
                        .with_param("provider"),
                    )
                } else {
                    GatewayError::from(error)
                }
            })?;
        actor
            .record(
                &mut tx,
                crate::auth::AuditChange {
                    action: "connector_account.create",
                    object_type: "connector_account",
                    object_id: &record.id,
                    merchant_id: Some(&record.merchant_id),
                    livemode: Some(record.livemode),
                    before: None,
                    after: Some(crate::auth::audit_state(&object)?),
                },
            )
            .await?;
        tx.commit().await?;
        Ok(object)
    }

    pub async fn connector_accounts(
        &self,
        context: &MerchantContext,
        page: &Page,
    ) -> GatewayResult<List<ConnectorAccount>> {
        context.require(Scope::ReadOnly)?;
        let mut reader = self.store().reader().await?;
        let (records, has_more) = reader
            .conn()
            .connector_accounts(&context.merchant_id, context.livemode(), page)
            .await?;
        Ok(List::new(
            records
                .iter()
                .map(|record| self.connector_account_object(record))
                .collect(),
            has_more,
        ))
    }

    /// The merchant's sandbox account in a mode, created on first use with
    /// a fresh callback secret; what the sandbox connector signs with.
    pub(crate) async fn sandbox_account(
        &self,
        merchant_id: &str,
        livemode: bool,
    ) -> GatewayResult<malipo_connectors::ConnectorAccount> {
        let key = (merchant_id.to_owned(), livemode);
        let cached = self
            .inner_sandbox_accounts()
            .lock()
            .ok()
            .and_then(|accounts| accounts.get(&key).cloned());
        let record = match cached {
            Some(record) => record,
            None => {
                let mut tx = self.store().begin().await?;
                let record = match tx
                    .conn()
                    .connector_account_for(merchant_id, livemode, "sandbox")
                    .await?
                {
                    Some(record) => record,
                    None => {
                        let now = now_seconds();
                        let record = ConnectorAccountRecord {
                            id: new_id(IdKind::ConnectorAccount),
                            merchant_id: merchant_id.to_owned(),
                            livemode,
                            provider: "sandbox".into(),
                            name: Some("Sandbox".into()),
                            webhook_secret: Some(random_secret(24)),
                            ip_allowlist: String::new(),
                            credentials_encrypted: None,
                            created: now,
                            updated: now,
                        };
                        // Concurrent first payments may race here: one insert
                        // wins (a unique index), everyone reads the winner.
                        tx.conn()
                            .insert_connector_account_if_absent(&record)
                            .await?;
                        tx.conn()
                            .connector_account_for(merchant_id, livemode, "sandbox")
                            .await?
                            .ok_or_else(|| {
                                GatewayError::internal(ApiError::not_found(
                                    "connector_account",
                                    "sandbox",
                                ))
                            })?
                    }
                };
                tx.commit().await?;
                if let Ok(mut accounts) = self.inner_sandbox_accounts().lock() {
                    accounts.insert(key, record.clone());
                }
                record
            }
        };
        let mut credentials = BTreeMap::new();
        if let Some(secret) = &record.webhook_secret {
            credentials.insert(
                malipo_connectors::sandbox::WEBHOOK_SECRET_CREDENTIAL.to_owned(),
                secret.clone(),
            );
        }
        Ok(malipo_connectors::ConnectorAccount {
            callback_url: Some(self.hook_url(&record)),
            provider: record.provider,
            id: record.id,
            credentials,
        })
    }

    /// Checks, records and (when it passes) processes one provider callback.
    /// Whatever the body holds is recorded: NUL, which PostgreSQL's TEXT
    /// cannot hold, is stored as U+FFFD (as invalid UTF-8 already is).
    pub async fn receive_callback(
        &self,
        callback: IncomingCallback<'_>,
    ) -> GatewayResult<HookAnswer> {
        let started = Instant::now();
        let now = now_seconds();
        let body_text = storable(String::from_utf8_lossy(callback.raw_body).into_owned());
        // Daraja refuses C2B URLs naming M-Pesa: they go by this alias.
        let provider = match callback.provider {
            crate::c2b::DARAJA_ALIAS => "mpesa",
            provider => provider,
        };
        let mut inbound = InboundWebhook {
            id: new_id(IdKind::InboundWebhook),
            object: "inbound_webhook",
            provider: provider.to_owned(),
            account: None,
            merchant: None,
            livemode: None,
            source_ip: callback.source_ip.to_string(),
            method: callback.method.to_owned(),
            headers: callback.headers.clone(),
            body: body_text,
            verdict: String::new(),
            decided_by: String::new(),
            event_key: None,
            outcome: "rejected".into(),
            outcome_detail: None,
            latency_ms: 0,
            created: now,
        };
        let Some(definition) = self.providers().get(provider).cloned() else {
            inbound.headers =
                malipo_hooks::redact_headers(&callback.headers, &unknown_provider_definition());
            return self
                .reject(
                    inbound,
                    started,
                    "unknown_provider",
                    "provider",
                    HookAnswer::plain(404, "unknown provider"),
                )
                .await;
        };
        inbound.headers = malipo_hooks::redact_headers(&callback.headers, &definition);
        if !definition.accepts_method(callback.method) {
            return self
                .reject(
                    inbound,
                    started,
                    "method_not_allowed",
                    "provider",
                    HookAnswer::plain(405, "method not allowed"),
                )
                .await;
        }
        let account = {
            let mut reader = self.store().reader().await?;
            reader.conn().connector_account(callback.account).await?
        };
        let Some(account) = account.filter(|account| account.provider == definition.name) else {
            return self
                .reject(
                    inbound,
                    started,
                    "unknown_account",
                    "provider",
                    HookAnswer::plain(404, "unknown account"),
                )
                .await;
        };
        inbound.account = Some(account.id.clone());
        inbound.merchant = Some(account.merchant_id.clone());
        inbound.livemode = Some(account.livemode);
        let allowlist: IpAllowList = account.ip_allowlist.parse().unwrap_or_default();
        if !allowlist.is_empty() && !allowlist.contains(callback.source_ip) {
            return self
                .reject(
                    inbound,
                    started,
                    "ip_refused",
                    "source_ip",
                    HookAnswer::plain(403, "source address not allowed"),
                )
                .await;
        }
        let rate_key = format!("{}/{}", definition.name, account.id);
        if !self
            .inner_inbound_rate()
            .admit(&rate_key, definition.rate_limit_per_minute, now)
        {
            return self
                .reject(
                    inbound,
                    started,
                    "rate_limited",
                    "rate_limit",
                    HookAnswer::plain(429, "too many callbacks"),
                )
                .await;
        }
        let secret = account.webhook_secret.clone().unwrap_or_default();
        let request = InboundRequest {
            headers: &callback.headers,
            raw_body: callback.raw_body,
            url: &callback.url,
            now_unix: now,
        };
        let verdict = malipo_hooks::verify(&definition, secret.as_bytes(), &request);
        if verdict.is_rejected() {
            let status = match verdict {
                Verdict::MalformedBody => 400,
                _ => 401,
            };
            return self
                .reject(
                    inbound,
                    started,
                    verdict.code(),
                    verdict.check().code(),
                    HookAnswer::plain(status, verdict.code()),
                )
                .await;
        }
        let event_key = storable(malipo_hooks::event_key(&definition, callback.raw_body));
        inbound.event_key = Some(event_key.clone());
        inbound.verdict = verdict.code().to_owned();
        inbound.decided_by = verdict.check().code().to_owned();

        if let Some(kind) = crate::c2b::C2bKind::of(&definition, &callback.url) {
            return self
                .receive_c2b(
                    inbound,
                    started,
                    &account,
                    kind,
                    &callback.url,
                    callback.raw_body,
                )
                .await;
        }
        let connector = self.connectors().by_name(&definition.name).cloned();
        let payout_result = match &connector {
            Some(connector) => {
                self.payout_callback(connector, &account, verdict, callback.raw_body)
                    .await?
            }
            None => None,
        };
        let refund_claim = connector
            .as_ref()
            .and_then(|connector| connector.parse_refund_callback(callback.raw_body));
        let paid_details = connector
            .as_ref()
            .and_then(|connector| connector.parse_paid_details(callback.raw_body));
        // Unsigned bodies, and those of providers whose connector confirms
        // every callback (Flutterwave), are hints: the provider's status
        // API decides.
        let needs_confirmation = verdict == Verdict::Unsigned
            || connector
                .as_ref()
                .is_some_and(|connector| connector.confirms_callbacks());
        let confirmation = if needs_confirmation {
            self.confirm_by_status_query(&definition, &account, callback.raw_body)
                .await
        } else {
            None
        };
        let mut tx = self.store().begin().await?;
        let mut conn = tx.conn();
        let first_time = conn
            .claim_inbound_event_key(&definition.name, &account.id, &event_key, &inbound.id, now)
            .await?;
        if !first_time {
            inbound.verdict = "replayed".into();
            inbound.decided_by = "replay".into();
            inbound.outcome = "duplicate".into();
            inbound.outcome_detail =
                Some("this event was processed before; nothing changed".into());
        } else if let Some((payout_id, outcome)) = payout_result {
            // A payout's result (a B2C Result, an MTN transfer callback, a
            // Relworx send-payment webhook), confirmed when unsigned.
            let (outcome, detail) = self
                .process_payout_result(&mut conn, &payout_id, outcome)
                .await?;
            inbound.outcome = outcome.into();
            inbound.outcome_detail = detail;
        } else if let Some(claim) = refund_claim {
            // A refund's result (an M-Pesa reversal Result): it names a
            // pending refund by a reference only the provider and Malipo
            // know, and the receipt it reverses.
            let (outcome, detail) = self
                .process_refund_claim(&mut conn, &account, claim)
                .await?;
            inbound.outcome = outcome.into();
            inbound.outcome_detail = detail;
        } else if needs_confirmation {
            // A hint: only what the provider's status API answered (asked
            // before this transaction) changes anything.
            match confirmation {
                Some((payment_id, outcome))
                    if !matches!(outcome, PaymentOutcome::Processing { .. }) =>
                {
                    match conn.payment_by_id_for_update(&payment_id).await? {
                        Some(mut record) => {
                            // The receipt and amount only the callback
                            // carries: recorded, and a mismatch flagged.
                            let outcome = crate::payments::check_paid_details(
                                &mut conn,
                                &mut record,
                                outcome,
                                paid_details.as_ref(),
                            )
                            .await?;
                            crate::payments::apply_outcome(&mut conn, &mut record, outcome).await?;
                            inbound.outcome = "processed".into();
                            inbound.outcome_detail = Some(format!(
                                "confirmed by the provider's status API: payment {} is {}",
                                record.payment.id, record.payment.status
                            ));
                        }
                        None => inbound.outcome = "unmatched".into(),
                    }
                }
                Some(_) => {
                    inbound.outcome = "awaiting_confirmation".into();
                    inbound.outcome_detail = Some(
                        "the provider's status API says the payment is still processing".into(),
                    );
                }
                None => {
                    inbound.outcome = "awaiting_confirmation".into();
                    inbound.outcome_detail =
                        Some("to be confirmed with the provider's status API".into());
                }
            }
        } else {
            let (outcome, detail) = self
                .process_verified(&mut conn, &definition, &account, callback.raw_body)
                .await?;
            inbound.outcome = outcome.into();
            inbound.outcome_detail = detail;
        }
        inbound.latency_ms = elapsed_ms(started);
        conn.insert_inbound_webhook(&inbound).await?;
        tx.commit().await?;
        metrics::counter!("malipo_inbound_webhooks_total", "provider" => definition.name.clone(), "verdict" => inbound.verdict.clone())
            .increment(1);
        Ok(HookAnswer::success(&definition))
    }

    /// For an unsigned callback: the payment it names (by the provider
    /// reference its connector reads in it) and what the provider's status
    /// API says about it, never what the body claims.
    async fn confirm_by_status_query(
        &self,
        definition: &ProviderDefinition,
        account: &ConnectorAccountRecord,
        raw_body: &[u8],
    ) -> Option<(String, PaymentOutcome)> {
        let connector = self.connectors().by_name(&definition.name)?.clone();
        let claim = connector.parse_callback(raw_body)?;
        let by_reference = {
            let mut reader = self.store().reader().await.ok()?;
            reader
                .conn()
                .payment_id_by_provider_reference(&definition.name, &claim.provider_reference)
                .await
                .ok()?
        };
        // A callback that names Malipo's payment can come before the
        // provider's answer to the request (its reference) is written.
        let payment_id = by_reference.or(claim.payment_id)?;
        let record = self.admin_payment(&payment_id).await.ok()?;
        if record.merchant_id != account.merchant_id || record.payment.livemode != account.livemode
        {
            return None;
        }
        // The account the callback came for: its credentials ask.
        let connector_account = self.connector_account_of(account.clone()).ok()?;
        let answer = connector
            .payment_status(&malipo_connectors::StatusRequest {
                payment_id: &payment_id,
                provider_reference: record.provider_reference.as_deref(),
                customer: &record.payment.customer,
                started_ms: record.started_ms.unwrap_or(record.payment.created * 1000),
                now_ms: crate::now_ms(),
                next_action: record.payment.next_action.as_ref(),
                amount: record.payment.amount,
                currency: &record.payment.currency,
                account: &connector_account,
            })
            .await;
        match answer {
            Ok(outcome) => Some((payment_id, outcome)),
            Err(error) => {
                tracing::warn!(payment = %payment_id, provider = %definition.name, %error,
                    "could not confirm a callback with the provider's status API; the poll will");
                None
            }
        }
    }

    /// Applies what a signed callback claims: the payment it names (by
    /// Malipo's id when the provider echoes it, else by the provider's
    /// reference), for this account's merchant and mode only.
    async fn process_claim(
        &self,
        conn: &mut Conn<'_>,
        definition: &ProviderDefinition,
        account: &ConnectorAccountRecord,
        raw_body: &[u8],
    ) -> GatewayResult<(&'static str, Option<String>)> {
        let kept = |detail: String| {
            Ok((
                "unmatched",
                Some(format!("{detail}; kept for reconciliation")),
            ))
        };
        let Some(connector) = self.connectors().by_name(&definition.name).cloned() else {
            return kept(format!(
                "no processor for {} callbacks yet",
                definition.name
            ));
        };
        let Some(claim) = connector.parse_callback(raw_body) else {
            return kept(format!(
                "not a {} payment callback",
                definition.display_name
            ));
        };
        let record = match &claim.payment_id {
            Some(id) => {
                conn.payment_for_update(&account.merchant_id, account.livemode, id)
                    .await?
            }
            None => match conn
                .payment_id_by_provider_reference(&definition.name, &claim.provider_reference)
                .await?
            {
                Some(id) => conn.payment_by_id_for_update(&id).await?.filter(|record| {
                    record.merchant_id == account.merchant_id
                        && record.payment.livemode == account.livemode
                }),
                None => None,
            },
        };
        let Some(mut record) = record else {
            return kept(format!(
                "no payment of this account matches {} reference {}",
                definition.display_name, claim.provider_reference
            ));
        };
        if let Some(known) = &record.provider_reference
            && *known != claim.provider_reference
        {
            return kept(format!(
                "payment {} has provider reference {known}, the callback names {}",
                record.payment.id, claim.provider_reference
            ));
        }
        // A pending status changes nothing, unless it tells the customer
        // something new (a crypto transfer seen on chain).
        if matches!(
            claim.outcome,
            PaymentOutcome::Processing {
                next_action: None,
                ..
            }
        ) {
            return Ok(("ignored", Some("a pending status changes nothing".into())));
        }
        if crate::payments::alert_if_paid_after_close(&record, &claim.outcome) {
            return Ok((
                "paid_after_close",
                Some(format!(
                    "the provider reports payment {} as paid, but it is {}: refund it at the provider",
                    record.payment.id, record.payment.status
                )),
            ));
        }
        if record.payment.status.is_terminal() {
            return Ok((
                "ignored",
                Some(format!("the payment is already {}", record.payment.status)),
            ));
        }
        crate::payments::apply_outcome(conn, &mut record, claim.outcome).await?;
        Ok((
            "processed",
            Some(format!(
                "payment {} is {}",
                record.payment.id, record.payment.status
            )),
        ))
    }

    /// Applies a verified callback: the sandbox's own body, or what the
    /// provider's connector reads in it; answers the outcome and a detail.
    async fn process_verified(
        &self,
        conn: &mut Conn<'_>,
        definition: &ProviderDefinition,
        account: &ConnectorAccountRecord,
        raw_body: &[u8],
    ) -> GatewayResult<(&'static str, Option<String>)> {
        if definition.name != "sandbox" {
            return self
                .process_claim(conn, definition, account, raw_body)
                .await;
        }
        let Ok(callback) = serde_json::from_slice::<SandboxCallback>(raw_body) else {
            return Ok((
                "unmatched",
                Some("not a sandbox payment callback; kept for reconciliation".into()),
            ));
        };
        let Some(mut record) = conn
            .payment_for_update(&account.merchant_id, account.livemode, &callback.payment)
            .await?
        else {
            return Ok((
                "unmatched",
                Some(format!(
                    "no payment {} for this account; kept for reconciliation",
                    callback.payment
                )),
            ));
        };
        if record.payment.connector != "sandbox" {
            return Ok((
                "unmatched",
                Some("the payment is not a sandbox payment".into()),
            ));
        }
        let reference = Some(format!("sbx_{}", record.payment.id));
        let outcome = match callback.status.as_str() {
            "succeeded" => PaymentOutcome::Succeeded {
                provider_reference: reference,
            },
            "failed" => PaymentOutcome::Failed {
                provider_reference: reference,
                failure: Failure {
                    code: callback
                        .failure_code
                        .clone()
                        .unwrap_or_else(|| "declined".into()),
                    message: "The customer declined the payment prompt".into(),
                },
            },
            other => return Ok(("ignored", Some(format!("status `{other}` changes nothing")))),
        };
        if record.payment.status.is_terminal() {
            return Ok((
                "ignored",
                Some(format!("the payment is already {}", record.payment.status)),
            ));
        }
        crate::payments::apply_outcome(conn, &mut record, outcome).await?;
        Ok((
            "processed",
            Some(format!(
                "payment {} is {}",
                record.payment.id, record.payment.status
            )),
        ))
    }

    pub(crate) async fn reject(
        &self,
        mut inbound: InboundWebhook,
        started: Instant,
        verdict: &str,
        decided_by: &str,
        answer: HookAnswer,
    ) -> GatewayResult<HookAnswer> {
        inbound.verdict = verdict.to_owned();
        inbound.decided_by = decided_by.to_owned();
        inbound.outcome = "rejected".into();
        inbound.latency_ms = elapsed_ms(started);
        let mut tx = self.store().begin().await?;
        tx.conn().insert_inbound_webhook(&inbound).await?;
        tx.commit().await?;
        metrics::counter!("malipo_inbound_webhooks_total", "provider" => inbound.provider.clone(), "verdict" => verdict.to_owned())
            .increment(1);
        tracing::warn!(provider = %inbound.provider, account = ?inbound.account, verdict, source = %inbound.source_ip,
            "provider callback rejected");
        Ok(answer)
    }

    /// Operator: every provider and how its callbacks are checked.
    pub fn provider_summaries(&self) -> Vec<ProviderSummary> {
        self.providers()
            .iter()
            .map(|definition| ProviderSummary {
                name: definition.name.clone(),
                display_name: definition.display_name.clone(),
                callback_url_template: format!(
                    "{}/v1/hooks/{}/{{account}}",
                    self.public_url(),
                    definition.name
                ),
                signature_headers: definition
                    .scheme
                    .headers()
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
                scheme: serde_json::to_value(&definition.scheme).unwrap_or_default(),
                confirms_by_status_query: definition.requires_status_query(),
                methods: definition.methods.clone(),
                rate_limit_per_minute: definition.rate_limit_per_minute,
            })
            .collect()
    }

    /// Operator: counts per provider over the last `days` days.
    pub async fn inbound_stats(&self, days: i64) -> GatewayResult<InboundStats> {
        if !(1..=90).contains(&days) {
            return Err(ApiError::invalid("days", "days must be 1 to 90").into());
        }
        let since = now_seconds() - days * 86_400;
        let mut reader = self.store().reader().await?;
        let counts = reader.conn().inbound_counts(since).await?;
        let mut providers: BTreeMap<String, ProviderStats> = BTreeMap::new();
        let mut latency: BTreeMap<String, i64> = BTreeMap::new();
        for count in counts {
            let stats = providers
                .entry(count.provider.clone())
                .or_insert_with(|| ProviderStats {
                    provider: count.provider.clone(),
                    received: 0,
                    accepted: 0,
                    success_rate: 0.0,
                    latency_ms_average: 0.0,
                    by_verdict: BTreeMap::new(),
                    by_outcome: BTreeMap::new(),
                    last_received: None,
                });
            stats.received += count.count;
            if accepted_verdict(&count.verdict) {
                stats.accepted += count.count;
            }
            *stats.by_verdict.entry(count.verdict).or_default() += count.count;
            *stats.by_outcome.entry(count.outcome).or_default() += count.count;
            stats.last_received = stats.last_received.max(Some(count.last_received));
            *latency.entry(count.provider).or_default() += count.latency_ms_total;
        }
        for stats in providers.values_mut() {
            if stats.received > 0 {
                // Ratios for display only: no money is computed here.
                stats.success_rate = stats.accepted as f64 / stats.received as f64;
                stats.latency_ms_average = latency.get(&stats.provider).copied().unwrap_or(0)
                    as f64
                    / stats.received as f64;
            }
        }
        Ok(InboundStats {
            object: "inbound_webhook_stats",
            since,
            providers: providers.into_values().collect(),
        })
    }

    /// Operator: the inbound log, newest first.
    pub async fn inbound_webhooks(
        &self,
        filters: &InboundFilters,
        page: &Page,
    ) -> GatewayResult<List<InboundWebhook>> {
        let mut conditions = Vec::new();
        for (column, value) in [
            ("provider", &filters.provider),
            ("verdict", &filters.verdict),
            ("outcome", &filters.outcome),
            ("account_id", &filters.account),
        ] {
            if let Some(value) = value {
                conditions.push(Filter::TextEquals(column, value.clone()));
            }
        }
        let mut reader = self.store().reader().await?;
        let (records, has_more) = reader.conn().inbound_webhooks(&conditions, page).await?;
        Ok(List::new(records, has_more))
    }

    fn inner_inbound_rate(&self) -> &RateWindows {
        &self.inner.inbound_rate
    }

    fn inner_sandbox_accounts(&self) -> &Mutex<BTreeMap<(String, bool), ConnectorAccountRecord>> {
        &self.inner.sandbox_accounts
    }
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// `text` with NUL replaced by U+FFFD: PostgreSQL's TEXT cannot hold NUL.
fn storable(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{fffd}")
    } else {
        text
    }
}

/// For redacting a request to a provider nobody defined: every
/// conventional secret header still goes.
fn unknown_provider_definition() -> ProviderDefinition {
    ProviderDefinition {
        name: "unknown".into(),
        display_name: "Unknown".into(),
        scheme: malipo_hooks::SignatureScheme::None,
        event_id: Vec::new(),
        success_response: malipo_hooks::HookResponse {
            status: 200,
            content_type: None,
            body: String::new(),
        },
        methods: vec!["POST".into()],
        published_source_ips: IpAllowList::default(),
        redact_headers: Vec::new(),
        rate_limit_per_minute: 1,
    }
}
