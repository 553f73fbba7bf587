//! `/v1/payouts`

use crate::AppState;
use crate::error::{ErrorBody, HttpResult};
use crate::extract::{JsonBody, Merchant, PageParams, QueryParams};
use crate::idempotent::{RequestIdentity, idempotent};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use malipo_core::objects::{List, Payout};
use malipo_gateway::payouts::{CreatePayout, PayoutFilters};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/payouts", post(create).get(list))
        .route("/v1/payouts/{id}", get(retrieve))
}

/// Pay out of the available balance to a mobile money wallet.
///
/// The amount leaves `available` at once (for `in_transit`); `paid` moves it
/// out, `failed` brings it back. The answer is usually `processing`: the
/// result arrives by the provider's callback (`payout.paid` /
/// `payout.failed` webhooks).
#[utoipa::path(post, path = "/v1/payouts", tag = "payouts", request_body = CreatePayout,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = Payout), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("secret_key" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    uri: Uri,
    headers: HeaderMap,
    body: JsonBody<CreatePayout>,
) -> Response {
    let identity = RequestIdentity {
        method: "POST",
        path: uri.path(),
        body: &body.raw,
    };
    idempotent(&state, &context, &headers, identity, |guard| {
        state.gateway.create_payout(&context, body.value, guard)
    })
    .await
}

/// Retrieve a payout.
#[utoipa::path(get, path = "/v1/payouts/{id}", tag = "payouts", params(("id" = String, Path)),
    responses((status = 200, body = Payout), (status = 404, body = ErrorBody)), security(("secret_key" = [])))]
pub async fn retrieve(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    Path(id): Path<String>,
) -> HttpResult<Json<Payout>> {
    Ok(Json(state.gateway.payout(&context, &id).await?))
}

/// List payouts, newest first.
#[utoipa::path(get, path = "/v1/payouts", tag = "payouts", params(PageParams, PayoutFilters),
    responses((status = 200, body = List<Payout>), (status = 400, body = ErrorBody)), security(("secret_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    QueryParams(page): QueryParams<PageParams>,
    QueryParams(filters): QueryParams<PayoutFilters>,
) -> HttpResult<Json<List<Payout>>> {
    Ok(Json(
        state
            .gateway
            .payouts(&context, &filters, &page.page()?)
            .await?,
    ))
}
