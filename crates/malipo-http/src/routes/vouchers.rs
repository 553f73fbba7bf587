//! Vouchers: `/v1/admin/vouchers…` (operator: issue batches, list) and
//! `POST /v1/vouchers/validate` (merchant). Paying with a voucher is
//! `POST /v1/payments` with `method: "voucher"`.

use crate::AppState;
use crate::error::{ErrorBody, HttpResult};
use crate::extract::{JsonBody, Merchant, Operator, PageParams, QueryParams};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use malipo_core::objects::List;
use malipo_gateway::ApiError;
use malipo_gateway::vouchers::{
    CreateVoucherBatch, ValidateVoucher, Voucher, VoucherBatch, VoucherFilters, VoucherValidation,
    voucher_batch_csv,
};
use serde::Deserialize;
use utoipa::IntoParams;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/admin/vouchers/batches",
            post(create_batch).get(list_batches),
        )
        .route("/v1/admin/vouchers", get(list_vouchers))
        .route("/v1/vouchers/validate", post(validate))
}

/// How the new batch's codes come back.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
pub struct BatchFormat {
    /// `json` (default) or `csv`; `Accept: text/csv` also asks for CSV.
    pub format: Option<String>,
}

fn wants_csv(format: &BatchFormat, headers: &HeaderMap) -> Result<bool, ApiError> {
    match format.format.as_deref() {
        Some("csv") => Ok(true),
        Some("json") => Ok(false),
        Some(_) => Err(ApiError::invalid(
            "format",
            "format must be `json` or `csv`",
        )),
        None => Ok(headers
            .get(header::ACCEPT)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|accept| accept.contains("text/csv"))),
    }
}

/// Issue a batch of vouchers. The codes are in this response only (JSON, or
/// CSV `id,code,currency,face_value,expires_at` with `Accept: text/csv` or
/// `?format=csv`); Malipo keeps only their keyed hashes. Not idempotent: a
/// retry issues another batch.
#[utoipa::path(post, path = "/v1/admin/vouchers/batches", tag = "vouchers", request_body = CreateVoucherBatch,
    params(BatchFormat),
    responses((status = 200, body = VoucherBatch, description = "The batch with its codes (shown once)"),
        (status = 200, content_type = "text/csv", body = String, description = "The codes as CSV"),
        (status = 400, body = ErrorBody)),
    security(("operator_token" = [])))]
pub async fn create_batch(
    State(state): State<AppState>,
    Operator(actor): Operator,
    headers: HeaderMap,
    QueryParams(format): QueryParams<BatchFormat>,
    body: JsonBody<CreateVoucherBatch>,
) -> HttpResult<Response> {
    let csv = wants_csv(&format, &headers)?;
    let batch = state
        .gateway
        .issue_voucher_batch(&actor, body.value)
        .await?;
    let mut response = if csv {
        let disposition = format!("attachment; filename=\"{}.csv\"", batch.id);
        let mut response = voucher_batch_csv(&batch).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        );
        if let Ok(value) = HeaderValue::from_str(&disposition) {
            headers.insert(header::CONTENT_DISPOSITION, value);
        }
        response
    } else {
        Json(batch).into_response()
    };
    // The codes must not be kept by any cache on the way.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// List voucher batches, newest first (never the codes).
#[utoipa::path(get, path = "/v1/admin/vouchers/batches", tag = "vouchers", params(PageParams),
    responses((status = 200, body = List<VoucherBatch>), (status = 400, body = ErrorBody)),
    security(("operator_token" = [])))]
pub async fn list_batches(
    State(state): State<AppState>,
    _operator: Operator,
    QueryParams(page): QueryParams<PageParams>,
) -> HttpResult<Json<List<VoucherBatch>>> {
    Ok(Json(state.gateway.voucher_batches(&page.page()?).await?))
}

/// List vouchers with what remains on each, newest first (never the codes).
#[utoipa::path(get, path = "/v1/admin/vouchers", tag = "vouchers", params(PageParams, VoucherFilters),
    responses((status = 200, body = List<Voucher>), (status = 400, body = ErrorBody)),
    security(("operator_token" = [])))]
pub async fn list_vouchers(
    State(state): State<AppState>,
    _operator: Operator,
    QueryParams(page): QueryParams<PageParams>,
    QueryParams(filters): QueryParams<VoucherFilters>,
) -> HttpResult<Json<List<Voucher>>> {
    Ok(Json(state.gateway.vouchers(&filters, &page.page()?).await?))
}

/// What a voucher code is worth to this merchant: `valid` (with its
/// currency, remaining value and expiry), `invalid` (unknown, malformed, or
/// not redeemable here), `expired` or `used`. Changes nothing. Each key may
/// get at most 30 `invalid` answers a minute (then 429).
#[utoipa::path(post, path = "/v1/vouchers/validate", tag = "vouchers", request_body = ValidateVoucher,
    responses((status = 200, body = VoucherValidation), (status = 400, body = ErrorBody),
        (status = 429, body = ErrorBody)),
    security(("secret_key" = [])))]
pub async fn validate(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    body: JsonBody<ValidateVoucher>,
) -> HttpResult<Json<VoucherValidation>> {
    Ok(Json(
        state.gateway.validate_voucher(&context, body.value).await?,
    ))
}
