//! Runs a POST under its Idempotency-Key (see `malipo_gateway::idempotency`).

use crate::AppState;
use crate::error::{HttpError, api_error_response};
use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use malipo_gateway::auth::MerchantContext;
use malipo_gateway::idempotency::{IdempotencyGuard, IdempotencyStart, request_hash};
use malipo_gateway::{ApiError, GatewayError, GatewayResult};
use serde::Serialize;
use std::future::Future;

pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// Set on a response that replays the first response to a key.
pub const IDEMPOTENT_REPLAYED_HEADER: &str = "idempotent-replayed";

/// The request as the idempotency hash sees it.
pub struct RequestIdentity<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub body: &'a [u8],
}

pub async fn idempotent<T, F, Fut>(
    state: &AppState,
    context: &MerchantContext,
    headers: &HeaderMap,
    request: RequestIdentity<'_>,
    run: F,
) -> Response
where
    T: Serialize,
    F: FnOnce(Option<IdempotencyGuard>) -> Fut,
    Fut: Future<Output = GatewayResult<T>>,
{
    let guard = match headers.get(IDEMPOTENCY_KEY_HEADER) {
        None => None,
        Some(value) => {
            let Ok(key) = value.to_str() else {
                return api_error_response(&ApiError::invalid(
                    "Idempotency-Key",
                    "the Idempotency-Key must be ASCII",
                ));
            };
            let hash = request_hash(request.method, request.path, request.body);
            match state.gateway.idempotency_begin(context, key, hash).await {
                Ok(IdempotencyStart::Proceed(guard)) => Some(guard),
                Ok(IdempotencyStart::Replay(stored)) => return replay(stored.ok, stored.body),
                Err(error) => return HttpError(error).into_response(),
            }
        }
    };
    match run(guard.clone()).await {
        Ok(value) => Json(value).into_response(),
        Err(GatewayError::Api(error)) => {
            if let Some(guard) = &guard
                && let Err(store_error) = state.gateway.idempotency_fail(guard, &error).await
            {
                tracing::error!(error = %store_error.chain(), "could not store an idempotent error response");
            }
            api_error_response(&error)
        }
        Err(internal) => {
            if let Some(guard) = &guard
                && let Err(store_error) = state.gateway.idempotency_release(guard).await
            {
                tracing::error!(error = %store_error.chain(), "could not release an idempotency key");
            }
            HttpError(internal).into_response()
        }
    }
}

fn replay(ok: bool, body: String) -> Response {
    let mut response = if ok {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    } else {
        match serde_json::from_str::<ApiError>(&body) {
            Ok(error) => api_error_response(&error),
            Err(error) => HttpError(GatewayError::internal(error)).into_response(),
        }
    };
    response
        .headers_mut()
        .insert(IDEMPOTENT_REPLAYED_HEADER, HeaderValue::from_static("true"));
    response
}
