//! The one mapping from gateway errors to HTTP responses.
//!
//! Every error answers `{"error": {"type", "code", "message", "param"}}`.
//! 4xx errors say exactly what was wrong; 5xx errors are opaque to the caller
//! and logged with their cause chain (the log line carries the request id
//! from the surrounding span).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use malipo_gateway::{ApiError, ErrorKind, GatewayError};
use serde::Serialize;
use utoipa::ToSchema;

/// The error envelope.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// `invalid_request_error`, `authentication_error`, `permission_error`,
    /// `idempotency_error`, `rate_limit_error`, `payment_error` or `api_error`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub code: String,
    pub message: String,
    pub param: Option<String>,
}

/// The status and public type of each kind of error.
pub fn status_and_type(kind: ErrorKind) -> (StatusCode, &'static str) {
    match kind {
        ErrorKind::InvalidRequest => (StatusCode::BAD_REQUEST, "invalid_request_error"),
        ErrorKind::NotFound => (StatusCode::NOT_FOUND, "invalid_request_error"),
        ErrorKind::Conflict => (StatusCode::CONFLICT, "invalid_request_error"),
        ErrorKind::Authentication => (StatusCode::UNAUTHORIZED, "authentication_error"),
        ErrorKind::Permission => (StatusCode::FORBIDDEN, "permission_error"),
        ErrorKind::IdempotencyMismatch => (StatusCode::BAD_REQUEST, "idempotency_error"),
        ErrorKind::IdempotencyInFlight => (StatusCode::CONFLICT, "idempotency_error"),
        ErrorKind::RateLimit => (StatusCode::TOO_MANY_REQUESTS, "rate_limit_error"),
        ErrorKind::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "invalid_request_error"),
        ErrorKind::Payment => (StatusCode::PAYMENT_REQUIRED, "payment_error"),
        ErrorKind::ProviderUnavailable => (StatusCode::BAD_GATEWAY, "api_error"),
        ErrorKind::ServiceUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "api_error"),
    }
}

pub fn api_error_response(error: &ApiError) -> Response {
    let (status, kind) = status_and_type(error.kind);
    let body = ErrorBody {
        error: ErrorDetail {
            kind,
            code: error.code.clone(),
            message: error.message.clone(),
            param: error.param.clone(),
        },
    };
    (status, Json(body)).into_response()
}

/// A handler's error: either a gateway error or one the HTTP layer found
/// itself (bad JSON, bad header).
#[derive(Debug)]
pub struct HttpError(pub GatewayError);

impl From<GatewayError> for HttpError {
    fn from(error: GatewayError) -> Self {
        HttpError(error)
    }
}

impl From<ApiError> for HttpError {
    fn from(error: ApiError) -> Self {
        HttpError(GatewayError::Api(error))
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        match &self.0 {
            GatewayError::Api(error) => api_error_response(error),
            GatewayError::Internal(_) => {
                tracing::error!(error = %self.0.chain(), "request failed");
                let body = ErrorBody {
                    error: ErrorDetail {
                        kind: "api_error",
                        code: "internal_error".into(),
                        message: "An internal error occurred. Quote the Request-Id header when contacting support."
                            .into(),
                        param: None,
                    },
                };
                (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
            }
        }
    }
}

pub type HttpResult<T> = Result<T, HttpError>;
