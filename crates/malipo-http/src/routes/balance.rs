//! `/v1/balance`, `/v1/balance_transactions`

use crate::AppState;
use crate::error::{ErrorBody, HttpResult};
use crate::extract::{Merchant, PageParams, QueryParams};
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use malipo_core::objects::{Balance, BalanceTransaction, List};
use malipo_gateway::balances::BalanceTransactionFilters;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/balance", get(balance))
        .route("/v1/balance_transactions", get(transactions))
}

/// The merchant's balance per currency, from the ledger.
#[utoipa::path(get, path = "/v1/balance", tag = "balance",
    responses((status = 200, body = Balance), (status = 401, body = ErrorBody)), security(("secret_key" = [])))]
pub async fn balance(
    State(state): State<AppState>,
    Merchant(context): Merchant,
) -> HttpResult<Json<Balance>> {
    Ok(Json(state.gateway.balance(&context).await?))
}

/// The merchant's balance transactions, newest first.
#[utoipa::path(get, path = "/v1/balance_transactions", tag = "balance", params(PageParams, BalanceTransactionFilters),
    responses((status = 200, body = List<BalanceTransaction>)), security(("secret_key" = [])))]
pub async fn transactions(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    QueryParams(page): QueryParams<PageParams>,
    QueryParams(filters): QueryParams<BalanceTransactionFilters>,
) -> HttpResult<Json<List<BalanceTransaction>>> {
    Ok(Json(
        state
            .gateway
            .balance_transactions(&context, &filters, &page.page()?)
            .await?,
    ))
}
