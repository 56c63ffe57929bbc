//! Readings as a time series: the interval each reading covers, and the
//! aggregation of readings into hourly or daily periods with rates that a
//! regression can use whatever the meter's reporting interval was.
//!
//! A reading's power is the average over the interval that ends at its
//! timestamp. The interval is the gap to the machine's previous reading,
//! capped at [`MAX_INTERVAL_H`]: a longer gap is missing data, not one long
//! interval.

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::{Deserialize, Serialize};

/// Longest gap still taken as one reading interval, hours.
pub const MAX_INTERVAL_H: f64 = 1.0;
/// A period with less of its length covered by readings is left out.
pub const MIN_COVERAGE: f64 = 0.5;

/// What analytics needs of a reading.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub timestamp: DateTime<Utc>,
    pub power_kw: f64,
    pub production_units: Option<f64>,
    pub outdoor_temp_c: Option<f64>,
}

/// A sample with the hours it covers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub sample: Sample,
    pub hours: f64,
}

impl Interval {
    /// Production per hour, 0 when the meter reports none.
    pub fn production_rate(&self) -> f64 {
        match self.sample.production_units {
            Some(u) if self.hours > 0.0 => u / self.hours,
            _ => 0.0,
        }
    }

    pub fn operating(&self) -> bool {
        self.sample.production_units.is_some_and(|u| u > 0.0)
    }
}

/// Pairs time-ordered samples with the interval each covers.
pub fn intervals(samples: &[Sample]) -> Vec<Interval> {
    indexed_intervals(samples).into_iter().map(|(_, iv)| iv).collect()
}

/// As [`intervals`], with the index of each interval's sample (a sample
/// that covers no time, a repeated timestamp, has none).
pub fn indexed_intervals(samples: &[Sample]) -> Vec<(usize, Interval)> {
    let gap =
        |a: &Sample, b: &Sample| ((b.timestamp - a.timestamp).num_milliseconds() as f64 / 3.6e6).min(MAX_INTERVAL_H);
    let first = match samples {
        [a, b, ..] => gap(a, b),
        _ => 0.25,
    };
    samples
        .iter()
        .enumerate()
        .map(|(i, s)| (i, Interval { sample: *s, hours: if i == 0 { first } else { gap(&samples[i - 1], s) } }))
        .filter(|(_, iv)| iv.hours > 0.0)
        .collect()
}

/// Length of the periods a baseline models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    Hourly,
    Daily,
}

impl Granularity {
    pub fn hours(self) -> f64 {
        match self {
            Self::Hourly => 1.0,
            Self::Daily => 24.0,
        }
    }

    pub fn duration(self) -> Duration {
        match self {
            Self::Hourly => Duration::hours(1),
            Self::Daily => Duration::days(1),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hourly => "hourly",
            Self::Daily => "daily",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "hourly" | "hour" | "1h" => Some(Self::Hourly),
            "daily" | "day" | "1d" => Some(Self::Daily),
            _ => None,
        }
    }
}

/// One hour or day of a machine's consumption and its drivers, as rates per
/// hour so that partly covered periods stay comparable.
#[derive(Debug, Clone, PartialEq)]
pub struct Period {
    pub start: DateTime<Utc>,
    /// Hours of the period covered by readings.
    pub covered_h: f64,
    pub mean_kw: f64,
    pub production_per_h: f64,
    /// Share of covered time with production.
    pub operating_share: f64,
    /// (temperature, hours) of each reading with a temperature.
    pub temperatures: Vec<(f64, f64)>,
}

impl Period {
    /// Mean of `max(0, base − T)`: heating degree-hours per hour, which is
    /// also degree-days per day.
    pub fn heating_degrees(&self, base: f64) -> f64 {
        self.degrees(|t| (base - t).max(0.0))
    }

    /// Mean of `max(0, T − base)`.
    pub fn cooling_degrees(&self, base: f64) -> f64 {
        self.degrees(|t| (t - base).max(0.0))
    }

    pub fn has_temperature(&self) -> bool {
        !self.temperatures.is_empty()
    }

    fn degrees(&self, f: impl Fn(f64) -> f64) -> f64 {
        let hours: f64 = self.temperatures.iter().map(|(_, h)| h).sum();
        if hours <= 0.0 {
            return 0.0;
        }
        self.temperatures.iter().map(|(t, h)| f(*t) * h).sum::<f64>() / hours
    }
}

/// The periods of `granularity` that readings cover well enough, oldest first.
pub fn periods(intervals: &[Interval], granularity: Granularity) -> Vec<Period> {
    let len = granularity.duration();
    let mut out: Vec<Period> = Vec::new();
    for iv in intervals {
        let middle = iv.sample.timestamp - Duration::milliseconds((iv.hours * 1.8e6) as i64);
        let start = middle.duration_trunc(len).unwrap_or(middle);
        if out.last().is_none_or(|p| p.start != start) {
            out.push(Period {
                start,
                covered_h: 0.0,
                mean_kw: 0.0,
                production_per_h: 0.0,
                operating_share: 0.0,
                temperatures: Vec::new(),
            });
        }
        let Some(p) = out.last_mut() else { continue };
        // Accumulate sums; divided by the covered hours below.
        p.covered_h += iv.hours;
        p.mean_kw += iv.sample.power_kw * iv.hours;
        p.production_per_h += iv.production_rate() * iv.hours;
        p.operating_share += if iv.operating() { iv.hours } else { 0.0 };
        if let Some(t) = iv.sample.outdoor_temp_c {
            p.temperatures.push((t, iv.hours));
        }
    }
    out.retain(|p| p.covered_h >= MIN_COVERAGE * granularity.hours());
    for p in &mut out {
        p.mean_kw /= p.covered_h;
        p.production_per_h /= p.covered_h;
        p.operating_share /= p.covered_h;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn sample(minute: i64, kw: f64, units: f64) -> Sample {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).unwrap();
        Sample {
            timestamp: t0 + Duration::minutes(minute),
            power_kw: kw,
            production_units: Some(units),
            outdoor_temp_c: Some(5.0),
        }
    }

    #[test]
    fn quarter_hours_make_hourly_rates() {
        let samples: Vec<Sample> = (1..=8).map(|i| sample(15 * i, if i <= 4 { 10.0 } else { 20.0 }, 5.0)).collect();
        let periods = periods(&intervals(&samples), Granularity::Hourly);
        assert_eq!(periods.len(), 2);
        assert!((periods[0].mean_kw - 10.0).abs() < 1e-12);
        assert!((periods[1].mean_kw - 20.0).abs() < 1e-12);
        assert!((periods[0].production_per_h - 20.0).abs() < 1e-9, "5 units per 15 min");
        assert!((periods[0].heating_degrees(15.0) - 10.0).abs() < 1e-12);
        assert_eq!(periods[0].cooling_degrees(15.0), 0.0);
    }

    #[test]
    fn thin_periods_are_left_out() {
        // The second hour holds one 10-minute reading: under half covered.
        let samples: Vec<Sample> = [15, 30, 45, 60, 70].iter().map(|m| sample(*m, 1.0, 0.0)).collect();
        let p = periods(&intervals(&samples), Granularity::Hourly);
        assert_eq!(p.len(), 1);
        assert!((p[0].covered_h - 1.0).abs() < 1e-12);
        assert_eq!(p[0].operating_share, 0.0);
    }
}
