//! The pure bucket logic: GCRA (the generic cell rate algorithm), a token
//! bucket kept as one number per bucket.
//!
//! A bucket that refills `per_second` tokens a second and holds at most
//! `burst` is stored as its *theoretical arrival time* (TAT): the instant at
//! which the bucket would be full again. A request at `now` costs one
//! emission interval `T = 1 s / per_second`; it is allowed when
//! `max(TAT, now) + T - burst × T <= now`, and then the TAT moves to
//! `max(TAT, now) + T`. So a full bucket allows `burst` requests at once, then
//! one every `T`. The tokens left are `(burst × T - (TAT - now)) / T`,
//! rounded down; a refused request may retry once the TAT has fallen back
//! far enough, `new TAT - burst × T - now` later.
//!
//! Times are microseconds on any clock that never goes backwards; the Redis
//! script does exactly this arithmetic with the Redis server's clock.

use std::num::NonZeroU32;
use std::time::Duration;

/// The largest rate a quota may have: one request per microsecond.
pub const PER_SECOND_MAX: u32 = 1_000_000;
/// The largest burst a quota may have.
pub const BURST_MAX: u32 = 1_000_000;

const MICROS_PER_SECOND: u64 = 1_000_000;

/// How fast a bucket refills and how much it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    per_second: NonZeroU32,
    burst: NonZeroU32,
}

/// Why a quota was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    #[error("the rate must be 1 to {PER_SECOND_MAX} requests per second, got {0}")]
    Rate(u32),
    #[error("the burst must be 1 to {BURST_MAX} requests, got {0}")]
    Burst(u32),
}

impl Quota {
    /// `per_second` requests a second on average, up to `burst` at once.
    pub fn new(per_second: u32, burst: u32) -> Result<Quota, QuotaError> {
        let per_second = NonZeroU32::new(per_second)
            .filter(|rate| rate.get() <= PER_SECOND_MAX)
            .ok_or(QuotaError::Rate(per_second))?;
        let burst = NonZeroU32::new(burst)
            .filter(|burst| burst.get() <= BURST_MAX)
            .ok_or(QuotaError::Burst(burst))?;
        Ok(Quota { per_second, burst })
    }

    pub fn per_second(&self) -> u32 {
        self.per_second.get()
    }

    pub fn burst(&self) -> u32 {
        self.burst.get()
    }

    /// `T`: the microseconds one request costs (at least 1).
    pub fn interval_us(&self) -> u64 {
        (MICROS_PER_SECOND / u64::from(self.per_second.get())).max(1)
    }

    /// `burst × T`: how far ahead of now the TAT may run.
    pub fn tolerance_us(&self) -> u64 {
        self.interval_us() * u64::from(self.burst.get())
    }
}

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The bucket's size (`RateLimit-Limit`).
    pub limit: u32,
    /// Requests that would still be allowed right now (`RateLimit-Remaining`).
    pub remaining: u32,
    /// For a refused request: how long until one would be allowed.
    pub retry_after: Duration,
}

impl Decision {
    /// `Retry-After` in whole seconds, rounded up and at least 1.
    pub fn retry_after_seconds(&self) -> u64 {
        let micros = self.retry_after.as_micros();
        let seconds = micros.div_ceil(u128::from(MICROS_PER_SECOND));
        u64::try_from(seconds).unwrap_or(u64::MAX).max(1)
    }

    /// A decision from its parts as the Redis script answers them.
    pub(crate) fn from_parts(
        quota: Quota,
        allowed: bool,
        remaining: u64,
        retry_after_us: u64,
    ) -> Self {
        Decision {
            allowed,
            limit: quota.burst(),
            remaining: u32::try_from(remaining)
                .unwrap_or(u32::MAX)
                .min(quota.burst()),
            retry_after: Duration::from_micros(retry_after_us),
        }
    }
}

/// Decides one request against a bucket whose TAT is `tat` (`None`: never
/// used, or forgotten, which is the same as full). Answers the decision and
/// the TAT to store (unchanged when refused).
pub fn decide(quota: Quota, tat: Option<u64>, now_us: u64) -> (Decision, Option<u64>) {
    let interval = quota.interval_us();
    let tolerance = quota.tolerance_us();
    let start = tat.map_or(now_us, |tat| tat.max(now_us));
    let new_tat = start.saturating_add(interval);
    let allow_at = new_tat.saturating_sub(tolerance);
    if now_us < allow_at {
        let decision = Decision::from_parts(quota, false, 0, allow_at - now_us);
        return (decision, tat);
    }
    let used = new_tat - now_us;
    let remaining = tolerance.saturating_sub(used) / interval;
    (
        Decision::from_parts(quota, true, remaining, 0),
        Some(new_tat),
    )
}

/// Whether a bucket with this TAT is full at `now` (and may be forgotten:
/// a missing bucket behaves exactly like a full one).
pub fn is_full(tat: u64, now_us: u64) -> bool {
    tat <= now_us
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn quota(per_second: u32, burst: u32) -> Quota {
        Quota::new(per_second, burst).unwrap()
    }

    /// Runs requests at the given times, answering which were allowed.
    fn run(quota: Quota, times_us: &[u64]) -> Vec<Decision> {
        let mut tat = None;
        times_us
            .iter()
            .map(|now| {
                let (decision, next) = decide(quota, tat, *now);
                tat = next;
                decision
            })
            .collect()
    }

    #[test]
    fn a_full_bucket_allows_the_burst_then_refuses() {
        let decisions = run(quota(10, 3), &[0, 0, 0, 0]);
        let allowed: Vec<bool> = decisions.iter().map(|d| d.allowed).collect();
        assert_eq!(allowed, [true, true, true, false]);
        let remaining: Vec<u32> = decisions.iter().map(|d| d.remaining).collect();
        assert_eq!(remaining, [2, 1, 0, 0]);
        assert!(decisions.iter().all(|d| d.limit == 3));
        // One token comes back every 100 ms.
        assert_eq!(decisions[3].retry_after, Duration::from_millis(100));
        assert_eq!(decisions[3].retry_after_seconds(), 1);
    }

    #[test]
    fn tokens_refill_at_the_rate() {
        // 10/s, burst 2: empty at t=0, one token at 100 ms, not before.
        let decisions = run(quota(10, 2), &[0, 0, 99_999, 100_000, 100_000]);
        let allowed: Vec<bool> = decisions.iter().map(|d| d.allowed).collect();
        assert_eq!(allowed, [true, true, false, true, false]);
        assert_eq!(decisions[2].retry_after, Duration::from_micros(1));
        // Long idle refills to the burst, never beyond it.
        let decisions = run(quota(10, 2), &[0, 10_000_000, 10_000_000, 10_000_000]);
        let allowed: Vec<bool> = decisions.iter().map(|d| d.allowed).collect();
        assert_eq!(allowed, [true, true, true, false]);
    }

    #[test]
    fn a_steady_rate_at_the_limit_is_always_allowed() {
        let times: Vec<u64> = (0..1000).map(|i| i * 100_000).collect();
        assert!(run(quota(10, 1), &times).iter().all(|d| d.allowed));
    }

    #[test]
    fn over_any_window_at_most_burst_plus_rate_times_window_pass() {
        // 5/s, burst 4, a request every 50 ms (20/s) for 10 s.
        let times: Vec<u64> = (0..200).map(|i| i * 50_000).collect();
        let decisions = run(quota(5, 4), &times);
        for start in 0..times.len() {
            for end in start..times.len() {
                let window_us = times[end] - times[start];
                let allowed = decisions[start..=end].iter().filter(|d| d.allowed).count() as u64;
                assert!(
                    allowed <= 4 + window_us * 5 / 1_000_000,
                    "{allowed} in {window_us} µs"
                );
            }
        }
        // And the long-run rate is the configured one.
        let allowed = decisions.iter().filter(|d| d.allowed).count();
        assert!((50..=54).contains(&allowed), "{allowed}");
    }

    #[test]
    fn retry_after_is_whole_seconds_at_least_one() {
        let decision = |micros| Decision {
            allowed: false,
            limit: 1,
            remaining: 0,
            retry_after: Duration::from_micros(micros),
        };
        assert_eq!(decision(0).retry_after_seconds(), 1);
        assert_eq!(decision(1).retry_after_seconds(), 1);
        assert_eq!(decision(1_000_000).retry_after_seconds(), 1);
        assert_eq!(decision(1_000_001).retry_after_seconds(), 2);
        // 1/s, burst 1: the second request waits a whole second.
        let decisions = run(quota(1, 1), &[5, 6]);
        assert_eq!(decisions[1].retry_after_seconds(), 1);
        assert_eq!(decisions[1].retry_after, Duration::from_micros(999_999));
    }

    #[test]
    fn refused_requests_do_not_drain_the_bucket() {
        // A client hammering while refused still gets its token on time.
        let mut times: Vec<u64> = vec![0];
        times.extend((1..100).map(|i| i * 1_000));
        times.push(1_000_000);
        let decisions = run(quota(1, 1), &times);
        assert!(decisions[0].allowed);
        assert!(decisions[1..100].iter().all(|d| !d.allowed));
        assert!(decisions[100].allowed);
    }

    #[test]
    fn quotas_are_bounded() {
        assert_eq!(Quota::new(0, 1), Err(QuotaError::Rate(0)));
        assert_eq!(Quota::new(1, 0), Err(QuotaError::Burst(0)));
        assert_eq!(
            Quota::new(PER_SECOND_MAX + 1, 1),
            Err(QuotaError::Rate(PER_SECOND_MAX + 1))
        );
        assert_eq!(
            Quota::new(1, BURST_MAX + 1),
            Err(QuotaError::Burst(BURST_MAX + 1))
        );
        let fastest = quota(PER_SECOND_MAX, BURST_MAX);
        assert_eq!(fastest.interval_us(), 1);
        assert_eq!(quota(3, 1).interval_us(), 333_333);
    }

    #[test]
    fn an_absent_bucket_is_a_full_one() {
        let q = quota(10, 3);
        let (_, tat) = decide(q, None, 0);
        let tat = tat.unwrap();
        assert!(!is_full(tat, 0));
        assert!(is_full(tat, tat));
        // Forgetting a full bucket changes no decision.
        let (kept, _) = decide(q, Some(tat), tat + 5);
        let (forgotten, _) = decide(q, None, tat + 5);
        assert_eq!(kept, forgotten);
    }
}
