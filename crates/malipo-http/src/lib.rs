//! Malipo's HTTP API: axum routers, authentication extractors, the one
//! error-to-HTTP mapping, the Idempotency-Key wrapper, OpenAPI and metrics.
//!
//! - [`router`]: every route, with its layers (request id, tracing, body
//!   limit, timeout, panic catching, metrics, rate limits).
//! - [`extract`]: `Merchant` / `Operator` authentication (with the
//!   per-credential rate limit and the operator allow-list), `JsonBody` and
//!   `QueryParams` that name the offending field, pagination.
//! - [`security`]: rate limits per address and per credential, the
//!   operator API's address allow-list.
//! - [`error`]: `ErrorKind` -> status code and public error type.
//! - `routes`: one module per resource.
//! - [`openapi`]: the OpenAPI 3.1 document served at `/openapi.json`, with a
//!   docs UI at `/docs` whose assets are compiled in (works offline).
//!
//! Architecture invariant: this is the only crate that knows HTTP status
//! codes; handlers parse, call one gateway method, and serialize.

pub mod error;
pub mod extract;
pub mod forward;
mod idempotent;
pub mod openapi;
mod routes;
pub mod security;

pub use malipo_hooks::IpAllowList;
pub use malipo_ratelimit::{
    BURST_MAX, PER_SECOND_MAX, Quota, QuotaError, RateLimiter, RedisOptions,
};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use malipo_gateway::{ApiError, ErrorKind, Gateway};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use security::Security;
use std::sync::{Arc, OnceLock};
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
    pub security: Arc<Security>,
    /// Forwards a book's commands to the node that owns it (`forward.rs`).
    pub forward_client: reqwest::Client,
}

/// Limits of the HTTP layer.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Larger request bodies are refused with 413 `body_too_large`.
    pub body_limit_bytes: usize,
    /// A request running longer is answered 503.
    pub request_timeout_ms: u64,
    /// Requests per API key or operator token; `None` disables.
    pub rate_limit_per_key: Option<Quota>,
    /// Requests per client address (IPv6: per /64); `None` disables.
    pub rate_limit_per_ip: Option<Quota>,
    /// Where the buckets live: this process, or Redis shared by every node.
    pub rate_limiter: RateLimiter,
    /// Addresses and CIDR blocks allowed to use `/v1/admin/…`; empty
    /// allows any address.
    pub operator_allowed_ips: IpAllowList,
}

/// Default sustained requests per second per API key or operator token
/// (Stripe allows 100 read and write operations per second in live mode).
pub const RATE_LIMIT_PER_KEY_PER_SECOND_DEFAULT: u32 = 100;
/// Default sustained requests per second per client address: above the
/// per-key rate, so one server using a few keys is limited by its keys.
pub const RATE_LIMIT_PER_IP_PER_SECOND_DEFAULT: u32 = 200;
/// Default bucket size of both limits: two seconds of traffic at once.
pub const RATE_LIMIT_BURST_DEFAULT: u32 = 200;

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            body_limit_bytes: 64 * 1024,
            request_timeout_ms: 30_000,
            rate_limit_per_key: Quota::new(
                RATE_LIMIT_PER_KEY_PER_SECOND_DEFAULT,
                RATE_LIMIT_BURST_DEFAULT,
            )
            .ok(),
            rate_limit_per_ip: Quota::new(
                RATE_LIMIT_PER_IP_PER_SECOND_DEFAULT,
                RATE_LIMIT_BURST_DEFAULT,
            )
            .ok(),
            rate_limiter: RateLimiter::in_process(),
            operator_allowed_ips: IpAllowList::default(),
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

/// Gives the standard error body to the error responses the framework
/// makes itself, which have none or plain text: a path parameter it cannot
/// decode (400), a method the route does not take (405), a raw body past
/// the limit (413), a timeout (503). Their status and headers are kept.
async fn standard_error_body(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let said = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let said = String::from_utf8_lossy(&said).trim().to_owned();
    let (kind, code, message) = match status {
        StatusCode::METHOD_NOT_ALLOWED => (
            "invalid_request_error",
            "method_not_allowed",
            "this route does not take this HTTP method".to_owned(),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "invalid_request_error",
            "body_too_large",
            "the request body is larger than the limit".to_owned(),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "invalid_request_error",
            "content_type_unsupported",
            "send the body as `Content-Type: application/json`".to_owned(),
        ),
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::REQUEST_TIMEOUT => (
            "api_error",
            "request_timeout",
            "the request took too long; it may or may not have completed: retry with the same Idempotency-Key".to_owned(),
        ),
        status if status.is_server_error() => (
            "api_error",
            "internal_error",
            "An internal error occurred. Quote the Request-Id header when contacting support.".to_owned(),
        ),
        _ => (
            "invalid_request_error",
            "request_invalid",
            if said.is_empty() {
                "the request could not be read".to_owned()
            } else {
                said
            },
        ),
    };
    let body = error::ErrorBody {
        error: error::ErrorDetail {
            kind,
            code: code.to_owned(),
            message,
            param: None,
        },
    };
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    let fresh = axum::Json(body).into_response();
    for (name, value) in fresh.headers() {
        parts.headers.insert(name, value.clone());
    }
    Response::from_parts(parts, fresh.into_body())
}

async fn not_found() -> Response {
    error::api_error_response(&ApiError::new(
        ErrorKind::NotFound,
        "route_missing",
        "no such route",
    ))
}

/// The client that forwards commands to a book's owner: no redirects, the
/// node's forward timeout, and at most a second (or that timeout) to
/// connect, so a dead owner is found out quickly.
fn forward_client(gateway: &Gateway) -> reqwest::Client {
    let timeout_ms = gateway.config().node.forward_timeout_ms;
    malipo_gateway::install_crypto_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_millis(timeout_ms))
        .connect_timeout(std::time::Duration::from_millis(timeout_ms.min(1_000)))
        .user_agent(concat!("Malipo/", env!("CARGO_PKG_VERSION"), " (+forward)"))
        .build()
        .unwrap_or_default()
}

/// The whole API.
pub fn router(gateway: Gateway, config: &HttpConfig) -> Router {
    let forward_client = forward_client(&gateway);
    let state = AppState {
        gateway,
        body_limit_bytes: config.body_limit_bytes,
        metrics: metrics_handle(),
        security: Arc::new(Security {
            limiter: config.rate_limiter.clone(),
            per_key: config.rate_limit_per_key,
            per_ip: config.rate_limit_per_ip,
            operator_allowed_ips: config.operator_allowed_ips.clone(),
        }),
        forward_client,
    };
    let request_id = HeaderName::from_static(REQUEST_ID_HEADER);
    Router::new()
        .merge(routes::payments::router())
        .merge(routes::refunds::router())
        .merge(routes::payouts::router())
        .merge(routes::balance::router())
        .merge(routes::api_keys::router())
        .merge(routes::webhooks::router())
        .merge(routes::hooks::router())
        .merge(routes::admin::router())
        .merge(routes::vouchers::router())
        .merge(routes::bank::router())
        .merge(routes::customers::router())
        .merge(routes::trading::router())
        .merge(routes::desk::router())
        .merge(routes::conversions::router())
        .merge(routes::pools::router())
        .merge(routes::stream::router())
        .merge(routes::system::router())
        .merge(openapi::router())
        .fallback(not_found)
        .route_layer(middleware::from_fn(record_metrics))
        // Inside the request-id layers, so a 429 carries its Request-Id.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            security::limit_by_source,
        ))
        .layer(DefaultBodyLimit::max(config.body_limit_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_millis(config.request_timeout_ms),
        ))
        .layer(middleware::from_fn(standard_error_body))
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
