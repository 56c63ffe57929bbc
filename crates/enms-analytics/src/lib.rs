//! Analytics of enms, free of I/O: everything here is a pure function of the
//! data handed in, so the server can run it on a blocking thread and tests can
//! compare it with numpy and scikit-learn.
//!
//! - [`ols`]: ordinary least squares with standard errors and p-values.
//! - [`quality`]: goodness of fit and ASHRAE Guideline 14 acceptance.
//! - [`series`]: readings turned into evenly spaced periods with rates.
//! - [`baseline`]: ISO 50006 energy baselines (production, degree-hours,
//!   operating hours) with balance-point search.
//! - [`iforest`]: an isolation forest with scikit-learn's semantics.
//! - [`detect`]: features per reading, severity and anomaly-type rules.
//! - [`kpi`]: energy KPIs, time-of-use cost and CUSUM against a baseline.
//! - [`explain`]: an anomaly's pattern, contributions, cost, likeness to
//!   past episodes, suggested checks and summary.
//! - [`forecast`]: hourly load forecasts with backtested intervals and
//!   time-to-threshold.
//! - [`roc`]: ROC-AUC, to score detection against labels.

pub mod baseline;
pub mod cells;
pub mod detect;
pub mod explain;
pub mod forecast;
pub mod iforest;
pub mod kpi;
pub mod ols;
pub mod quality;
pub mod roc;
pub mod scale;
pub mod series;

pub use baseline::{BaselineError, BaselineModel, BaselineSpec, Granularity};
pub use iforest::{Contamination, ForestError, ForestParams, IsolationForest};

pub use series::Sample;
