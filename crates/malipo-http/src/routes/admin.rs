//! `/v1/admin/…`: the operator's API (operator token).

use crate::AppState;
use crate::error::{ErrorBody, HttpResult};
use crate::extract::{JsonBody, Operator, PageParams, QueryParams};
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use malipo_core::Mode;
use malipo_core::objects::{ApiKey, List, Payment, Scope};
use malipo_gateway::auth::{AuditEntry, AuditLogFilters};
use malipo_gateway::merchants::{
    CreateApiKey, CreateMerchant, CreatedMerchant, MerchantDetails, UpdateApiKey,
};
use malipo_ledger::VerifyReport;
use serde::Deserialize;
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/admin/merchants",
            post(create_merchant).get(list_merchants),
        )
        .route("/v1/admin/merchants/{id}", get(retrieve_merchant))
        .route("/v1/admin/merchants/{id}/api_keys", post(create_key))
        .route("/v1/admin/merchants/{id}/api_keys/{key}", post(update_key))
        .route("/v1/admin/payments/{id}", get(retrieve_payment))
        .route("/v1/admin/ledger/verify", get(verify_ledger))
        .route("/v1/admin/audit", get(audit_log))
}

/// Onboard a merchant; the response holds its test and live secret keys (shown once).
#[utoipa::path(post, path = "/v1/admin/merchants", tag = "admin", request_body = CreateMerchant,
    responses((status = 200, body = CreatedMerchant), (status = 400, body = ErrorBody)), security(("operator_token" = [])))]
pub async fn create_merchant(
    State(state): State<AppState>,
    Operator(actor): Operator,
    body: JsonBody<CreateMerchant>,
) -> HttpResult<Json<CreatedMerchant>> {
    Ok(Json(
        state.gateway.create_merchant_as(&actor, body.value).await?,
    ))
}

#[utoipa::path(get, path = "/v1/admin/merchants", tag = "admin", params(PageParams),
    responses((status = 200, body = List<MerchantDetails>)), security(("operator_token" = [])))]
pub async fn list_merchants(
    State(state): State<AppState>,
    _operator: Operator,
    QueryParams(page): QueryParams<PageParams>,
) -> HttpResult<Json<List<MerchantDetails>>> {
    Ok(Json(state.gateway.merchants(&page.page()?).await?))
}

#[utoipa::path(get, path = "/v1/admin/merchants/{id}", tag = "admin", params(("id" = String, Path)),
    responses((status = 200, body = MerchantDetails), (status = 404, body = ErrorBody)), security(("operator_token" = [])))]
pub async fn retrieve_merchant(
    State(state): State<AppState>,
    _operator: Operator,
    Path(id): Path<String>,
) -> HttpResult<Json<MerchantDetails>> {
    Ok(Json(state.gateway.merchant(&id).await?))
}

/// `POST /v1/admin/merchants/{id}/api_keys`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateMerchantKey {
    /// `test` or `live`.
    pub mode: Mode,
    pub name: Option<String>,
    pub scopes: Option<Vec<Scope>>,
    /// Addresses and CIDR blocks the key is accepted from; absent or
    /// empty: any address.
    pub allowed_ips: Option<Vec<String>>,
}

/// Create a key for a merchant; the secret is in this response only.
#[utoipa::path(post, path = "/v1/admin/merchants/{id}/api_keys", tag = "admin", params(("id" = String, Path)),
    request_body = CreateMerchantKey,
    responses((status = 200, body = ApiKey), (status = 404, body = ErrorBody)), security(("operator_token" = [])))]
pub async fn create_key(
    State(state): State<AppState>,
    Operator(actor): Operator,
    Path(id): Path<String>,
    body: JsonBody<CreateMerchantKey>,
) -> HttpResult<Json<ApiKey>> {
    let request = CreateApiKey {
        name: body.value.name,
        scopes: body.value.scopes,
        allowed_ips: body.value.allowed_ips,
    };
    Ok(Json(
        state
            .gateway
            .create_api_key_for_as(&actor, &id, body.value.mode, request)
            .await?,
    ))
}

/// Replace the address allow-list of a merchant's key (test or live): how
/// an operator lets a merchant back in after a wrong list.
#[utoipa::path(post, path = "/v1/admin/merchants/{id}/api_keys/{key}", tag = "admin",
    params(("id" = String, Path), ("key" = String, Path)),
    request_body = UpdateApiKey,
    responses((status = 200, body = ApiKey), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("operator_token" = [])))]
pub async fn update_key(
    State(state): State<AppState>,
    Operator(actor): Operator,
    Path((id, key)): Path<(String, String)>,
    body: JsonBody<UpdateApiKey>,
) -> HttpResult<Json<ApiKey>> {
    Ok(Json(
        state
            .gateway
            .update_api_key_for_as(&actor, &id, &key, body.value)
            .await?,
    ))
}

/// Any payment, whoever owns it.
#[utoipa::path(get, path = "/v1/admin/payments/{id}", tag = "admin", params(("id" = String, Path)),
    responses((status = 200, body = Payment), (status = 404, body = ErrorBody)), security(("operator_token" = [])))]
pub async fn retrieve_payment(
    State(state): State<AppState>,
    _operator: Operator,
    Path(id): Path<String>,
) -> HttpResult<Json<Payment>> {
    Ok(Json(state.gateway.admin_payment(&id).await?.payment))
}

/// The audit log, newest first: every operator and key-management action and
/// every configuration change, with who made it (operator token or API key,
/// by id and prefix), from where, and the object before and after (secrets
/// removed).
#[utoipa::path(get, path = "/v1/admin/audit", tag = "admin", params(PageParams, AuditLogFilters),
    responses((status = 200, body = List<AuditEntry>), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "the caller's address is not in `operator_allowed_ips`")),
    security(("operator_token" = [])))]
pub async fn audit_log(
    State(state): State<AppState>,
    _operator: Operator,
    QueryParams(page): QueryParams<PageParams>,
    QueryParams(filters): QueryParams<AuditLogFilters>,
) -> HttpResult<Json<List<AuditEntry>>> {
    Ok(Json(
        state.gateway.audit_log(&filters, &page.page()?).await?,
    ))
}

/// Prove the ledger: debits equal credits per asset and every balance equals its entries.
#[utoipa::path(get, path = "/v1/admin/ledger/verify", tag = "admin",
    responses((status = 200, body = Object)), security(("operator_token" = [])))]
pub async fn verify_ledger(
    State(state): State<AppState>,
    _operator: Operator,
) -> HttpResult<Json<VerifyReport>> {
    Ok(Json(state.gateway.verify_ledger().await?))
}
