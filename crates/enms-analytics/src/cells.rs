//! Hour cells: one machine's readings summed, interval-weighted, by the UTC
//! hour their interval's middle falls in — everything KPIs and the
//! baseline's periods need of them. The store keeps one cell per machine
//! and hour (`period_1h`), so KPIs over a year read 8,760 cells instead of
//! every reading.
//!
//! A reading's interval is the gap to the machine's previous reading,
//! capped at [`MAX_INTERVAL_H`]; a reading with no other in the hour before
//! it covers that whole hour (a longer gap is missing data, and the first
//! reading of a machine is taken to cover the hour before it). Because the
//! cap bounds every interval, a cell depends only on readings within an
//! hour of it: a window's edges can be computed from the readings around
//! them, exactly as the store computes whole cells.

use chrono::{DateTime, Duration, DurationRound, Utc};

use crate::series::{Granularity, MAX_INTERVAL_H, MIN_COVERAGE, Period, Sample};

/// One machine's intervals whose middle falls in one UTC hour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cell {
    pub start: DateTime<Utc>,
    /// Intervals (readings) in the cell.
    pub readings: u64,
    pub covered_h: f64,
    /// Σ power × hours: energy as the power readings integrate it.
    pub kwh: f64,
    /// Σ production units.
    pub units: f64,
    /// Hours with production.
    pub operating_h: f64,
    /// Σ temperature × hours, over the intervals with a temperature.
    pub temp_weighted: f64,
    pub temp_h: f64,
    pub peak_kw: f64,
    /// The earliest reading at `peak_kw`.
    pub peak_at: DateTime<Utc>,
}

impl Cell {
    /// Adds another cell's sums (of the same hour, or of a longer period).
    pub fn merge(&mut self, o: &Cell) {
        self.readings += o.readings;
        self.covered_h += o.covered_h;
        self.kwh += o.kwh;
        self.units += o.units;
        self.operating_h += o.operating_h;
        self.temp_weighted += o.temp_weighted;
        self.temp_h += o.temp_h;
        if o.peak_kw > self.peak_kw || (o.peak_kw == self.peak_kw && o.peak_at < self.peak_at) {
            self.peak_kw = o.peak_kw;
            self.peak_at = o.peak_at;
        }
    }
}

/// The interval of each sample whose middle falls in `[from, to)`, as
/// (sample, hours, middle). `samples` are time-ordered and must hold every
/// reading from an hour before `from` (the predecessors) to half an hour
/// after `to`.
pub fn intervals_in(
    samples: &[Sample],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> impl Iterator<Item = (Sample, f64, DateTime<Utc>)> + '_ {
    let cap_ms = (MAX_INTERVAL_H * 3.6e6) as i64;
    samples.iter().enumerate().filter_map(move |(i, s)| {
        let gap = match i.checked_sub(1).map(|p| &samples[p]) {
            Some(prev) => (s.timestamp - prev.timestamp).num_milliseconds().min(cap_ms),
            None => cap_ms,
        };
        if gap <= 0 {
            return None;
        }
        let middle = s.timestamp - Duration::milliseconds(gap / 2);
        (middle >= from && middle < to).then_some((*s, gap as f64 / 3.6e6, middle))
    })
}

/// The cells of `[from, to)` (see [`intervals_in`] for what `samples`
/// must hold), oldest first.
pub fn cells(samples: &[Sample], from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Cell> {
    let mut out: Vec<Cell> = Vec::new();
    for (s, hours, middle) in intervals_in(samples, from, to) {
        let start = middle.duration_trunc(Duration::hours(1)).unwrap_or(middle);
        let units = s.production_units.unwrap_or(0.0);
        let one = Cell {
            start,
            readings: 1,
            covered_h: hours,
            kwh: s.power_kw * hours,
            units,
            operating_h: if units > 0.0 { hours } else { 0.0 },
            temp_weighted: s.outdoor_temp_c.map_or(0.0, |t| t * hours),
            temp_h: if s.outdoor_temp_c.is_some() { hours } else { 0.0 },
            peak_kw: s.power_kw,
            peak_at: s.timestamp,
        };
        match out.iter_mut().find(|c| c.start == start) {
            Some(c) => c.merge(&one),
            None => out.push(one),
        }
    }
    out.sort_by_key(|c| c.start);
    out
}

/// The periods of `granularity` the cells cover well enough, oldest first.
/// A period's temperature is its hours' mean temperatures, each weighted by
/// its hours: degree-hours from hourly means, where the raw readings would
/// weigh each reading's own temperature (they differ only in hours whose
/// readings straddle the base temperature).
pub fn periods(cells: &[Cell], granularity: Granularity) -> Vec<Period> {
    let len = granularity.duration();
    let mut out: Vec<(Cell, Vec<(f64, f64)>)> = Vec::new();
    for c in cells {
        let start = c.start.duration_trunc(len).unwrap_or(c.start);
        let temp = (c.temp_h > 0.0).then(|| (c.temp_weighted / c.temp_h, c.temp_h));
        match out.last_mut() {
            Some((p, temps)) if p.start == start => {
                p.merge(c);
                temps.extend(temp);
            }
            _ => out.push((Cell { start, ..*c }, temp.into_iter().collect())),
        }
    }
    out.into_iter()
        .filter(|(p, _)| p.covered_h >= MIN_COVERAGE * granularity.hours())
        .map(|(p, temperatures)| Period {
            start: p.start,
            covered_h: p.covered_h,
            mean_kw: p.kwh / p.covered_h,
            production_per_h: p.units / p.covered_h,
            operating_share: p.operating_h / p.covered_h,
            temperatures,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(minute: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).single().expect("time") + Duration::minutes(minute)
    }

    fn sample(minute: i64, kw: f64) -> Sample {
        Sample { timestamp: at(minute), power_kw: kw, production_units: Some(1.0), outdoor_temp_c: Some(4.0) }
    }

    #[test]
    fn intervals_are_bucketed_by_their_middle() {
        // 15-minute readings from 00:15; a gap of 90 minutes after 01:00.
        let minutes = [15, 30, 45, 60, 150, 165];
        let samples: Vec<Sample> = minutes.iter().map(|m| sample(*m, *m as f64)).collect();
        let c = cells(&samples, at(0), at(180));
        // 00:15 has no predecessor: it covers the hour before (middle
        // 23:45 the day before, outside). 00:30 .. 01:00 have middles at
        // 00:22:30, 00:37:30, 00:52:30; 02:30 covers an hour (middle 02:00),
        // 02:45 a quarter (middle 02:37:30).
        assert_eq!(c.len(), 2);
        assert_eq!((c[0].start, c[0].readings), (at(0), 3));
        assert!((c[0].covered_h - 0.75).abs() < 1e-12);
        assert!((c[0].kwh - (30.0 + 45.0 + 60.0) * 0.25).abs() < 1e-9);
        assert_eq!((c[0].peak_kw, c[0].peak_at), (60.0, at(60)));
        assert_eq!((c[1].start, c[1].readings), (at(120), 2));
        assert!((c[1].covered_h - 1.25).abs() < 1e-12);
        // Windows cut anywhere add up to the whole.
        let whole: f64 = c.iter().map(|c| c.kwh).sum();
        let parts: f64 = [(0, 37), (37, 121), (121, 180)]
            .iter()
            .flat_map(|(a, b)| cells(&samples, at(*a), at(*b)))
            .map(|c| c.kwh)
            .sum();
        assert!((whole - parts).abs() < 1e-9);
    }

    #[test]
    fn periods_merge_cells_and_leave_thin_ones_out() {
        let samples: Vec<Sample> = (1..=12).map(|i| sample(15 * i, 10.0)).collect();
        let c = cells(&samples, at(0), at(24 * 60));
        let hourly = periods(&c, Granularity::Hourly);
        // Hour 0 holds three quarters (the first reading's middle is the
        // day before): 0.75 h ≥ half an hour; hours 1 and 2 hold four.
        assert_eq!(hourly.len(), 3);
        assert!((hourly[0].mean_kw - 10.0).abs() < 1e-12);
        assert!((hourly[1].production_per_h - 4.0).abs() < 1e-12);
        assert_eq!(hourly[1].temperatures, vec![(4.0, 1.0)]);
        assert!(periods(&c, Granularity::Daily).is_empty(), "under half a day covered");
    }
}
