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
    AnomalyModel::train(rows, &AnomalyModel::power_values(rows), None, &ModelSpec { seed: 5, ..Default::default() })
        .unwrap()
}

/// Judges a reading of a power-only model.
fn judge(m: &AnomalyModel, iv: &Interval, recent: &mut Recent) -> Finding {
    m.judge(iv, &[iv.sample.power_kw], &Expectation::Profile, recent)
}

#[test]
fn normal_readings_stay_normal_and_a_spike_is_critical() {
    let rows = intervals(&history(28));
    let m = model(&rows);
    let mut recent = Recent::default();
    let normal = rows.iter().skip(500).take(200).filter(|iv| judge(&m, iv, &mut recent).anomaly_type.is_some()).count();
    assert!(normal <= 2, "{normal} of 200 normal readings flagged");
    let mut spike = rows[700];
    spike.sample.power_kw *= 2.5;
    let f = judge(&m, &spike, &mut recent);
    assert_eq!(f.anomaly_type, Some(AnomalyType::Spike));
    assert_eq!(f.severity, Severity::Critical);
    assert!((f.expected - rows[700].sample.power_kw).abs() < 5.0);
}

#[test]
fn load_without_production_is_off_hours() {
    let rows = intervals(&history(28));
    let m = model(&rows);
    let mut quiet = *rows.iter().find(|iv| !iv.operating() && iv.sample.timestamp.hour() == 2).unwrap();
    quiet.sample.power_kw = 45.0;
    let f = judge(&m, &quiet, &mut Recent::default());
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
        last = Some(judge(&m, &iv, &mut recent));
    }
    assert_eq!(last.unwrap().anomaly_type, Some(AnomalyType::Stuck));
}

#[test]
fn too_few_rows_fail_cleanly() {
    let rows = intervals(&history(1));
    let rows = &rows[..50];
    let err = AnomalyModel::train(rows, &AnomalyModel::power_values(rows), None, &ModelSpec::default()).unwrap_err();
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
    let judge = |iv: &Interval| judge(&m, iv, &mut Recent::default());
    let busy: Vec<Interval> = rows.iter().filter(|iv| iv.operating()).skip(300).take(100).copied().collect();
    let flagged = busy
        .iter()
        .map(|iv| {
            let mut iv = *iv;
            iv.sample.power_kw = judge(&iv).expected - 7.0;
            judge(&iv)
        })
        .filter(|f| f.anomaly_type.is_some())
        .count();
    assert_eq!(flagged, 0, "7 kW below expected at ~62 kW flagged {flagged} times of 100");
    let mut idle = *rows.iter().find(|iv| !iv.operating() && iv.sample.timestamp.hour() == 2).unwrap();
    idle.sample.power_kw = judge(&idle).expected + 7.0;
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
    let floor = m.signals[0].sigma_floor;
    assert!(floor > 0.25 && floor < 0.4, "floor {floor} kW");
    let mut idle = *rows.iter().find(|iv| !iv.operating() && iv.sample.timestamp.hour() == 3).unwrap();
    idle.sample.power_kw = 0.6;
    assert_eq!(judge(&m, &idle, &mut Recent::default()).severity, Severity::Normal);
    idle.sample.power_kw = 3.0;
    assert_ne!(judge(&m, &idle, &mut Recent::default()).severity, Severity::Normal);
}

/// Four weeks of [`history`] with `share` of the readings turned into spikes
/// of 1.5–3 × their load, spread evenly.
fn with_spikes(share: f64) -> Vec<Sample> {
    let mut s = history(28);
    let every = (1.0 / share).round() as usize;
    for (i, x) in s.iter_mut().enumerate().filter(|(i, _)| i % every == 3) {
        x.power_kw *= 1.5 + (i % 7) as f64 / 4.0;
    }
    s
}

/// Contamination is an alarm budget: on training data with more anomalies
/// than the budget, exactly the budget is flagged by every rule together.
#[test]
fn the_training_flagged_share_equals_the_contamination() {
    let rows = intervals(&with_spikes(0.03));
    for c in [0.005, 0.01, 0.02] {
        let spec = ModelSpec { contamination: c, seed: 1, ..Default::default() };
        let m = AnomalyModel::train(&rows, &AnomalyModel::power_values(&rows), None, &spec).unwrap();
        let mut recent = Recent::default();
        let flagged = rows.iter().filter(|iv| judge(&m, iv, &mut recent).anomaly_type.is_some()).count();
        let budget = (c * rows.len() as f64).floor() as usize;
        assert_eq!(m.training_flagged, budget, "contamination {c}");
        assert_eq!(flagged, budget, "judging the training rows again, contamination {c}");
        assert!(m.training_critical <= budget / 10 + 1);
    }
}

/// A clean machine is flagged less than its budget: nothing within 3 σ is
/// a finding, whatever the budget.
#[test]
fn a_clean_machine_uses_less_than_its_budget() {
    let rows = intervals(&history(28));
    let spec = ModelSpec { contamination: 0.05, seed: 1, ..Default::default() };
    let m = AnomalyModel::train(&rows, &AnomalyModel::power_values(&rows), None, &spec).unwrap();
    assert!(m.training_rate() < 0.01, "{} flagged", m.training_flagged);
}

/// Scores lie in [0, 1] and grow with the forest's anomaly score and with
/// the deviation.
#[test]
fn scores_are_in_the_unit_interval_and_monotone() {
    let rows = intervals(&with_spikes(0.02));
    let m = model(&rows);
    let cal = &m.calibration;
    for m2 in [0.0, 4.0, 9.0, 40.0, 1e4] {
        let mut last = -1.0;
        for i in 0..=100 {
            let s = cal.score(0.3 + 0.007 * i as f64, m2);
            assert!((0.0..=1.0).contains(&s) && s >= last, "score {s} after {last} at M² {m2}");
            last = s;
        }
    }
    for a in [0.35, 0.5, 0.7] {
        let mut last = -1.0;
        for i in 0..200 {
            let s = cal.score(a, i as f64 * 0.5);
            assert!(s >= last);
            last = s;
        }
    }
    let base = rows[700];
    let mut last = -1.0;
    for factor in [1.0, 1.2, 1.5, 2.0, 3.0, 5.0] {
        let mut iv = base;
        iv.sample.power_kw *= factor;
        let s = judge(&m, &iv, &mut Recent::default()).score;
        assert!((0.0..=1.0).contains(&s) && s >= last, "×{factor}: {s} after {last}");
        last = s;
    }
    assert!(last > 0.999, "a 5 × spike scores {last}");
}

/// A pump judged on current, pressure and vibration: a bearing fault shows
/// in vibration alone, and the finding names it.
#[test]
fn a_multi_signal_model_names_the_contributing_signal() {
    let rows = intervals(&history(28));
    let signals: Vec<Signal> = ["extra.current_a", "extra.pressure_bar", "extra.vibration_g"]
        .iter()
        .map(|s| Signal::parse(s).unwrap())
        .collect();
    let pump = |i: usize, iv: &Interval| {
        let wobble = ((i * 7919) % 41) as f64 / 40.0 - 0.5;
        let current = iv.sample.power_kw / 0.4;
        [current, 2.0 + current / 100.0 + 0.02 * wobble, 0.2 + 0.01 * ((i * 31) % 17) as f64 / 17.0]
    };
    let values: Vec<f64> = rows.iter().enumerate().flat_map(|(i, iv)| pump(i, iv)).collect();
    let spec = ModelSpec { signals: Some(signals), contamination: 0.01, seed: 3 };
    let m = AnomalyModel::train(&rows, &values, None, &spec).unwrap();
    assert_eq!(m.signal_names(), ["extra.current_a", "extra.pressure_bar", "extra.vibration_g"]);
    let i = 900;
    let mut v = pump(i, &rows[i]);
    v[2] = 0.6;
    let f = m.judge(&rows[i], &v, &Expectation::Profile, &mut Recent::default());
    assert!(f.anomaly_type.is_some(), "{f:?}");
    assert_eq!(f.signal, "extra.vibration_g");
    assert!((f.value - 0.6).abs() < 1e-12 && (f.expected - 0.205).abs() < 0.02, "{f:?}");
    let normal = m.judge(&rows[i], &pump(i, &rows[i]), &Expectation::Profile, &mut Recent::default());
    assert_eq!(normal.anomaly_type, None);
}

#[test]
fn missing_and_constant_features_are_refused_by_name() {
    let rows = intervals(&history(28));
    let signals = vec![Signal::Power, Signal::parse("extra.flow").unwrap(), Signal::parse("extra.volts").unwrap()];
    let values: Vec<f64> = rows.iter().flat_map(|iv| [iv.sample.power_kw, f64::NAN, 230.0]).collect();
    let spec = ModelSpec { signals: Some(signals.clone()), ..Default::default() };
    assert_eq!(
        AnomalyModel::train(&rows, &values, None, &spec).unwrap_err(),
        DetectError::MissingFeature(vec!["extra.flow".into()])
    );
    let values: Vec<f64> = rows.iter().flat_map(|iv| [iv.sample.power_kw, 1.0 + iv.sample.power_kw, 230.0]).collect();
    assert_eq!(
        AnomalyModel::train(&rows, &values, None, &spec).unwrap_err(),
        DetectError::ConstantFeature(vec!["extra.volts".into()])
    );
    let bad = ModelSpec { contamination: 0.6, ..Default::default() };
    let power = AnomalyModel::power_values(&rows);
    assert_eq!(AnomalyModel::train(&rows, &power, None, &bad).unwrap_err(), DetectError::Contamination(0.6));
}

/// Eight flagged readings in a row are one episode, opened once; it
/// escalates when a reading turns critical and ends after the quiet stretch.
#[test]
fn consecutive_findings_form_one_episode_that_escalates_and_ends() {
    use episode::{Change, Tracker};
    let rows = intervals(&with_spikes(0.03));
    let m = model(&rows);
    let probe = |iv: &Interval, over: f64| {
        let mut iv = *iv;
        iv.sample.power_kw = judge(&m, &iv, &mut Recent::default()).expected + over;
        (iv, judge(&m, &iv, &mut Recent::default()))
    };
    // The smallest excess that is a warning at the first reading, and one
    // that is critical.
    let warning = (1..400)
        .map(|i| i as f64 * 0.25)
        .find(|over| probe(&rows[1002], *over).1.severity == Severity::Warning)
        .expect("some excess is a warning");
    assert_eq!(probe(&rows[1007], 400.0).1.severity, Severity::Critical);
    let mut tracker = Tracker::new(4);
    let mut recent = Recent::default();
    let mut changes = Vec::new();
    for (n, iv) in rows[1000..1020].iter().enumerate() {
        let mut iv = *iv;
        if (2..10).contains(&n) {
            // Slightly different each time, or the meter would look stuck.
            let over = if n == 7 { 400.0 } else { warning * (1.05 + 0.01 * n as f64) };
            iv = probe(&iv, over).0;
        }
        let f = judge(&m, &iv, &mut recent);
        if (2..10).contains(&n) {
            assert_eq!(f.anomaly_type, Some(AnomalyType::Spike), "reading {n}: {f:?}");
        }
        changes.extend(tracker.push(iv.sample.timestamp, iv.hours, &f));
    }
    let opened: Vec<_> = changes.iter().filter(|c| matches!(c, Change::Opened(_))).collect();
    assert_eq!(opened.len(), 1, "{changes:#?}");
    assert!(matches!(opened[0], Change::Opened(e) if e.severity == Severity::Warning), "{changes:#?}");
    let escalated: Vec<_> = changes.iter().filter(|c| matches!(c, Change::Escalated(_))).collect();
    assert!(matches!(escalated[..], [Change::Escalated(e)] if e.severity == Severity::Critical), "{changes:#?}");
    let closed: Vec<_> =
        changes.iter().filter_map(|c| if let Change::Closed(e) = c { Some(e) } else { None }).collect();
    assert_eq!(closed.len(), 1);
    let e = closed[0];
    assert_eq!((e.count, e.severity, e.open), (8, Severity::Critical, false));
    assert_eq!(
        (e.start, e.end, e.peak_at),
        (rows[1002].sample.timestamp, rows[1009].sample.timestamp, rows[1007].sample.timestamp)
    );
    assert!(e.actual_kwh.unwrap() > e.expected_kwh.unwrap());
    assert_eq!(tracker.open().count(), 0);
}
