//! The buy/sell desk (`/v1/trading/prices`, `/quotes`, `/buy`, `/sell`,
//! `/trades`, `/trades/{id}/cancel`) and the operator's `/v1/admin/trading/reserves`; see
//! docs/trading.md ("Desk") and [`malipo_gateway::desk`].

use super::NoParameters;
use crate::AppState;
use crate::error::{ErrorBody, HttpResult};
use crate::extract::{JsonBody, Merchant, Operator, PageParams, QueryParams};
use crate::idempotent::{RequestIdentity, idempotent};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use malipo_core::objects::List;
use malipo_gateway::desk::{
    CreateDeskQuote, CreateTrade, DeskPrice, DeskQuote, DeskReserve, FundReserve, PriceParams,
    Trade, TradeFilters,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/trading/prices", get(price))
        .route("/v1/trading/quotes", post(create_quote))
        .route("/v1/trading/buy", post(buy))
        .route("/v1/trading/sell", post(sell))
        .route("/v1/trading/trades", get(list_trades))
        .route("/v1/trading/trades/{id}", get(retrieve_trade))
        .route("/v1/trading/trades/{id}/cancel", post(cancel_trade))
        .route(
            "/v1/admin/trading/reserves",
            post(fund_reserve).get(list_reserves),
        )
}

/// What the desk buys (`bid`) and sells (`ask`) an asset for: the venue's
/// best prices when its book has both sides, else what the mode's
/// liquidity pools of the pair give for one unit (`source: "pool"`), else
/// the rate sources' mid ± the desk spread.
#[utoipa::path(get, path = "/v1/trading/prices", tag = "desk", params(PriceParams),
    responses((status = 200, body = DeskPrice), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("secret_key" = [])))]
pub async fn price(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    QueryParams(params): QueryParams<PriceParams>,
) -> HttpResult<Json<DeskPrice>> {
    Ok(Json(state.gateway.desk_price(&context, &params).await?))
}

/// Lock a desk price for a customer: both amounts, the fee of the payment
/// method, and an expiry.
#[utoipa::path(post, path = "/v1/trading/quotes", tag = "desk", request_body = CreateDeskQuote,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = DeskQuote), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("secret_key" = [])))]
pub async fn create_quote(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    uri: Uri,
    headers: HeaderMap,
    body: JsonBody<CreateDeskQuote>,
) -> Response {
    let identity = RequestIdentity {
        method: "POST",
        path: uri.path(),
        body: &body.raw,
    };
    idempotent(&state, &context, &headers, identity, |guard| {
        state.gateway.create_desk_quote(&context, body.value, guard)
    })
    .await
}

/// Buy at a quote: from the customer's fiat balance
/// (`pay_from_balance: true`, settles at once), or with a payment of the
/// quote's method (`payment`): the trade is `pending` until the payment
/// ends, and carries the payment's id and `next_action`.
#[utoipa::path(post, path = "/v1/trading/buy", tag = "desk", request_body = CreateTrade,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = Trade), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)),
    security(("secret_key" = [])))]
pub async fn buy(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    uri: Uri,
    headers: HeaderMap,
    body: JsonBody<CreateTrade>,
) -> Response {
    let identity = RequestIdentity {
        method: "POST",
        path: uri.path(),
        body: &body.raw,
    };
    idempotent(&state, &context, &headers, identity, |guard| {
        state
            .gateway
            .create_trade(&context, "buy", body.value, guard)
    })
    .await
}

/// Sell at a quote: the asset leaves the customer's balance and the fiat
/// (less the fee) arrives in it, at once.
#[utoipa::path(post, path = "/v1/trading/sell", tag = "desk", request_body = CreateTrade,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = Trade), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)),
    security(("secret_key" = [])))]
pub async fn sell(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    uri: Uri,
    headers: HeaderMap,
    body: JsonBody<CreateTrade>,
) -> Response {
    let identity = RequestIdentity {
        method: "POST",
        path: uri.path(),
        body: &body.raw,
    };
    idempotent(&state, &context, &headers, identity, |guard| {
        state
            .gateway
            .create_trade(&context, "sell", body.value, guard)
    })
    .await
}

/// Cancel a pending trade (and its payment, when the provider holds
/// nothing of it yet).
#[utoipa::path(post, path = "/v1/trading/trades/{id}/cancel", tag = "desk", params(("id" = String, Path),
    ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = Trade), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("secret_key" = [])))]
pub async fn cancel_trade(
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
        state.gateway.cancel_trade(&context, &id, guard)
    })
    .await
}

/// Retrieve a desk trade.
#[utoipa::path(get, path = "/v1/trading/trades/{id}", tag = "desk", params(("id" = String, Path)),
    responses((status = 200, body = Trade), (status = 404, body = ErrorBody)), security(("secret_key" = [])))]
pub async fn retrieve_trade(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    Path(id): Path<String>,
) -> HttpResult<Json<Trade>> {
    Ok(Json(state.gateway.trade(&context, &id).await?))
}

/// List the merchant's desk trades, newest first.
#[utoipa::path(get, path = "/v1/trading/trades", tag = "desk", params(PageParams, TradeFilters),
    responses((status = 200, body = List<Trade>), (status = 400, body = ErrorBody)), security(("secret_key" = [])))]
pub async fn list_trades(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    QueryParams(page): QueryParams<PageParams>,
    QueryParams(filters): QueryParams<TradeFilters>,
) -> HttpResult<Json<List<Trade>>> {
    Ok(Json(
        state
            .gateway
            .trades(&context, &filters, &page.page()?)
            .await?,
    ))
}

/// Operator: add to a test-mode desk reserve (from the platform's test
/// funding account).
#[utoipa::path(post, path = "/v1/admin/trading/reserves", tag = "desk", request_body = FundReserve,
    responses((status = 200, body = DeskReserve), (status = 400, body = ErrorBody)),
    security(("operator_token" = [])))]
pub async fn fund_reserve(
    State(state): State<AppState>,
    Operator(actor): Operator,
    body: JsonBody<FundReserve>,
) -> HttpResult<Json<DeskReserve>> {
    Ok(Json(
        state.gateway.fund_desk_reserve(&actor, body.value).await?,
    ))
}

/// Operator: every desk reserve and its fee revenue, both modes.
#[utoipa::path(get, path = "/v1/admin/trading/reserves", tag = "desk",
    responses((status = 200, body = List<DeskReserve>)), security(("operator_token" = [])))]
pub async fn list_reserves(
    State(state): State<AppState>,
    Operator(_actor): Operator,
) -> HttpResult<Json<List<DeskReserve>>> {
    Ok(Json(state.gateway.desk_reserves().await?))
}
