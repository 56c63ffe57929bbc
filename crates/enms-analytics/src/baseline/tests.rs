use chrono::{Duration, TimeZone, Utc};
use enms_core::sim::{DEMO_MACHINES, Factory};

use super::*;
use crate::series::{self, Sample};

/// Hourly periods where energy = 20 + 0.5·production + 3·max(0, 16 − T),
/// with deterministic pseudo-noise.
fn synthetic(hours: usize, noise: f64) -> Vec<Period> {
    let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    (0..hours)
        .map(|h| {
            let temp = 10.0 + 8.0 * ((h as f64) / 24.0 * std::f64::consts::TAU).sin() + (h % 7) as f64 * 0.5;
            let prod = if h % 24 >= 6 && h % 24 < 22 { 100.0 + (h % 13) as f64 * 3.0 } else { 0.0 };
            let wobble = ((h * 7919) % 101) as f64 / 50.0 - 1.0;
            let kw = 20.0 + 0.5 * prod + 3.0 * (16.0f64 - temp).max(0.0) + noise * wobble;
            Period {
                start: t0 + Duration::hours(h as i64),
                covered_h: 1.0,
                mean_kw: kw,
                production_per_h: prod,
                operating_share: if prod > 0.0 { 1.0 } else { 0.0 },
                temperatures: vec![(temp, 1.0)],
            }
        })
        .collect()
}

#[test]
fn recovers_known_coefficients_and_balance_point() {
    let spec = BaselineSpec { variables: Some(vec![Variable::Production, Variable::Hdd]), ..Default::default() };
    let model = BaselineModel::fit(&synthetic(24 * 14, 0.0), &spec).unwrap();
    assert_eq!(model.heating_base_c, Some(16.0), "the searched balance point is the true one");
    let est: Vec<f64> = model.coefficients.iter().map(|c| c.estimate).collect();
    for (got, want) in est.iter().zip([20.0, 0.5, 3.0]) {
        assert!((got - want).abs() < 1e-8, "{est:?}");
    }
    assert!(model.quality.g14.pass);
}

#[test]
fn automatic_selection_drops_what_does_not_matter() {
    let mut model = BaselineModel::fit(&synthetic(24 * 21, 4.0), &BaselineSpec::default()).unwrap();
    assert!(model.variables.contains(&Variable::Production));
    assert!(model.variables.contains(&Variable::Hdd));
    assert!(model.coefficients.iter().skip(1).all(|c| c.p_value <= MAX_VARIABLE_P), "{:?}", model.coefficients);
    assert!(model.r_squared > 0.9);
    model.validate(&synthetic(24 * 21, 4.0));
    let v = model.validation.as_ref().unwrap();
    assert!(v.n > 90 && v.g14.pass, "{v:?}");
}

#[test]
fn too_little_data_fails_with_a_reason() {
    let err = BaselineModel::fit(&synthetic(30, 1.0), &BaselineSpec::default()).unwrap_err();
    assert_eq!(err, BaselineError::InsufficientData { have: 30, need: 48, unit: "hourly" });
    let daily = BaselineSpec { granularity: Some(Granularity::Daily), ..Default::default() };
    assert!(matches!(BaselineModel::fit(&synthetic(10, 1.0), &daily), Err(BaselineError::InsufficientData { .. })));
}

#[test]
fn temperature_variables_need_temperatures() {
    let mut periods = synthetic(100, 1.0);
    for p in &mut periods {
        p.temperatures.clear();
    }
    let spec = BaselineSpec { variables: Some(vec![Variable::Cdd]), ..Default::default() };
    assert!(matches!(BaselineModel::fit(&periods, &spec), Err(BaselineError::MissingVariable("cdd", _))));
}

/// The demo factory's compressor follows production; a month of its
/// 15-minute history must give an hourly baseline that passes Guideline 14,
/// and predict power per reading close to what it measured.
#[test]
fn demo_compressor_baseline_passes_g14() {
    let factory = Factory::new(7);
    let m = &DEMO_MACHINES[0];
    let end = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
    let step = Duration::minutes(15);
    let samples: Vec<Sample> = (1..=96 * 30)
        .map(|i| factory.reading(m, end - Duration::days(30) + step * i, step))
        .map(|r| Sample {
            timestamp: r.timestamp,
            power_kw: r.power_kw,
            production_units: r.production_units,
            outdoor_temp_c: r.outdoor_temp_c,
        })
        .collect();
    let ivs = series::intervals(&samples);
    let periods = series::periods(&ivs, Granularity::Hourly);
    assert_eq!(periods.len(), 24 * 30);
    let mut model = BaselineModel::fit(&periods, &BaselineSpec::default()).unwrap();
    model.validate(&periods);
    assert!(model.quality.g14.pass && model.r_squared > 0.95, "{model:?}");
    assert!(model.validation.as_ref().is_some_and(|v| v.g14.pass));
    let worst = ivs.iter().map(|iv| (model.expected_power(iv) - iv.sample.power_kw).abs()).fold(0.0, f64::max);
    assert!(worst < 0.2 * m.rated_power_kw, "worst per-reading error {worst} kW");
}

/// A week of the machine left running at full load over the nights, in the
/// baseline period, must not bend the baseline: those periods are excluded
/// and the coefficients stay those of normal operation.
#[test]
fn anomalous_periods_are_excluded_from_the_fit() {
    let clean = synthetic(24 * 60, 1.0);
    let mut dirty = clean.clone();
    let nights: Vec<usize> = (0..dirty.len()).filter(|i| i / 24 < 7 && i % 24 < 5).collect();
    for &i in &nights {
        dirty[i].mean_kw += 150.0;
    }
    let spec = BaselineSpec { variables: Some(vec![Variable::Production, Variable::Hdd]), ..Default::default() };
    let reference = BaselineModel::fit(&clean, &spec).unwrap();
    let model = BaselineModel::fit(&dirty, &spec).unwrap();
    assert_eq!(model.excluded_periods, nights.len(), "the anomalous nights, and only them");
    for (got, want) in model.coefficients.iter().zip(&reference.coefficients) {
        assert!((got.estimate - want.estimate).abs() < 0.05 * want.estimate.abs().max(1.0), "{got:?} vs {want:?}");
    }
    assert!(model.quality.g14.pass);
}
