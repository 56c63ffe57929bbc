use chrono::{Duration, TimeZone, Utc};

use super::*;
use crate::series::{Sample, intervals};

/// Four weeks of 15-minute readings: 10 kW idle, 10 + 0.5·production when
/// producing (06–22 on weekdays), with small deterministic noise.
fn history(days: i64) -> Vec<Sample> {
    let t0 = Utc.with_ymd_and_hms(2026, 2, 2, 0, 0, 0).unwrap();
    (1..=days * 96)
        .map(|i| {
            let ts = t0 + Duration::minutes(15 * i);
            let h = (i % 96) / 4;
            let weekday = (i / 96) % 7 < 5;
            let units = if weekday && (6..22).contains(&h) { 25.0 + (i % 5) as f64 } else { 0.0 };
            let noise = ((i * 7919) % 41) as f64 / 40.0 - 0.5;
            Sample {
                timestamp: ts,
                power_kw: 10.0 + 2.0 * units + noise,
                production_units: Some(units),
                outdoor_temp_c: Some(8.0),
            }
        })
        .collect()
}

fn model(rows: &[Interval]) -> AnomalyModel {
    AnomalyModel::train(rows, None, &ForestParams { seed: 5, ..Default::default() }).unwrap()
}

#[test]
fn normal_readings_stay_normal_and_a_spike_is_critical() {
    let rows = intervals(&history(28));
    let m = model(&rows);
    let mut recent = Recent::default();
    let normal = rows
        .iter()
        .skip(500)
        .take(200)
        .filter(|iv| m.judge(iv, &Expectation::Profile, &mut recent).anomaly_type.is_some())
        .count();
    assert!(normal <= 2, "{normal} of 200 normal readings flagged");
    let mut spike = rows[700];
    spike.sample.power_kw *= 2.5;
    let f = m.judge(&spike, &Expectation::Profile, &mut recent);
    assert_eq!(f.anomaly_type, Some(AnomalyType::Spike));
    assert_eq!(f.severity, Severity::Critical);
    assert!((f.expected_kw - rows[700].sample.power_kw).abs() < 5.0);
}

#[test]
fn load_without_production_is_off_hours() {
    let rows = intervals(&history(28));
    let m = model(&rows);
    let mut quiet = *rows.iter().find(|iv| !iv.operating() && iv.sample.timestamp.hour() == 2).unwrap();
    quiet.sample.power_kw = 45.0;
    let f = m.judge(&quiet, &Expectation::Profile, &mut Recent::default());
    assert_eq!(f.anomaly_type, Some(AnomalyType::OffHours));
}

#[test]
fn a_repeated_value_while_running_is_stuck() {
    let rows = intervals(&history(28));
    let m = model(&rows);
    let mut recent = Recent::default();
    let running: Vec<&Interval> = rows.iter().filter(|iv| iv.operating()).take(STUCK_RUN).collect();
    let mut last = None;
    for iv in running {
        let mut iv = *iv;
        iv.sample.power_kw = 42.5;
        last = Some(m.judge(&iv, &Expectation::Profile, &mut recent));
    }
    assert_eq!(last.unwrap().anomaly_type, Some(AnomalyType::Stuck));
}

#[test]
fn too_few_rows_fail_cleanly() {
    let rows = intervals(&history(1));
    let err = AnomalyModel::train(&rows[..50], None, &ForestParams::default()).unwrap_err();
    assert_eq!(err, DetectError::InsufficientData { have: 50, need: MIN_TRAINING_ROWS });
}

#[test]
fn a_model_survives_a_json_round_trip() {
    let rows = intervals(&history(28));
    let m = model(&rows);
    let text = serde_json::to_string(&m).unwrap();
    let back: AnomalyModel = serde_json::from_str(&text).unwrap();
    assert_eq!(back, m);
}

/// Like [`history`], but the noise is ±6 % of the load, as meters and
/// processes make it: ±0.6 kW idle, ±4 kW at full load.
fn proportional_history(days: i64) -> Vec<Sample> {
    history(days)
        .into_iter()
        .enumerate()
        .map(|(i, mut s)| {
            let level = s.power_kw.round();
            s.power_kw = level * (1.0 + 0.06 * (((i * 7919) % 41) as f64 / 20.0 - 1.0));
            s
        })
        .collect()
}

/// σ follows the load: 7 kW off a running machine is within its ordinary
/// wobble (2.5 σ at its load; one σ pooled over all loads would make it 5),
/// 7 kW on top of its idle draw is an anomaly.
#[test]
fn the_same_deviation_is_normal_at_full_load_and_an_anomaly_at_idle() {
    let rows = intervals(&proportional_history(28));
    let m = model(&rows);
    let judge = |iv: &Interval| m.judge(iv, &Expectation::Profile, &mut Recent::default());
    let busy: Vec<Interval> = rows.iter().filter(|iv| iv.operating()).skip(300).take(100).copied().collect();
    let flagged = busy
        .iter()
        .map(|iv| {
            let mut iv = *iv;
            iv.sample.power_kw = judge(&iv).expected_kw - 7.0;
            judge(&iv)
        })
        .filter(|f| f.anomaly_type.is_some())
        .count();
    assert_eq!(flagged, 0, "7 kW below expected at ~62 kW flagged {flagged} times of 100");
    let mut idle = *rows.iter().find(|iv| !iv.operating() && iv.sample.timestamp.hour() == 2).unwrap();
    idle.sample.power_kw = judge(&idle).expected_kw + 7.0;
    let f = judge(&idle);
    assert_eq!((f.anomaly_type, f.severity), (Some(AnomalyType::OffHours), Severity::Critical), "{f:?}");
}

/// Below half a percent of full load a deviation is not worth a finding,
/// however steady the idle draw was in training.
#[test]
fn a_deviation_below_the_full_load_floor_is_normal() {
    let mut samples = history(28);
    for s in samples.iter_mut().filter(|s| s.production_units == Some(0.0)) {
        s.power_kw = 0.3;
    }
    let rows = intervals(&samples);
    let m = model(&rows);
    assert!(m.sigma_floor_kw > 0.25 && m.sigma_floor_kw < 0.4, "floor {} kW", m.sigma_floor_kw);
    let mut idle = *rows.iter().find(|iv| !iv.operating() && iv.sample.timestamp.hour() == 3).unwrap();
    idle.sample.power_kw = 0.6;
    assert_eq!(m.judge(&idle, &Expectation::Profile, &mut Recent::default()).severity, Severity::Normal);
    idle.sample.power_kw = 3.0;
    assert_ne!(m.judge(&idle, &Expectation::Profile, &mut Recent::default()).severity, Severity::Normal);
}
