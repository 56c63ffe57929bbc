//! Detection on data we did not simulate: anomaly models trained over a
//! chosen past period, many signals, detection jobs over a year, the alarm
//! budget, and bad input on every new parameter.

use chrono::{DateTime, Duration, TimeZone, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestServer, assert_error};
use crate::wsclient::Ws;

/// A pump's year of 15-minute readings from 2025-01-01 (imported history):
/// power follows a day/night pattern, `extra` carries current, pressure and
/// vibration. Every 500th reading from the 20,000th on has a vibration fault.
fn pump_year(machine: &str, days: i64) -> Vec<Value> {
    let t0 = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).single().expect("time");
    (0..days * 96)
        .map(|i| {
            let ts = t0 + Duration::minutes(15 * (i + 1));
            let hour = chrono::Timelike::hour(&ts);
            let busy = (6..22).contains(&hour);
            let wobble = ((i * 7919) % 41) as f64 / 40.0 - 0.5;
            let kw = if busy { 30.0 } else { 8.0 } + wobble;
            let fault = i >= 20_000 && i % 500 == 0;
            let vibration = 0.2 + 0.01 * ((i * 31) % 17) as f64 / 17.0 + if fault { 0.5 } else { 0.0 };
            json!({"machine_id": machine, "timestamp": ts.to_rfc3339(), "power_kw": kw, "energy_kwh": kw / 4.0,
                   "production_units": if busy { 10.0 } else { 0.0 },
                   "extra": {"current_a": kw / 0.4 + 0.1 * wobble, "pressure_bar": 2.0 + kw / 100.0 + 0.02 * wobble,
                             "vibration_g": vibration, "volts": 230.0}})
        })
        .collect()
}

/// A machine with an id fixed by `n`: its forest is seeded by its id, so
/// the model, and what it flags, are the same in every run.
pub(crate) async fn machine(s: &TestServer, name: &str, n: u32) -> String {
    let id = format!("de7ec700-0000-0000-0000-{n:012}");
    let (status, body) = s.post("/api/v1/machines", &json!({"id": id, "name": name, "type": "pump"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    id
}

pub(crate) async fn ingest(s: &TestServer, rows: Vec<Value>) {
    for chunk in rows.chunks(10_000) {
        let (status, body) = s.post("/api/v1/readings", &json!({"readings": chunk})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

pub(crate) async fn jobs_of(s: &TestServer, machine: &str) -> Value {
    s.get(&format!("/api/v1/training/jobs?machine_id={machine}")).await.1
}

/// Events of one job until it completes.
pub(crate) async fn job_events(ws: &mut Ws, job: &str) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let e = ws.next_json().await;
        if e["data"]["job_id"] != job {
            continue;
        }
        let done = e["type"] == "training_completed";
        out.push(e);
        if done {
            return out;
        }
    }
}

pub(crate) fn time(v: &Value) -> DateTime<Utc> {
    v.as_str().and_then(enms_core::timestamp::parse).expect("a time")
}

#[tokio::test]
async fn an_anomaly_model_trains_on_a_chosen_past_period_and_judges_many_signals() {
    let s = TestServer::start().await;
    let pump = machine(&s, "Pump-7", 7).await;
    ingest(&s, pump_year(&pump, 40)).await;
    let (mut ws, _) = Ws::connect(&s, "/api/v1/ws/training").await;
    // By default: the 14 days up to the newest reading, not the clock.
    let features = json!(["extra.current_a", "extra.pressure_bar", "extra.vibration_g"]);
    let (status, job) =
        s.post(&format!("/api/v1/anomaly/train/{pump}"), &json!({"features": features, "contamination": 0.01})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let events = job_events(&mut ws, job["id"].as_str().expect("id")).await;
    let done = &events.last().expect("completed")["data"];
    assert_eq!(done["status"], "completed", "{done}");
    let metrics = &done["metrics"];
    assert_eq!(metrics["signals"], features);
    assert_eq!(
        time(&metrics["period_end"]),
        Utc.with_ymd_and_hms(2025, 2, 10, 0, 0, 0).unwrap() + Duration::milliseconds(1)
    );
    assert_eq!(metrics["training_rows"], 14 * 96);
    assert!(metrics["training_flagged_share"].as_f64().expect("share") <= 0.01, "{metrics}");
    let (_, model) = s.get(&format!("/api/v1/models/{}", metrics["model_id"].as_str().expect("id"))).await;
    assert_eq!(model["metrics"]["training_flagged_share"], metrics["training_flagged_share"], "the model shows it");

    // A chosen period in the past, and a streamed vibration fault named by its signal.
    let body = json!({"start": "2025-01-05T00:00:00Z", "end": "2025-01-19T00:00:00Z", "features": features});
    let (status, job) = s.post(&format!("/api/v1/anomaly/train/{pump}"), &body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let done = job_events(&mut ws, job["id"].as_str().expect("id")).await;
    let metrics = &done.last().expect("completed")["data"]["metrics"];
    assert_eq!(time(&metrics["period_start"]), Utc.with_ymd_and_hms(2025, 1, 5, 0, 0, 0).unwrap());
    assert_eq!(metrics["training_rows"], 14 * 96, "{metrics}");
    let mut next = pump_year(&pump, 41).split_off(40 * 96);
    next[10]["extra"]["vibration_g"] = json!(0.9);
    let (status, body) = s.post("/api/v1/readings", &json!({"readings": next})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, found) = s.get(&format!("/api/v1/anomaly/recent?machine_id={pump}")).await;
    let found = found.as_array().expect("list");
    assert_eq!(found.len(), 1, "one fault, one finding: {found:?}");
    assert_eq!(found[0]["metric"], "extra.vibration_g");
    assert_eq!(found[0]["value"], 0.9);
    assert!((found[0]["expected_value"].as_f64().expect("expected") - 0.205).abs() < 0.02, "{}", found[0]);
    let score = found[0]["anomaly_score"].as_f64().expect("score");
    assert!((0.99..=1.0).contains(&score), "score {score}");
    s.stop().await;
}

/// A model the database calls active is used at once, even by an
/// instance whose live detectors have not heard of it yet (here a second
/// server on the same database, which never sees the first one's
/// `model_updated`): scores and the model list agree.
#[tokio::test]
async fn a_model_activated_elsewhere_scores_at_once_here() {
    let dir = tempfile::tempdir().expect("temp dir");
    let a = TestServer::start_in(dir.path(), |_| {}).await;
    let b = TestServer::start_in(dir.path(), |_| {}).await;
    let pump = machine(&a, "Pump-11", 11).await;
    ingest(&a, pump_year(&pump, 20)).await;
    let window = "start=2025-01-20T00:00:00Z&end=2025-01-20T06:00:00Z";
    assert_error(
        &b.get(&format!("/api/v1/machines/{pump}/scores?{window}")).await,
        StatusCode::CONFLICT,
        "no_active_model",
    );
    let (mut ws, _) = Ws::connect(&a, "/api/v1/ws/training").await;
    let (status, job) = a.post(&format!("/api/v1/anomaly/train/{pump}"), &json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let done = job_events(&mut ws, job["id"].as_str().expect("id")).await;
    let model_id = done.last().expect("completed")["data"]["metrics"]["model_id"].clone();
    let (_, models) = b.get(&format!("/api/v1/models?machine_id={pump}&model_type=anomaly")).await;
    assert_eq!(models[0]["active"], true, "{models}");
    let (status, scores) = b.get(&format!("/api/v1/machines/{pump}/scores?{window}")).await;
    assert_eq!(status, StatusCode::OK, "the listed active model scores: {scores}");
    assert_eq!(scores["model_id"], model_id);
    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn anomaly_training_refuses_bad_input_and_stores_nothing() {
    let s = TestServer::start().await;
    let pump = machine(&s, "Pump-8", 8).await;
    ingest(&s, pump_year(&pump, 15)).await;
    let train = |body: Value| {
        let s = &s;
        let pump = pump.clone();
        async move { s.post(&format!("/api/v1/anomaly/train/{pump}"), &body).await }
    };
    let e = assert_error(
        &train(json!({"start": "2025-01-10T00:00:00Z", "end": "2025-01-09T00:00:00Z"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_range",
    );
    assert_eq!(e["field"], "start");
    let e = assert_error(
        &train(json!({"start": "2025-01-01T00:00:00Z", "end": "2025-01-01T12:00:00Z"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "insufficient_data",
    );
    let message = e["message"].as_str().expect("message");
    assert!(message.contains("holds 47 readings") && message.contains("at least 100"), "{message}");
    assert_error(
        &train(json!({"start": "2024-01-01T00:00:00Z", "end": "2024-02-01T00:00:00Z"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "insufficient_data",
    );
    let e = assert_error(
        &train(json!({"features": ["voltage"]})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_feature",
    );
    assert!(e["message"].as_str().expect("message").contains("\"voltage\""), "{e}");
    let e = assert_error(
        &train(json!({"features": ["extra.vibration_g", "extra.volts"]})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_feature",
    );
    assert!(e["message"].as_str().expect("message").contains("extra.volts"), "constant, named: {e}");
    let e = assert_error(
        &train(json!({"features": ["extra.flow_l"]})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_feature",
    );
    assert!(e["message"].as_str().expect("message").contains("extra.flow_l"), "{e}");
    for c in [0.0, 0.7, -0.1] {
        let e =
            assert_error(&train(json!({"contamination": c})).await, StatusCode::UNPROCESSABLE_ENTITY, "out_of_range");
        assert_eq!(e["field"], "contamination");
    }
    let e =
        assert_error(&train(json!({"granularity": "daily"})).await, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    assert_eq!(e["field"], "granularity", "a baseline setting is not an anomaly model's");
    assert_error(&train(json!({"features": 3})).await, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    let (status, _) = s.post("/api/v1/anomaly/train/00000000-0000-0000-0000-000000000009", &json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let trigger =
        format!("/api/v1/model-performance/retrain/trigger?model_type=anomaly&machine_id={pump}&contamination=0.9");
    assert_error(&s.post(&trigger, &json!(null)).await, StatusCode::UNPROCESSABLE_ENTITY, "out_of_range");
    let trigger = format!(
        "/api/v1/model-performance/retrain/trigger?model_type=anomaly&machine_id={pump}&start=2025-01-03T00:00:00Z&end=2025-01-02T00:00:00Z"
    );
    assert_error(&s.post(&trigger, &json!(null)).await, StatusCode::UNPROCESSABLE_ENTITY, "invalid_range");
    assert_eq!(jobs_of(&s, &pump).await, json!([]), "no job stored for any refusal");
    // The trigger takes the period and the budget too.
    let trigger = format!(
        "/api/v1/model-performance/retrain/trigger?model_type=anomaly&machine_id={pump}&start=2025-01-02T00:00:00Z&end=2025-01-09T00:00:00Z&contamination=0.02"
    );
    let (status, out) = s.post(&trigger, &json!(null)).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    let (_, job) = s.get(&format!("/api/v1/training/jobs/{}", out["training_job_id"].as_str().expect("id"))).await;
    assert_eq!(
        (time(&job["params"]["start"]), job["params"]["contamination"].clone()),
        (Utc.with_ymd_and_hms(2025, 1, 2, 0, 0, 0).unwrap(), json!(0.02))
    );
    s.stop().await;
}

/// A year of one machine: a detection job with progress events, its result
/// fetchable from the job, the alarm budget kept and the faults found as
/// episodes.
#[tokio::test]
async fn a_year_of_detection_runs_as_a_job_with_progress_and_a_fetchable_result() {
    let s = TestServer::start().await;
    let pump = machine(&s, "Pump-9", 9).await;
    let mut year = pump_year(&pump, 365);
    // Eight spikes in a row: one episode. Two lone spikes elsewhere.
    for i in 0..8 {
        year[30_000 + i]["power_kw"] = json!(90.0 + i as f64);
    }
    year[25_000]["power_kw"] = json!(95.0);
    year[33_000]["power_kw"] = json!(96.0);
    ingest(&s, year).await;
    let (mut ws, _) = Ws::connect(&s, "/api/v1/ws/training").await;
    let body = json!({"machine_id": pump, "start": "2025-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z",
                      "contamination": 0.01});
    let (status, job) = s.post("/api/v1/anomaly/detect", &body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!(job["model_type"], "detection");
    let id = job["id"].as_str().expect("id").to_owned();
    let (status, _) = s.post("/api/v1/anomaly/detect", &body).await;
    assert_eq!(status, StatusCode::CONFLICT, "one detection job per machine at a time");
    let events = job_events(&mut ws, &id).await;
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().expect("type")).collect();
    assert_eq!(kinds.first(), Some(&"training_started"), "{kinds:?}");
    assert!(kinds.iter().filter(|k| **k == "training_progress").count() >= 2, "{kinds:?}");
    assert_eq!(events.last().expect("done")["data"]["status"], "completed", "{events:?}");
    let (_, job) = s.get(&format!("/api/v1/training/jobs/{id}")).await;
    let r = &job["metrics"];
    assert_eq!(r["readings_analyzed"], 365 * 96, "{r}");
    let flagged = r["anomalies_detected"].as_u64().expect("count");
    assert!(flagged <= 365 * 96 / 100, "within the budget: {flagged}");
    assert!(r["by_severity"].is_object() && r["by_type"].is_object(), "{r}");
    let episodes = r["episodes"].as_array().expect("episodes");
    let run = episodes
        .iter()
        .find(|e| e["count"] == 8)
        .unwrap_or_else(|| panic!("the eight spikes are one episode: {episodes:#?}"));
    assert_eq!(run["anomaly_type"], "spike");
    assert_eq!(run["anomaly_ids"].as_array().map(Vec::len), Some(8));
    assert!(run["actual_kwh"].as_f64() > run["expected_kwh"].as_f64(), "{run}");
    // The job stored its episodes: the same ids as in its result.
    let (_, stored) = s.get(&format!("/api/v1/anomaly/episodes?machine_id={pump}&limit=500")).await;
    let stored = stored.as_array().expect("list");
    assert_eq!(stored.len() as u64, r["episodes_detected"].as_u64().expect("count"), "{stored:?}");
    assert!(stored.iter().any(|e| e["id"] == run["id"] && e["count"] == 8 && e["source"] == "batch"));
    let lone = |i: i64| Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap() + Duration::minutes(15 * (i + 1));
    for i in [25_000, 33_000] {
        assert!(episodes.iter().any(|e| time(&e["start"]) == lone(i)), "spike {i} found");
    }
    println!("a year judged in {} ms of server time", r["took_ms"]);
    s.stop().await;
}

/// Measured on these files when the test was written (F1 0.695, FAR 22.8 %),
/// less a margin. The FAR target of issue 20 is 15 %; see BENCHMARKS.md.
const F1_FLOOR: f64 = 0.6;

/// SKAB (a real pump testbed, labelled): the benchmark's protocol on the
/// eight `valve2`/`valve1` files named here, through the server — train on
/// each file's first 400 rows, stream the rest, score the saved findings.
/// `bench/skab.sh` runs all 34 files beside scikit-learn.
#[tokio::test]
async fn skab_valve_faults_are_found_within_the_false_alarm_budget() {
    let root = std::env::var("ENMS_SKAB_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/skab"));
    assert!(root.is_dir(), "SKAB data not found at {} (set ENMS_SKAB_DIR)", root.display());
    const SENSORS: [&str; 8] = [
        "Accelerometer1RMS",
        "Accelerometer2RMS",
        "Current",
        "Pressure",
        "Temperature",
        "Thermocouple",
        "Voltage",
        "Volume_Flow_RateRMS",
    ];
    let s = TestServer::start().await;
    let (mut ws, _) = Ws::connect(&s, "/api/v1/ws/training").await;
    let (mut tp, mut fp, mut fn_, mut tn) = (0usize, 0usize, 0usize, 0usize);
    let files = [
        "valve2/0.csv",
        "valve2/1.csv",
        "valve2/2.csv",
        "valve2/3.csv",
        "valve1/0.csv",
        "valve1/1.csv",
        "valve1/2.csv",
        "valve1/3.csv",
    ];
    for (n, file) in files.into_iter().enumerate() {
        let text = std::fs::read_to_string(root.join(file)).expect("SKAB file");
        // Fixed ids: a machine's forest is seeded by its id, so the figures
        // are the same in every run.
        let machine = format!("5ab00000-0000-0000-0000-00000000000{n}");
        let (status, body) =
            s.post("/api/v1/machines", &json!({"id": machine, "name": format!("skab-{file}"), "type": "pump"})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let rows: Vec<(Value, bool)> = text
            .lines()
            .skip(1)
            .map(|line| {
                let f: Vec<&str> = line.split(';').collect();
                let v: Vec<f64> = f[1..=9].iter().map(|x| x.parse().expect("number")).collect();
                let ts = chrono::NaiveDateTime::parse_from_str(f[0], "%Y-%m-%d %H:%M:%S").expect("time").and_utc();
                let kw = (v[2] * v[6] / 1000.0).max(0.0);
                let extra: serde_json::Map<String, Value> =
                    SENSORS.iter().zip(&v).map(|(n, x)| ((*n).to_owned(), json!(x))).collect();
                let r = json!({"machine_id": machine, "timestamp": ts.to_rfc3339(), "power_kw": kw,
                               "energy_kwh": kw / 3600.0, "extra": extra});
                (r, v[8] > 0.5)
            })
            .collect();
        let (head, rest) = rows.split_at(400);
        ingest(&s, head.iter().map(|(r, _)| r.clone()).collect()).await;
        let end = time(&head[399].0["timestamp"]) + Duration::seconds(1);
        let body = json!({"start": head[0].0["timestamp"], "end": end.to_rfc3339(), "contamination": 0.01,
                          "features": SENSORS.iter().map(|n| format!("extra.{n}")).collect::<Vec<_>>()});
        let (status, job) = s.post(&format!("/api/v1/anomaly/train/{machine}"), &body).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{job}");
        let done = job_events(&mut ws, job["id"].as_str().expect("id")).await;
        assert_eq!(done.last().expect("done")["data"]["status"], "completed", "{done:?}");
        for chunk in rest.chunks(50) {
            ingest(&s, chunk.iter().map(|(r, _)| r.clone()).collect()).await;
        }
        let (_, found) = s.get(&format!("/api/v1/anomaly/recent?machine_id={machine}&limit=1000")).await;
        let flagged: std::collections::HashSet<DateTime<Utc>> =
            found.as_array().expect("list").iter().map(|a| time(&a["timestamp"])).collect();
        for (r, label) in rest {
            match (flagged.contains(&time(&r["timestamp"])), *label) {
                (true, true) => tp += 1,
                (true, false) => fp += 1,
                (false, true) => fn_ += 1,
                (false, false) => tn += 1,
            }
        }
    }
    let f1 = 2.0 * tp as f64 / (2 * tp + fp + fn_) as f64;
    let far = fp as f64 / (fp + tn) as f64;
    let mar = fn_ as f64 / (fn_ + tp) as f64;
    println!(
        "SKAB, 8 valve files: F1 {f1:.3}, FAR {:.1} %, MAR {:.1} % (tp {tp}, fp {fp}, fn {fn_}, tn {tn})",
        100.0 * far,
        100.0 * mar
    );
    assert!(f1 >= F1_FLOOR, "F1 {f1:.3}");
    assert!(far <= 0.30, "false-alarm rate {:.1} %", 100.0 * far);
    s.stop().await;
}

/// 20 days of 15-minute readings to 2025-01-21 with Gaussian noise (σ 0.5 kW)
/// around 30 kW by day and 8 kW by night, from a seeded generator.
pub(crate) fn noisy_days(machine: &str, days: i64) -> Vec<Value> {
    shifted_days(machine, 0, days, 8.0, 0.0)
}

/// `days` days from day `from` (2025-01-01 is day 0): production and 30 kW
/// from 06 to 22, `night_kw` otherwise, plus `extra_kw` throughout, with
/// Gaussian noise (σ 0.5 kW) from a generator seeded by the day.
pub(crate) fn shifted_days(machine: &str, from: i64, days: i64, night_kw: f64, extra_kw: f64) -> Vec<Value> {
    let t0 = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).single().expect("time");
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15 ^ (from as u64).wrapping_mul(0xA24B_AED4_963E_E407);
    let mut uniform = move || {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (from * 96..(from + days) * 96)
        .map(|i| {
            let ts = t0 + Duration::minutes(15 * (i + 1));
            let busy = (6..22).contains(&chrono::Timelike::hour(&ts));
            let gauss = (-2.0 * uniform().ln()).sqrt() * (std::f64::consts::TAU * uniform()).cos();
            let kw = if busy { 30.0 } else { night_kw } + extra_kw + 0.5 * gauss;
            json!({"machine_id": machine, "timestamp": ts.to_rfc3339(), "power_kw": kw, "energy_kwh": kw / 4.0,
                   "production_units": if busy { 10.0 } else { 0.0 }})
        })
        .collect()
}

/// Trains the machine's anomaly model on its last 14 days of data and waits.
pub(crate) async fn retrain(s: &TestServer, ws: &mut Ws, machine: &str) -> Value {
    let (status, job) = s.post(&format!("/api/v1/anomaly/train/{machine}"), &json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let done = job_events(ws, job["id"].as_str().expect("id")).await;
    let data = done.last().expect("done")["data"].clone();
    assert_eq!(data["status"], "completed", "{data}");
    data["metrics"].clone()
}

/// Streaming: eight flagged readings in a row are one episode — one
/// `anomaly_detected` when it opens, one more when it turns critical, one
/// `anomaly_updated` when the machine has been normal for the quiet stretch —
/// while all eight readings are saved.
#[tokio::test]
async fn a_streamed_fault_is_one_episode_that_escalates_and_ends() {
    let s = TestServer::start().await;
    let m = machine(&s, "Press-3", 3).await;
    ingest(&s, noisy_days(&m, 20)).await;
    let (mut training, _) = Ws::connect(&s, "/api/v1/ws/training").await;
    let (status, job) = s.post(&format!("/api/v1/anomaly/train/{m}"), &json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let done = job_events(&mut training, job["id"].as_str().expect("id")).await;
    assert_eq!(done.last().expect("done")["data"]["status"], "completed", "{done:?}");
    let (mut ws, _) = Ws::connect(&s, &format!("/api/v1/ws/anomalies?machine_id={m}")).await;
    // 2025-01-21 10:00 onwards, daytime: expected 30 kW.
    let t0 = Utc.with_ymd_and_hms(2025, 1, 21, 10, 0, 0).single().expect("time");
    let kws = [31.85, 31.9, 31.88, 31.86, 31.92, 31.87, 60.0, 31.89, 30.1, 29.9, 30.0, 30.2, 29.8];
    let rows: Vec<Value> = kws
        .iter()
        .enumerate()
        .map(|(i, kw)| {
            json!({"machine_id": m, "timestamp": (t0 + Duration::minutes(15 * i as i64)).to_rfc3339(),
                   "power_kw": kw, "energy_kwh": kw / 4.0, "production_units": 10.0})
        })
        .collect();
    for r in rows {
        let (status, body) = s.post("/api/v1/readings", &json!({"readings": [r]})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let events = ws.events(3).await;
    let kinds: Vec<(&str, &str, bool)> = events
        .iter()
        .map(|e| {
            let d = &e["data"];
            (e["type"].as_str().unwrap_or(""), d["severity"].as_str().unwrap_or(""), d["details"]["escalated"] == true)
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("anomaly_detected", "warning", false),
            ("anomaly_detected", "critical", true),
            ("anomaly_updated", "critical", false)
        ],
        "{events:#?}"
    );
    let episode = &events[2]["data"]["details"]["episode"];
    assert_eq!((episode["count"].clone(), episode["open"].clone()), (json!(8), json!(false)), "{episode}");
    assert_eq!(episode["id"], events[0]["data"]["details"]["episode"]["id"], "one episode throughout");
    assert_eq!(time(&episode["start"]), t0);
    assert_eq!(time(&episode["end"]), t0 + Duration::minutes(15 * 7));
    let (_, saved) = s.get(&format!("/api/v1/anomaly/recent?machine_id={m}")).await;
    assert_eq!(saved.as_array().map(Vec::len), Some(8), "every flagged reading is saved: {saved}");
    // The episode is stored, with the readings it holds.
    let (status, stored) = s.get(&format!("/api/v1/anomaly/episodes?machine_id={m}")).await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    let stored = stored.as_array().expect("list");
    assert_eq!(stored.len(), 1, "{stored:?}");
    let e = &stored[0];
    assert_eq!(
        (e["id"].clone(), e["count"].clone(), e["open"].clone()),
        (episode["id"].clone(), json!(8), json!(false))
    );
    assert_eq!((e["severity"].as_str(), e["source"].as_str()), (Some("critical"), Some("stream")));
    assert_eq!(e["readings"].as_array().map(Vec::len), Some(8), "{e}");
    assert_eq!(time(&e["readings"][0]["timestamp"]), t0, "oldest first");
    let (_, critical) = s.get(&format!("/api/v1/anomaly/episodes?machine_id={m}&severity=critical&open=false")).await;
    assert_eq!(critical.as_array().map(Vec::len), Some(1));
    // Acknowledging the episode acknowledges its readings; bad input changes nothing.
    let ack = format!("/api/v1/anomaly/episodes/{}/acknowledge", e["id"].as_str().expect("id"));
    assert_eq!(e["acknowledged"], false);
    for (body, field) in
        [(json!({"by": " "}), "by"), (json!({"note": "x".repeat(2001)}), "note"), (json!({"colour": 1}), "colour")]
    {
        let (status, out) = s.post(&ack, &body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
        assert!(out["error"]["field"].as_str().is_some_and(|f| f.contains(field)), "{out}");
    }
    assert_error(
        &s.post("/api/v1/anomaly/episodes/x/acknowledge", &json!({})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_id",
    );
    let unknown = "/api/v1/anomaly/episodes/00000000-0000-0000-0000-000000000009/acknowledge";
    assert_error(&s.post(unknown, &json!({})).await, StatusCode::NOT_FOUND, "not_found");
    let (_, open) = s.get(&format!("/api/v1/anomaly/recent?machine_id={m}&acknowledged=false")).await;
    assert_eq!(open.as_array().map(Vec::len), Some(8), "a refused acknowledgement stores nothing");
    let (status, acked) = s.post(&ack, &json!({"by": "alice", "note": "valve reseated"})).await;
    assert_eq!(status, StatusCode::OK, "{acked}");
    assert_eq!(acked["acknowledged"], true, "{acked}");
    let readings = acked["readings"].as_array().expect("readings");
    assert_eq!(readings.len(), 8);
    assert!(readings.iter().all(|r| r["acknowledged_by"] == "alice" && r["note"] == "valve reseated"), "{acked}");
    let (_, open) = s.get(&format!("/api/v1/anomaly/recent?machine_id={m}&acknowledged=false")).await;
    assert_eq!(open.as_array().map(Vec::len), Some(0));
    for bad in [
        "since=2025-01-22T00:00:00Z&until=2025-01-21T00:00:00Z",
        "open=maybe",
        "severity=normal",
        "limit=0",
        "machine_id=x",
    ] {
        let (status, body) = s.get(&format!("/api/v1/anomaly/episodes?{bad}")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
        assert!(body["error"]["field"].is_string(), "{bad}: {body}");
    }
    // Scores of the window: in [0, 1], the fault's readings highest.
    let (status, scores) =
        s.get(&format!("/api/v1/machines/{m}/scores?start=2025-01-21T09:00:00Z&end=2025-01-21T14:00:00Z")).await;
    assert_eq!(status, StatusCode::OK, "{scores}");
    let points = scores["scores"].as_array().expect("scores");
    assert_eq!(points.len(), 13);
    assert!(points.iter().all(|p| (0.0..=1.0).contains(&p["score"].as_f64().expect("score"))));
    let peak = points.iter().max_by(|a, b| a["score"].as_f64().partial_cmp(&b["score"].as_f64()).expect("cmp"));
    assert_eq!(time(&peak.expect("peak")["timestamp"]), t0 + Duration::minutes(15 * 6));
    assert_eq!(scores["model_id"], done.last().expect("done")["data"]["metrics"]["model_id"]);
    for bad in [
        "start=2025-01-22T00:00:00Z&end=2025-01-21T00:00:00Z",
        "start=2024-01-01T00:00:00Z&end=2025-01-21T00:00:00Z",
        "start=yesterday",
    ] {
        let (status, body) = s.get(&format!("/api/v1/machines/{m}/scores?{bad}")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
    }
    let other = s.create_machine("No-Model").await;
    assert_error(&s.get(&format!("/api/v1/machines/{other}/scores")).await, StatusCode::CONFLICT, "no_active_model");
    s.stop().await;
}
