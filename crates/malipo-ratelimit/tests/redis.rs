//! The Redis backend against a real Redis (`MALIPO_TEST_REDIS_URL`, default
//! `redis://127.0.0.1:6379`). Without a reachable Redis these tests print
//! `SKIPPED (Redis)` and pass, except in CI (`CI=true`) where that is a
//! failure. Each test uses its own key prefix.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use malipo_ratelimit::{Quota, RateLimiter, RedisOptions};
use std::time::{Duration, Instant};

const REDIS_URL_VARIABLE: &str = "MALIPO_TEST_REDIS_URL";

/// Options for a reachable Redis with a fresh key prefix, or `None` (skip).
async fn redis_options() -> Option<RedisOptions> {
    let url = std::env::var(REDIS_URL_VARIABLE).unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let reachable = async {
        let client = redis::Client::open(url.as_str()).ok()?;
        let mut connection = client.get_multiplexed_async_connection().await.ok()?;
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .ok()
    };
    let pong = tokio::time::timeout(Duration::from_secs(2), reachable)
        .await
        .ok()
        .flatten();
    if pong.is_none() {
        if std::env::var("CI").is_ok_and(|value| value == "true") {
            panic!(
                "Redis must be reachable at {url} in CI ({REDIS_URL_VARIABLE}): Redis tests never skip there"
            );
        }
        eprintln!("SKIPPED (Redis): no Redis at {url}; set {REDIS_URL_VARIABLE} to run this test");
        return None;
    }
    Some(RedisOptions {
        url,
        key_prefix: format!("malipo-test-{}", uuid::Uuid::new_v4().simple()),
        timeout_ms: 1_000,
    })
}

#[tokio::test]
async fn two_nodes_share_one_bucket() {
    let Some(options) = redis_options().await else {
        return;
    };
    let first = RateLimiter::with_redis(&options).unwrap();
    let second = RateLimiter::with_redis(&options).unwrap();
    assert_eq!(first.backend_name(), "redis");
    let quota = Quota::new(1, 5).unwrap();
    let started = Instant::now();
    let mut allowed = 0;
    for index in 0..20 {
        let node = if index % 2 == 0 { &first } else { &second };
        if node.check("key:key_shared", quota).await.allowed {
            allowed += 1;
        }
    }
    // Alone, each node would allow its own burst of 5 (10 in all).
    let refilled = started.elapsed().as_secs();
    assert!(
        (5..=5 + refilled).contains(&allowed),
        "{allowed} allowed in {refilled} s"
    );
    // Another bucket is untouched.
    assert!(first.check("key:key_other", quota).await.allowed);
}

#[tokio::test]
async fn decisions_count_down_and_say_when_to_retry() {
    let Some(options) = redis_options().await else {
        return;
    };
    let limiter = RateLimiter::with_redis(&options).unwrap();
    let quota = Quota::new(2, 3).unwrap();
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let decision = limiter.check("ip:192.0.2.1", quota).await;
        assert!(decision.allowed);
        assert_eq!(decision.limit, 3);
        remaining.push(decision.remaining);
    }
    assert_eq!(remaining, [2, 1, 0]);
    let refused = limiter.check("ip:192.0.2.1", quota).await;
    assert!(!refused.allowed);
    assert_eq!(refused.remaining, 0);
    // One token every 500 ms.
    assert!(refused.retry_after > Duration::ZERO);
    assert!(refused.retry_after <= Duration::from_millis(500));
    assert_eq!(refused.retry_after_seconds(), 1);
    tokio::time::sleep(refused.retry_after + Duration::from_millis(20)).await;
    assert!(limiter.check("ip:192.0.2.1", quota).await.allowed);
}

#[tokio::test]
async fn idle_buckets_expire_from_redis() {
    let Some(options) = redis_options().await else {
        return;
    };
    let limiter = RateLimiter::with_redis(&options).unwrap();
    let quota = Quota::new(10, 2).unwrap();
    limiter.check("key:key_idle", quota).await;
    let client = redis::Client::open(options.url.as_str()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("{}:rl:key:key_idle", options.key_prefix);
    let ttl_ms: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut connection)
        .await
        .unwrap();
    // Full again 100 ms after one request at 10/s.
    assert!((1..=100).contains(&ttl_ms), "PTTL {ttl_ms}");
}

#[tokio::test]
async fn an_unreachable_redis_fails_open_to_local_buckets() {
    // Nothing listens on port 1: connections are refused at once.
    let options = RedisOptions {
        url: "redis://127.0.0.1:1".into(),
        key_prefix: "malipo-test-down".into(),
        timeout_ms: 200,
    };
    let limiter = RateLimiter::with_redis(&options).unwrap();
    let quota = Quota::new(1, 2).unwrap();
    let started = Instant::now();
    let allowed: Vec<bool> = check_times(&limiter, quota, 4).await;
    // Never refused because Redis is down, yet this node still limits.
    assert_eq!(allowed, [true, true, false, false]);
    // One failed attempt at most per retry period: no timeout per request.
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

async fn check_times(limiter: &RateLimiter, quota: Quota, count: usize) -> Vec<bool> {
    let mut allowed = Vec::new();
    for _ in 0..count {
        allowed.push(limiter.check("key:key_down", quota).await.allowed);
    }
    allowed
}

#[tokio::test]
async fn a_bad_url_is_refused_naming_the_setting() {
    let options = RedisOptions {
        url: "http://127.0.0.1:6379".into(),
        key_prefix: "malipo-test".into(),
        timeout_ms: 100,
    };
    let error = RateLimiter::with_redis(&options).unwrap_err();
    assert!(error.to_string().contains("redis_url"), "{error}");
}
