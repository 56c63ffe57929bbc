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
