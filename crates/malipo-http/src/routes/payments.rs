//! `/v1/payments`

use super::NoParameters;
use crate::AppState;
use crate::error::{ErrorBody, HttpResult};
use crate::extract::{JsonBody, Merchant, PageParams, QueryParams};
use crate::idempotent::{RequestIdentity, idempotent};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use malipo_core::objects::{List, Payment};
use malipo_gateway::payments::{CreatePayment, PaymentFilters};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/payments", post(create).get(list))
        .route("/v1/payments/{id}", get(retrieve))
        .route("/v1/payments/{id}/confirm", post(confirm))
        .route("/v1/payments/{id}/cancel", post(cancel))
}

/// Create a payment (and, unless `confirm` is false, send it to the provider).
#[utoipa::path(post, path = "/v1/payments", tag = "payments", request_body = CreatePayment,
    params(("Idempotency-Key" = Option<String>, Header, description = "At most 255 characters; replays the first response")),
    responses((status = 200, body = Payment), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("secret_key" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    uri: Uri,
    headers: HeaderMap,
    body: JsonBody<CreatePayment>,
) -> Response {
    let identity = RequestIdentity {
        method: "POST",
        path: uri.path(),
        body: &body.raw,
    };
    idempotent(&state, &context, &headers, identity, |guard| {
        state.gateway.create_payment(&context, body.value, guard)
    })
    .await
}

/// Confirm a payment created with `confirm: false`.
#[utoipa::path(post, path = "/v1/payments/{id}/confirm", tag = "payments",
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = Payment), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("secret_key" = [])))]
pub async fn confirm(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: JsonBody<NoParameters>,
) -> Response {
    let identity = RequestIdentity {
        method: "POST",
        path: uri.path(),
        body: &body.raw,
    };
    idempotent(&state, &context, &headers, identity, |guard| {
        state.gateway.confirm_payment(&context, &id, guard)
    })
    .await
}

/// Cancel a payment the provider does not hold yet.
#[utoipa::path(post, path = "/v1/payments/{id}/cancel", tag = "payments",
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = Payment), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("secret_key" = [])))]
pub async fn cancel(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: JsonBody<NoParameters>,
) -> Response {
    let identity = RequestIdentity {
        method: "POST",
        path: uri.path(),
        body: &body.raw,
    };
    idempotent(&state, &context, &headers, identity, |guard| {
        state.gateway.cancel_payment(&context, &id, guard)
    })
    .await
}

/// Retrieve a payment.
#[utoipa::path(get, path = "/v1/payments/{id}", tag = "payments", params(("id" = String, Path)),
    responses((status = 200, body = Payment), (status = 404, body = ErrorBody)), security(("secret_key" = [])))]
pub async fn retrieve(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    Path(id): Path<String>,
) -> HttpResult<Json<Payment>> {
    Ok(Json(state.gateway.payment(&context, &id).await?))
}

/// List payments, newest first.
#[utoipa::path(get, path = "/v1/payments", tag = "payments", params(PageParams, PaymentFilters),
    responses((status = 200, body = List<Payment>), (status = 400, body = ErrorBody)), security(("secret_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    QueryParams(page): QueryParams<PageParams>,
    QueryParams(filters): QueryParams<PaymentFilters>,
) -> HttpResult<Json<List<Payment>>> {
    Ok(Json(
        state
            .gateway
            .payments(&context, &filters, &page.page()?)
            .await?,
    ))
}
