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
use malipo_gateway::payments::{CapturePayment, CreatePayment, PaymentFilters};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/payments", post(create).get(list))
        .route("/v1/payments/{id}", get(retrieve))
        .route("/v1/payments/{id}/confirm", post(confirm))
        .route("/v1/payments/{id}/cancel", post(cancel))
        .route("/v1/payments/{id}/capture", post(capture))
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

/// Capture an authorised payment (`status: requires_capture`, created with
/// `capture_method: manual`): all of it, or `amount_to_capture` (the rest
/// of the authorisation is released). The payment succeeds once the
/// provider captured; the ledger credits the captured amount.
#[utoipa::path(post, path = "/v1/payments/{id}/capture", tag = "payments", request_body = CapturePayment,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = Payment), (status = 400, body = ErrorBody), (status = 402, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 502, body = ErrorBody)),
    security(("secret_key" = [])))]
pub async fn capture(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: JsonBody<CapturePayment>,
) -> Response {
    let identity = RequestIdentity {
        method: "POST",
        path: uri.path(),
        body: &body.raw,
    };
    idempotent(&state, &context, &headers, identity, |guard| {
        state
            .gateway
            .capture_payment(&context, &id, body.value, guard)
    })
    .await
}

/// Cancel a payment the provider does not hold yet, or release an
/// authorisation (`requires_capture`) at the provider; no money moves.
#[utoipa::path(post, path = "/v1/payments/{id}/cancel", tag = "payments",
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = Payment), (status = 402, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 502, body = ErrorBody)),
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
