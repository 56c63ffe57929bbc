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

/// One reading as the cells see it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub ts: i64,
    pub power_kw: f64,
    pub units: Option<f64>,
    pub temp: Option<f64>,
}

/// The cells to add for readings appended after `newest`, the machine's
/// newest stored reading (`None`: it has none). Appending changes no stored
/// interval — no stored reading gets a new predecessor — so each new
/// interval only adds to the cell of its middle: the common case (live
/// readings, a forward import) costs no raw read. `points` may come in any
/// order; of equal timestamps the last wins, as in the insert.
pub fn appended(newest: Option<i64>, points: &[Point]) -> Vec<PeriodCell> {
    let mut sorted: Vec<(usize, &Point)> = points.iter().enumerate().collect();
    sorted.sort_by_key(|(i, p)| (p.ts, *i));
    sorted.dedup_by(|later, earlier| {
        let same = later.1.ts == earlier.1.ts;
        if same {
            *earlier = *later;
        }
        same
    });
    let mut out: Vec<PeriodCell> = Vec::new();
    let mut prev = newest;
    for (_, p) in sorted {
        let gap = prev.map_or(HOUR_MS, |q| (p.ts - q).min(HOUR_MS));
        prev = Some(p.ts);
        let h = gap as f64 / HOUR_MS as f64;
        let middle = p.ts - gap / 2;
        let start = middle.div_euclid(HOUR_MS) * HOUR_MS;
        let units = p.units.unwrap_or(0.0);
        let one = PeriodCell {
            start: enms_core::timestamp::from_ms(start),
            readings: 1,
            covered_h: h,
            kwh: p.power_kw * h,
            units,
            operating_h: if units > 0.0 { h } else { 0.0 },
            temp_weighted: p.temp.map_or(0.0, |t| t * h),
            temp_h: if p.temp.is_some() { h } else { 0.0 },
            peak_kw: p.power_kw,
            peak_at: enms_core::timestamp::from_ms(p.ts),
        };
        match out.last_mut() {
            Some(c) if c.start == one.start => {
                c.readings += 1;
                c.covered_h += one.covered_h;
                c.kwh += one.kwh;
                c.units += one.units;
                c.operating_h += one.operating_h;
                c.temp_weighted += one.temp_weighted;
                c.temp_h += one.temp_h;
                // Later readings win no tie: the earliest at the peak stays.
                if one.peak_kw > c.peak_kw {
                    (c.peak_kw, c.peak_at) = (one.peak_kw, one.peak_at);
                }
            }
            _ => out.push(one),
        }
    }
    out
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
    fn appended_readings_fill_the_cells_of_their_middles() {
        let p = |min: i64, kw: f64| Point { ts: 10 * HOUR_MS + min * 60_000, power_kw: kw, units: None, temp: None };
        // Newest stored at 10:50; then 11:05 (middle 10:57:30), 11:20 and
        // a repeat of 11:20 that wins (middle 11:12:30).
        let cells = appended(Some(10 * HOUR_MS + 50 * 60_000), &[p(80, 5.0), p(65, 3.0), p(80, 9.0)]);
        assert_eq!(cells.len(), 2);
        assert_eq!((cells[0].readings, cells[0].peak_kw), (1, 3.0));
        assert!((cells[0].covered_h - 0.25).abs() < 1e-12);
        assert_eq!((cells[1].readings, cells[1].peak_kw), (1, 9.0));
        // Two readings at the peak: the earlier is the peak's time.
        let tie = appended(Some(10 * HOUR_MS), &[p(10, 4.0), p(20, 4.0)]);
        assert_eq!((tie.len(), tie[0].peak_at), (1, enms_core::timestamp::from_ms(10 * HOUR_MS + 10 * 60_000)));
        // A machine's first reading covers the hour before it.
        let first = appended(None, &[p(0, 1.0)]);
        assert_eq!(first[0].start, enms_core::timestamp::from_ms(9 * HOUR_MS));
    }

    #[test]
    fn a_reading_touches_the_hours_around_it() {
        let h = HOUR_MS;
        assert_eq!(touched(&[10 * h + 5]), vec![(9 * h, 11 * h)]);
        assert_eq!(touched(&[10 * h + h / 2]), vec![(10 * h, 12 * h)]);
        assert_eq!(touched(&[1_000 * h + 7]), vec![(999 * h, 1_001 * h)]);
    }
}
