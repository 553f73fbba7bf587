//! Currencies, rates and conversion quotes: `GET /v1/currencies`,
//! `GET /v1/rates`, `POST /v1/conversions/quote`,
//! `GET /v1/conversions/quotes/{id}`. Paying with a quote is
//! `POST /v1/payments` with `conversion_quote`.

use crate::AppState;
use crate::error::{ErrorBody, HttpResult};
use crate::extract::{JsonBody, Merchant, QueryParams};
use crate::idempotent::{RequestIdentity, idempotent};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use malipo_core::objects::List;
use malipo_gateway::conversions::{
    ConversionQuote, CreateConversionQuote, Currency, Rate, RateFilters,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/currencies", get(currencies))
        .route("/v1/rates", get(rates))
        .route("/v1/conversions/quote", post(create_quote))
        .route("/v1/conversions/quotes/{id}", get(retrieve_quote))
}

/// Every currency and crypto asset Malipo accepts, with its exponent and
/// the largest payment it may carry (one page: `has_more` is always false).
#[utoipa::path(get, path = "/v1/currencies", tag = "conversions",
    responses((status = 200, body = List<Currency>)), security(("secret_key" = [])))]
pub async fn currencies(
    State(state): State<AppState>,
    Merchant(context): Merchant,
) -> HttpResult<Json<List<Currency>>> {
    Ok(Json(state.gateway.currencies(&context)?))
}

/// Mid rates against `base` (default `usd`) from the configured sources,
/// with the source, `as_of` and whether each is stale.
#[utoipa::path(get, path = "/v1/rates", tag = "conversions", params(RateFilters),
    responses((status = 200, body = List<Rate>), (status = 400, body = ErrorBody)),
    security(("secret_key" = [])))]
pub async fn rates(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    QueryParams(filters): QueryParams<RateFilters>,
) -> HttpResult<Json<List<Rate>>> {
    Ok(Json(state.gateway.rates(&context, &filters).await?))
}

/// Lock a conversion rate: the mid rate less the spread, for
/// `conversion_quote_lifetime_seconds`. Give `amount` (what the customer
/// pays) or `to_amount` (what the merchant is credited before fees); the
/// other is computed, rounded in the platform's favour. A stale rate is
/// refused with `rate_stale` (503).
#[utoipa::path(post, path = "/v1/conversions/quote", tag = "conversions",
    request_body = CreateConversionQuote,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = ConversionQuote), (status = 400, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "No fresh rate (`rate_stale`, `rate_source_unavailable`)")),
    security(("secret_key" = [])))]
pub async fn create_quote(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    uri: Uri,
    headers: HeaderMap,
    body: JsonBody<CreateConversionQuote>,
) -> Response {
    let identity = RequestIdentity {
        method: "POST",
        path: uri.path(),
        body: &body.raw,
    };
    idempotent(&state, &context, &headers, identity, |guard| {
        state
            .gateway
            .create_conversion_quote(&context, body.value, guard)
    })
    .await
}

/// Retrieve a conversion quote (`payment` names the payment that used it).
#[utoipa::path(get, path = "/v1/conversions/quotes/{id}", tag = "conversions",
    params(("id" = String, Path)),
    responses((status = 200, body = ConversionQuote), (status = 404, body = ErrorBody)),
    security(("secret_key" = [])))]
pub async fn retrieve_quote(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    Path(id): Path<String>,
) -> HttpResult<Json<ConversionQuote>> {
    Ok(Json(state.gateway.conversion_quote(&context, &id).await?))
}
