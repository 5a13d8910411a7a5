//! Token buckets keyed by who is asking (a source address, a node name): how often failed
//! enrollment guesses and certificate renewals are allowed.
//!
//! Pure bookkeeping: the caller passes the time, so the decisions are unit-tested without
//! sleeping. A limiter never grows without bound: full buckets are forgotten when the map is
//! pruned, and a map still too large after pruning is cleared (every key starts with a full
//! bucket again, which only ever errs on the side of letting a request through).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys remembered before full buckets are pruned.
const MAX_KEYS: usize = 10_000;

/// How many events a bucket allows at once, and how fast it refills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Events allowed in a burst (the bucket's size).
    pub burst: u32,
    /// One event's worth of refill takes this long.
    pub every: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Events' worth left, scaled by `every` (in nanoseconds) so refill stays integral.
    level_ns: u128,
    at: Instant,
}

impl Bucket {
    fn full(rate: Rate, now: Instant) -> Bucket {
        Bucket {
            level_ns: rate.every.as_nanos() * u128::from(rate.burst),
            at: now,
        }
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let cap = rate.every.as_nanos() * u128::from(rate.burst);
        let gained = now.saturating_duration_since(self.at).as_nanos();
        self.level_ns = (self.level_ns + gained).min(cap);
        self.at = now;
    }

    fn is_full(&self, rate: Rate, now: Instant) -> bool {
        let mut b = *self;
        b.refill(rate, now);
        b.level_ns >= rate.every.as_nanos() * u128::from(rate.burst)
    }

    /// Time until one event is allowed (zero when it is allowed now).
    fn wait(&self, rate: Rate) -> Duration {
        let one = rate.every.as_nanos();
        let missing = one.saturating_sub(self.level_ns);
        Duration::from_nanos(u64::try_from(missing).unwrap_or(u64::MAX))
    }

    fn take(&mut self, rate: Rate) {
        self.level_ns = self.level_ns.saturating_sub(rate.every.as_nanos());
    }
}

/// Failed enrollment attempts allowed per source address: 10 at once, then one per 6 s.
pub const FAILED_ENROLL_PER_SOURCE: Rate = Rate {
    burst: 10,
    every: Duration::from_secs(6),
};
/// Failed enrollment attempts allowed from all sources together: 60 at once, then 5 a second.
pub const FAILED_ENROLL_TOTAL: Rate = Rate {
    burst: 60,
    every: Duration::from_millis(200),
};

/// The coordinator's limits on what a peer may repeat: failed enrollment guesses (per source
/// address and in total) and certificate renewals (per node).
#[derive(Debug)]
pub struct AccessLimits {
    /// Failed enrollments by source address.
    pub failed_enroll_by_source: RateLimiter<IpAddr>,
    /// Failed enrollments from everyone.
    pub failed_enroll_total: RateLimiter<()>,
    /// Renewals by node name.
    pub renewals: RateLimiter<String>,
}

impl AccessLimits {
    /// Limits for a coordinator issuing node certificates valid for `node_cert_ttl`: a node may
    /// renew 3 times at once, then once per quarter of that lifetime (at most once per 10 min);
    /// an agent renews at two thirds of it.
    pub fn new(node_cert_ttl: Duration) -> Self {
        let every = (node_cert_ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(600));
        AccessLimits {
            failed_enroll_by_source: RateLimiter::new(FAILED_ENROLL_PER_SOURCE),
            failed_enroll_total: RateLimiter::new(FAILED_ENROLL_TOTAL),
            renewals: RateLimiter::new(Rate { burst: 3, every }),
        }
    }
}

/// A token bucket per key.
#[derive(Debug)]
pub struct RateLimiter<K> {
    rate: Rate,
    buckets: Mutex<HashMap<K, Bucket>>,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// A limiter giving every key `rate`.
    pub fn new(rate: Rate) -> Self {
        RateLimiter {
            rate,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(wait)` when `key` has no event left at `now`; does not use one up.
    pub fn check(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        match map.get_mut(key) {
            None => Ok(()),
            Some(b) => {
                b.refill(self.rate, now);
                match b.wait(self.rate) {
                    w if w.is_zero() => Ok(()),
                    w => Err(w),
                }
            }
        }
    }

    /// Uses one event of `key` (a failure, a renewal); `Err(wait)` when none was left.
    pub fn take(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_KEYS && !map.contains_key(key) {
            let rate = self.rate;
            map.retain(|_, b| !b.is_full(rate, now));
            if map.len() >= MAX_KEYS {
                map.clear();
            }
        }
        let b = map
            .entry(key.clone())
            .or_insert_with(|| Bucket::full(self.rate, now));
        b.refill(self.rate, now);
        match b.wait(self.rate) {
            w if w.is_zero() => {
                b.take(self.rate);
                Ok(())
            }
            w => Err(w),
        }
    }

    /// Keys currently remembered (for tests and bounds).
    pub fn len(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: Rate = Rate {
        burst: 3,
        every: Duration::from_secs(10),
    };

    #[test]
    fn a_burst_is_allowed_then_refused_until_refilled() {
        let l = RateLimiter::new(RATE);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.take(&"a", t0), Ok(()));
        }
        assert_eq!(l.check(&"a", t0), Err(Duration::from_secs(10)));
        assert_eq!(l.take(&"a", t0), Err(Duration::from_secs(10)));
        assert_eq!(
            l.take(&"a", t0 + Duration::from_secs(4)),
            Err(Duration::from_secs(6))
        );
        assert_eq!(l.take(&"a", t0 + Duration::from_secs(10)), Ok(()));
        assert!(l.take(&"a", t0 + Duration::from_secs(10)).is_err());
    }

    #[test]
    fn keys_are_independent() {
        let l = RateLimiter::new(RATE);
        let t0 = Instant::now();
        for _ in 0..3 {
            l.take(&"a", t0).unwrap();
        }
        assert!(l.check(&"a", t0).is_err());
        assert_eq!(l.check(&"b", t0), Ok(()));
        assert_eq!(l.take(&"b", t0), Ok(()));
    }

    #[test]
    fn refill_never_exceeds_the_burst() {
        let l = RateLimiter::new(RATE);
        let t0 = Instant::now();
        l.take(&"a", t0).unwrap();
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            l.take(&"a", later).unwrap();
        }
        assert!(l.take(&"a", later).is_err());
    }

    #[test]
    fn the_map_stays_bounded() {
        let l = RateLimiter::new(RATE);
        let t0 = Instant::now();
        for i in 0..(MAX_KEYS + 50) {
            let _ = l.take(&i, t0);
        }
        assert!(l.len() <= MAX_KEYS, "{}", l.len());
        // Full buckets are the ones pruned first.
        let l = RateLimiter::new(RATE);
        for i in 0..MAX_KEYS {
            l.take(&i, t0).unwrap();
        }
        let later = t0 + Duration::from_secs(60);
        l.take(&usize::MAX, later).unwrap();
        assert_eq!(l.len(), 1);
    }
}
