//! `/v1/trading/pools…`, `/v1/trading/swaps`, `/v1/trading/route…` (AMM
//! liquidity pools and the router) and the operator's
//! `/v1/admin/trading/pools`.

use crate::AppState;
use crate::error::{ErrorBody, HttpResult};
use crate::extract::{JsonBody, Merchant, Operator};
use crate::idempotent::{RequestIdentity, idempotent};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use malipo_core::objects::List;
use malipo_gateway::pools::{
    AddLiquidityRequest, CreatePool, CreateSwap, LiquidityPool, PoolLiquidity,
    RemoveLiquidityRequest, RouteParams, RouteQuote, Swap,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/trading/pools", post(create_pool))
        .route("/v1/trading/pools", get(list_pools))
        .route("/v1/trading/pools/{id}", get(retrieve_pool))
        .route("/v1/trading/pools/{id}/add_liquidity", post(add_liquidity))
        .route(
            "/v1/trading/pools/{id}/remove_liquidity",
            post(remove_liquidity),
        )
        .route("/v1/trading/swaps", post(create_swap))
        .route("/v1/trading/route", post(quote_route))
        .route("/v1/trading/route/execute", post(execute_route))
}

/// Operator: list a new pool (`pool_{a}_{b}_{fee_bps}`, a row per mode,
/// empty until its first liquidity).
#[utoipa::path(post, path = "/v1/admin/trading/pools", tag = "trading", request_body = CreatePool,
    responses((status = 200, body = LiquidityPool), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("operator_token" = [])))]
pub async fn create_pool(
    State(state): State<AppState>,
    Operator(actor): Operator,
    body: JsonBody<CreatePool>,
) -> HttpResult<Json<LiquidityPool>> {
    Ok(Json(state.gateway.create_pool(&actor, body.value).await?))
}

/// The pools of the key's mode, by id.
#[utoipa::path(get, path = "/v1/trading/pools", tag = "trading",
    responses((status = 200, body = List<LiquidityPool>)), security(("secret_key" = [])))]
pub async fn list_pools(
    State(state): State<AppState>,
    Merchant(context): Merchant,
) -> HttpResult<Json<List<LiquidityPool>>> {
    Ok(Json(state.gateway.pools(&context).await?))
}

/// A pool: reserves, shares outstanding, fee, price.
#[utoipa::path(get, path = "/v1/trading/pools/{id}", tag = "trading", params(("id" = String, Path)),
    responses((status = 200, body = LiquidityPool), (status = 404, body = ErrorBody)), security(("secret_key" = [])))]
pub async fn retrieve_pool(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    Path(id): Path<String>,
) -> HttpResult<Json<LiquidityPool>> {
    Ok(Json(state.gateway.pool(&context, &id).await?))
}

fn identity<'a>(uri: &'a Uri, raw: &'a [u8]) -> RequestIdentity<'a> {
    RequestIdentity {
        method: "POST",
        path: uri.path(),
        body: raw,
    }
}

/// Deposit both assets at the pool's ratio for LP shares (the first deposit
/// sets the price and locks 1,000 shares forever).
#[utoipa::path(post, path = "/v1/trading/pools/{id}/add_liquidity", tag = "trading", request_body = AddLiquidityRequest,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = PoolLiquidity), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)),
    security(("secret_key" = [])))]
pub async fn add_liquidity(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: JsonBody<AddLiquidityRequest>,
) -> Response {
    idempotent(
        &state,
        &context,
        &headers,
        identity(&uri, &body.raw),
        |guard| {
            state
                .gateway
                .add_liquidity(&context, &id, body.value, guard)
        },
    )
    .await
}

/// Burn LP shares for their part of both reserves.
#[utoipa::path(post, path = "/v1/trading/pools/{id}/remove_liquidity", tag = "trading", request_body = RemoveLiquidityRequest,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = PoolLiquidity), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("secret_key" = [])))]
pub async fn remove_liquidity(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: JsonBody<RemoveLiquidityRequest>,
) -> Response {
    idempotent(
        &state,
        &context,
        &headers,
        identity(&uri, &body.raw),
        |guard| {
            state
                .gateway
                .remove_liquidity(&context, &id, body.value, guard)
        },
    )
    .await
}

/// Sell an exact input on one pool, with a minimum output and a deadline.
#[utoipa::path(post, path = "/v1/trading/swaps", tag = "trading", request_body = CreateSwap,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = Swap), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)),
    security(("secret_key" = [])))]
pub async fn create_swap(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    uri: Uri,
    headers: HeaderMap,
    body: JsonBody<CreateSwap>,
) -> Response {
    idempotent(
        &state,
        &context,
        &headers,
        identity(&uri, &body.raw),
        |guard| state.gateway.create_swap(&context, body.value, guard),
    )
    .await
}

/// Quote the best execution across the pools and the pairs' order books
/// (up to 3 hops, optionally split across two paths); moves nothing. Each
/// leg names its venue (`pool` or `book`) and id.
#[utoipa::path(post, path = "/v1/trading/route", tag = "trading", request_body = RouteParams,
    responses((status = 200, body = RouteQuote), (status = 400, body = ErrorBody)),
    security(("secret_key" = [])))]
pub async fn quote_route(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    body: JsonBody<RouteParams>,
) -> HttpResult<Json<RouteQuote>> {
    Ok(Json(state.gateway.quote_route(&context, body.value).await?))
}

/// Quote and execute a route for a customer: every leg in one transaction
/// (pool legs as swaps, book legs as the customer's market IOC orders), or
/// nothing when the output would be below `min_amount_out`.
#[utoipa::path(post, path = "/v1/trading/route/execute", tag = "trading", request_body = RouteParams,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = Swap), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("secret_key" = [])))]
pub async fn execute_route(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    uri: Uri,
    headers: HeaderMap,
    body: JsonBody<RouteParams>,
) -> Response {
    idempotent(
        &state,
        &context,
        &headers,
        identity(&uri, &body.raw),
        |guard| state.gateway.execute_route(&context, body.value, guard),
    )
    .await
}
