//! Rate limits for Malipo: token buckets named by the caller (an API key, a
//! source address), with a rate and a burst per bucket.
//!
//! - [`gcra`]: the pure bucket logic (GCRA, a token bucket stored as one
//!   timestamp), unit-tested with an explicit clock.
//! - [`LocalBuckets`]: buckets in this process, bounded in memory.
//! - [`RedisOptions`]: buckets shared by every node in Redis, decided by one
//!   atomic Lua script ([`GCRA_SCRIPT`]) per request, on Redis's clock.
//! - [`RateLimiter`]: what the HTTP layer calls; Redis when configured, this
//!   process otherwise.
//!
//! **When Redis is configured but fails** (down, slow past its timeout,
//! answering nonsense), requests are never refused because of it: the
//! limiter logs a warning (once per outage), counts
//! `malipo_rate_limit_backend_errors_total`, sets
//! `malipo_rate_limit_redis_up` to 0, and decides in process instead for
//! the next [`REDIS_RETRY_AFTER_FAILURE`] before it tries Redis again. So
//! it fails open with respect to Redis, yet each node still enforces the
//! limits on the traffic it sees: never stricter than the shared limit
//! (a node sees at most all of a bucket's traffic), at worst as loose as
//! the limit times the number of nodes. Refusing every request while Redis
//! is down would turn a cache outage into a payment outage.

pub mod gcra;
mod local;
mod redis_backend;

pub use gcra::{BURST_MAX, Decision, PER_SECOND_MAX, Quota, QuotaError};
pub use local::{LOCAL_BUCKETS_MAX, LocalBuckets};
pub use redis_backend::{GCRA_SCRIPT, RedisOptions};

use redis_backend::RedisBuckets;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// After a Redis failure, requests are decided in process this long before
/// Redis is tried again (so a dead Redis costs one timeout per node per
/// period, not one per request).
pub const REDIS_RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// Why a limiter could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RateLimitError {
    /// The message names the setting; the URL itself (it may hold a
    /// password) is never repeated.
    #[error("`redis_url` is not usable: {0}")]
    RedisUrl(String),
}

/// Decides requests against named buckets. Cheap to clone; clones share
/// their buckets.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    local: LocalBuckets,
    redis: Option<SharedBuckets>,
}

#[derive(Debug)]
struct SharedBuckets {
    buckets: RedisBuckets,
    /// On the local clock: Redis is skipped until then (after a failure).
    skip_until_us: AtomicU64,
    /// Whether the last attempt failed (to log an outage once, and its end).
    failing: AtomicBool,
}

impl RateLimiter {
    /// Buckets in this process only.
    pub fn in_process() -> RateLimiter {
        RateLimiter {
            inner: Arc::new(Inner {
                local: LocalBuckets::default(),
                redis: None,
            }),
        }
    }

    /// Buckets in Redis, shared by every node using the same URL and key
    /// prefix. Connects lazily (a gateway starts while Redis is down); must
    /// be called inside a Tokio runtime.
    pub fn with_redis(options: &RedisOptions) -> Result<RateLimiter, RateLimitError> {
        let buckets = RedisBuckets::new(options)
            .map_err(|error| RateLimitError::RedisUrl(error.to_string()))?;
        metrics::gauge!("malipo_rate_limit_redis_up").set(1.0);
        Ok(RateLimiter {
            inner: Arc::new(Inner {
                local: LocalBuckets::default(),
                redis: Some(SharedBuckets {
                    buckets,
                    skip_until_us: AtomicU64::new(0),
                    failing: AtomicBool::new(false),
                }),
            }),
        })
    }

    /// `redis` or `in_process`.
    pub fn backend_name(&self) -> &'static str {
        if self.inner.redis.is_some() {
            "redis"
        } else {
            "in_process"
        }
    }

    /// Decides one request for `bucket` (e.g. `key:key_…`, `ip:10.0.0.1`).
    pub async fn check(&self, bucket: &str, quota: Quota) -> Decision {
        let local = &self.inner.local;
        let Some(shared) = &self.inner.redis else {
            return local.check(bucket, quota);
        };
        let now = local.now_us();
        if now < shared.skip_until_us.load(Ordering::Relaxed) {
            return local.check(bucket, quota);
        }
        match shared.buckets.check(bucket, quota).await {
            Ok(decision) => {
                if shared.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("Redis answers again: rate limits are shared across nodes");
                    metrics::gauge!("malipo_rate_limit_redis_up").set(1.0);
                }
                decision
            }
            Err(error) => {
                metrics::counter!("malipo_rate_limit_backend_errors_total").increment(1);
                let retry_us =
                    u64::try_from(REDIS_RETRY_AFTER_FAILURE.as_micros()).unwrap_or(u64::MAX);
                shared
                    .skip_until_us
                    .store(local.now_us().saturating_add(retry_us), Ordering::Relaxed);
                if !shared.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        %error,
                        "rate limits fail open to this node's own buckets while Redis is unavailable"
                    );
                    metrics::gauge!("malipo_rate_limit_redis_up").set(0.0);
                }
                local.check(bucket, quota)
            }
        }
    }
}
