//! Hour cells (`period_1h`), the backend-neutral half: what a cell holds
//! ([`PeriodCell`], the store's copy of `enms_analytics::cells::Cell`,
//! which this layer cannot name) and which hours a batch touches.
//!
//! A reading's interval reaches at most an hour back (to its predecessor,
//! capped), so a reading at `t` moves only the cells of the hours that hold
//! `[t − 30 min, t + 30 min]`: its own interval's middle lies in
//! `[t − 30 min, t)`, and its successor `s` (within the hour after `t`, or
//! its interval does not change) had its middle in `(t − 30 min, (s + t)/2)`
//! and now has it at `(s + t)/2 ≤ t + 30 min`. Those hours are recomputed
//! whole from the raw readings of `[start − 1 h, end + 30 min)`, the only
//! ones whose intervals can have their middle in them — after deleting
//! them, since an inserted reading can move an interval's middle out of the
//! hour it was in.

use chrono::{DateTime, Utc};

use crate::rollup::{Tier, affected};

pub const HOUR_MS: i64 = 3_600_000;

/// One machine's intervals whose middle falls in one UTC hour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeriodCell {
    pub start: DateTime<Utc>,
    pub readings: u64,
    pub covered_h: f64,
    pub kwh: f64,
    pub units: f64,
    pub operating_h: f64,
    pub temp_weighted: f64,
    pub temp_h: f64,
    pub peak_kw: f64,
    pub peak_at: DateTime<Utc>,
}

/// The hour ranges to recompute after writing readings at `timestamps`.
pub fn touched(timestamps: &[i64]) -> Vec<(i64, i64)> {
    let mut around: Vec<i64> = timestamps.iter().flat_map(|t| [t - HOUR_MS / 2, t + HOUR_MS / 2]).collect();
    affected(&mut around, Tier::Hour)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reading_touches_the_hours_around_it() {
        let h = HOUR_MS;
        assert_eq!(touched(&[10 * h + 5]), vec![(9 * h, 11 * h)]);
        assert_eq!(touched(&[10 * h + h / 2]), vec![(10 * h, 12 * h)]);
        assert_eq!(touched(&[1_000 * h + 7]), vec![(999 * h, 1_001 * h)]);
    }
}
