//! Energy KPIs over a window: consumption, peak, load factor, specific energy
//! consumption, cost under a time-of-use tariff, and the comparison with a
//! baseline with its CUSUM (ISO 50006): a falling CUSUM is savings, a rising
//! one waste, and a change of slope a change in the process.

use chrono::{DateTime, Datelike, Timelike, Utc, Weekday};
use serde::{Deserialize, Serialize};

use crate::baseline::BaselineModel;
use crate::cells::Cell;
use crate::series::{self, Interval};

/// Time-of-use tariff: `peak_price` on weekdays from `peak_start_hour` to
/// `peak_end_hour` (local to UTC, as timestamps are stored), `offpeak_price`
/// otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Tariff {
    pub currency: String,
    pub peak_start_hour: u32,
    pub peak_end_hour: u32,
    pub peak_price: f64,
    pub offpeak_price: f64,
}

impl Default for Tariff {
    fn default() -> Self {
        Self { currency: "EUR".into(), peak_start_hour: 8, peak_end_hour: 20, peak_price: 0.28, offpeak_price: 0.16 }
    }
}

impl Tariff {
    pub fn is_peak(&self, t: DateTime<Utc>) -> bool {
        !matches!(t.weekday(), Weekday::Sat | Weekday::Sun)
            && (self.peak_start_hour..self.peak_end_hour).contains(&t.hour())
    }

    pub fn price(&self, t: DateTime<Utc>) -> f64 {
        if self.is_peak(t) { self.peak_price } else { self.offpeak_price }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Kpis {
    pub readings: usize,
    pub total_kwh: f64,
    pub peak_kw: Option<f64>,
    pub peak_at: Option<DateTime<Utc>>,
    pub average_kw: Option<f64>,
    /// Average over peak power.
    pub load_factor: Option<f64>,
    pub production_units: f64,
    /// kWh per production unit.
    pub sec_kwh_per_unit: Option<f64>,
    pub cost: Cost,
    pub baseline: Option<BaselineComparison>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Cost {
    pub currency: String,
    pub total: f64,
    pub peak_kwh: f64,
    pub offpeak_kwh: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BaselineComparison {
    pub granularity: series::Granularity,
    pub actual_kwh: f64,
    pub expected_kwh: f64,
    /// Expected minus actual: positive is energy saved.
    pub savings_kwh: f64,
    pub savings_pct: Option<f64>,
    pub cusum: Vec<CusumPoint>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CusumPoint {
    pub timestamp: DateTime<Utc>,
    pub actual_kwh: f64,
    pub expected_kwh: f64,
    /// Running sum of actual − expected.
    pub cusum_kwh: f64,
}

/// KPIs of time-ordered intervals of one machine.
pub fn compute(rows: &[Interval], tariff: &Tariff, baseline: Option<&BaselineModel>) -> Kpis {
    let mut total = 0.0;
    let mut hours = 0.0;
    let mut units = 0.0;
    let mut peak: Option<(f64, DateTime<Utc>)> = None;
    let mut cost = Cost { currency: tariff.currency.clone(), total: 0.0, peak_kwh: 0.0, offpeak_kwh: 0.0 };
    for iv in rows {
        let kwh = iv.sample.power_kw * iv.hours;
        total += kwh;
        hours += iv.hours;
        units += iv.sample.production_units.unwrap_or(0.0);
        if peak.is_none_or(|(p, _)| iv.sample.power_kw > p) {
            peak = Some((iv.sample.power_kw, iv.sample.timestamp));
        }
        let mid = iv.sample.timestamp - chrono::Duration::milliseconds((iv.hours * 1.8e6) as i64);
        if tariff.is_peak(mid) {
            cost.peak_kwh += kwh;
        } else {
            cost.offpeak_kwh += kwh;
        }
        cost.total += kwh * tariff.price(mid);
    }
    let average_kw = (hours > 0.0).then(|| total / hours);
    let baseline = baseline.map(|model| {
        let mut cmp = Comparison::default();
        for p in series::periods(rows, model.granularity) {
            cmp.add(&p, model);
        }
        cmp.finish(model)
    });
    Kpis {
        readings: rows.len(),
        total_kwh: total,
        peak_kw: peak.map(|p| p.0),
        peak_at: peak.map(|p| p.1),
        average_kw,
        load_factor: match (average_kw, peak) {
            (Some(a), Some((p, _))) if p > 0.0 => Some(a / p),
            _ => None,
        },
        production_units: units,
        sec_kwh_per_unit: (units > 0.0).then(|| total / units),
        cost,
        baseline,
    }
}

/// KPIs of hour cells ([`crate::cells`]): the intervals whose middle falls
/// in the cells' hours. The same sums as [`compute`] over those intervals;
/// the tariff classifies each cell by its hour, as it would each interval
/// by its middle. A baseline comparison uses the cells' periods
/// ([`crate::cells::periods`]).
pub fn from_cells(cells: &[Cell], tariff: &Tariff, baseline: Option<&BaselineModel>) -> Kpis {
    let mut total = 0.0;
    let mut hours = 0.0;
    let mut units = 0.0;
    let mut readings = 0;
    let mut peak: Option<Cell> = None;
    let mut cost = Cost { currency: tariff.currency.clone(), total: 0.0, peak_kwh: 0.0, offpeak_kwh: 0.0 };
    for c in cells {
        readings += c.readings as usize;
        total += c.kwh;
        hours += c.covered_h;
        units += c.units;
        if peak.is_none_or(|p| c.peak_kw > p.peak_kw || (c.peak_kw == p.peak_kw && c.peak_at < p.peak_at)) {
            peak = Some(*c);
        }
        if tariff.is_peak(c.start) {
            cost.peak_kwh += c.kwh;
        } else {
            cost.offpeak_kwh += c.kwh;
        }
        cost.total += c.kwh * tariff.price(c.start);
    }
    let average_kw = (hours > 0.0).then(|| total / hours);
    let baseline = baseline.map(|model| {
        let mut cmp = Comparison::default();
        for p in crate::cells::periods(cells, model.granularity) {
            cmp.add(&p, model);
        }
        cmp.finish(model)
    });
    Kpis {
        readings,
        total_kwh: total,
        peak_kw: peak.map(|p| p.peak_kw),
        peak_at: peak.map(|p| p.peak_at),
        average_kw,
        load_factor: match (average_kw, peak) {
            (Some(a), Some(p)) if p.peak_kw > 0.0 => Some(a / p.peak_kw),
            _ => None,
        },
        production_units: units,
        sec_kwh_per_unit: (units > 0.0).then(|| total / units),
        cost,
        baseline,
    }
}

/// The running comparison with a baseline, period by period.
#[derive(Default)]
struct Comparison {
    actual: f64,
    expected: f64,
    running: f64,
    cusum: Vec<CusumPoint>,
}

impl Comparison {
    fn add(&mut self, p: &series::Period, model: &BaselineModel) {
        // Scale both to the covered share so partial periods compare fairly.
        let share = (p.covered_h / model.granularity.hours()).min(1.0);
        let a = p.mean_kw * p.covered_h.min(model.granularity.hours());
        let e = model.expected_energy(p) * share;
        self.actual += a;
        self.expected += e;
        self.running += a - e;
        self.cusum.push(CusumPoint { timestamp: p.start, actual_kwh: a, expected_kwh: e, cusum_kwh: self.running });
    }

    fn finish(self, model: &BaselineModel) -> BaselineComparison {
        BaselineComparison {
            granularity: model.granularity,
            actual_kwh: self.actual,
            expected_kwh: self.expected,
            savings_kwh: self.expected - self.actual,
            savings_pct: (self.expected > 0.0).then(|| 100.0 * (self.expected - self.actual) / self.expected),
            cusum: self.cusum,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::series::{Sample, intervals};
    use chrono::{Duration, TimeZone};

    #[test]
    fn totals_peak_cost_and_sec() {
        // Monday: 08:15..=10:00 at 10 kW, then one 15-minute reading at 40 kW.
        let t0 = Utc.with_ymd_and_hms(2026, 11, 16, 8, 0, 0).unwrap();
        let mut samples: Vec<Sample> = (1..=8)
            .map(|i| Sample {
                timestamp: t0 + Duration::minutes(15 * i),
                power_kw: 10.0,
                production_units: Some(5.0),
                outdoor_temp_c: None,
            })
            .collect();
        samples.push(Sample {
            timestamp: t0 + Duration::minutes(135),
            power_kw: 40.0,
            production_units: Some(5.0),
            outdoor_temp_c: None,
        });
        let k = compute(&intervals(&samples), &Tariff::default(), None);
        assert!((k.total_kwh - 30.0).abs() < 1e-9);
        assert_eq!(k.peak_kw, Some(40.0));
        assert_eq!(k.peak_at, Some(t0 + Duration::minutes(135)));
        assert!((k.average_kw.unwrap() - 30.0 / 2.25).abs() < 1e-9);
        assert!((k.sec_kwh_per_unit.unwrap() - 30.0 / 45.0).abs() < 1e-9);
        assert!((k.cost.total - 30.0 * 0.28).abs() < 1e-9, "all within weekday peak hours");
        assert_eq!(k.cost.offpeak_kwh, 0.0);
    }

    #[test]
    fn cells_give_the_kpis_of_their_intervals() {
        // A Monday and Tuesday of 15-minute readings, load rising by hour.
        let t0 = Utc.with_ymd_and_hms(2026, 11, 16, 0, 0, 0).unwrap();
        let samples: Vec<Sample> = (0..192)
            .map(|i| Sample {
                timestamp: t0 + Duration::minutes(15 * i),
                power_kw: 10.0 + (i / 4 % 24) as f64,
                production_units: Some((i % 3) as f64),
                outdoor_temp_c: Some(5.0),
            })
            .collect();
        let (from, to) = (t0 + Duration::hours(3), t0 + Duration::hours(40));
        let from_cells = from_cells(&crate::cells::cells(&samples, from, to), &Tariff::default(), None);
        // The same intervals, one by one.
        let ivs: Vec<Interval> = crate::cells::intervals_in(&samples, from, to)
            .map(|(sample, hours, _)| Interval { sample, hours })
            .collect();
        let by_reading = compute(&ivs, &Tariff::default(), None);
        assert_eq!(from_cells.readings, by_reading.readings);
        assert!((from_cells.total_kwh - by_reading.total_kwh).abs() < 1e-9);
        assert!((from_cells.cost.total - by_reading.cost.total).abs() < 1e-9);
        assert!((from_cells.cost.peak_kwh - by_reading.cost.peak_kwh).abs() < 1e-9);
        assert_eq!(from_cells.peak_kw, by_reading.peak_kw);
        assert!((from_cells.production_units - by_reading.production_units).abs() < 1e-9);
    }
}
