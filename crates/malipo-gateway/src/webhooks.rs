//! Events and merchant webhooks.
//!
//! Every state change writes its event to the outbox in its own transaction
//! (see `payments::emit`). The worker then:
//! 1. [`Gateway::dispatch_events`]: fans each new event out to one delivery
//!    per matching enabled endpoint, and marks the event dispatched, in one
//!    transaction (claimed with `SKIP LOCKED`, so nodes share the work);
//! 2. [`Gateway::deliver_due_webhooks`]: claims due deliveries under a lease,
//!    POSTs the event signed with `Malipo-Signature: t=<unix>,v1=<hex>`
//!    (HMAC-SHA256 over `"<t>.<body>"`, Stripe's scheme), records the
//!    attempt, and schedules the retry with backoff and jitter.
//!
//! Each endpoint gets its events one at a time, oldest first, so a healthy
//! receiver sees them in order; a retried event may arrive after newer ones
//! (as with Stripe, receivers should not rely on order across failures).
//!
//! Delivery is at least once: a crash at any moment leaves either an
//! undispatched event or a pending delivery whose lease runs out, and both
//! are picked up again after a restart.

use crate::auth::{Actor, AuditChange, MerchantContext, audit_state};
use crate::payments::created_filters;
use crate::{ApiError, ErrorKind, Gateway, GatewayError, GatewayResult, now_ms, now_seconds};
use malipo_core::id::{IdKind, looks_like, new_id, random_secret};
use malipo_core::objects::{Event, EventData, List, Scope, WebhookAttempt, WebhookEndpoint};
use malipo_store::{DeliveryRecord, EventRecord, Filter, Page, WebhookEndpointRecord};
use rand::RngExt;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Instant;
use utoipa::{IntoParams, ToSchema};

/// Every event type Malipo emits.
pub const EVENT_TYPES: [&str; 24] = [
    "payment.created",
    "payment.processing",
    "payment.requires_action",
    "payment.succeeded",
    "payment.failed",
    "payment.canceled",
    "payment.expired",
    "refund.created",
    "refund.succeeded",
    "refund.failed",
    "payout.created",
    "payout.paid",
    "payout.failed",
    "order.created",
    "order.filled",
    "order.canceled",
    "order.rejected",
    "swap.succeeded",
    "pool_liquidity.added",
    "pool_liquidity.removed",
    "trade.created",
    "trade.completed",
    "trade.failed",
    "trade.canceled",
];

pub const SIGNATURE_HEADER: &str = "Malipo-Signature";
/// How old a signature's timestamp may be before receivers should refuse it.
pub const SIGNATURE_TOLERANCE_SECONDS: i64 = 300;
pub const URL_LENGTH_MAX: usize = 2048;
pub const ENDPOINTS_PER_MERCHANT_MAX: usize = 16;
/// How long after a claim another worker may retry an unfinished attempt.
const LEASE_MARGIN_MS: i64 = 5_000;

/// `POST /v1/webhook_endpoints`
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookEndpoint {
    /// `https://…` (or `http://`). In live mode, loopback and private
    /// addresses are refused; test mode allows them for local development.
    pub url: Option<String>,
    /// Event types, or `["*"]` for all.
    pub enabled_events: Option<Vec<String>>,
    pub description: Option<String>,
}

/// `POST /v1/webhook_endpoints/{id}`
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhookEndpoint {
    pub url: Option<String>,
    pub enabled_events: Option<Vec<String>>,
    pub description: Option<String>,
    /// Turn delivery off or back on (turning on clears `disabled_reason`).
    pub enabled: Option<bool>,
}

/// `POST /v1/webhook_endpoints/{id}/roll_secret`
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollWebhookSecret {
    /// How long the old secret keeps signing beside the new one (default
    /// 24 h, at most 7 days; 0 retires it at once).
    pub expires_in_seconds: Option<i64>,
}

/// `GET /v1/events` filters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
pub struct EventFilters {
    /// e.g. `payment.succeeded`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub kind: Option<String>,
    /// Created at or after (Unix seconds).
    #[serde(rename = "created[gte]")]
    #[param(rename = "created[gte]")]
    pub created_gte: Option<i64>,
    /// Created at or before (Unix seconds).
    #[serde(rename = "created[lte]")]
    #[param(rename = "created[lte]")]
    pub created_lte: Option<i64>,
}

/// `POST /v1/events/{id}/redeliver`
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Redeliver {
    /// Only to this endpoint (default: every enabled endpoint that wants the event).
    pub endpoint: Option<String>,
}

/// The `Malipo-Signature` header value for `body` signed at `timestamp`
/// with each of `secrets` (the current one, and the previous one during a
/// roll's overlap).
pub fn signature_header(secrets: &[&str], timestamp: i64, body: &[u8]) -> String {
    let mut header = format!("t={timestamp}");
    for secret in secrets {
        // One scheme in one place: malipo-hooks verifies Stripe's callbacks
        // with it, and signs ours with it.
        let single = malipo_hooks::stripe_signature_header(secret.as_bytes(), timestamp, body);
        if let Some((_, signatures)) = single.split_once(',') {
            header.push(',');
            header.push_str(signatures);
        }
    }
    header
}

/// The event as the API shows it and webhooks send it.
pub fn event_object(record: &EventRecord) -> GatewayResult<Event> {
    Ok(Event {
        id: record.id.clone(),
        object: "event",
        kind: record.event_type.clone(),
        livemode: record.livemode,
        created: record.created,
        data: EventData {
            object: serde_json::from_str(&record.data).map_err(GatewayError::internal)?,
        },
    })
}

fn wants(endpoint: &WebhookEndpoint, event_type: &str) -> bool {
    endpoint
        .enabled_events
        .iter()
        .any(|wanted| wanted == "*" || wanted == event_type)
}

fn validate_events(events: Vec<String>) -> Result<Vec<String>, ApiError> {
    if events.is_empty() {
        return Err(ApiError::invalid(
            "enabled_events",
            "name at least one event type, or `*` for all",
        ));
    }
    for event in &events {
        if event != "*" && !EVENT_TYPES.contains(&event.as_str()) {
            return Err(ApiError::invalid(
                "enabled_events",
                format!(
                    "unknown event type `{event}`; known: *, {}",
                    EVENT_TYPES.join(", ")
                ),
            ));
        }
    }
    let mut events = events;
    events.sort();
    events.dedup();
    Ok(events)
}

/// Whether an address is one a live webhook must never reach (the
/// gateway's own network): loopback, private, link-local, unspecified.
pub fn is_internal_address(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => {
            v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_unspecified() || v4.is_broadcast()
                // 100.64.0.0/10, carrier-grade NAT
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00 // unique local
                || (v6.segments()[0] & 0xffc0) == 0xfe80 // link local
                || v6.to_ipv4_mapped().is_some_and(|v4| is_internal_address(IpAddr::V4(v4)))
        }
    }
}

fn validate_url(url: &str, livemode: bool) -> Result<String, ApiError> {
    if url.len() > URL_LENGTH_MAX {
        return Err(ApiError::invalid(
            "url",
            format!("url may be at most {URL_LENGTH_MAX} characters"),
        ));
    }
    let parsed = reqwest::Url::parse(url)
        .map_err(|error| ApiError::invalid("url", format!("url is not a URL: {error}")))?;
    if parsed.scheme() != "https" && parsed.scheme() != "http" {
        return Err(ApiError::invalid("url", "url must be http:// or https://"));
    }
    let Some(host) = parsed.host() else {
        return Err(ApiError::invalid("url", "url must have a host"));
    };
    if livemode {
        let internal = match host {
            url::Host::Domain(domain) => {
                domain.eq_ignore_ascii_case("localhost") || domain.ends_with(".localhost")
            }
            url::Host::Ipv4(v4) => is_internal_address(IpAddr::V4(v4)),
            url::Host::Ipv6(v6) => is_internal_address(IpAddr::V6(v6)),
        };
        if internal {
            return Err(ApiError::invalid(
                "url",
                "live webhooks can't target loopback or private addresses (test mode allows them)",
            ));
        }
    }
    Ok(parsed.to_string())
}

fn check_description(description: &Option<String>) -> Result<(), ApiError> {
    match description {
        Some(text) if text.chars().count() > 500 => Err(ApiError::invalid(
            "description",
            "description may be at most 500 characters",
        )),
        _ => Ok(()),
    }
}

/// The retry delay after `attempts` failed attempts, with ±10% jitter, or
/// `None` when the schedule is exhausted.
fn retry_delay_ms(schedule: &[u64], attempts: i64) -> Option<i64> {
    let index = usize::try_from(attempts).ok()?.checked_sub(1)?;
    let base = *schedule.get(index)?;
    let jitter = base / 10;
    let delay = if jitter > 0 {
        rand::rng().random_range(base - jitter..=base + jitter)
    } else {
        base
    };
    i64::try_from(delay).ok()
}

/// What one attempt produced.
struct AttemptResult {
    http_status: Option<u16>,
    response_excerpt: Option<String>,
    error: Option<String>,
    latency_ms: u64,
}

impl Gateway {
    fn endpoint_owned(
        &self,
        context: &MerchantContext,
        record: Option<WebhookEndpointRecord>,
        id: &str,
    ) -> Result<WebhookEndpointRecord, ApiError> {
        record
            .filter(|record| {
                record.merchant_id == context.merchant_id
                    && record.endpoint.livemode == context.livemode()
            })
            .ok_or_else(|| ApiError::not_found("webhook_endpoint", id))
    }

    pub async fn create_webhook_endpoint(
        &self,
        context: &MerchantContext,
        actor: &Actor,
        request: CreateWebhookEndpoint,
    ) -> GatewayResult<WebhookEndpoint> {
        context.require(Scope::Full)?;
        let url = validate_url(
            &request.url.ok_or_else(|| ApiError::missing("url"))?,
            context.livemode(),
        )?;
        let enabled_events = validate_events(
            request
                .enabled_events
                .ok_or_else(|| ApiError::missing("enabled_events"))?,
        )?;
        check_description(&request.description)?;
        let mut tx = self.store().begin().await?;
        let (existing, _) = tx
            .conn()
            .webhook_endpoints(
                &context.merchant_id,
                context.livemode(),
                &Page {
                    limit: 100,
                    cursor: malipo_store::Cursor::Newest,
                },
            )
            .await?;
        if existing.len() >= ENDPOINTS_PER_MERCHANT_MAX {
            return Err(ApiError::new(
                ErrorKind::InvalidRequest,
                "endpoint_limit_reached",
                format!("a merchant may have at most {ENDPOINTS_PER_MERCHANT_MAX} webhook endpoints per mode"),
            )
            .into());
        }
        let now = now_seconds();
        let secret = format!("whsec_{}", random_secret(24));
        let record = WebhookEndpointRecord {
            merchant_id: context.merchant_id.clone(),
            endpoint: WebhookEndpoint {
                id: new_id(IdKind::WebhookEndpoint),
                object: "webhook_endpoint",
                livemode: context.livemode(),
                url,
                description: request.description,
                enabled_events,
                enabled: true,
                disabled_reason: None,
                secret: None,
                previous_secret_expires_at: None,
                created: now,
                updated: now,
            },
            secret: secret.clone(),
            previous_secret: None,
            failing_since: None,
        };
        tx.conn().insert_webhook_endpoint(&record).await?;
        self.audit_endpoint(
            actor,
            &mut tx,
            "webhook_endpoint.create",
            None,
            Some(&record),
        )
        .await?;
        tx.commit().await?;
        Ok(WebhookEndpoint {
            secret: Some(secret),
            ..record.endpoint
        })
    }

    pub async fn update_webhook_endpoint(
        &self,
        context: &MerchantContext,
        actor: &Actor,
        id: &str,
        request: UpdateWebhookEndpoint,
    ) -> GatewayResult<WebhookEndpoint> {
        context.require(Scope::Full)?;
        let mut tx = self.store().begin().await?;
        let found = tx.conn().webhook_endpoint(id).await?;
        let mut record = self.endpoint_owned(context, found, id)?;
        let before = record.clone();
        if let Some(url) = request.url {
            record.endpoint.url = validate_url(&url, context.livemode())?;
        }
        if let Some(events) = request.enabled_events {
            record.endpoint.enabled_events = validate_events(events)?;
        }
        if request.description.is_some() {
            check_description(&request.description)?;
            record.endpoint.description = request.description;
        }
        if let Some(enabled) = request.enabled {
            record.endpoint.enabled = enabled;
            if enabled {
                record.endpoint.disabled_reason = None;
                record.failing_since = None;
            }
        }
        record.endpoint.updated = now_seconds();
        tx.conn().update_webhook_endpoint(&record).await?;
        self.audit_endpoint(
            actor,
            &mut tx,
            "webhook_endpoint.update",
            Some(&before),
            Some(&record),
        )
        .await?;
        tx.commit().await?;
        Ok(record.endpoint)
    }

    /// A new signing secret, shown once; the old one keeps signing for the
    /// requested overlap so receivers can switch without missing events.
    pub async fn roll_webhook_secret(
        &self,
        context: &MerchantContext,
        actor: &Actor,
        id: &str,
        request: RollWebhookSecret,
    ) -> GatewayResult<WebhookEndpoint> {
        context.require(Scope::Full)?;
        let overlap_max = self.config().webhooks.secret_overlap_seconds_max;
        let overlap = request.expires_in_seconds.unwrap_or(24 * 3600);
        if !(0..=overlap_max).contains(&overlap) {
            return Err(ApiError::invalid(
                "expires_in_seconds",
                format!("expires_in_seconds must be 0 to {overlap_max}"),
            )
            .into());
        }
        let mut tx = self.store().begin().await?;
        let found = tx.conn().webhook_endpoint(id).await?;
        let mut record = self.endpoint_owned(context, found, id)?;
        let before = record.clone();
        let now = now_seconds();
        let secret = format!("whsec_{}", random_secret(24));
        let old = std::mem::replace(&mut record.secret, secret.clone());
        if overlap > 0 {
            record.previous_secret = Some(old);
            record.endpoint.previous_secret_expires_at = Some(now + overlap);
        } else {
            record.previous_secret = None;
            record.endpoint.previous_secret_expires_at = None;
        }
        record.endpoint.updated = now;
        tx.conn().update_webhook_endpoint(&record).await?;
        self.audit_endpoint(
            actor,
            &mut tx,
            "webhook_endpoint.roll_secret",
            Some(&before),
            Some(&record),
        )
        .await?;
        tx.commit().await?;
        Ok(WebhookEndpoint {
            secret: Some(secret),
            ..record.endpoint
        })
    }

    pub async fn delete_webhook_endpoint(
        &self,
        context: &MerchantContext,
        actor: &Actor,
        id: &str,
    ) -> GatewayResult<WebhookEndpoint> {
        context.require(Scope::Full)?;
        let mut tx = self.store().begin().await?;
        let found = tx.conn().webhook_endpoint(id).await?;
        let mut record = self.endpoint_owned(context, found, id)?;
        tx.conn().delete_webhook_endpoint(id, now_seconds()).await?;
        self.audit_endpoint(
            actor,
            &mut tx,
            "webhook_endpoint.delete",
            Some(&record),
            None,
        )
        .await?;
        tx.commit().await?;
        record.endpoint.enabled = false;
        Ok(record.endpoint)
    }

    /// Records a change to an endpoint in the audit log, in `tx`. The
    /// states are the API object (its secrets never leave the record).
    async fn audit_endpoint(
        &self,
        actor: &Actor,
        tx: &mut malipo_store::Tx,
        action: &'static str,
        before: Option<&WebhookEndpointRecord>,
        after: Option<&WebhookEndpointRecord>,
    ) -> GatewayResult<()> {
        let Some(subject) = after.or(before) else {
            return Ok(());
        };
        let state = |record: Option<&WebhookEndpointRecord>| {
            record
                .map(|record| audit_state(&record.endpoint))
                .transpose()
        };
        actor
            .record(
                tx,
                AuditChange {
                    action,
                    object_type: "webhook_endpoint",
                    object_id: &subject.endpoint.id,
                    merchant_id: Some(&subject.merchant_id),
                    livemode: Some(subject.endpoint.livemode),
                    before: state(before)?,
                    after: state(after)?,
                },
            )
            .await
    }

    pub async fn webhook_endpoint(
        &self,
        context: &MerchantContext,
        id: &str,
    ) -> GatewayResult<WebhookEndpoint> {
        context.require(Scope::ReadOnly)?;
        let mut reader = self.store().reader().await?;
        let found = reader.conn().webhook_endpoint(id).await?;
        Ok(self.endpoint_owned(context, found, id)?.endpoint)
    }

    pub async fn webhook_endpoints(
        &self,
        context: &MerchantContext,
        page: &Page,
    ) -> GatewayResult<List<WebhookEndpoint>> {
        context.require(Scope::ReadOnly)?;
        let mut reader = self.store().reader().await?;
        let (records, has_more) = reader
            .conn()
            .webhook_endpoints(&context.merchant_id, context.livemode(), page)
            .await?;
        Ok(List::new(
            records.into_iter().map(|record| record.endpoint).collect(),
            has_more,
        ))
    }

    /// Every attempt to deliver to one endpoint, newest first.
    pub async fn endpoint_attempts(
        &self,
        context: &MerchantContext,
        id: &str,
        page: &Page,
    ) -> GatewayResult<List<WebhookAttempt>> {
        self.webhook_endpoint(context, id).await?;
        self.attempts(
            context,
            Filter::TextEquals("endpoint_id", id.to_owned()),
            page,
        )
        .await
    }

    /// Every attempt to deliver one event, newest first.
    pub async fn event_attempts(
        &self,
        context: &MerchantContext,
        id: &str,
        page: &Page,
    ) -> GatewayResult<List<WebhookAttempt>> {
        self.event(context, id).await?;
        self.attempts(context, Filter::TextEquals("event_id", id.to_owned()), page)
            .await
    }

    async fn attempts(
        &self,
        context: &MerchantContext,
        filter: Filter,
        page: &Page,
    ) -> GatewayResult<List<WebhookAttempt>> {
        let filters = [
            Filter::TextEquals("merchant_id", context.merchant_id.clone()),
            Filter::BoolEquals("livemode", context.livemode()),
            filter,
        ];
        let mut reader = self.store().reader().await?;
        let (attempts, has_more) = reader.conn().webhook_attempts(&filters, page).await?;
        Ok(List::new(attempts, has_more))
    }

    pub async fn events(
        &self,
        context: &MerchantContext,
        filters: &EventFilters,
        page: &Page,
    ) -> GatewayResult<List<Event>> {
        context.require(Scope::ReadOnly)?;
        let mut conditions = crate::payments::owner_filters(context);
        if let Some(kind) = &filters.kind {
            conditions.push(Filter::TextEquals("event_type", kind.clone()));
        }
        created_filters(&mut conditions, filters.created_gte, filters.created_lte);
        let mut reader = self.store().reader().await?;
        let (records, has_more) = reader.conn().events(&conditions, page).await?;
        let events = records
            .iter()
            .map(event_object)
            .collect::<GatewayResult<Vec<_>>>()?;
        Ok(List::new(events, has_more))
    }

    async fn event_record(
        &self,
        context: &MerchantContext,
        id: &str,
    ) -> GatewayResult<EventRecord> {
        context.require(Scope::ReadOnly)?;
        if !looks_like(IdKind::Event, id) {
            return Err(ApiError::not_found("event", id).into());
        }
        let mut conditions = crate::payments::owner_filters(context);
        conditions.push(Filter::TextEquals("id", id.to_owned()));
        let mut reader = self.store().reader().await?;
        let (mut records, _) = reader
            .conn()
            .events(
                &conditions,
                &Page {
                    limit: 1,
                    cursor: malipo_store::Cursor::Newest,
                },
            )
            .await?;
        records
            .pop()
            .ok_or_else(|| ApiError::not_found("event", id).into())
    }

    pub async fn event(&self, context: &MerchantContext, id: &str) -> GatewayResult<Event> {
        event_object(&self.event_record(context, id).await?)
    }

    /// Sends an event again now: a new delivery per endpoint (or to the one
    /// named), whatever happened to earlier ones. Answers the endpoints it
    /// will go to.
    pub async fn redeliver_event(
        &self,
        context: &MerchantContext,
        id: &str,
        request: Redeliver,
    ) -> GatewayResult<Vec<String>> {
        context.require(Scope::Full)?;
        let event = self.event_record(context, id).await?;
        let mut tx = self.store().begin().await?;
        let endpoints = tx
            .conn()
            .enabled_webhook_endpoints(&context.merchant_id, context.livemode())
            .await?;
        let targets: Vec<_> = match &request.endpoint {
            Some(endpoint) => {
                let target: Vec<_> = endpoints
                    .into_iter()
                    .filter(|record| &record.endpoint.id == endpoint)
                    .collect();
                if target.is_empty() {
                    return Err(ApiError::not_found("webhook_endpoint", endpoint)
                        .with_param("endpoint")
                        .into());
                }
                target
            }
            None => endpoints
                .into_iter()
                .filter(|record| wants(&record.endpoint, &event.event_type))
                .collect(),
        };
        let now = now_ms();
        for record in &targets {
            tx.conn()
                .insert_delivery(&new_delivery(&event, &record.endpoint.id, now))
                .await?;
        }
        tx.commit().await?;
        Ok(targets
            .into_iter()
            .map(|record| record.endpoint.id)
            .collect())
    }

    /// Worker step: fans new events out to deliveries; answers how many
    /// events it dispatched.
    pub async fn dispatch_events(&self, limit: i64) -> GatewayResult<usize> {
        let mut tx = self.store().begin().await?;
        let events = tx.conn().events_to_dispatch(limit).await?;
        let now = now_ms();
        let mut endpoints_by_owner: BTreeMap<(String, bool), Vec<WebhookEndpointRecord>> =
            BTreeMap::new();
        for event in &events {
            let owner = (event.merchant_id.clone(), event.livemode);
            if !endpoints_by_owner.contains_key(&owner) {
                let endpoints = tx
                    .conn()
                    .enabled_webhook_endpoints(&event.merchant_id, event.livemode)
                    .await?;
                endpoints_by_owner.insert(owner.clone(), endpoints);
            }
            for record in endpoints_by_owner.get(&owner).into_iter().flatten() {
                if wants(&record.endpoint, &event.event_type) {
                    tx.conn()
                        .insert_delivery(&new_delivery(event, &record.endpoint.id, now))
                        .await?;
                }
            }
        }
        let ids: Vec<String> = events.iter().map(|event| event.id.clone()).collect();
        // Also numbers them for the live feeds' private channels.
        tx.conn().mark_events_dispatched(&ids).await?;
        tx.commit().await?;
        if !events.is_empty() {
            self.feeds().wake_events();
        }
        Ok(events.len())
    }

    /// Worker step: attempts the due deliveries (at most `limit`, in
    /// parallel); answers how many it attempted.
    pub async fn deliver_due_webhooks(&self, limit: i64) -> GatewayResult<usize> {
        let now = now_ms();
        let lease_ms = i64::try_from(self.config().webhooks.attempt_timeout_ms).unwrap_or(i64::MAX)
            + LEASE_MARGIN_MS;
        let mut tx = self.store().begin().await?;
        let deliveries = tx
            .conn()
            .claim_due_deliveries(now, now + lease_ms, limit)
            .await?;
        tx.commit().await?;
        let count = deliveries.len();
        // Endpoints in parallel; each endpoint's deliveries one after
        // another, oldest first, so a healthy receiver sees events in order.
        let mut by_endpoint: BTreeMap<String, Vec<DeliveryRecord>> = BTreeMap::new();
        for delivery in deliveries {
            by_endpoint
                .entry(delivery.endpoint_id.clone())
                .or_default()
                .push(delivery);
        }
        let queues = by_endpoint.into_values().map(|queue| async move {
            for delivery in queue {
                if let Err(error) = self.attempt_delivery(delivery).await {
                    tracing::error!(error = %error.chain(), "webhook delivery failed to record");
                }
            }
        });
        futures::future::join_all(queues).await;
        Ok(count)
    }

    async fn attempt_delivery(&self, mut delivery: DeliveryRecord) -> GatewayResult<()> {
        let (event, endpoint) = {
            let mut reader = self.store().reader().await?;
            let mut conditions = vec![Filter::TextEquals("id", delivery.event_id.clone())];
            conditions.push(Filter::TextEquals(
                "merchant_id",
                delivery.merchant_id.clone(),
            ));
            let (mut events, _) = reader
                .conn()
                .events(
                    &conditions,
                    &Page {
                        limit: 1,
                        cursor: malipo_store::Cursor::Newest,
                    },
                )
                .await?;
            (
                events.pop(),
                reader
                    .conn()
                    .webhook_endpoint(&delivery.endpoint_id)
                    .await?,
            )
        };
        let now = now_seconds();
        let (Some(event), Some(endpoint)) =
            (event, endpoint.filter(|record| record.endpoint.enabled))
        else {
            // The endpoint was disabled or deleted since: nothing to send.
            delivery.status = "failed".into();
            delivery.next_attempt_ms = None;
            delivery.updated = now;
            let mut tx = self.store().begin().await?;
            tx.conn().update_delivery(&delivery).await?;
            tx.commit().await?;
            return Ok(());
        };
        let body = serde_json::to_vec(&event_object(&event)?).map_err(GatewayError::internal)?;
        let result = self.post_webhook(&endpoint, &body).await;
        let succeeded = result
            .http_status
            .is_some_and(|status| (200..300).contains(&status));
        metrics::counter!("malipo_webhook_attempts_total", "outcome" => if succeeded { "succeeded" } else { "failed" })
            .increment(1);
        let attempt = WebhookAttempt {
            id: new_id(IdKind::WebhookAttempt),
            object: "webhook_attempt",
            livemode: delivery.livemode,
            event: delivery.event_id.clone(),
            endpoint: delivery.endpoint_id.clone(),
            delivery: delivery.id.clone(),
            url: endpoint.endpoint.url.clone(),
            http_status: result.http_status,
            latency_ms: result.latency_ms,
            response_excerpt: result.response_excerpt,
            error: result.error,
            succeeded,
            created: now,
        };
        delivery.attempts += 1;
        delivery.updated = now;
        if succeeded {
            delivery.status = "succeeded".into();
            delivery.next_attempt_ms = None;
        } else if let Some(delay) =
            retry_delay_ms(&self.config().webhooks.retry_delays_ms, delivery.attempts)
        {
            delivery.next_attempt_ms = Some(now_ms() + delay);
        } else {
            delivery.status = "failed".into();
            delivery.next_attempt_ms = None;
            tracing::warn!(delivery = %delivery.id, event = %delivery.event_id, endpoint = %delivery.endpoint_id,
                "webhook delivery failed after every retry");
        }
        let mut tx = self.store().begin().await?;
        let mut conn = tx.conn();
        conn.insert_attempt(&delivery.merchant_id, &attempt).await?;
        conn.update_delivery(&delivery).await?;
        if let Some(mut current) = conn.webhook_endpoint(&delivery.endpoint_id).await? {
            let disable_after = self.config().webhooks.endpoint_disable_after_seconds;
            let changed = track_endpoint_health(&mut current, succeeded, now, disable_after);
            if changed {
                conn.update_webhook_endpoint(&current).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn post_webhook(&self, record: &WebhookEndpointRecord, body: &[u8]) -> AttemptResult {
        let started = Instant::now();
        let elapsed =
            |started: Instant| u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let failure = |error: String, started: Instant| AttemptResult {
            http_status: None,
            response_excerpt: None,
            error: Some(error),
            latency_ms: elapsed(started),
        };
        if record.endpoint.livemode
            && let Err(error) = self.check_live_target(&record.endpoint.url).await
        {
            return failure(error, started);
        }
        let now = now_seconds();
        let mut secrets = vec![record.secret.as_str()];
        if let (Some(previous), Some(until)) = (
            &record.previous_secret,
            record.endpoint.previous_secret_expires_at,
        ) && until > now
        {
            secrets.push(previous);
        }
        let response = self
            .webhook_client()
            .post(&record.endpoint.url)
            .header("content-type", "application/json")
            .header(SIGNATURE_HEADER, signature_header(&secrets, now, body))
            .body(body.to_vec())
            .send()
            .await;
        let response = match response {
            Ok(response) => response,
            Err(error) => {
                let reason = if error.is_timeout() {
                    "timed out".to_owned()
                } else {
                    format!("request failed: {error}")
                };
                return failure(reason, started);
            }
        };
        let status = response.status().as_u16();
        let limit = self.config().webhooks.response_excerpt_bytes_max;
        let excerpt = match response.bytes().await {
            Ok(bytes) => {
                Some(String::from_utf8_lossy(&bytes[..bytes.len().min(limit)]).into_owned())
            }
            Err(_) => None,
        };
        AttemptResult {
            http_status: Some(status),
            response_excerpt: excerpt,
            error: None,
            latency_ms: elapsed(started),
        }
    }

    /// Live webhooks may not reach internal addresses, whatever the name
    /// resolves to at delivery time.
    async fn check_live_target(&self, url: &str) -> Result<(), String> {
        let parsed = reqwest::Url::parse(url).map_err(|error| error.to_string())?;
        let host = parsed
            .host_str()
            .unwrap_or("")
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = parsed.port_or_known_default().unwrap_or(443);
        let addresses = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|error| format!("DNS: {error}"))?;
        for address in addresses {
            if is_internal_address(address.ip()) {
                return Err(format!("refused: {host} resolves to an internal address"));
            }
        }
        Ok(())
    }
}

/// Notes a success or failure on the endpoint; disables it once it has
/// failed without a single success for `disable_after_seconds`. Answers
/// whether the record changed.
fn track_endpoint_health(
    record: &mut WebhookEndpointRecord,
    succeeded: bool,
    now: i64,
    disable_after_seconds: i64,
) -> bool {
    if succeeded {
        return record.failing_since.take().is_some();
    }
    let Some(since) = record.failing_since else {
        record.failing_since = Some(now);
        return true;
    };
    if record.endpoint.enabled && now - since >= disable_after_seconds {
        record.endpoint.enabled = false;
        record.endpoint.disabled_reason = Some(format!(
            "deliveries failed continuously since {since} (Unix time)"
        ));
        record.endpoint.updated = now;
        metrics::counter!("malipo_webhook_endpoints_disabled_total").increment(1);
        tracing::warn!(endpoint = %record.endpoint.id, merchant = %record.merchant_id, failing_since = since,
            "ALERT: webhook endpoint disabled after failing continuously");
        return true;
    }
    false
}

fn new_delivery(event: &EventRecord, endpoint_id: &str, now_ms: i64) -> DeliveryRecord {
    DeliveryRecord {
        id: new_id(IdKind::WebhookDelivery),
        event_id: event.id.clone(),
        endpoint_id: endpoint_id.to_owned(),
        merchant_id: event.merchant_id.clone(),
        livemode: event.livemode,
        status: "pending".into(),
        attempts: 0,
        next_attempt_ms: Some(now_ms),
        created: now_ms / 1000,
        updated: now_ms / 1000,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_stripes_scheme() {
        // HMAC-SHA256("whsec_test", "1700000000.{}"), computed independently
        // with `printf '1700000000.{}' | openssl dgst -sha256 -hmac whsec_test`.
        let header = signature_header(&["whsec_test"], 1_700_000_000, b"{}");
        assert_eq!(
            header,
            "t=1700000000,v1=35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91"
        );
        assert_eq!(
            signature_header(&["a", "b"], 1, b"x")
                .matches("v1=")
                .count(),
            2
        );
    }

    #[test]
    fn internal_addresses_are_recognised() {
        for address in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.5.4",
            "169.254.1.1",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(
                is_internal_address(address.parse().expect("ip")),
                "{address}"
            );
        }
        for address in ["8.8.8.8", "41.90.1.1", "2001:4860::8888"] {
            assert!(
                !is_internal_address(address.parse().expect("ip")),
                "{address}"
            );
        }
    }

    #[test]
    fn live_urls_must_be_public_and_http() {
        assert!(validate_url("https://shop.example/hooks", true).is_ok());
        assert!(validate_url("http://127.0.0.1:9000/hooks", false).is_ok());
        assert_eq!(
            validate_url("http://127.0.0.1:9000/hooks", true)
                .expect_err("internal")
                .param
                .as_deref(),
            Some("url")
        );
        assert!(validate_url("http://localhost/hooks", true).is_err());
        assert!(validate_url("ftp://shop.example/hooks", false).is_err());
        assert!(validate_url("not a url", false).is_err());
    }

    #[test]
    fn endpoints_failing_for_too_long_are_disabled() {
        let mut record = WebhookEndpointRecord {
            merchant_id: "mch_1".into(),
            endpoint: WebhookEndpoint {
                id: "we_1".into(),
                object: "webhook_endpoint",
                livemode: true,
                url: "https://shop.example/h".into(),
                description: None,
                enabled_events: vec!["*".into()],
                enabled: true,
                disabled_reason: None,
                secret: None,
                previous_secret_expires_at: None,
                created: 0,
                updated: 0,
            },
            secret: "whsec_x".into(),
            previous_secret: None,
            failing_since: None,
        };
        assert!(track_endpoint_health(&mut record, false, 1_000, 3_600));
        assert_eq!(record.failing_since, Some(1_000));
        assert!(
            !track_endpoint_health(&mut record, false, 2_000, 3_600),
            "still within the window"
        );
        assert!(
            track_endpoint_health(&mut record, true, 2_500, 3_600),
            "a success clears the failure"
        );
        assert_eq!(record.failing_since, None);
        track_endpoint_health(&mut record, false, 3_000, 3_600);
        assert!(track_endpoint_health(&mut record, false, 6_600, 3_600));
        assert!(!record.endpoint.enabled);
        assert!(
            record
                .endpoint
                .disabled_reason
                .as_deref()
                .is_some_and(|reason| reason.contains("3000"))
        );
    }

    #[test]
    fn retries_follow_the_schedule_then_stop() {
        let schedule = [1_000, 10_000];
        let first = retry_delay_ms(&schedule, 1).expect("first retry");
        assert!((900..=1_100).contains(&first), "{first}");
        assert!(retry_delay_ms(&schedule, 2).is_some());
        assert_eq!(retry_delay_ms(&schedule, 3), None);
        let total_seconds: u64 = crate::WEBHOOK_RETRY_DELAYS_SECONDS.iter().sum();
        assert!(
            (3 * 86_400..4 * 86_400).contains(&total_seconds),
            "about three days: {total_seconds}"
        );
    }
}
