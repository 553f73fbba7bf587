//! Malipo's HTTP API: axum routers, authentication extractors, the one
//! error-to-HTTP mapping, the Idempotency-Key wrapper, OpenAPI and metrics.
//!
//! - [`router`]: every route, with its layers (request id, tracing, body
//!   limit, timeout, panic catching, metrics).
//! - [`extract`]: `Merchant` / `Operator` authentication, `JsonBody` and
//!   `QueryParams` that name the offending field, pagination.
//! - [`error`]: `ErrorKind` -> status code and public error type.
//! - `routes`: one module per resource.
//! - [`openapi`]: the OpenAPI 3.1 document served at `/openapi.json`, with a
//!   docs UI at `/docs` whose assets are compiled in (works offline).
//!
//! Architecture invariant: this is the only crate that knows HTTP status
//! codes; handlers parse, call one gateway method, and serialize.

pub mod error;
pub mod extract;
mod idempotent;
pub mod openapi;
mod routes;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use malipo_gateway::{ApiError, ErrorKind, Gateway};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub gateway: Gateway,
    pub body_limit_bytes: usize,
    pub metrics: PrometheusHandle,
}

/// Limits of the HTTP layer.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Larger request bodies are refused with 400 `body_too_large`.
    pub body_limit_bytes: usize,
    /// A request running longer is answered 503.
    pub request_timeout_ms: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            body_limit_bytes: 64 * 1024,
            request_timeout_ms: 30_000,
        }
    }
}

/// The process-wide Prometheus recorder (installed once; every app in the
/// process, e.g. in tests, shares it).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder was installed first; metrics
            // then go there and ours stays empty, which is harmless.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

pub const REQUEST_ID_HEADER: &str = "request-id";

#[derive(Clone, Copy)]
struct MakeMalipoRequestId;

impl MakeRequestId for MakeMalipoRequestId {
    fn make_request_id<B>(&mut self, _request: &axum::http::Request<B>) -> Option<RequestId> {
        let id = malipo_core::id::new_id(malipo_core::id::IdKind::Request);
        axum::http::HeaderValue::from_str(&id)
            .ok()
            .map(RequestId::new)
    }
}

async fn record_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("malipo_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("malipo_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

async fn not_found() -> Response {
    error::api_error_response(&ApiError::new(
        ErrorKind::NotFound,
        "route_missing",
        "no such route",
    ))
}

/// The whole API.
pub fn router(gateway: Gateway, config: &HttpConfig) -> Router {
    let state = AppState {
        gateway,
        body_limit_bytes: config.body_limit_bytes,
        metrics: metrics_handle(),
    };
    let request_id = HeaderName::from_static(REQUEST_ID_HEADER);
    Router::new()
        .merge(routes::payments::router())
        .merge(routes::refunds::router())
        .merge(routes::balance::router())
        .merge(routes::api_keys::router())
        .merge(routes::webhooks::router())
        .merge(routes::hooks::router())
        .merge(routes::admin::router())
        .merge(routes::system::router())
        .merge(openapi::router())
        .fallback(not_found)
        .route_layer(middleware::from_fn(record_metrics))
        .layer(DefaultBodyLimit::max(config.body_limit_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_millis(config.request_timeout_ms),
        ))
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("a request handler panicked");
            error::HttpError(malipo_gateway::GatewayError::Internal("handler panicked".into())).into_response()
        }))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
            let request_id = request
                .headers()
                .get(REQUEST_ID_HEADER)
                .and_then(|value| value.to_str().ok())
                .unwrap_or("")
                .to_owned();
            tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), %request_id)
        }))
        .layer(SetRequestIdLayer::new(request_id, MakeMalipoRequestId))
        .with_state(state)
}
