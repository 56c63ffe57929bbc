//! Retention by level: how long raw readings and each rollup tier are kept
//! (`[retention]`; every level forever by default — nothing is deleted
//! unless asked), and the horizons the pruner deletes up to.
//!
//! Horizons are UTC midnights. A tier is built from the one below it (a
//! minute from raw rows, an hour from minutes, a day from hours), and a
//! late reading recomputes its buckets from that lower level — so a level
//! must be kept at least as long as the one it is built from, and readings
//! older than the raw horizon are refused (their minute could no longer be
//! recomputed whole). Both rules are checked here and in the store.

use std::time::Duration;

use chrono::{DateTime, Utc};
use enms_core::setting::InvalidSetting;

use crate::rollup::{Floors, LEVELS_FINEST_FIRST, Source, Tier};

const DAY_MS: i64 = 86_400_000;

/// The shortest raw retention: the default baseline window is 30 days of
/// raw readings, and a retraining must not find them gone.
pub const MIN_RAW: Duration = Duration::from_secs(31 * 86_400);

/// The oldest reading accepted under a raw floor: two hours after it, so
/// the hour cells a reading moves (up to an hour before it) can still be
/// recomputed from raw readings reaching an hour further back.
pub fn earliest_accepted(raw_floor: i64) -> i64 {
    raw_floor + 2 * crate::periods::HOUR_MS
}

/// How long each level is kept; `None` keeps it forever.
#[derive(Debug, Clone, PartialEq)]
pub struct RetentionConfig {
    pub raw: Option<Duration>,
    pub minute: Option<Duration>,
    pub hour: Option<Duration>,
    pub day: Option<Duration>,
    /// Time between two pruning passes.
    pub every: Duration,
    /// Rows deleted per transaction: each is short, so ingest never waits
    /// long behind the pruner.
    pub batch: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self { raw: None, minute: None, hour: None, day: None, every: Duration::from_secs(3600), batch: 5_000 }
    }
}

impl RetentionConfig {
    pub fn keep(&self, level: Source) -> Option<Duration> {
        match level {
            Source::Raw => self.raw,
            Source::Tier(Tier::Minute) => self.minute,
            Source::Tier(Tier::Hour) => self.hour,
            Source::Tier(Tier::Day) => self.day,
        }
    }

    /// True when some level is pruned.
    pub fn prunes(&self) -> bool {
        LEVELS_FINEST_FIRST.iter().any(|l| self.keep(*l).is_some())
    }

    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if let Some(d) = self.raw
            && d < MIN_RAW
        {
            return Err(InvalidSetting::new(
                "retention.raw",
                format!(
                    "{} is too short: keep raw readings at least {} (training and detection read up to 30 days of them by default)",
                    show(Some(d)),
                    show(Some(MIN_RAW))
                ),
            ));
        }
        for pair in LEVELS_FINEST_FIRST.windows(2) {
            let (finer, coarser) = (pair[0], pair[1]);
            let shorter = match (self.keep(finer), self.keep(coarser)) {
                (None, Some(_)) => true,
                (Some(f), Some(c)) => c < f,
                _ => false,
            };
            if shorter {
                return Err(InvalidSetting::new(
                    setting(coarser),
                    format!(
                        "{} is shorter than retention.{} ({}), which it is built from: keep it at least as long",
                        show(self.keep(coarser)),
                        finer.name(),
                        show(self.keep(finer))
                    ),
                ));
            }
        }
        if self.batch == 0 {
            return Err(InvalidSetting::new("retention.batch", "must be at least 1"));
        }
        if self.every.is_zero() {
            return Err(InvalidSetting::new("retention.every", "must be positive"));
        }
        Ok(())
    }

    /// Where each pruned level starts now: `now − keep`, down to its UTC
    /// midnight.
    pub fn horizons(&self, now: DateTime<Utc>) -> Floors {
        let mut floors = Floors::default();
        for level in LEVELS_FINEST_FIRST {
            if let Some(keep) = self.keep(level) {
                let t = now.timestamp_millis() - keep.as_millis().min(i64::MAX as u128) as i64;
                floors.set(level, t.div_euclid(DAY_MS) * DAY_MS);
            }
        }
        floors
    }
}

fn setting(level: Source) -> &'static str {
    match level {
        Source::Raw => "retention.raw",
        Source::Tier(Tier::Minute) => "retention.minute",
        Source::Tier(Tier::Hour) => "retention.hour",
        Source::Tier(Tier::Day) => "retention.day",
    }
}

fn show(d: Option<Duration>) -> String {
    match d {
        None => "forever".into(),
        Some(d) if d.as_secs().is_multiple_of(86_400) => format!("{}d", d.as_secs() / 86_400),
        Some(d) => format!("{}s", d.as_secs()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn days(n: u64) -> Option<Duration> {
        Some(Duration::from_secs(n * 86_400))
    }

    #[test]
    fn a_level_is_kept_at_least_as_long_as_the_one_it_is_built_from() {
        let ok = RetentionConfig { raw: days(90), minute: days(730), ..RetentionConfig::default() };
        assert!(RetentionConfig { raw: days(31), ..RetentionConfig::default() }.validate().is_ok());
        assert!(ok.validate().is_ok());
        assert!(ok.prunes());
        assert!(!RetentionConfig::default().prunes());
        let bad = RetentionConfig { raw: days(90), minute: days(30), ..RetentionConfig::default() };
        let e = bad.validate().expect_err("minute shorter than raw");
        assert_eq!(e.setting, "retention.minute");
        assert!(e.message.contains("30d") && e.message.contains("retention.raw (90d)"), "{}", e.message);
        let forever_below = RetentionConfig { hour: days(400), ..RetentionConfig::default() };
        assert_eq!(forever_below.validate().expect_err("minutes forever, hours not").setting, "retention.hour");
        let short = RetentionConfig { raw: days(7), ..RetentionConfig::default() };
        let e = short.validate().expect_err("under the training windows");
        assert!(e.setting == "retention.raw" && e.message.contains("31d"), "{e}");
    }

    #[test]
    fn horizons_are_utc_midnights() {
        let c = RetentionConfig { raw: days(2), minute: days(10), ..RetentionConfig::default() };
        // (horizons do not check; validate does)
        let now = Utc.with_ymd_and_hms(2026, 3, 10, 15, 30, 0).single().expect("time");
        let f = c.horizons(now);
        let midnight =
            |m: u32, d: u32| Utc.with_ymd_and_hms(2026, m, d, 0, 0, 0).single().expect("day").timestamp_millis();
        assert_eq!((f.raw, f.minute, f.hour, f.day), (Some(midnight(3, 8)), Some(midnight(2, 28)), None, None));
    }
}
