//! Buckets in this process's memory: a map from bucket name to TAT, split
//! into shards so concurrent requests rarely wait on one lock.
//!
//! Memory is bounded: a shard holding its share of [`LOCAL_BUCKETS_MAX`]
//! first forgets its full buckets (a forgotten bucket behaves exactly like a
//! full one); if every bucket is still in use, the request is allowed
//! without being tracked and counted in
//! `malipo_rate_limit_untracked_total`: failing open, as for Redis.

use crate::gcra::{self, Decision, Quota};
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::Instant;

/// Buckets one process tracks at most (about 100 bytes each).
pub const LOCAL_BUCKETS_MAX: usize = 100_000;
const SHARDS: usize = 16;
/// A shard that found nothing to forget waits this long before it scans
/// again, so a flood of new names cannot make every request a full scan.
const SWEEP_PAUSE_US: u64 = 100_000;

#[derive(Debug, Default)]
struct Shard {
    buckets: HashMap<String, u64>,
    next_sweep_us: u64,
}

/// In-process buckets.
#[derive(Debug)]
pub struct LocalBuckets {
    shards: Vec<Mutex<Shard>>,
    hasher: RandomState,
    buckets_per_shard_max: usize,
    epoch: Instant,
}

impl Default for LocalBuckets {
    fn default() -> Self {
        LocalBuckets::with_capacity(LOCAL_BUCKETS_MAX)
    }
}

impl LocalBuckets {
    /// Buckets tracked at most `buckets_max` at a time (at least one per shard).
    pub fn with_capacity(buckets_max: usize) -> Self {
        LocalBuckets {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            buckets_per_shard_max: buckets_max.div_ceil(SHARDS).max(1),
            epoch: Instant::now(),
        }
    }

    /// Microseconds on this limiter's monotonic clock.
    pub fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Decides one request for `bucket` now.
    pub fn check(&self, bucket: &str, quota: Quota) -> Decision {
        self.check_at(bucket, quota, self.now_us())
    }

    /// Decides one request for `bucket` at `now_us` (tests drive the clock).
    pub fn check_at(&self, bucket: &str, quota: Quota, now_us: u64) -> Decision {
        let index = usize::try_from(self.hasher.hash_one(bucket)).unwrap_or(0) % self.shards.len();
        let Some(shard) = self.shards.get(index) else {
            return gcra::decide(quota, None, now_us).0;
        };
        // A poisoned lock only means another request panicked mid-update of
        // plain numbers; the map is still usable.
        let mut shard = shard
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let tat = shard.buckets.get(bucket).copied();
        if tat.is_none() && shard.buckets.len() >= self.buckets_per_shard_max {
            if now_us >= shard.next_sweep_us {
                shard.buckets.retain(|_, tat| !gcra::is_full(*tat, now_us));
                shard.next_sweep_us = now_us.saturating_add(SWEEP_PAUSE_US);
            }
            if shard.buckets.len() >= self.buckets_per_shard_max {
                metrics::counter!("malipo_rate_limit_untracked_total").increment(1);
                return gcra::decide(quota, None, now_us).0;
            }
        }
        let (decision, new_tat) = gcra::decide(quota, tat, now_us);
        if let Some(new_tat) = new_tat {
            shard.buckets.insert(bucket.to_owned(), new_tat);
        }
        decision
    }

    /// Buckets tracked now (tests).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| {
                shard
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .buckets
                    .len()
            })
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_independent() {
        let buckets = LocalBuckets::default();
        let quota = Quota::new(1, 2).unwrap();
        assert!(buckets.check_at("a", quota, 0).allowed);
        assert!(buckets.check_at("a", quota, 0).allowed);
        assert!(!buckets.check_at("a", quota, 0).allowed);
        assert!(buckets.check_at("b", quota, 0).allowed);
        assert!(!buckets.check_at("a", quota, 999_999).allowed);
        assert!(buckets.check_at("a", quota, 1_000_000).allowed);
    }

    #[test]
    fn memory_stays_bounded_and_full_buckets_are_forgotten() {
        let buckets = LocalBuckets::with_capacity(SHARDS * 4);
        let quota = Quota::new(10, 1).unwrap();
        for index in 0..1000 {
            // Every request is allowed: new names are untracked once full.
            assert!(buckets.check_at(&format!("ip:{index}"), quota, 0).allowed);
        }
        assert!(buckets.len() <= SHARDS * 4);
        // 100 ms later every bucket is full again: room for new ones.
        let later = 200_000;
        assert!(buckets.check_at("fresh", quota, later).allowed);
        assert!(!buckets.check_at("fresh", quota, later).allowed);
    }

    #[test]
    fn shared_across_threads() {
        let buckets = std::sync::Arc::new(LocalBuckets::default());
        let quota = Quota::new(1, 100).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let buckets = buckets.clone();
                std::thread::spawn(move || {
                    (0..50)
                        .filter(|_| buckets.check_at("shared", quota, 0).allowed)
                        .count()
                })
            })
            .collect();
        let allowed: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(allowed, 100);
    }
}
