//! Security controls at the edge: rate limits per source address and per
//! credential (API key or operator token), and the operator API's address
//! allow-list.
//!
//! - [`limit_by_source`] (middleware on every route but `/healthz`,
//!   `/readyz`, `/metrics` and provider callbacks under `/v1/hooks/`, which
//!   are limited per provider account instead): one bucket per client
//!   address (IPv4
//!   address, IPv6 /64 network) from the connection's peer address.
//! - [`limit_credential`]: called by the `Merchant` and `Operator`
//!   extractors right after authentication, so every authenticated route
//!   is limited per credential and none can forget it.
//! - [`check_operator_source`]: the `Operator` extractor refuses callers
//!   outside `operator_allowed_ips` before looking at the token.
//! - [`check_key_source`]: the `Merchant` extractors refuse callers outside
//!   the API key's own `allowed_ips` (optional, per key), after
//!   authentication and before the key's rate limit.
//!
//! A refused request answers 429 with the standard error body (type
//! `rate_limit_error`, code `rate_limited`) and `Retry-After` in whole
//! seconds (at least 1). Every limited response carries
//! `RateLimit-Limit` (the bucket size) and `RateLimit-Remaining` of the
//! tightest bucket the request went through. The middleware is the one
//! place that writes these headers: the extractors leave their decision
//! in a slot the middleware put in the request.

use crate::AppState;
use crate::error::api_error_response;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Extensions, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use malipo_gateway::auth::MerchantContext;
use malipo_gateway::{ApiError, ErrorKind};
use malipo_hooks::IpAllowList;
use malipo_ratelimit::{Decision, Quota, RateLimiter};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

/// Probes and metrics scrapes must keep working while clients are limited.
pub const RATE_LIMIT_EXEMPT_PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// Provider callbacks are not limited per address: a provider sends every
/// merchant's callbacks from a few addresses, and a refused callback may
/// never be sent again. They have their own limit per provider account, and
/// their own checks (signature, source allow-list) in the inbound path.
pub const RATE_LIMIT_EXEMPT_PREFIXES: [&str; 1] = ["/v1/hooks/"];

pub const RATE_LIMIT_LIMIT_HEADER: &str = "ratelimit-limit";
pub const RATE_LIMIT_REMAINING_HEADER: &str = "ratelimit-remaining";

/// The security settings the HTTP layer enforces.
#[derive(Debug, Clone)]
pub struct Security {
    /// Where buckets live (this process, or Redis for several nodes).
    pub limiter: RateLimiter,
    /// Per API key or operator token; `None` disables.
    pub per_key: Option<Quota>,
    /// Per client address; `None` disables.
    pub per_ip: Option<Quota>,
    /// Addresses allowed to use the operator API; empty allows any.
    pub operator_allowed_ips: IpAllowList,
}

/// The decision an extractor took, for the middleware to report.
#[derive(Debug, Clone, Default)]
struct CredentialDecision(Arc<Mutex<Option<Decision>>>);

impl CredentialDecision {
    fn put(&self, decision: Decision) {
        *self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(decision);
    }

    fn take(&self) -> Option<Decision> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
    }
}

/// The client's address, from the connection (the server is started with
/// connect info). `None` when the router runs without a socket (in-process
/// tests): such requests are not limited per address, and are refused by a
/// non-empty operator allow-list.
pub fn peer_ip(extensions: &Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip().to_canonical())
}

/// One bucket per IPv4 address and per IPv6 /64 (a single host usually
/// holds a whole /64, so per-address buckets would be free to multiply).
pub fn ip_bucket(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => format!("ip:{v4}"),
        IpAddr::V6(v6) => {
            let network = u128::from(v6) & (u128::MAX << 64);
            format!("ip:{}/64", std::net::Ipv6Addr::from(network))
        }
    }
}

fn rate_limited(who: &str, quota: Quota, decision: &Decision) -> ApiError {
    ApiError::new(
        ErrorKind::RateLimit,
        "rate_limited",
        format!(
            "too many requests {who}: the limit is {} per second with bursts of {}; retry after {} s",
            quota.per_second(),
            quota.burst(),
            decision.retry_after_seconds()
        ),
    )
}

fn set_headers(response: &mut Response, decision: &Decision) {
    let headers = response.headers_mut();
    headers.insert(RATE_LIMIT_LIMIT_HEADER, HeaderValue::from(decision.limit));
    headers.insert(
        RATE_LIMIT_REMAINING_HEADER,
        HeaderValue::from(decision.remaining),
    );
    if !decision.allowed {
        headers.insert(
            axum::http::header::RETRY_AFTER,
            HeaderValue::from(decision.retry_after_seconds()),
        );
    }
}

/// Middleware: the per-address limit, then the route, then the rate-limit
/// headers of the tightest bucket (the address's or the credential's).
pub async fn limit_by_source(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if RATE_LIMIT_EXEMPT_PATHS.contains(&path)
        || RATE_LIMIT_EXEMPT_PREFIXES
            .iter()
            .any(|prefix| path.starts_with(prefix))
    {
        return next.run(request).await;
    }
    let security = &state.security;
    let mut source_decision = None;
    if let (Some(quota), Some(ip)) = (security.per_ip, peer_ip(request.extensions())) {
        let decision = security.limiter.check(&ip_bucket(ip), quota).await;
        if !decision.allowed {
            metrics::counter!("malipo_rate_limit_rejections_total", "scope" => "ip").increment(1);
            let mut response =
                api_error_response(&rate_limited(&format!("from {ip}"), quota, &decision));
            set_headers(&mut response, &decision);
            return response;
        }
        source_decision = Some(decision);
    }
    let slot = CredentialDecision::default();
    request.extensions_mut().insert(slot.clone());
    let mut response = next.run(request).await;
    let tightest = match (source_decision, slot.take()) {
        (Some(source), Some(credential)) => {
            if !credential.allowed || credential.remaining < source.remaining {
                Some(credential)
            } else {
                Some(source)
            }
        }
        (source, credential) => credential.or(source),
    };
    if let Some(decision) = tightest {
        set_headers(&mut response, &decision);
    }
    response
}

/// The per-credential limit, for an authenticated caller whose bucket is
/// `bucket` (`key:<key id>` or `operator:<token id>`).
pub async fn limit_credential(
    state: &AppState,
    extensions: &Extensions,
    bucket: &str,
    who: &str,
) -> Result<(), ApiError> {
    let security = &state.security;
    let Some(quota) = security.per_key else {
        return Ok(());
    };
    let decision = security.limiter.check(bucket, quota).await;
    if let Some(slot) = extensions.get::<CredentialDecision>() {
        slot.put(decision);
    }
    if decision.allowed {
        Ok(())
    } else {
        metrics::counter!("malipo_rate_limit_rejections_total", "scope" => "key").increment(1);
        Err(rate_limited(who, quota, &decision))
    }
}

/// Refuses a merchant request from outside its API key's `allowed_ips`
/// (keys without a list are accepted from anywhere). Called right after
/// the key is authenticated and before its rate limit, so requests the key
/// would refuse don't spend its owner's budget. The answer names the
/// caller's own address, never the key or its list.
pub fn check_key_source(
    context: &MerchantContext,
    extensions: &Extensions,
) -> Result<(), ApiError> {
    if context.allowed_ips.is_empty() {
        return Ok(());
    }
    let ip = peer_ip(extensions);
    if ip.is_some_and(|ip| context.allowed_ips.contains(ip)) {
        return Ok(());
    }
    let source = ip.map_or_else(|| "an unknown address".to_owned(), |ip| ip.to_string());
    tracing::warn!(
        api_key = %context.key_id,
        source = %source,
        "merchant request refused: address not in the API key's allowed_ips"
    );
    metrics::counter!("malipo_api_key_ip_refusals_total").increment(1);
    Err(ApiError::new(
        ErrorKind::Permission,
        "api_key_ip_not_allowed",
        format!(
            "this API key does not accept requests from {source}: it is not in the key's `allowed_ips`"
        ),
    ))
}

/// Refuses operator requests from outside `operator_allowed_ips`.
pub fn check_operator_source(state: &AppState, extensions: &Extensions) -> Result<(), ApiError> {
    let allowed = &state.security.operator_allowed_ips;
    if allowed.is_empty() {
        return Ok(());
    }
    let ip = peer_ip(extensions);
    if ip.is_some_and(|ip| allowed.contains(ip)) {
        return Ok(());
    }
    let source = ip.map_or_else(|| "an unknown address".to_owned(), |ip| ip.to_string());
    tracing::warn!(source = %source, "operator request refused: address not in operator_allowed_ips");
    metrics::counter!("malipo_operator_ip_refusals_total").increment(1);
    Err(ApiError::new(
        ErrorKind::Permission,
        "operator_ip_not_allowed",
        format!(
            "the operator API does not accept requests from {source}: it is not in `operator_allowed_ips`"
        ),
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_share_a_bucket_per_64() {
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        assert_eq!(ip_bucket(ip("192.0.2.7")), "ip:192.0.2.7");
        assert_eq!(ip_bucket(ip("::ffff:192.0.2.7")), "ip:192.0.2.7");
        assert_eq!(
            ip_bucket(ip("2001:db8:1:2:3:4:5:6")),
            ip_bucket(ip("2001:db8:1:2:ffff::1"))
        );
        assert_eq!(ip_bucket(ip("2001:db8:1:2::9")), "ip:2001:db8:1:2::/64");
        assert_ne!(
            ip_bucket(ip("2001:db8:1:2::1")),
            ip_bucket(ip("2001:db8:1:3::1"))
        );
    }
}
