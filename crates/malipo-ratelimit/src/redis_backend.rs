//! Buckets in Redis, shared by every node: one atomic Lua script per
//! request runs the same GCRA as [`crate::gcra::decide`], on the Redis
//! server's clock (so nodes' clocks need not agree).

use crate::gcra::{Decision, Quota};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::Duration;

/// GCRA in one EVAL: read the TAT, decide, write the new TAT with an expiry
/// at the moment the bucket is full again (so idle buckets vanish).
/// KEYS[1] is the bucket; ARGV[1] the emission interval in microseconds;
/// ARGV[2] the burst. Answers `{allowed (0|1), remaining, retry_after_us}`.
/// Lua numbers are doubles: exact for microsecond timestamps until 2255.
pub const GCRA_SCRIPT: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local interval = tonumber(ARGV[1])
local tolerance = interval * tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - tolerance
if now < allow_at then
  return {0, 0, allow_at - now}
end
local used = new_tat - now
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil(used / 1000))
return {1, math.floor((tolerance - used) / interval), 0}
";

/// Where the shared buckets live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisOptions {
    /// `redis://[user:password@]host:port[/db]`.
    pub url: String,
    /// Prepended to every key (`<prefix>:rl:<bucket>`), so several
    /// deployments (or tests) can share one Redis.
    pub key_prefix: String,
    /// One check's time limit, connecting included; past it the request is
    /// decided in process (see [`crate::RateLimiter`]).
    pub timeout_ms: u64,
}

pub(crate) struct RedisBuckets {
    connection: ConnectionManager,
    script: redis::Script,
    key_prefix: String,
    timeout: Duration,
}

impl std::fmt::Debug for RedisBuckets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: never printed.
        f.debug_struct("RedisBuckets")
            .field("key_prefix", &self.key_prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Why Redis could not decide.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RedisCheckError {
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("Redis failed: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("the rate-limit script answered {0:?}")]
    Unexpected(Vec<i64>),
}

impl RedisBuckets {
    /// Connects lazily: nothing is sent until the first check, so a gateway
    /// starts even when Redis is down. Must run inside a Tokio runtime.
    pub(crate) fn new(options: &RedisOptions) -> Result<RedisBuckets, redis::RedisError> {
        let client = redis::Client::open(options.url.as_str())?;
        let timeout = Duration::from_millis(options.timeout_ms);
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        Ok(RedisBuckets {
            connection: ConnectionManager::new_lazy_with_config(client, config)?,
            script: redis::Script::new(GCRA_SCRIPT),
            key_prefix: options.key_prefix.clone(),
            timeout,
        })
    }

    pub(crate) async fn check(
        &self,
        bucket: &str,
        quota: Quota,
    ) -> Result<Decision, RedisCheckError> {
        let mut connection = self.connection.clone();
        let key = format!("{}:rl:{bucket}", self.key_prefix);
        let mut invocation = self.script.key(key);
        invocation.arg(quota.interval_us()).arg(quota.burst());
        let answer: Vec<i64> =
            tokio::time::timeout(self.timeout, invocation.invoke_async(&mut connection))
                .await
                .map_err(|_| RedisCheckError::Timeout(self.timeout))??;
        match answer[..] {
            [allowed @ (0 | 1), remaining, retry_after_us] => Ok(Decision::from_parts(
                quota,
                allowed == 1,
                u64::try_from(remaining).unwrap_or(0),
                u64::try_from(retry_after_us).unwrap_or(0),
            )),
            _ => Err(RedisCheckError::Unexpected(answer)),
        }
    }
}
