//! `/v1/customers`: a merchant's end users and their asset balances.

use crate::AppState;
use crate::error::{ErrorBody, HttpResult};
use crate::extract::{JsonBody, Merchant, MerchantActor, PageParams, QueryParams};
use crate::idempotent::{RequestIdentity, idempotent};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use malipo_core::objects::{List, Payout};
use malipo_core::trading::{Customer, CustomerBalances};
use malipo_gateway::customer_tokens::{CreateCustomerToken, CustomerToken};
use malipo_gateway::customers::{CreateCustomer, CreateTestCredit, CustomerFilters};
use malipo_gateway::payouts::{CreatePayout, WithdrawalFilters};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/customers", post(create).get(list))
        .route("/v1/customers/{id}", get(retrieve))
        .route("/v1/customers/{id}/balances", get(balances))
        .route("/v1/customers/{id}/test_credits", post(test_credit))
        .route(
            "/v1/customers/{id}/withdrawals",
            post(create_withdrawal).get(list_withdrawals),
        )
        .route("/v1/customers/{id}/tokens", post(create_token))
}

/// Create a customer (one of the merchant's end users, in the key's mode).
#[utoipa::path(post, path = "/v1/customers", tag = "customers", request_body = CreateCustomer,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = Customer), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("secret_key" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    uri: Uri,
    headers: HeaderMap,
    body: JsonBody<CreateCustomer>,
) -> Response {
    let identity = RequestIdentity {
        method: "POST",
        path: uri.path(),
        body: &body.raw,
    };
    idempotent(&state, &context, &headers, identity, |guard| {
        state.gateway.create_customer(&context, body.value, guard)
    })
    .await
}

/// Retrieve a customer.
#[utoipa::path(get, path = "/v1/customers/{id}", tag = "customers", params(("id" = String, Path)),
    responses((status = 200, body = Customer), (status = 404, body = ErrorBody)), security(("secret_key" = [])))]
pub async fn retrieve(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    Path(id): Path<String>,
) -> HttpResult<Json<Customer>> {
    Ok(Json(state.gateway.customer(&context, &id).await?))
}

/// List customers, newest first.
#[utoipa::path(get, path = "/v1/customers", tag = "customers", params(PageParams, CustomerFilters),
    responses((status = 200, body = List<Customer>), (status = 400, body = ErrorBody)), security(("secret_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    QueryParams(page): QueryParams<PageParams>,
    QueryParams(filters): QueryParams<CustomerFilters>,
) -> HttpResult<Json<List<Customer>>> {
    Ok(Json(
        state
            .gateway
            .customers(&context, &filters, &page.page()?)
            .await?,
    ))
}

/// A customer's balance per asset: `available` to spend, `held` by open
/// orders (two ledger accounts per asset).
#[utoipa::path(get, path = "/v1/customers/{id}/balances", tag = "customers", params(("id" = String, Path)),
    responses((status = 200, body = CustomerBalances), (status = 404, body = ErrorBody)), security(("secret_key" = [])))]
pub async fn balances(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    Path(id): Path<String>,
) -> HttpResult<Json<CustomerBalances>> {
    Ok(Json(state.gateway.customer_balances(&context, &id).await?))
}

/// Test mode only: credit any asset to a customer (from a test-only
/// funding account), to try trading without a real deposit.
#[utoipa::path(post, path = "/v1/customers/{id}/test_credits", tag = "customers", request_body = CreateTestCredit,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = CustomerBalances), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("secret_key" = [])))]
pub async fn test_credit(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: JsonBody<CreateTestCredit>,
) -> Response {
    let identity = RequestIdentity {
        method: "POST",
        path: uri.path(),
        body: &body.raw,
    };
    idempotent(&state, &context, &headers, identity, |guard| {
        state
            .gateway
            .create_test_credit(&context, &id, body.value, guard)
    })
    .await
}

/// Withdraw from a customer's balance: a payout (same fields as `POST
/// /v1/payouts`) funded from the customer's available balance of the
/// currency.
///
/// The amount leaves the customer's `available` at once; `paid` sends it
/// out through the provider, `failed` returns it to the customer. A
/// customer without the amount gets a 400 `balance_insufficient` naming
/// `amount`, and nothing moves. Listed with the merchant's payouts too
/// (with `customer` set), and by `GET /v1/customers/{id}/withdrawals`.
#[utoipa::path(post, path = "/v1/customers/{id}/withdrawals", tag = "customers", request_body = CreatePayout,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = Payout), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("secret_key" = [])))]
pub async fn create_withdrawal(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    Path(id): Path<String>,
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
        state
            .gateway
            .create_withdrawal(&context, &id, body.value, guard)
    })
    .await
}

/// A customer's withdrawals (payouts from its balance), newest first.
#[utoipa::path(get, path = "/v1/customers/{id}/withdrawals", tag = "customers",
    params(("id" = String, Path), PageParams, WithdrawalFilters),
    responses((status = 200, body = List<Payout>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("secret_key" = [])))]
pub async fn list_withdrawals(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    Path(id): Path<String>,
    QueryParams(page): QueryParams<PageParams>,
    QueryParams(filters): QueryParams<WithdrawalFilters>,
) -> HttpResult<Json<List<Payout>>> {
    Ok(Json(
        state
            .gateway
            .withdrawals(&context, &id, &filters, &page.page()?)
            .await?,
    ))
}

/// Create a customer token: a short-lived credential (default 15 minutes,
/// at most one hour) with which the customer's own app opens the live
/// feeds (`GET /v1/ws`), reading public channels and only this customer's
/// private ones. The token is in this answer only (stored hashed); no
/// Idempotency-Key, since a stored answer would keep the secret. Audited.
#[utoipa::path(post, path = "/v1/customers/{id}/tokens", tag = "customers", params(("id" = String, Path)),
    request_body = CreateCustomerToken,
    responses((status = 200, body = CustomerToken), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("secret_key" = [])))]
pub async fn create_token(
    State(state): State<AppState>,
    MerchantActor(context, actor): MerchantActor,
    Path(id): Path<String>,
    body: JsonBody<CreateCustomerToken>,
) -> HttpResult<Json<CustomerToken>> {
    Ok(Json(
        state
            .gateway
            .create_customer_token(&context, &actor, &id, body.value)
            .await?,
    ))
}
