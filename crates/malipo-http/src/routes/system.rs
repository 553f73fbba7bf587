//! `/healthz`, `/readyz`, `/metrics`: for load balancers and Prometheus.

use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// The process is up.
async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// The process can serve: its database answers.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.gateway.store().ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({"status": "ready", "database": state.gateway.store().backend_name()})),
        ),
        Err(error) => {
            tracing::warn!(%error, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "database": "unreachable"})),
            )
        }
    }
}

/// Prometheus text format: request counts and latency by route, payments
/// by status, ledger transfers.
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    if let Ok(mut reader) = state.gateway.store().reader().await
        && let Ok(counts) = reader.conn().payment_counts_by_status().await
    {
        for (status, count) in counts {
            metrics::gauge!("malipo_payments_by_status", "status" => status).set(count as f64);
        }
    }
    (
        [("content-type", "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
