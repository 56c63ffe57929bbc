//! Rollups: per machine, 1-minute, 1-hour and 1-day aggregates of the raw
//! readings, kept exact in the same transaction as the readings, so a query
//! over a long span reads one row per bucket instead of every reading.
//!
//! This module is the backend-neutral half: which tiers exist, which
//! buckets a batch touches ([`affected`]), how a range query splits into
//! segments each answered by the coarsest tier that answers it exactly
//! ([`plan`]), and how partial aggregates merge into a [`ReadingPoint`]
//! ([`Partial`]). Each backend runs the SQL (`sqlite/rollup.rs`,
//! `postgres/rollup.rs`).
//!
//! Exactness: a bucket's row holds count, sums, minimum and maximum, which
//! compose — a coarser bucket is the merge of the finer ones inside it, and
//! a query bucket is the merge of every segment's part of it. A batch
//! recomputes each touched minute from the raw rows (so a replaced reading,
//! a duplicate or a back-dated one leaves no trace of its old value), then
//! each touched hour from its minutes and each touched day from its hours.
//! Buckets are aligned to the Unix epoch in UTC, as the raw query's are.

use chrono::{DateTime, Utc};
use enms_core::timestamp::from_ms;

use crate::ReadingPoint;

/// A stored aggregate level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tier {
    Minute,
    Hour,
    Day,
}

impl Tier {
    /// Coarsest first: the order [`plan`] tries them in.
    pub const COARSEST_FIRST: [Tier; 3] = [Tier::Day, Tier::Hour, Tier::Minute];

    pub fn width_ms(self) -> i64 {
        match self {
            Self::Minute => 60_000,
            Self::Hour => 3_600_000,
            Self::Day => 86_400_000,
        }
    }

    pub fn table(self) -> &'static str {
        match self {
            Self::Minute => "rollup_1m",
            Self::Hour => "rollup_1h",
            Self::Day => "rollup_1d",
        }
    }

    /// The tier a row of this one is built from (`None`: the raw readings).
    pub fn finer(self) -> Option<Tier> {
        match self {
            Self::Minute => None,
            Self::Hour => Some(Self::Minute),
            Self::Day => Some(Self::Hour),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Minute => "1m",
            Self::Hour => "1h",
            Self::Day => "1d",
        }
    }
}

/// Where a segment of a query is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Raw,
    Tier(Tier),
}

/// One piece of a range query: `[start, end)` in Unix ms from `source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub source: Source,
    pub start: i64,
    pub end: i64,
}

/// Splits `[start, end)` for buckets of `width` ms into segments, each read
/// from the coarsest tier whose buckets divide `width` and lie wholly
/// inside the segment; the unaligned edges fall to finer tiers and, last,
/// to the raw rows. So a year at 1 h reads hourly rows (plus at most a day
/// of minutes and an hour of raw rows at the edges when the span is not
/// aligned), never the year's readings.
pub fn plan(start: i64, end: i64, width: i64) -> Vec<Segment> {
    plan_from(start, end, width, Source::Raw)
}

/// [`plan`] where nothing finer than `finest` is kept (retention pruned
/// it): edges are read from `finest`, whole buckets of it.
pub fn plan_from(start: i64, end: i64, width: i64, finest: Source) -> Vec<Segment> {
    let floor = match finest {
        Source::Raw => 0,
        Source::Tier(t) => t.width_ms(),
    };
    let tiers: Vec<Tier> =
        Tier::COARSEST_FIRST.into_iter().filter(|t| width % t.width_ms() == 0 && t.width_ms() >= floor).collect();
    let mut pieces = Vec::new();
    split(start, end, &tiers, finest, &mut pieces);
    // Neighbours read from one source are one segment.
    let mut out: Vec<Segment> = Vec::with_capacity(pieces.len());
    for p in pieces {
        match out.last_mut() {
            Some(last) if last.source == p.source && last.end == p.start => last.end = p.end,
            _ => out.push(p),
        }
    }
    out
}

fn split(start: i64, end: i64, tiers: &[Tier], finest: Source, out: &mut Vec<Segment>) {
    if start >= end {
        return;
    }
    let Some((tier, finer)) = tiers.split_first() else {
        let source = finest;
        let (start, end) = match source {
            Source::Raw => (start, end),
            // Whole buckets of the finest tier kept: the edge buckets
            // may hold readings just outside the window.
            Source::Tier(t) => {
                let w = t.width_ms();
                (start.div_euclid(w) * w, (end + w - 1).div_euclid(w) * w)
            }
        };
        out.push(Segment { source, start, end });
        return;
    };
    let w = tier.width_ms();
    let (a, b) = (start.div_euclid(w) * w + if start.rem_euclid(w) == 0 { 0 } else { w }, end.div_euclid(w) * w);
    if a >= b {
        split(start, end, finer, finest, out);
        return;
    }
    split(start, a, finer, finest, out);
    out.push(Segment { source: Source::Tier(*tier), start: a, end: b });
    split(b, end, finer, finest, out);
}

/// Where retention pruned each level: the level holds everything from its
/// floor on (Unix ms, a UTC midnight); `None` keeps everything. Floors only
/// move forward, and a coarser level's floor is never after a finer one's
/// (retention checks it), so older time is held by ever coarser levels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Floors {
    pub raw: Option<i64>,
    pub minute: Option<i64>,
    pub hour: Option<i64>,
    pub day: Option<i64>,
}

impl Floors {
    pub fn of(&self, level: Source) -> Option<i64> {
        match level {
            Source::Raw => self.raw,
            Source::Tier(Tier::Minute) => self.minute,
            Source::Tier(Tier::Hour) => self.hour,
            Source::Tier(Tier::Day) => self.day,
        }
    }

    pub fn set(&mut self, level: Source, floor: i64) {
        let slot = match level {
            Source::Raw => &mut self.raw,
            Source::Tier(Tier::Minute) => &mut self.minute,
            Source::Tier(Tier::Hour) => &mut self.hour,
            Source::Tier(Tier::Day) => &mut self.day,
        };
        *slot = Some(slot.map_or(floor, |f| f.max(floor)));
    }

    /// The finest level that holds the time `t`; `None`: no level does.
    fn finest_at(&self, t: i64) -> Option<Source> {
        LEVELS_FINEST_FIRST.into_iter().find(|l| self.of(*l).is_none_or(|f| f <= t))
    }
}

/// Every level, raw first.
pub const LEVELS_FINEST_FIRST: [Source; 4] =
    [Source::Raw, Source::Tier(Tier::Minute), Source::Tier(Tier::Hour), Source::Tier(Tier::Day)];

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Tier(t) => t.name(),
        }
    }
}

/// A stretch of a query that one level answers in full: `width` is the
/// bucket width its points have there (`None`: raw readings) — the one
/// asked for, or the finest kept level's when that is coarser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub start: i64,
    pub end: i64,
    pub width: Option<i64>,
    pub finest: Source,
}

/// Splits `[start, end)` at the retention floors inside it; time no level
/// holds any more is left out.
pub fn regions(start: i64, end: i64, width: Option<i64>, floors: &Floors) -> Vec<Region> {
    let mut cuts: Vec<i64> =
        LEVELS_FINEST_FIRST.iter().filter_map(|l| floors.of(*l)).filter(|f| *f > start && *f < end).collect();
    cuts.push(start);
    cuts.push(end);
    cuts.sort_unstable();
    cuts.dedup();
    let mut out: Vec<Region> = Vec::new();
    for w in cuts.windows(2) {
        let (a, b) = (w[0], w[1]);
        let Some(finest) = floors.finest_at(a) else { continue };
        let width = match (finest, width) {
            (Source::Raw, w) => w,
            (Source::Tier(t), Some(w)) if w % t.width_ms() == 0 => Some(w),
            (Source::Tier(t), _) => Some(t.width_ms()),
        };
        match out.last_mut() {
            Some(r) if r.end == a && r.finest == finest && r.width == width => r.end = b,
            _ => out.push(Region { start: a, end: b, width, finest }),
        }
    }
    out
}

/// The `[start, end)` ranges of `tier` buckets to recompute after writing
/// rows at `timestamps` (Unix ms, any order): the touched buckets, with
/// runs closer than `MERGE_GAP` buckets joined into one range (recomputing
/// a few untouched buckets costs less than another statement, and gives
/// the same rows).
pub fn affected(timestamps: &mut [i64], tier: Tier) -> Vec<(i64, i64)> {
    const MERGE_GAP: i64 = 64;
    let w = tier.width_ms();
    timestamps.sort_unstable();
    let mut ranges: Vec<(i64, i64)> = Vec::new();
    for &t in timestamps.iter() {
        let b = t.div_euclid(w) * w;
        match ranges.last_mut() {
            Some((_, end)) if b < *end + MERGE_GAP * w => *end = (*end).max(b + w),
            _ => ranges.push((b, b + w)),
        }
    }
    ranges
}

/// The ranges of `coarser` buckets covering `ranges` (of a finer tier),
/// merged where they meet.
pub fn widen(ranges: &[(i64, i64)], coarser: Tier) -> Vec<(i64, i64)> {
    let w = coarser.width_ms();
    let mut out: Vec<(i64, i64)> = Vec::new();
    for &(a, b) in ranges {
        let (a, b) = (a.div_euclid(w) * w, (b + w - 1).div_euclid(w) * w);
        match out.last_mut() {
            Some((_, end)) if a <= *end => *end = (*end).max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// What one segment knows of one query bucket; merged across segments.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Partial {
    pub bucket: i64,
    pub samples: i64,
    pub sum_kw: f64,
    pub min_kw: f64,
    pub max_kw: f64,
    pub sum_kwh: f64,
    pub sum_units: Option<f64>,
    pub n_units: i64,
    pub sum_temp: Option<f64>,
    pub n_temp: i64,
}

impl Partial {
    pub fn merge(&mut self, o: &Partial) {
        self.samples += o.samples;
        self.sum_kw += o.sum_kw;
        self.min_kw = self.min_kw.min(o.min_kw);
        self.max_kw = self.max_kw.max(o.max_kw);
        self.sum_kwh += o.sum_kwh;
        self.sum_units = add(self.sum_units, o.sum_units);
        self.n_units += o.n_units;
        self.sum_temp = add(self.sum_temp, o.sum_temp);
        self.n_temp += o.n_temp;
    }

    /// The bucket as the API shows it: mean and peak power, summed energy
    /// and production, mean temperature.
    pub fn point(&self) -> ReadingPoint {
        ReadingPoint {
            timestamp: from_ms(self.bucket),
            power_kw: self.sum_kw / self.samples.max(1) as f64,
            max_power_kw: self.max_kw,
            energy_kwh: self.sum_kwh,
            production_units: if self.n_units > 0 { self.sum_units } else { None },
            outdoor_temp_c: match self.sum_temp {
                Some(s) if self.n_temp > 0 => Some(s / self.n_temp as f64),
                _ => None,
            },
            samples: self.samples.try_into().unwrap_or(u32::MAX),
            extra: None,
        }
    }
}

fn add(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a + b),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Merges the segments' answers (each ordered by bucket) and keeps the
/// first `limit` buckets.
pub fn merge(parts: Vec<Vec<Partial>>, limit: u32) -> Vec<ReadingPoint> {
    let mut by_bucket: std::collections::BTreeMap<i64, Partial> = std::collections::BTreeMap::new();
    for part in parts {
        for p in part {
            by_bucket.entry(p.bucket).and_modify(|m| m.merge(&p)).or_insert(p);
        }
    }
    by_bucket.values().take(limit as usize).map(Partial::point).collect()
}

/// One stretch of an answer and the resolution its points have there.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Answered {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// `raw`, `1m`, `15m`, `1h` or `1d`: the one asked for, or a coarser
    /// one where retention pruned the levels that would answer it.
    pub resolution: &'static str,
}

/// Which resolution answers which stretch of a query, given the floors
/// (time no level holds any more is in no stretch).
pub fn answered_by(start: i64, end: i64, width: Option<i64>, floors: &Floors) -> Vec<Answered> {
    let mut out: Vec<Answered> = Vec::new();
    for r in regions(start, end, width, floors) {
        let resolution = enms_core::Resolution::ALL
            .into_iter()
            .find(|res| res.bucket_ms() == r.width)
            .map_or("raw", enms_core::Resolution::as_str);
        match out.last_mut() {
            // Read from different levels, but points of one resolution.
            Some(last) if last.resolution == resolution && last.end == from_ms(r.start) => last.end = from_ms(r.end),
            _ => out.push(Answered { start: from_ms(r.start), end: from_ms(r.end), resolution }),
        }
    }
    out
}

/// The bucket width of the points a query answers around `t` (`None`:
/// raw readings there).
pub fn width_at(t: i64, width: Option<i64>, floors: &Floors) -> Option<i64> {
    regions(t, t + 1, width, floors).first().map_or(width, |r| r.width)
}

/// What `enms db stats` shows: rows and span per level and machine, and
/// bytes per level.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct StorageStats {
    pub levels: Vec<LevelStats>,
    /// Bytes on disk per level (`raw`, `1m`, `1h`, `1d`), where the
    /// backend can tell.
    pub bytes: Vec<(String, u64)>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LevelStats {
    pub machine_id: uuid::Uuid,
    pub machine_name: String,
    /// `raw`, `1m`, `1h` or `1d`.
    pub level: &'static str,
    pub rows: u64,
    pub oldest: Option<DateTime<Utc>>,
    pub newest: Option<DateTime<Utc>>,
}

impl Source {
    /// The table and its time column.
    pub fn table(self) -> (&'static str, &'static str) {
        match self {
            Self::Raw => ("readings", "ts"),
            Self::Tier(t) => (t.table(), "bucket"),
        }
    }

    /// Every table pruned with this level: the hour cells (`period_1h`)
    /// are kept as long as the hourly rollups.
    pub fn pruned_tables(self) -> &'static [&'static str] {
        match self {
            Self::Raw => &["readings"],
            Self::Tier(Tier::Minute) => &["rollup_1m"],
            Self::Tier(Tier::Hour) => &["rollup_1h", "period_1h"],
            Self::Tier(Tier::Day) => &["rollup_1d"],
        }
    }

    pub fn parse(name: &str) -> Option<Source> {
        LEVELS_FINEST_FIRST.into_iter().find(|l| l.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: i64 = 60_000;
    const H: i64 = 3_600_000;
    const D: i64 = 86_400_000;

    #[test]
    fn an_aligned_year_at_an_hour_reads_days() {
        // Days divide neither 1h buckets: the coarsest tier for 1h is hours.
        assert_eq!(plan(0, 365 * D, H), vec![Segment { source: Source::Tier(Tier::Hour), start: 0, end: 365 * D }]);
        assert_eq!(plan(0, 365 * D, D), vec![Segment { source: Source::Tier(Tier::Day), start: 0, end: 365 * D }]);
        assert_eq!(
            plan(0, 30 * D, 15 * M),
            vec![Segment { source: Source::Tier(Tier::Minute), start: 0, end: 30 * D }]
        );
    }

    #[test]
    fn unaligned_edges_fall_to_finer_tiers_and_raw() {
        let (s, e) = (D + 3 * H + 5 * M + 7, 40 * D + 2 * H + 30 * M + 11);
        let segs = plan(s, e, D);
        let expect = vec![
            Segment { source: Source::Raw, start: s, end: D + 3 * H + 6 * M },
            Segment { source: Source::Tier(Tier::Minute), start: D + 3 * H + 6 * M, end: D + 4 * H },
            Segment { source: Source::Tier(Tier::Hour), start: D + 4 * H, end: 2 * D },
            Segment { source: Source::Tier(Tier::Day), start: 2 * D, end: 40 * D },
            Segment { source: Source::Tier(Tier::Hour), start: 40 * D, end: 40 * D + 2 * H },
            Segment { source: Source::Tier(Tier::Minute), start: 40 * D + 2 * H, end: 40 * D + 2 * H + 30 * M },
            Segment { source: Source::Raw, start: 40 * D + 2 * H + 30 * M, end: e },
        ];
        assert_eq!(segs, expect);
        // The segments tile the span.
        for w in segs.windows(2) {
            assert_eq!(w[0].end, w[1].start);
        }
        // A span inside one minute is raw; before the epoch works too.
        assert_eq!(plan(10, 20, H), vec![Segment { source: Source::Raw, start: 10, end: 20 }]);
        assert_eq!(plan(-2 * H, 0, H), vec![Segment { source: Source::Tier(Tier::Hour), start: -2 * H, end: 0 }]);
    }

    #[test]
    fn pruned_time_is_answered_by_the_levels_that_remain() {
        let floors = Floors { raw: Some(90 * D), minute: Some(30 * D), hour: None, day: None };
        let r = regions(10 * D + 5, 100 * D + 7, Some(15 * M), &floors);
        assert_eq!(
            r,
            vec![
                // 15-minute buckets cannot come from hours: hourly points.
                Region { start: 10 * D + 5, end: 30 * D, width: Some(H), finest: Source::Tier(Tier::Hour) },
                Region { start: 30 * D, end: 90 * D, width: Some(15 * M), finest: Source::Tier(Tier::Minute) },
                Region { start: 90 * D, end: 100 * D + 7, width: Some(15 * M), finest: Source::Raw },
            ]
        );
        // Raw asked where only minutes remain: minutes answer.
        let r = regions(80 * D, 95 * D, None, &floors);
        assert_eq!(r[0], Region { start: 80 * D, end: 90 * D, width: Some(M), finest: Source::Tier(Tier::Minute) });
        assert_eq!(r[1], Region { start: 90 * D, end: 95 * D, width: None, finest: Source::Raw });
        // Edges in a pruned stretch are whole buckets of the finest level.
        assert_eq!(
            plan_from(10 * D + 5, 11 * D + H + 7, H, Source::Tier(Tier::Hour)),
            vec![Segment { source: Source::Tier(Tier::Hour), start: 10 * D, end: 11 * D + 2 * H },]
        );
        // Nothing kept before the day floor.
        let gone = Floors { raw: Some(5 * D), minute: Some(5 * D), hour: Some(5 * D), day: Some(5 * D) };
        assert_eq!(
            regions(0, 6 * D, Some(D), &gone),
            vec![Region { start: 5 * D, end: 6 * D, width: Some(D), finest: Source::Raw }]
        );
    }

    #[test]
    fn touched_buckets_become_ranges() {
        let mut ts = vec![5 * M + 1, 0, 30 * M, 10_000 * M, 6 * M - 1];
        assert_eq!(affected(&mut ts, Tier::Minute), vec![(0, 31 * M), (10_000 * M, 10_001 * M)]);
        assert_eq!(widen(&[(0, 31 * M), (10_000 * M, 10_001 * M)], Tier::Hour), vec![(0, H), (166 * H, 167 * H)]);
        assert_eq!(widen(&[(0, H), (H, 2 * H)], Tier::Day), vec![(0, D)]);
    }
}
