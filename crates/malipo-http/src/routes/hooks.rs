//! `/v1/hooks/{provider}/{account}` (provider callbacks, no API key: each
//! is checked by its provider's scheme), `/v1/connector_accounts`, and the
//! operator's view of inbound traffic under `/v1/admin/webhooks`.

use crate::AppState;
use crate::error::{ErrorBody, HttpResult};
use crate::extract::{JsonBody, Merchant, MerchantActor, Operator, PageParams, QueryParams};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use malipo_core::objects::{ConnectorAccount, InboundWebhook, List};
use malipo_gateway::c2b::C2bRegistration;
use malipo_gateway::inbound::{
    CreateConnectorAccount, INBOUND_BODY_BYTES_MAX, InboundFilters, InboundStats, IncomingCallback,
    ProviderStats, ProviderSummary,
};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use utoipa::{IntoParams, ToSchema};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/hooks/{provider}/{account}", post(receive).put(receive))
        .layer(DefaultBodyLimit::max(INBOUND_BODY_BYTES_MAX))
        .route(
            "/v1/connector_accounts",
            post(create_account).get(list_accounts),
        )
        .route(
            "/v1/connector_accounts/{id}/c2b/register",
            post(register_c2b),
        )
        .route("/v1/admin/webhooks/providers", get(providers))
        .route("/v1/admin/webhooks/health", get(health))
        .route("/v1/admin/webhooks/stats", get(stats))
        .route("/v1/admin/webhooks/inbound", get(inbound_log))
}

/// A provider's callback. Answered the way the provider expects (e.g.
/// Daraja's `{"ResultCode":0,…}`); replays get the same answer and change
/// nothing.
#[utoipa::path(post, path = "/v1/hooks/{provider}/{account}", tag = "hooks",
    params(("provider" = String, Path, description = "e.g. mpesa, paystack, sandbox"),
           ("account" = String, Path, description = "the connector account id (ca_…)")),
    request_body(content = String, description = "the provider's own payload", content_type = "application/json"),
    responses((status = 200, description = "accepted (or a replay)"), (status = 401, description = "bad or missing signature"),
        (status = 403, description = "source address not allowed"), (status = 404, description = "unknown provider or account"),
        (status = 429, description = "too many callbacks")))]
pub async fn receive(
    State(state): State<AppState>,
    Path((provider, account)): Path<(String, String)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> HttpResult<Response> {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let path_and_query = uri
        .path_and_query()
        .map(|value| value.as_str())
        .unwrap_or("");
    let answer = state
        .gateway
        .receive_callback(IncomingCallback {
            provider: &provider,
            account: &account,
            source_ip: peer.ip(),
            method: method.as_str(),
            headers,
            raw_body: &body,
            url: format!("{}{path_and_query}", state.gateway.public_url()),
        })
        .await?;
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let mut response = (status, answer.body).into_response();
    if let Some(content_type) = answer.content_type
        && let Ok(value) = content_type.parse()
    {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    Ok(response)
}

/// Configure a provider account: its callback URL comes back in the response.
#[utoipa::path(post, path = "/v1/connector_accounts", tag = "connector_accounts", request_body = CreateConnectorAccount,
    responses((status = 200, body = ConnectorAccount), (status = 400, body = ErrorBody)), security(("secret_key" = [])))]
pub async fn create_account(
    State(state): State<AppState>,
    MerchantActor(context, actor): MerchantActor,
    body: JsonBody<CreateConnectorAccount>,
) -> HttpResult<Json<ConnectorAccount>> {
    Ok(Json(
        state
            .gateway
            .create_connector_account_as(&context, &actor, body.value)
            .await?,
    ))
}

/// Register an M-Pesa account's C2B (paybill/till) validation and
/// confirmation URLs with Daraja, for its `c2b_shortcode`.
#[utoipa::path(post, path = "/v1/connector_accounts/{id}/c2b/register", tag = "connector_accounts",
    params(("id" = String, Path, description = "the M-Pesa connector account (ca_…)")),
    responses((status = 200, body = C2bRegistration), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("secret_key" = [])))]
pub async fn register_c2b(
    State(state): State<AppState>,
    MerchantActor(context, actor): MerchantActor,
    Path(id): Path<String>,
) -> HttpResult<Json<C2bRegistration>> {
    Ok(Json(
        state
            .gateway
            .register_c2b_urls(&context, &actor, &id)
            .await?,
    ))
}

#[utoipa::path(get, path = "/v1/connector_accounts", tag = "connector_accounts", params(PageParams),
    responses((status = 200, body = List<ConnectorAccount>)), security(("secret_key" = [])))]
pub async fn list_accounts(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    QueryParams(page): QueryParams<PageParams>,
) -> HttpResult<Json<List<ConnectorAccount>>> {
    Ok(Json(
        state
            .gateway
            .connector_accounts(&context, &page.page()?)
            .await?,
    ))
}

/// Every provider: display name, callback URL, signature header and scheme.
#[utoipa::path(get, path = "/v1/admin/webhooks/providers", tag = "admin",
    responses((status = 200, body = Vec<ProviderSummary>)), security(("operator_token" = [])))]
pub async fn providers(
    State(state): State<AppState>,
    _operator: Operator,
) -> Json<Vec<ProviderSummary>> {
    Json(state.gateway.provider_summaries())
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct StatsParams {
    /// 1 to 90, default 7.
    pub days: Option<i64>,
}

/// Counts per provider and verdict, success rate and latency.
#[utoipa::path(get, path = "/v1/admin/webhooks/stats", tag = "admin", params(StatsParams),
    responses((status = 200, body = InboundStats)), security(("operator_token" = [])))]
pub async fn stats(
    State(state): State<AppState>,
    _operator: Operator,
    QueryParams(params): QueryParams<StatsParams>,
) -> HttpResult<Json<InboundStats>> {
    Ok(Json(
        state
            .gateway
            .inbound_stats(params.days.unwrap_or(7))
            .await?,
    ))
}

/// A provider's health over the last 24 hours.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderHealth {
    pub provider: String,
    /// `healthy` (≥ 90% of callbacks accepted, or no traffic) or `degraded`.
    pub status: &'static str,
    pub last_24h: Option<ProviderStats>,
}

/// Per provider: healthy or degraded, from the last 24 hours of callbacks.
#[utoipa::path(get, path = "/v1/admin/webhooks/health", tag = "admin",
    responses((status = 200, body = Vec<ProviderHealth>)), security(("operator_token" = [])))]
pub async fn health(
    State(state): State<AppState>,
    _operator: Operator,
) -> HttpResult<Json<Vec<ProviderHealth>>> {
    let stats = state.gateway.inbound_stats(1).await?;
    let health = state
        .gateway
        .provider_summaries()
        .into_iter()
        .map(|provider| {
            let last_24h = stats
                .providers
                .iter()
                .find(|stats| stats.provider == provider.name)
                .cloned();
            let healthy = last_24h
                .as_ref()
                .is_none_or(|stats| stats.success_rate >= 0.9);
            ProviderHealth {
                provider: provider.name,
                status: if healthy { "healthy" } else { "degraded" },
                last_24h,
            }
        })
        .collect();
    Ok(Json(health))
}

/// The inbound log, newest first, with filters.
#[utoipa::path(get, path = "/v1/admin/webhooks/inbound", tag = "admin", params(PageParams, InboundFilters),
    responses((status = 200, body = List<InboundWebhook>)), security(("operator_token" = [])))]
pub async fn inbound_log(
    State(state): State<AppState>,
    _operator: Operator,
    QueryParams(page): QueryParams<PageParams>,
    QueryParams(filters): QueryParams<InboundFilters>,
) -> HttpResult<Json<List<InboundWebhook>>> {
    Ok(Json(
        state
            .gateway
            .inbound_webhooks(&filters, &page.page()?)
            .await?,
    ))
}
