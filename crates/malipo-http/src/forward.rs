//! Forwarding a book's commands to the node that owns the book
//! (docs/trading.md, "Several nodes"; ownership is
//! `malipo_gateway::ownership`).
//!
//! A node that receives an order or a cancel for a book another node holds
//! a live lease of sends the merchant's own request there: the same method,
//! path, body, `Authorization` and `Idempotency-Key`, plus
//! `Malipo-Forwarded-By` naming this node. The owner authenticates the key
//! and honours the Idempotency-Key as if the merchant had called it, and
//! its answer (status, body, `Malipo-Node`) goes back unchanged. A request
//! that carries `Malipo-Forwarded-By` is never forwarded again, so a lease
//! that moved meanwhile cannot make it loop: it runs where it is, which the
//! book's row lock makes as correct as anywhere.
//!
//! When the owner can't be reached (the connection is refused or not made
//! within the timeout: the request was never sent), the command runs here.
//! When it was sent but no answer came in time, it may have run on the
//! owner: with an Idempotency-Key it runs here (the key makes a second run
//! answer the first one's result), without one the answer is a 503
//! `owner_unavailable` asking for a retry with a key, never a possible
//! double order. A key restricted to some addresses (`allowed_ips`) is
//! never forwarded: the owner would see this node's address, not the
//! merchant's.

use crate::AppState;
use crate::error::HttpError;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use malipo_gateway::auth::MerchantContext;
use malipo_gateway::ownership::BookRoute;
use malipo_gateway::{ApiError, ErrorKind};

/// Names the node that ran a trading command, on its answer.
pub const NODE_HEADER: &str = "malipo-node";
/// Marks a forwarded request with the node that forwarded it.
pub const FORWARDED_BY_HEADER: &str = "malipo-forwarded-by";

/// The request headers that travel with a forwarded command.
const FORWARDED_REQUEST_HEADERS: [&str; 3] = ["authorization", "idempotency-key", "content-type"];
/// The answer's headers that come back from the owner.
const FORWARDED_RESPONSE_HEADERS: [&str; 3] = ["content-type", NODE_HEADER, "idempotent-replayed"];

/// The owner's answer when the command for `pair_id` belongs to another
/// node and could be forwarded; `None` when it runs here.
pub(crate) async fn to_owner(
    state: &AppState,
    context: &MerchantContext,
    headers: &HeaderMap,
    uri: &Uri,
    body: &[u8],
    pair_id: Option<&str>,
) -> Option<Response> {
    if headers.contains_key(FORWARDED_BY_HEADER) || !context.allowed_ips.is_empty() {
        return None;
    }
    let pair_id = pair_id?;
    let route = match state.gateway.book_route(pair_id, context.livemode()).await {
        Ok(route) => route,
        Err(error) => {
            tracing::warn!(error = %error.chain(), "book ownership unknown; running the command here");
            return None;
        }
    };
    let BookRoute::Remote { node_id, url } = route else {
        return None;
    };
    let path = uri
        .path_and_query()
        .map_or(uri.path(), |path| path.as_str());
    let mut request = state
        .forward_client
        .post(format!("{url}{path}"))
        .header(FORWARDED_BY_HEADER, state.gateway.node_id())
        .body(body.to_vec());
    for name in FORWARDED_REQUEST_HEADERS {
        if let Some(value) = headers.get(name) {
            request = request.header(name, value.as_bytes());
        }
    }
    let sent = request.send().await;
    let answer = match sent {
        Ok(response) => {
            let status = response.status().as_u16();
            let returned: Vec<(String, Vec<u8>)> = FORWARDED_RESPONSE_HEADERS
                .iter()
                .filter_map(|name| {
                    response
                        .headers()
                        .get(*name)
                        .map(|value| ((*name).to_owned(), value.as_bytes().to_vec()))
                })
                .collect();
            response
                .bytes()
                .await
                .map(|bytes| (status, returned, bytes))
        }
        Err(error) => Err(error),
    };
    match answer {
        Ok((status, returned, bytes)) => {
            metrics::counter!("malipo_trading_forwarded_total", "outcome" => "answered")
                .increment(1);
            let mut response = Response::new(Body::from(bytes));
            *response.status_mut() = axum::http::StatusCode::from_u16(status)
                .unwrap_or(axum::http::StatusCode::BAD_GATEWAY);
            for (name, value) in returned {
                if let (Ok(name), Ok(value)) = (
                    HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_bytes(&value),
                ) {
                    response.headers_mut().insert(name, value);
                }
            }
            Some(response)
        }
        Err(error) if error.is_connect() => {
            metrics::counter!("malipo_trading_forwarded_total", "outcome" => "unreachable")
                .increment(1);
            tracing::warn!(owner = %node_id, %url, %error,
                "the book's owner is unreachable; running the command here (its lease will expire)");
            None
        }
        Err(error) => {
            metrics::counter!("malipo_trading_forwarded_total", "outcome" => "unanswered")
                .increment(1);
            tracing::warn!(owner = %node_id, %url, %error, "the book's owner did not answer a forwarded command");
            if headers.contains_key("idempotency-key") {
                return None;
            }
            Some(
                HttpError::from(ApiError::new(
                    ErrorKind::ServiceUnavailable,
                    "owner_unavailable",
                    "the node that runs this book did not answer in time; the command may \
                         have run: retry with an Idempotency-Key to get its result exactly once",
                ))
                .into_response(),
            )
        }
    }
}

/// Names this node on an answer it computed.
pub(crate) fn mark_node(state: &AppState, response: &mut Response) {
    if let Ok(value) = HeaderValue::from_str(state.gateway.node_id()) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(NODE_HEADER), value);
    }
}
