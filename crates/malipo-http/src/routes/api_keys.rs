//! `/v1/api_keys`: a merchant manages its own keys.

use super::NoParameters;
use crate::AppState;
use crate::error::{ErrorBody, HttpResult};
use crate::extract::{JsonBody, Merchant, MerchantActor, PageParams, QueryParams};
use crate::idempotent::{RequestIdentity, idempotent};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use axum::routing::post;
use axum::{Json, Router};
use malipo_core::objects::{ApiKey, List};
use malipo_gateway::merchants::{CreateApiKey, UpdateApiKey};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/api_keys", post(create).get(list))
        .route("/v1/api_keys/{id}", post(update))
        .route("/v1/api_keys/{id}/revoke", post(revoke))
}

/// Create a secret key in the caller's mode. The secret is in this response
/// only: a replay under the same Idempotency-Key answers the key without it.
#[utoipa::path(post, path = "/v1/api_keys", tag = "api_keys", request_body = CreateApiKey,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = ApiKey), (status = 403, body = ErrorBody)), security(("secret_key" = [])))]
pub async fn create(
    State(state): State<AppState>,
    MerchantActor(context, actor): MerchantActor,
    uri: Uri,
    headers: HeaderMap,
    body: JsonBody<CreateApiKey>,
) -> Response {
    let identity = RequestIdentity {
        method: "POST",
        path: uri.path(),
        body: &body.raw,
    };
    idempotent(&state, &context, &headers, identity, |guard| {
        state
            .gateway
            .create_api_key(&context, &actor, guard, body.value)
    })
    .await
}

/// List the keys of the caller's mode (secrets are never shown again).
#[utoipa::path(get, path = "/v1/api_keys", tag = "api_keys", params(PageParams),
    responses((status = 200, body = List<ApiKey>)), security(("secret_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    QueryParams(page): QueryParams<PageParams>,
) -> HttpResult<Json<List<ApiKey>>> {
    Ok(Json(state.gateway.api_keys(&context, &page.page()?).await?))
}

/// Replace a key's address allow-list (`allowed_ips`; `[]`: any address).
/// Takes effect on the key's next request, on every node.
#[utoipa::path(post, path = "/v1/api_keys/{id}", tag = "api_keys", params(("id" = String, Path)),
    request_body = UpdateApiKey,
    responses((status = 200, body = ApiKey), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("secret_key" = [])))]
pub async fn update(
    State(state): State<AppState>,
    MerchantActor(context, actor): MerchantActor,
    Path(id): Path<String>,
    body: JsonBody<UpdateApiKey>,
) -> HttpResult<Json<ApiKey>> {
    Ok(Json(
        state
            .gateway
            .update_api_key(&context, &actor, &id, body.value)
            .await?,
    ))
}

/// Revoke a key: it stops working at once.
#[utoipa::path(post, path = "/v1/api_keys/{id}/revoke", tag = "api_keys", params(("id" = String, Path)),
    responses((status = 200, body = ApiKey), (status = 404, body = ErrorBody)), security(("secret_key" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    MerchantActor(context, actor): MerchantActor,
    Path(id): Path<String>,
    _body: JsonBody<NoParameters>,
) -> HttpResult<Json<ApiKey>> {
    Ok(Json(
        state.gateway.revoke_api_key(&context, &actor, &id).await?,
    ))
}
