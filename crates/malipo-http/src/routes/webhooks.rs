//! `/v1/webhook_endpoints` and `/v1/events`

use crate::AppState;
use crate::error::{ErrorBody, HttpResult};
use crate::extract::{JsonBody, Merchant, MerchantActor, PageParams, QueryParams};
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use malipo_core::objects::{Event, List, WebhookAttempt, WebhookEndpoint};
use malipo_gateway::webhooks::{
    CreateWebhookEndpoint, EventFilters, Redeliver, RollWebhookSecret, UpdateWebhookEndpoint,
};
use serde::Serialize;
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/webhook_endpoints", post(create).get(list))
        .route(
            "/v1/webhook_endpoints/{id}",
            get(retrieve).post(update).delete(delete),
        )
        .route("/v1/webhook_endpoints/{id}/roll_secret", post(roll_secret))
        .route(
            "/v1/webhook_endpoints/{id}/deliveries",
            get(endpoint_deliveries),
        )
        .route("/v1/events", get(list_events))
        .route("/v1/events/{id}", get(retrieve_event))
        .route("/v1/events/{id}/deliveries", get(event_deliveries))
        .route("/v1/events/{id}/redeliver", post(redeliver))
}

/// Add an endpoint. The signing secret (`whsec_…`) is in this response only.
#[utoipa::path(post, path = "/v1/webhook_endpoints", tag = "webhooks", request_body = CreateWebhookEndpoint,
    responses((status = 200, body = WebhookEndpoint), (status = 400, body = ErrorBody)), security(("secret_key" = [])))]
pub async fn create(
    State(state): State<AppState>,
    MerchantActor(context, actor): MerchantActor,
    body: JsonBody<CreateWebhookEndpoint>,
) -> HttpResult<Json<WebhookEndpoint>> {
    Ok(Json(
        state
            .gateway
            .create_webhook_endpoint(&context, &actor, body.value)
            .await?,
    ))
}

#[utoipa::path(get, path = "/v1/webhook_endpoints", tag = "webhooks", params(PageParams),
    responses((status = 200, body = List<WebhookEndpoint>)), security(("secret_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    QueryParams(page): QueryParams<PageParams>,
) -> HttpResult<Json<List<WebhookEndpoint>>> {
    Ok(Json(
        state
            .gateway
            .webhook_endpoints(&context, &page.page()?)
            .await?,
    ))
}

#[utoipa::path(get, path = "/v1/webhook_endpoints/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = WebhookEndpoint), (status = 404, body = ErrorBody)), security(("secret_key" = [])))]
pub async fn retrieve(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    Path(id): Path<String>,
) -> HttpResult<Json<WebhookEndpoint>> {
    Ok(Json(state.gateway.webhook_endpoint(&context, &id).await?))
}

/// Change the URL, events, description, or turn the endpoint off and on.
#[utoipa::path(post, path = "/v1/webhook_endpoints/{id}", tag = "webhooks", params(("id" = String, Path)),
    request_body = UpdateWebhookEndpoint,
    responses((status = 200, body = WebhookEndpoint), (status = 404, body = ErrorBody)), security(("secret_key" = [])))]
pub async fn update(
    State(state): State<AppState>,
    MerchantActor(context, actor): MerchantActor,
    Path(id): Path<String>,
    body: JsonBody<UpdateWebhookEndpoint>,
) -> HttpResult<Json<WebhookEndpoint>> {
    Ok(Json(
        state
            .gateway
            .update_webhook_endpoint(&context, &actor, &id, body.value)
            .await?,
    ))
}

/// Delete an endpoint: it receives nothing more; its attempts stay listed.
#[utoipa::path(delete, path = "/v1/webhook_endpoints/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = WebhookEndpoint), (status = 404, body = ErrorBody)), security(("secret_key" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    MerchantActor(context, actor): MerchantActor,
    Path(id): Path<String>,
) -> HttpResult<Json<WebhookEndpoint>> {
    Ok(Json(
        state
            .gateway
            .delete_webhook_endpoint(&context, &actor, &id)
            .await?,
    ))
}

/// A new signing secret (in this response only); the old one keeps signing
/// beside it for `expires_in_seconds`.
#[utoipa::path(post, path = "/v1/webhook_endpoints/{id}/roll_secret", tag = "webhooks", params(("id" = String, Path)),
    request_body = RollWebhookSecret,
    responses((status = 200, body = WebhookEndpoint), (status = 404, body = ErrorBody)), security(("secret_key" = [])))]
pub async fn roll_secret(
    State(state): State<AppState>,
    MerchantActor(context, actor): MerchantActor,
    Path(id): Path<String>,
    body: JsonBody<RollWebhookSecret>,
) -> HttpResult<Json<WebhookEndpoint>> {
    Ok(Json(
        state
            .gateway
            .roll_webhook_secret(&context, &actor, &id, body.value)
            .await?,
    ))
}

/// Every delivery attempt to this endpoint, newest first.
#[utoipa::path(get, path = "/v1/webhook_endpoints/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path), PageParams),
    responses((status = 200, body = List<WebhookAttempt>)), security(("secret_key" = [])))]
pub async fn endpoint_deliveries(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    Path(id): Path<String>,
    QueryParams(page): QueryParams<PageParams>,
) -> HttpResult<Json<List<WebhookAttempt>>> {
    Ok(Json(
        state
            .gateway
            .endpoint_attempts(&context, &id, &page.page()?)
            .await?,
    ))
}

#[utoipa::path(get, path = "/v1/events", tag = "events", params(PageParams, EventFilters),
    responses((status = 200, body = List<Event>)), security(("secret_key" = [])))]
pub async fn list_events(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    QueryParams(page): QueryParams<PageParams>,
    QueryParams(filters): QueryParams<EventFilters>,
) -> HttpResult<Json<List<Event>>> {
    Ok(Json(
        state
            .gateway
            .events(&context, &filters, &page.page()?)
            .await?,
    ))
}

#[utoipa::path(get, path = "/v1/events/{id}", tag = "events", params(("id" = String, Path)),
    responses((status = 200, body = Event), (status = 404, body = ErrorBody)), security(("secret_key" = [])))]
pub async fn retrieve_event(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    Path(id): Path<String>,
) -> HttpResult<Json<Event>> {
    Ok(Json(state.gateway.event(&context, &id).await?))
}

/// Every delivery attempt of this event, newest first.
#[utoipa::path(get, path = "/v1/events/{id}/deliveries", tag = "events", params(("id" = String, Path), PageParams),
    responses((status = 200, body = List<WebhookAttempt>)), security(("secret_key" = [])))]
pub async fn event_deliveries(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    Path(id): Path<String>,
    QueryParams(page): QueryParams<PageParams>,
) -> HttpResult<Json<List<WebhookAttempt>>> {
    Ok(Json(
        state
            .gateway
            .event_attempts(&context, &id, &page.page()?)
            .await?,
    ))
}

/// The endpoints a redelivery goes to.
#[derive(Debug, Serialize, ToSchema)]
pub struct Redelivery {
    /// Always `redelivery`.
    pub object: &'static str,
    pub event: String,
    pub endpoints: Vec<String>,
}

/// Send the event again now.
#[utoipa::path(post, path = "/v1/events/{id}/redeliver", tag = "events", params(("id" = String, Path)),
    request_body = Redeliver,
    responses((status = 200, body = Redelivery), (status = 404, body = ErrorBody)), security(("secret_key" = [])))]
pub async fn redeliver(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    Path(id): Path<String>,
    body: JsonBody<Redeliver>,
) -> HttpResult<Json<Redelivery>> {
    let endpoints = state
        .gateway
        .redeliver_event(&context, &id, body.value)
        .await?;
    Ok(Json(Redelivery {
        object: "redelivery",
        event: id,
        endpoints,
    }))
}
