//! The gateway's one error type.
//!
//! [`ApiError`] is what a caller may see: a kind, a stable code, a message
//! and the offending parameter. The HTTP layer maps each [`ErrorKind`] to a
//! status code; nothing below it knows status codes. Everything else is
//! [`GatewayError::Internal`]: logged with its cause chain, opaque to callers.

use malipo_store::StoreError;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Malformed or invalid input.
    InvalidRequest,
    /// No such object (for this merchant and mode).
    NotFound,
    /// The object's state forbids the request (e.g. refund a failed payment).
    Conflict,
    Authentication,
    Permission,
    /// The same Idempotency-Key with a different request.
    IdempotencyMismatch,
    /// The same Idempotency-Key while the first request is still running.
    IdempotencyInFlight,
    RateLimit,
    /// The request body is larger than the configured limit.
    PayloadTooLarge,
    /// The provider declined or could not take the request.
    Payment,
    /// The provider could not be reached; safe to retry.
    ProviderUnavailable,
    /// A dependency Malipo needs (a fresh exchange rate) is not there now;
    /// safe to retry later.
    ServiceUnavailable,
}

/// An error the caller is told about in full.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub kind: ErrorKind,
    /// Stable, machine-readable, e.g. `parameter_invalid`, `resource_missing`.
    pub code: String,
    pub message: String,
    /// The request field to blame, e.g. `amount`, `metadata[order]`.
    pub param: Option<String>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            code: code.into(),
            message: message.into(),
            param: None,
        }
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// A field has a value we can't accept.
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::new(ErrorKind::InvalidRequest, "parameter_invalid", message).with_param(param)
    }

    /// A required field is missing.
    pub fn missing(param: &str) -> Self {
        ApiError::new(
            ErrorKind::InvalidRequest,
            "parameter_missing",
            format!("missing required parameter `{param}`"),
        )
        .with_param(param)
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        ApiError::new(
            ErrorKind::NotFound,
            "resource_missing",
            format!("no such {what}: `{id}`"),
        )
        .with_param("id")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<StoreError> for GatewayError {
    fn from(error: StoreError) -> Self {
        GatewayError::Internal(Box::new(error))
    }
}

impl GatewayError {
    pub fn internal(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        GatewayError::Internal(Box::new(error))
    }

    /// The error and its causes, for logs.
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }
}

pub type GatewayResult<T> = Result<T, GatewayError>;
