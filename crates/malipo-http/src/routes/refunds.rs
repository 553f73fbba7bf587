//! `/v1/refunds`

use crate::AppState;
use crate::error::{ErrorBody, HttpResult};
use crate::extract::{JsonBody, Merchant, PageParams, QueryParams};
use crate::idempotent::{RequestIdentity, idempotent};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use malipo_core::objects::{List, Refund};
use malipo_gateway::refunds::{CreateRefund, RefundFilters};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/refunds", post(create).get(list))
        .route("/v1/refunds/{id}", get(retrieve))
}

/// Refund a succeeded payment, in full or in part.
#[utoipa::path(post, path = "/v1/refunds", tag = "refunds", request_body = CreateRefund,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = Refund), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("secret_key" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    uri: Uri,
    headers: HeaderMap,
    body: JsonBody<CreateRefund>,
) -> Response {
    let identity = RequestIdentity {
        method: "POST",
        path: uri.path(),
        body: &body.raw,
    };
    idempotent(&state, &context, &headers, identity, |guard| {
        state.gateway.create_refund(&context, body.value, guard)
    })
    .await
}

/// Retrieve a refund.
#[utoipa::path(get, path = "/v1/refunds/{id}", tag = "refunds", params(("id" = String, Path)),
    responses((status = 200, body = Refund), (status = 404, body = ErrorBody)), security(("secret_key" = [])))]
pub async fn retrieve(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    Path(id): Path<String>,
) -> HttpResult<Json<Refund>> {
    Ok(Json(state.gateway.refund(&context, &id).await?))
}

/// List refunds, newest first; `payment` narrows to one payment's.
#[utoipa::path(get, path = "/v1/refunds", tag = "refunds", params(PageParams, RefundFilters),
    responses((status = 200, body = List<Refund>)), security(("secret_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    QueryParams(page): QueryParams<PageParams>,
    QueryParams(filters): QueryParams<RefundFilters>,
) -> HttpResult<Json<List<Refund>>> {
    Ok(Json(
        state
            .gateway
            .refunds(&context, &filters, &page.page()?)
            .await?,
    ))
}
