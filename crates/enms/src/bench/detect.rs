//! `enms bench detect`: streaming detection latency — from sending a reading
//! to `POST /api/v1/readings` until its `anomaly_detected` arrives on a
//! WebSocket (`/api/v1/ws/anomalies`), one reading at a time, same clock.
//!
//! The machine needs an active anomaly model (the demo trains one per
//! machine at its first start). Each timed reading is a gross spike (far
//! above any normal load), so every one must be reported; a missing report
//! counts as lost. Anomalies are announced per episode, so after each spike
//! the bench sends four readings at the machine's newest normal power
//! (untimed), which end the episode before the next spike opens another.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

use crate::cli::BenchDetectArgs;

type BoxError = Box<dyn std::error::Error>;

const WAIT: Duration = Duration::from_secs(5);

pub async fn run(args: BenchDetectArgs) -> Result<(), BoxError> {
    let base = args.url.trim_end_matches('/');
    let ws_url = format!("{}/api/v1/ws/anomalies?machine_id={}", base.replacen("http", "ws", 1), args.machine);
    let (mut ws, _) = connect_async(ws_url).await?;
    let http = reqwest::Client::new();
    let (normal_kw, units_per_h, temp, mut last) = newest(&http, base, &args.machine).await?;
    // Production for an interval of `ms` at the machine's normal rate: the
    // model judges rates, so a reading 1 ms after the last must carry 1 ms
    // worth of units, or its rate (and the expected power) is absurd.
    let units = |ms: f64| units_per_h.map(|u| u * ms / 3.6e6);
    let (mut latencies, mut accepted, mut lost) = (Vec::new(), Vec::new(), 0usize);
    for i in 0..args.readings {
        let ts = chrono::Utc::now().max(last + chrono::Duration::milliseconds(1));
        let gap_ms = (ts - last).num_milliseconds().max(1) as f64;
        let reading = json!({"machine_id": args.machine, "timestamp": ts.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                             "power_kw": args.power_kw, "energy_kwh": args.power_kw * gap_ms / 3.6e6,
                             "production_units": units(gap_ms), "outdoor_temp_c": 12.0});
        let sent = Instant::now();
        let resp = http.post(format!("{base}/api/v1/readings")).json(&json!({"readings": [reading]})).send().await?;
        if !resp.status().is_success() {
            return Err(format!("reading {i} refused: {}", resp.text().await?).into());
        }
        accepted.push(sent.elapsed().as_secs_f64() * 1e3);
        let want = ts.timestamp_millis();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let msg = tokio::time::timeout_at(deadline, ws.next()).await;
            let Ok(Some(Ok(Message::Text(text)))) = msg else {
                if msg.is_err() {
                    lost += 1;
                    break;
                }
                continue;
            };
            let v: Value = serde_json::from_str(&text)?;
            let at = v["data"]["timestamp"].as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
            if v["type"] == "anomaly_detected" && at.is_some_and(|t| t.timestamp_millis() == want) {
                latencies.push(sent.elapsed().as_secs_f64() * 1e3);
                break;
            }
        }
        // End the episode: the quiet stretch at the machine's normal power.
        // One millisecond apart, at the machine's normal power and rate of
        // production; each a little different, as four equal values in a row
        // while producing are a stuck meter.
        let quiet: Vec<Value> = (1..=4)
            .map(|k| {
                let at = ts + chrono::Duration::milliseconds(k);
                let kw = normal_kw * (1.0 + 0.0005 * k as f64);
                json!({"machine_id": args.machine, "timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                       "power_kw": kw, "energy_kwh": kw / 3.6e6,
                       "production_units": units(1.0), "outdoor_temp_c": temp})
            })
            .collect();
        last = ts + chrono::Duration::milliseconds(4);
        http.post(format!("{base}/api/v1/readings"))
            .json(&json!({"readings": quiet}))
            .send()
            .await?
            .error_for_status()?;
    }
    report(&mut latencies, &mut accepted, lost, args.readings);
    Ok(())
}

/// The machine's newest reading: its power, its production per hour (over
/// the interval since the reading before), its temperature and its time.
async fn newest(
    http: &reqwest::Client,
    base: &str,
    machine: &str,
) -> Result<(f64, Option<f64>, Option<f64>, chrono::DateTime<chrono::Utc>), BoxError> {
    let start = (chrono::Utc::now() - chrono::Duration::hours(2)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let url = format!("{base}/api/v1/machines/{machine}/readings?start={start}");
    let points: Value = http.get(url).send().await?.error_for_status()?.json().await?;
    let points = points["points"].as_array().ok_or("no points in the answer")?;
    let [.., before, last] = points.as_slice() else {
        return Err("the machine has fewer than two readings in the last two hours".into());
    };
    let at = |p: &Value| p["timestamp"].as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
    let (Some(t0), Some(t1)) = (at(before), at(last)) else { return Err("a reading without a time".into()) };
    let hours = (t1 - t0).num_milliseconds() as f64 / 3.6e6;
    let kw = last["power_kw"].as_f64().ok_or("a reading without power")?;
    let rate = last["production_units"].as_f64().filter(|_| hours > 0.0).map(|u| u / hours);
    Ok((kw, rate, last["outdoor_temp_c"].as_f64(), t1.with_timezone(&chrono::Utc)))
}

fn pct(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v[((q * (v.len() - 1) as f64).round() as usize).min(v.len() - 1)]
}

fn report(latencies: &mut [f64], accepted: &mut [f64], lost: usize, total: usize) {
    latencies.sort_by(f64::total_cmp);
    accepted.sort_by(f64::total_cmp);
    println!("readings sent:          {total}, anomalies received {}, lost {lost}", latencies.len());
    println!(
        "reading sent → anomaly_detected received (ms): p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
        pct(latencies, 0.5),
        pct(latencies, 0.9),
        pct(latencies, 0.99),
        pct(latencies, 1.0)
    );
    println!(
        "reading sent → HTTP 200 (ms):                p50 {:.2}  p99 {:.2}",
        pct(accepted, 0.5),
        pct(accepted, 0.99)
    );
}
