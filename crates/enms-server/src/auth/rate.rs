//! Rate limits: a token bucket per key (an API token or user for publish
//! and ingest, a client address for sign-in), refilled continuously. The
//! lock is held only for arithmetic, never across an await.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use enms_core::setting::InvalidSetting;

/// `per_second` sustained, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
}

impl RateLimit {
    /// `rate` and `burst` name the two values in the TOML file.
    pub fn validate(&self, rate: &'static str, burst: &'static str) -> Result<(), InvalidSetting> {
        if !(self.per_second.is_finite() && self.per_second > 0.0) {
            return Err(InvalidSetting::new(rate, "must be a number of requests per second above 0"));
        }
        if self.burst == 0 {
            return Err(InvalidSetting::new(burst, "must be at least 1"));
        }
        Ok(())
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Keys kept at most; past it, buckets refilled to full are forgotten (a
/// full bucket and no bucket answer the same), so a flood of addresses
/// cannot grow the map without bound.
const MAX_KEYS: usize = 10_000;

pub struct Limiter<K> {
    limit: RateLimit,
    buckets: Mutex<HashMap<K, Bucket>>,
}

impl<K: Hash + Eq> Limiter<K> {
    pub fn new(limit: RateLimit) -> Self {
        Self { limit, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one request from the token's bucket, or says how long until
    /// one is available.
    pub fn check(&self, key: K) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    fn check_at(&self, key: K, now: Instant) -> Result<(), Duration> {
        let RateLimit { per_second, burst } = self.limit;
        let burst = f64::from(burst.max(1));
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_KEYS {
            buckets.retain(|_, b| b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * per_second < burst);
        }
        let bucket = buckets.entry(key).or_insert(Bucket { tokens: burst, at: now });
        let refill = now.saturating_duration_since(bucket.at).as_secs_f64() * per_second;
        bucket.tokens = (bucket.tokens + refill).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        if per_second <= 0.0 {
            return Err(Duration::from_secs(3600));
        }
        Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_second))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn a_burst_passes_then_requests_wait_for_the_refill() {
        let limiter = Limiter::new(RateLimit { per_second: 2.0, burst: 3 });
        let (key, t0) = (Uuid::new_v4(), Instant::now());
        for _ in 0..3 {
            assert!(limiter.check_at(key, t0).is_ok());
        }
        let wait = limiter.check_at(key, t0).expect_err("burst used up");
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-6, "{wait:?}");
        assert!(limiter.check_at(key, t0 + Duration::from_millis(500)).is_ok(), "one refilled");
        assert!(limiter.check_at(Uuid::new_v4(), t0).is_ok(), "another token has its own bucket");
    }
}
