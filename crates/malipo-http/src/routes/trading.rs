//! `/v1/trading/…` (pairs, orders, books, fills) and the operator's
//! `/v1/admin/trading/pairs`.

use crate::AppState;
use crate::error::{ErrorBody, HttpResult};
use crate::extract::{JsonBody, Merchant, Operator, PageParams, QueryParams};
use crate::forward;
use crate::idempotent::{RequestIdentity, idempotent};
use crate::routes::NoParameters;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use malipo_core::objects::List;
use malipo_core::trading::{Fill, Order, OrderBook, TradingPair};
use malipo_gateway::trading::{
    BookParams, CreateOrder, CreatePair, FillFilters, OrderFilters, UpdatePair,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/trading/pairs", post(create_pair))
        .route("/v1/admin/trading/pairs/{id}", post(update_pair))
        .route("/v1/trading/pairs", get(list_pairs))
        .route("/v1/trading/orders", post(create_order).get(list_orders))
        .route("/v1/trading/orders/{id}", get(retrieve_order))
        .route("/v1/trading/orders/{id}/cancel", post(cancel_order))
        .route("/v1/trading/books/{pair}", get(book))
        .route("/v1/trading/fills", get(list_fills))
}

/// Operator: list a new pair (`{base}_{quote}`), active unless told halted.
#[utoipa::path(post, path = "/v1/admin/trading/pairs", tag = "trading", request_body = CreatePair,
    responses((status = 200, body = TradingPair), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("operator_token" = [])))]
pub async fn create_pair(
    State(state): State<AppState>,
    Operator(actor): Operator,
    body: JsonBody<CreatePair>,
) -> HttpResult<Json<TradingPair>> {
    Ok(Json(
        state
            .gateway
            .create_trading_pair(&actor, body.value)
            .await?,
    ))
}

/// Operator: halt or resume a pair.
#[utoipa::path(post, path = "/v1/admin/trading/pairs/{id}", tag = "trading", request_body = UpdatePair,
    params(("id" = String, Path)),
    responses((status = 200, body = TradingPair), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("operator_token" = [])))]
pub async fn update_pair(
    State(state): State<AppState>,
    Operator(actor): Operator,
    Path(id): Path<String>,
    body: JsonBody<UpdatePair>,
) -> HttpResult<Json<TradingPair>> {
    Ok(Json(
        state
            .gateway
            .update_trading_pair(&actor, &id, body.value)
            .await?,
    ))
}

/// The venue's pairs.
#[utoipa::path(get, path = "/v1/trading/pairs", tag = "trading",
    responses((status = 200, body = List<TradingPair>)), security(("secret_key" = [])))]
pub async fn list_pairs(
    State(state): State<AppState>,
    Merchant(_context): Merchant,
) -> HttpResult<Json<List<TradingPair>>> {
    Ok(Json(state.gateway.trading_pairs().await?))
}

/// Place an order for a customer. Its funds are held in the ledger while
/// it is open; every fill settles in the same transaction. The answer is
/// the order after matching (`filled`, `open`, `canceled`).
#[utoipa::path(post, path = "/v1/trading/orders", tag = "trading", request_body = CreateOrder,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = Order,
            headers(("Malipo-Node" = String, description = "The node that ran the command (docs/trading.md, \"Several nodes\")"))),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("secret_key" = [])))]
pub async fn create_order(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    uri: Uri,
    headers: HeaderMap,
    body: JsonBody<CreateOrder>,
) -> Response {
    let pair = body.value.pair.clone();
    if let Some(answer) =
        forward::to_owner(&state, &context, &headers, &uri, &body.raw, pair.as_deref()).await
    {
        return answer;
    }
    let identity = RequestIdentity {
        method: "POST",
        path: uri.path(),
        body: &body.raw,
    };
    let mut response = idempotent(&state, &context, &headers, identity, |guard| {
        state.gateway.create_order(&context, body.value, guard)
    })
    .await;
    forward::mark_node(&state, &mut response);
    response
}

/// Cancel an open order; what it held returns to the available balance.
#[utoipa::path(post, path = "/v1/trading/orders/{id}/cancel", tag = "trading",
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = Order,
            headers(("Malipo-Node" = String, description = "The node that ran the command"))),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)),
    security(("secret_key" = [])))]
pub async fn cancel_order(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: JsonBody<NoParameters>,
) -> Response {
    // The order's pair names its book; an unknown order runs here (and
    // answers its 404).
    let pair = state
        .gateway
        .order(&context, &id)
        .await
        .ok()
        .map(|order| order.pair);
    if let Some(answer) =
        forward::to_owner(&state, &context, &headers, &uri, &body.raw, pair.as_deref()).await
    {
        return answer;
    }
    let identity = RequestIdentity {
        method: "POST",
        path: uri.path(),
        body: &body.raw,
    };
    let mut response = idempotent(&state, &context, &headers, identity, |guard| {
        state.gateway.cancel_order(&context, &id, guard)
    })
    .await;
    forward::mark_node(&state, &mut response);
    response
}

/// Retrieve an order.
#[utoipa::path(get, path = "/v1/trading/orders/{id}", tag = "trading", params(("id" = String, Path)),
    responses((status = 200, body = Order), (status = 404, body = ErrorBody)), security(("secret_key" = [])))]
pub async fn retrieve_order(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    Path(id): Path<String>,
) -> HttpResult<Json<Order>> {
    Ok(Json(state.gateway.order(&context, &id).await?))
}

/// List the merchant's orders, newest first.
#[utoipa::path(get, path = "/v1/trading/orders", tag = "trading", params(PageParams, OrderFilters),
    responses((status = 200, body = List<Order>), (status = 400, body = ErrorBody)), security(("secret_key" = [])))]
pub async fn list_orders(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    QueryParams(page): QueryParams<PageParams>,
    QueryParams(filters): QueryParams<OrderFilters>,
) -> HttpResult<Json<List<Order>>> {
    Ok(Json(
        state
            .gateway
            .orders(&context, &filters, &page.page()?)
            .await?,
    ))
}

/// A pair's book in the key's mode: the best price levels of each side.
#[utoipa::path(get, path = "/v1/trading/books/{pair}", tag = "trading", params(("pair" = String, Path), BookParams),
    responses((status = 200, body = OrderBook), (status = 400, body = ErrorBody)), security(("secret_key" = [])))]
pub async fn book(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    Path(pair): Path<String>,
    QueryParams(params): QueryParams<BookParams>,
) -> HttpResult<Json<OrderBook>> {
    Ok(Json(
        state.gateway.order_book(&context, &pair, &params).await?,
    ))
}

/// List the fills of the merchant's orders (one per side of each trade),
/// newest first.
#[utoipa::path(get, path = "/v1/trading/fills", tag = "trading", params(PageParams, FillFilters),
    responses((status = 200, body = List<Fill>), (status = 400, body = ErrorBody)), security(("secret_key" = [])))]
pub async fn list_fills(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    QueryParams(page): QueryParams<PageParams>,
    QueryParams(filters): QueryParams<FillFilters>,
) -> HttpResult<Json<List<Fill>>> {
    Ok(Json(
        state
            .gateway
            .fills(&context, &filters, &page.page()?)
            .await?,
    ))
}
