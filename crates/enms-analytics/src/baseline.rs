//! ISO 50006 energy baselines: energy per period regressed on the variables
//! that drive it — production, heating and cooling degrees from the outdoor
//! temperature, and operating hours.
//!
//! Rules (documented in docs/analytics.md):
//! - Balance points, unless given, are searched on a 1 °C grid (heating
//!   5–22 °C, cooling 10–28 °C, cooling ≥ heating) for the best adjusted R².
//! - With variables chosen automatically, a variable without variation is
//!   dropped, and then, as DOE VERIFI requires, the least significant variable
//!   is removed while any has p > 0.2. Named variables are kept as asked.
//! - Anomalous periods do not shape the baseline (ISO 50015 and ASHRAE
//!   Guideline 14 ask for them to be left out): after a first fit, periods
//!   more than 5 σ from it — σ at their expected level, [`NoiseScale`] — are
//!   excluded, at most 10 % of them, the worst first, and the model is
//!   selected and fitted again on the rest. Its statistics describe the
//!   periods kept; `excluded_periods` says how many were not.
//! - Validation refits on the first 80 % of the kept periods and measures
//!   CV(RMSE) and NMBE on the last 20 %, which the model has not seen.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ols::{self, Coefficient, OlsError};
use crate::quality::{self, FitQuality, G14Limits};
use crate::scale::NoiseScale;
pub use crate::series::Granularity;
use crate::series::{Interval, Period};

/// Fewest periods a baseline is fitted on: two days of hours, two weeks of days.
pub const MIN_HOURLY_PERIODS: usize = 48;
pub const MIN_DAILY_PERIODS: usize = 14;
/// Largest p-value a variable may keep in automatic selection (DOE VERIFI).
pub const MAX_VARIABLE_P: f64 = 0.2;
const HEATING_GRID: (i32, i32) = (5, 22);
const COOLING_GRID: (i32, i32) = (10, 28);
const HOLDOUT_SHARE: f64 = 0.2;
/// Periods this many σ from the first fit are excluded from the second.
const EXCLUDE_SIGMA: f64 = 5.0;
/// Most periods excluded: beyond this the "anomaly" is a regime the model
/// should describe, not drop.
const MAX_EXCLUDED_SHARE: f64 = 0.1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Variable {
    Production,
    Hdd,
    Cdd,
    OperatingHours,
}

impl Variable {
    pub const ALL: [Self; 4] = [Self::Production, Self::OperatingHours, Self::Hdd, Self::Cdd];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Production => "production",
            Self::Hdd => "hdd",
            Self::Cdd => "cdd",
            Self::OperatingHours => "operating_hours",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// What to fit.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct BaselineSpec {
    pub granularity: Option<Granularity>,
    /// `None` chooses automatically among the variables the data carry.
    pub variables: Option<Vec<Variable>>,
    pub heating_base_c: Option<f64>,
    pub cooling_base_c: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BaselineError {
    #[error("not enough data: {have} {unit} periods with readings, at least {need} are needed")]
    InsufficientData { have: usize, need: usize, unit: &'static str },
    #[error("variable {0} needs data the readings do not carry ({1})")]
    MissingVariable(&'static str, &'static str),
    #[error("regression failed: {0}")]
    Regression(#[from] OlsError),
}

/// A variable dropped in automatic selection, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dropped {
    pub variable: Variable,
    pub reason: String,
}

/// Range of a variable over the baseline period: predictions outside it are
/// extrapolations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariableRange {
    pub variable: Variable,
    pub min: f64,
    pub max: f64,
}

/// A fitted baseline: predicts energy per period (kWh per hour or per day).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineModel {
    pub granularity: Granularity,
    pub variables: Vec<Variable>,
    pub heating_base_c: Option<f64>,
    pub cooling_base_c: Option<f64>,
    /// Intercept first, then one per variable.
    pub coefficients: Vec<Coefficient>,
    pub r_squared: f64,
    pub adj_r_squared: f64,
    pub f_statistic: f64,
    pub f_p_value: f64,
    /// Fit on the whole baseline period.
    pub quality: FitQuality,
    /// Out-of-sample quality on the last 20 % of periods.
    pub validation: Option<FitQuality>,
    pub dropped: Vec<Dropped>,
    pub ranges: Vec<VariableRange>,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    /// Periods left out as anomalous (absent in models stored before).
    #[serde(default)]
    pub excluded_periods: usize,
}

impl BaselineModel {
    /// Fits a baseline on `periods` (from [`crate::series::periods`]),
    /// leaving out the anomalous ones.
    pub fn fit(periods: &[Period], spec: &BaselineSpec) -> Result<Self, BaselineError> {
        let granularity = spec.granularity.unwrap_or(Granularity::Hourly);
        let (need, unit) = match granularity {
            Granularity::Hourly => (MIN_HOURLY_PERIODS, "hourly"),
            Granularity::Daily => (MIN_DAILY_PERIODS, "daily"),
        };
        if periods.len() < need {
            return Err(BaselineError::InsufficientData { have: periods.len(), need, unit });
        }
        let first = Self::select(periods, spec)?;
        let kept = first.typical(periods);
        if kept.len() == periods.len() || kept.len() < need {
            return Ok(first);
        }
        let mut model = Self::select(&kept, spec)?;
        model.excluded_periods = periods.len() - kept.len();
        Ok(model)
    }

    /// `periods` without those far from this model's prediction (see the
    /// module's rules).
    pub fn typical(&self, periods: &[Period]) -> Vec<Period> {
        let hours = self.granularity.hours();
        let pairs: Vec<(f64, f64)> = periods
            .iter()
            .map(|p| {
                let e = self.expected_energy(p);
                (e, p.mean_kw * hours - e)
            })
            .collect();
        let scale = NoiseScale::fit(&pairs);
        let mut far: Vec<(usize, f64)> = pairs
            .iter()
            .enumerate()
            .map(|(i, (e, d))| (i, d.abs() / scale.at(*e)))
            .filter(|(_, z)| *z > EXCLUDE_SIGMA)
            .collect();
        far.sort_by(|a, b| b.1.total_cmp(&a.1));
        far.truncate((MAX_EXCLUDED_SHARE * periods.len() as f64) as usize);
        let mut excluded = vec![false; periods.len()];
        for (i, _) in far {
            excluded[i] = true;
        }
        periods.iter().zip(excluded).filter(|(_, out)| !out).map(|(p, _)| p.clone()).collect()
    }

    /// Chooses the variables and balance points and fits them on `periods`.
    fn select(periods: &[Period], spec: &BaselineSpec) -> Result<Self, BaselineError> {
        let granularity = spec.granularity.unwrap_or(Granularity::Hourly);
        let automatic = spec.variables.is_none();
        let mut dropped = Vec::new();
        let mut vars = match &spec.variables {
            Some(v) => {
                check_available(periods, v)?;
                dedup(v)
            }
            None => available(periods, &mut dropped),
        };
        loop {
            let candidate = search(periods, granularity, &vars, spec);
            let fit = match candidate {
                Ok(fit) => fit,
                Err(OlsError::Collinear(name)) if automatic => {
                    let Some(v) = Variable::parse(&name) else { return Err(OlsError::Collinear(name).into()) };
                    vars.retain(|x| *x != v);
                    dropped.push(Dropped { variable: v, reason: "collinear with the other variables".into() });
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if automatic && let Some(weakest) = weakest(&fit.model.coefficients) {
                let v = vars[weakest - 1];
                let p = fit.model.coefficients[weakest].p_value;
                vars.remove(weakest - 1);
                dropped
                    .push(Dropped { variable: v, reason: format!("not significant (p = {p:.3} > {MAX_VARIABLE_P})") });
                continue;
            }
            let mut model = fit.model;
            model.dropped = dropped;
            return Ok(model);
        }
    }

    /// Refits on the first 80 % of `periods` and records how well that model
    /// predicts the remaining 20 %.
    pub fn validate(&mut self, periods: &[Period]) {
        let periods = &self.typical(periods);
        let split = ((1.0 - HOLDOUT_SHARE) * periods.len() as f64).round() as usize;
        let (train, test) = periods.split_at(split.min(periods.len()));
        if test.len() < 2 || train.len() < self.coefficients.len() + 2 {
            return;
        }
        let spec = self.fixed_spec();
        let Ok(early) = fit_once(train, &spec, &self.variables) else { return };
        let actual: Vec<f64> = test.iter().map(|p| p.mean_kw * self.granularity.hours()).collect();
        let predicted: Vec<f64> = test.iter().map(|p| early.model.expected_energy(p)).collect();
        self.validation = Some(quality::assess(&actual, &predicted, self.coefficients.len(), limits(self.granularity)));
    }

    /// Predicted kWh over `period`, scaled to the full period length.
    pub fn expected_energy(&self, period: &Period) -> f64 {
        ols::predict(&self.coefficients, &self.row(period)).max(0.0)
    }

    /// Expected average power (kW) during one reading's interval: the model's
    /// prediction for a period whose conditions equal the reading's, divided
    /// by the period's length. Exact for a linear model.
    pub fn expected_power(&self, interval: &Interval) -> f64 {
        let period = Period {
            start: interval.sample.timestamp,
            covered_h: interval.hours,
            mean_kw: interval.sample.power_kw,
            production_per_h: interval.production_rate(),
            operating_share: if interval.operating() { 1.0 } else { 0.0 },
            temperatures: interval.sample.outdoor_temp_c.map(|t| vec![(t, 1.0)]).unwrap_or_default(),
        };
        self.expected_energy(&period) / self.granularity.hours()
    }

    fn row(&self, p: &Period) -> Vec<f64> {
        row(p, self.granularity, &self.variables, self.heating_base_c, self.cooling_base_c)
    }

    fn fixed_spec(&self) -> BaselineSpec {
        BaselineSpec {
            granularity: Some(self.granularity),
            variables: Some(self.variables.clone()),
            heating_base_c: self.heating_base_c,
            cooling_base_c: self.cooling_base_c,
        }
    }
}

pub fn limits(g: Granularity) -> G14Limits {
    match g {
        Granularity::Hourly => G14Limits::HOURLY,
        Granularity::Daily => G14Limits::DAILY,
    }
}

fn dedup(vars: &[Variable]) -> Vec<Variable> {
    let mut out = Vec::new();
    for v in vars {
        if !out.contains(v) {
            out.push(*v);
        }
    }
    out
}

fn check_available(periods: &[Period], vars: &[Variable]) -> Result<(), BaselineError> {
    for v in vars {
        if matches!(v, Variable::Hdd | Variable::Cdd) && !periods.iter().any(Period::has_temperature) {
            return Err(BaselineError::MissingVariable(v.as_str(), "no reading has outdoor_temp_c"));
        }
    }
    Ok(())
}

/// Variables the data can support; the rest are recorded as dropped.
fn available(periods: &[Period], dropped: &mut Vec<Dropped>) -> Vec<Variable> {
    let varies = |f: &dyn Fn(&Period) -> f64| {
        let first = f(&periods[0]);
        periods.iter().any(|p| (f(p) - first).abs() > 1e-9)
    };
    let has_temp = periods.iter().any(Period::has_temperature);
    let mut out = Vec::new();
    for v in Variable::ALL {
        let ok = match v {
            Variable::Production => varies(&|p| p.production_per_h),
            Variable::OperatingHours => varies(&|p| p.operating_share),
            Variable::Hdd | Variable::Cdd => has_temp,
        };
        if ok {
            out.push(v);
        } else {
            dropped.push(Dropped { variable: v, reason: "no variation in the baseline period".into() });
        }
    }
    out
}

/// Index (into the coefficients, so ≥ 1) of the least significant variable
/// when its p-value is above the limit.
fn weakest(coefficients: &[Coefficient]) -> Option<usize> {
    coefficients
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(_, c)| c.p_value > MAX_VARIABLE_P || c.p_value.is_nan())
        .max_by(|a, b| a.1.p_value.total_cmp(&b.1.p_value))
        .map(|(i, _)| i)
}

struct Candidate {
    model: BaselineModel,
}

/// Fits `vars`, searching the balance points the spec leaves open.
fn search(
    periods: &[Period],
    granularity: Granularity,
    vars: &[Variable],
    spec: &BaselineSpec,
) -> Result<Candidate, OlsError> {
    let heat: Vec<Option<f64>> = match (vars.contains(&Variable::Hdd), spec.heating_base_c) {
        (false, _) => vec![None],
        (true, Some(b)) => vec![Some(b)],
        (true, None) => (HEATING_GRID.0..=HEATING_GRID.1).map(|b| Some(f64::from(b))).collect(),
    };
    let cool: Vec<Option<f64>> = match (vars.contains(&Variable::Cdd), spec.cooling_base_c) {
        (false, _) => vec![None],
        (true, Some(b)) => vec![Some(b)],
        (true, None) => (COOLING_GRID.0..=COOLING_GRID.1).map(|b| Some(f64::from(b))).collect(),
    };
    let mut best: Option<Candidate> = None;
    let mut last_err = None;
    for h in &heat {
        for c in &cool {
            if let (Some(h), Some(c)) = (h, c)
                && c < h
            {
                continue;
            }
            let spec = BaselineSpec {
                granularity: Some(granularity),
                variables: None,
                heating_base_c: *h,
                cooling_base_c: *c,
            };
            match fit_once(periods, &spec, vars) {
                Ok(cand) if best.as_ref().is_none_or(|b| cand.model.adj_r_squared > b.model.adj_r_squared) => {
                    best = Some(cand)
                }
                Ok(_) => {}
                Err(e) => last_err = Some(e),
            }
        }
    }
    best.ok_or_else(|| last_err.unwrap_or(OlsError::NotFinite))
}

fn fit_once(periods: &[Period], spec: &BaselineSpec, vars: &[Variable]) -> Result<Candidate, OlsError> {
    let granularity = spec.granularity.unwrap_or(Granularity::Hourly);
    let (hb, cb) = (spec.heating_base_c, spec.cooling_base_c);
    let mut names = vec!["intercept".to_owned()];
    names.extend(vars.iter().map(|v| v.as_str().to_owned()));
    let x: Vec<f64> = periods.iter().flat_map(|p| row(p, granularity, vars, hb, cb)).collect();
    let y: Vec<f64> = periods.iter().map(|p| p.mean_kw * granularity.hours()).collect();
    let fit = ols::fit(&names, &x, &y, true)?;
    let predicted: Vec<f64> = x.chunks(names.len()).map(|r| ols::predict(&fit.coefficients, r)).collect();
    let quality = quality::assess(&y, &predicted, names.len(), limits(granularity));
    let ranges = vars
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let col = x.chunks(names.len()).map(|r| r[i + 1]);
            let (min, max) = col.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
            VariableRange { variable: *v, min, max }
        })
        .collect();
    let model = BaselineModel {
        granularity,
        variables: vars.to_vec(),
        heating_base_c: hb.filter(|_| vars.contains(&Variable::Hdd)),
        cooling_base_c: cb.filter(|_| vars.contains(&Variable::Cdd)),
        coefficients: fit.coefficients,
        r_squared: fit.r_squared,
        adj_r_squared: fit.adj_r_squared,
        f_statistic: fit.f_statistic,
        f_p_value: fit.f_p_value,
        quality,
        validation: None,
        dropped: Vec::new(),
        ranges,
        period_start: periods.first().map(|p| p.start).unwrap_or_default(),
        period_end: periods.last().map(|p| p.start + granularity.duration()).unwrap_or_default(),
        excluded_periods: 0,
    };
    Ok(Candidate { model })
}

/// Design-matrix row: the intercept, then each variable per period.
fn row(p: &Period, g: Granularity, vars: &[Variable], hb: Option<f64>, cb: Option<f64>) -> Vec<f64> {
    let len = g.hours();
    let mut r = Vec::with_capacity(vars.len() + 1);
    r.push(1.0);
    for v in vars {
        r.push(match v {
            Variable::Production => p.production_per_h * len,
            Variable::OperatingHours => p.operating_share * len,
            Variable::Hdd => p.heating_degrees(hb.unwrap_or(15.0)),
            Variable::Cdd => p.cooling_degrees(cb.unwrap_or(18.0)),
        });
    }
    r
}

#[cfg(test)]
mod tests;
