//! Ordinary least squares by QR decomposition, with the statistics an energy
//! engineer reads off a regression table: standard errors, t and p values per
//! coefficient, and the model's F test.
//!
//! QR rather than the normal equations because degree-hours and operating
//! hours are often strongly correlated; squaring the design matrix would
//! square its condition number.

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, FisherSnedecor, StudentsT};

/// One estimated coefficient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coefficient {
    pub name: String,
    pub estimate: f64,
    pub std_error: f64,
    pub t_value: f64,
    /// Two-sided p-value of the t test against zero.
    pub p_value: f64,
}

/// A fitted linear model `y = X·β + ε` (the first column of X is usually the
/// intercept).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OlsFit {
    pub coefficients: Vec<Coefficient>,
    pub n: usize,
    /// Residual degrees of freedom, n − p.
    pub df_resid: usize,
    pub r_squared: f64,
    pub adj_r_squared: f64,
    /// Sum of squared residuals.
    pub sse: f64,
    /// F statistic of the model against the intercept-only model and its p-value.
    pub f_statistic: f64,
    pub f_p_value: f64,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OlsError {
    #[error("{n} observations cannot estimate {p} coefficients; at least {need} are needed")]
    TooFewObservations { n: usize, p: usize, need: usize },
    #[error("variable {0:?} is constant or a linear combination of the others")]
    Collinear(String),
    #[error("the data hold a value that is not a finite number")]
    NotFinite,
}

/// Fits `y` on the columns of `x` (row-major, `names.len()` columns).
/// `has_intercept` says whether column 0 is the constant; it decides how R²
/// and the F test are computed, as numpy/statsmodels do.
pub fn fit(names: &[String], x: &[f64], y: &[f64], has_intercept: bool) -> Result<OlsFit, OlsError> {
    let p = names.len();
    let n = y.len();
    if x.len() != n * p {
        return Err(OlsError::NotFinite);
    }
    if n < p + 2 {
        return Err(OlsError::TooFewObservations { n, p, need: p + 2 });
    }
    if !x.iter().chain(y).all(|v| v.is_finite()) {
        return Err(OlsError::NotFinite);
    }
    let xm = DMatrix::from_row_slice(n, p, x);
    let yv = DVector::from_column_slice(y);
    let qr = xm.clone().qr();
    let r = qr.r();
    check_rank(&r, &xm, names)?;
    let qty = qr.q().transpose() * &yv;
    let beta = r.solve_upper_triangular(&qty).ok_or_else(|| OlsError::Collinear(names[p - 1].clone()))?;
    let resid = &yv - &xm * &beta;
    let sse = resid.norm_squared();
    let df_resid = n - p;
    let sigma2 = sse / df_resid as f64;
    let r_inv =
        r.solve_upper_triangular(&DMatrix::identity(p, p)).ok_or_else(|| OlsError::Collinear(names[0].clone()))?;
    let cov_unscaled = &r_inv * r_inv.transpose();
    let t_dist = StudentsT::new(0.0, 1.0, df_resid as f64).map_err(|_| OlsError::NotFinite)?;
    let coefficients = (0..p)
        .map(|j| {
            let se = (sigma2 * cov_unscaled[(j, j)]).sqrt();
            let t = beta[j] / se;
            let p_value = if t.is_finite() { 2.0 * (1.0 - t_dist.cdf(t.abs())) } else { 0.0 };
            Coefficient { name: names[j].clone(), estimate: beta[j], std_error: se, t_value: t, p_value }
        })
        .collect();
    let mean = yv.mean();
    let sst = if has_intercept { yv.iter().map(|v| (v - mean).powi(2)).sum() } else { yv.norm_squared() };
    let r_squared = if sst > 0.0 { 1.0 - sse / sst } else { 0.0 };
    let df_model = p - usize::from(has_intercept);
    let dof_total = (n - usize::from(has_intercept)) as f64;
    let adj_r_squared = 1.0 - (1.0 - r_squared) * dof_total / df_resid as f64;
    let (f_statistic, f_p_value) = f_test(sst - sse, sse, df_model, df_resid);
    Ok(OlsFit { coefficients, n, df_resid, r_squared, adj_r_squared, sse, f_statistic, f_p_value })
}

/// A diagonal entry of R that is tiny next to its column's norm means the
/// column adds nothing the earlier ones do not already span.
fn check_rank(r: &DMatrix<f64>, x: &DMatrix<f64>, names: &[String]) -> Result<(), OlsError> {
    for j in 0..r.ncols() {
        let norm = x.column(j).norm();
        if norm == 0.0 || r[(j, j)].abs() <= 1e-9 * norm {
            return Err(OlsError::Collinear(names[j].clone()));
        }
    }
    Ok(())
}

fn f_test(ssr: f64, sse: f64, df_model: usize, df_resid: usize) -> (f64, f64) {
    if df_model == 0 || sse <= 0.0 {
        return (f64::INFINITY, 0.0);
    }
    let f = (ssr / df_model as f64) / (sse / df_resid as f64);
    let p = FisherSnedecor::new(df_model as f64, df_resid as f64).map(|d| 1.0 - d.cdf(f.max(0.0))).unwrap_or(f64::NAN);
    (f, p)
}

/// `x · β` for one row.
pub fn predict(coefficients: &[Coefficient], row: &[f64]) -> f64 {
    coefficients.iter().zip(row).map(|(c, v)| c.estimate * v).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("x{i}")).collect()
    }

    #[test]
    fn exact_line_is_recovered() {
        let x: Vec<f64> = (0..10).flat_map(|i| [1.0, i as f64]).collect();
        let y: Vec<f64> = (0..10).map(|i| 3.0 + 2.0 * i as f64).collect();
        let fit = fit(&names(2), &x, &y, true).unwrap();
        assert!((fit.coefficients[0].estimate - 3.0).abs() < 1e-12);
        assert!((fit.coefficients[1].estimate - 2.0).abs() < 1e-12);
        assert!((fit.r_squared - 1.0).abs() < 1e-12);
    }

    #[test]
    fn collinear_column_is_named() {
        let x: Vec<f64> = (0..10).flat_map(|i| [1.0, i as f64, 2.0 * i as f64]).collect();
        let y: Vec<f64> = (0..10).map(|i| i as f64).collect();
        assert_eq!(fit(&names(3), &x, &y, true).unwrap_err(), OlsError::Collinear("x2".into()));
    }

    #[test]
    fn too_few_rows_is_refused() {
        let err = fit(&names(2), &[1.0, 1.0, 1.0, 2.0], &[1.0, 2.0], true).unwrap_err();
        assert!(matches!(err, OlsError::TooFewObservations { n: 2, p: 2, .. }));
    }
}
