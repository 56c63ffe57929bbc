//! Goodness of fit as ASHRAE Guideline 14 defines it, and its acceptance
//! thresholds for calibrated baseline models.
//!
//! Both CV(RMSE) and NMBE divide by `n − p` (observations minus estimated
//! parameters), as Guideline 14 (2014), annex B, writes them.

use serde::{Deserialize, Serialize};

/// Thresholds depend on the interval the model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct G14Limits {
    /// Largest accepted CV(RMSE), %.
    pub cv_rmse_pct: f64,
    /// Largest accepted |NMBE|, %.
    pub nmbe_pct: f64,
}

impl G14Limits {
    /// Hourly models: CV(RMSE) ≤ 30 %, |NMBE| ≤ 10 %.
    pub const HOURLY: Self = Self { cv_rmse_pct: 30.0, nmbe_pct: 10.0 };
    /// Daily and monthly models: CV(RMSE) ≤ 15 %, |NMBE| ≤ 5 %.
    pub const DAILY: Self = Self { cv_rmse_pct: 15.0, nmbe_pct: 5.0 };
}

/// How well predictions match measurements.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitQuality {
    pub n: usize,
    /// Root mean squared error with `n − p` in the denominator, in the
    /// target's unit.
    pub rmse: f64,
    pub cv_rmse_pct: f64,
    pub nmbe_pct: f64,
    pub mean_actual: f64,
    pub g14: G14Check,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct G14Check {
    pub pass: bool,
    pub limits: G14Limits,
    /// Why it failed, empty when it passed.
    pub reasons: Vec<String>,
}

/// Quality of `predicted` against `actual` for a model with `p` parameters.
pub fn assess(actual: &[f64], predicted: &[f64], p: usize, limits: G14Limits) -> FitQuality {
    let n = actual.len().min(predicted.len());
    let dof = n.saturating_sub(p).max(1) as f64;
    let mean_actual = actual[..n].iter().sum::<f64>() / n.max(1) as f64;
    let (sse, bias) = actual[..n]
        .iter()
        .zip(&predicted[..n])
        .fold((0.0, 0.0), |(sse, bias), (a, f)| (sse + (a - f).powi(2), bias + (a - f)));
    let rmse = (sse / dof).sqrt();
    let (cv_rmse_pct, nmbe_pct) = if mean_actual.abs() > f64::EPSILON {
        (100.0 * rmse / mean_actual, 100.0 * bias / (dof * mean_actual))
    } else {
        (f64::INFINITY, f64::INFINITY)
    };
    FitQuality { n, rmse, cv_rmse_pct, nmbe_pct, mean_actual, g14: check(cv_rmse_pct, nmbe_pct, limits) }
}

pub fn check(cv_rmse_pct: f64, nmbe_pct: f64, limits: G14Limits) -> G14Check {
    let mut reasons = Vec::new();
    if cv_rmse_pct > limits.cv_rmse_pct || cv_rmse_pct.is_nan() {
        reasons.push(format!("CV(RMSE) {cv_rmse_pct:.1} % is above {} %", limits.cv_rmse_pct));
    }
    if nmbe_pct.abs() > limits.nmbe_pct || nmbe_pct.is_nan() {
        reasons.push(format!("|NMBE| {:.2} % is above {} %", nmbe_pct.abs(), limits.nmbe_pct));
    }
    G14Check { pass: reasons.is_empty(), limits, reasons }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_match_guideline_14() {
        // Residuals 1, −1, 2, 0 around a mean of 10 with p = 2: SSE 6, n − p 2.
        let actual = [11.0, 9.0, 12.0, 8.0];
        let predicted = [10.0, 10.0, 10.0, 8.0];
        let q = assess(&actual, &predicted, 2, G14Limits::HOURLY);
        assert!((q.rmse - 3f64.sqrt()).abs() < 1e-12);
        assert!((q.cv_rmse_pct - 100.0 * 3f64.sqrt() / 10.0).abs() < 1e-9);
        assert!((q.nmbe_pct - 100.0 * 2.0 / (2.0 * 10.0)).abs() < 1e-9);
        assert!(q.g14.pass, "17.3 % and 10 % are within the hourly limits");
        let daily = assess(&actual, &predicted, 2, G14Limits::DAILY);
        assert!(!daily.g14.pass);
        assert_eq!(daily.g14.reasons.len(), 2);
    }

    #[test]
    fn zero_mean_fails_instead_of_dividing_by_zero() {
        let q = assess(&[0.0, 0.0, 0.0], &[0.1, 0.0, 0.0], 1, G14Limits::HOURLY);
        assert!(!q.g14.pass);
    }
}
