//! `enms bench notify`: event → webhook latency. The bench runs the webhook
//! receiver itself (`--listen`); the server must have a `[notify]` webhook
//! channel pointing at it and a rule for critical `system_alert`s
//! (bench/notify.sh writes that config). Each event is published with
//! `POST /api/v1/events` and timed until its notification arrives, one at
//! a time, on one clock. Alongside, the same receiver's floor: a bare POST
//! from this process to it (loopback HTTP and JSON, nothing of enms).

use std::time::{Duration, Instant};

use axum::extract::State;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::cli::BenchNotifyArgs;

type BoxError = Box<dyn std::error::Error>;

const WAIT: Duration = Duration::from_secs(10);

async fn take(State(tx): State<mpsc::Sender<(Instant, Value)>>, body: axum::body::Bytes) -> &'static str {
    let at = Instant::now();
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    // Bounded: a bench that stops reading drops, it does not grow.
    let _ = tx.try_send((at, v));
    "{}"
}

pub async fn run(args: BenchNotifyArgs) -> Result<(), BoxError> {
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    let receiver_url = format!("http://{}/floor", listener.local_addr()?);
    let (tx, mut rx) = mpsc::channel(1024);
    let app = axum::Router::new().fallback(axum::routing::post(take)).with_state(tx);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let base = args.url.trim_end_matches('/');
    let http = reqwest::Client::new();
    let (mut latency, mut accepted, mut floor, mut lost) = (Vec::new(), Vec::new(), Vec::new(), 0usize);
    let run = uuid::Uuid::new_v4().simple().to_string();
    for i in 0..args.events {
        // The floor: the same receiver, a bare POST of a similar body.
        let sent = Instant::now();
        http.post(&receiver_url).json(&json!({"floor": i, "pad": "x".repeat(600)})).send().await?.error_for_status()?;
        let floor_ms = sent.elapsed().as_secs_f64() * 1e3;
        while let Ok((_, v)) = rx.try_recv() {
            debug_assert!(v.get("floor").is_some());
        }
        floor.push(floor_ms);

        let message = format!("bench {run} {i}");
        let event = json!({"type": "system_alert", "data": {"alert_type": "bench", "message": message, "severity": "critical"}});
        let sent = Instant::now();
        let answer = http.post(format!("{base}/api/v1/events")).json(&event).send().await?;
        if !answer.status().is_success() {
            return Err(format!("event {i} refused: {}", answer.text().await?).into());
        }
        accepted.push(sent.elapsed().as_secs_f64() * 1e3);
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some((at, v))) if v.pointer("/facts/data/message").and_then(Value::as_str) == Some(&message) => {
                    latency.push(at.duration_since(sent).as_secs_f64() * 1e3);
                    break;
                }
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => {
                    lost += 1;
                    break;
                }
            }
        }
    }
    server.abort();
    for v in [&mut latency, &mut accepted, &mut floor] {
        v.sort_by(f64::total_cmp);
    }
    let pct = |v: &[f64], q: f64| {
        if v.is_empty() { f64::NAN } else { v[((q * (v.len() - 1) as f64).round() as usize).min(v.len() - 1)] }
    };
    println!("events published:       {}, notifications received {}, lost {lost}", args.events, latency.len());
    for (name, v) in [
        ("event published → webhook received (ms)", &latency),
        ("event published → HTTP 202 (ms)        ", &accepted),
        ("floor: bare POST to the receiver (ms)  ", &floor),
    ] {
        println!(
            "{name}: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
            pct(v, 0.5),
            pct(v, 0.9),
            pct(v, 0.99),
            pct(v, 1.0)
        );
    }
    Ok(())
}
