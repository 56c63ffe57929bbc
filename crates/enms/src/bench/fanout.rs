//! `enms bench fanout`: opens N WebSocket clients, publishes M events at R/s
//! through `POST /api/v1/events`, each carrying its sequence number and send
//! time, and reports delivery latency (publish call → client receipt, same
//! clock), deliveries per second, lost and duplicated deliveries, connect
//! time, and — given the server's pid — its CPU time per delivery and RSS.
//!
//! Run it on a different core from the server (`bench/fanout.sh` pins the
//! server to core 0 and this client to core 1) so the figures are the
//! server's.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{StreamExt, stream};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::cli::BenchFanoutArgs;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type BoxError = Box<dyn std::error::Error>;

/// How long clients may wait for stragglers after the last publish.
const GRACE: Duration = Duration::from_secs(10);
const MACHINE: &str = "c0000000-0000-0000-0000-000000000001";

pub async fn run(args: BenchFanoutArgs) -> Result<(), BoxError> {
    if args.clients == 0 || args.connect_concurrency == 0 || args.rate.is_nan() || args.rate <= 0.0 {
        return Err("--clients, --connect-concurrency and --rate must be positive".into());
    }
    let kind = event_type(&args.stream)?;
    let ws_url = format!("{}/api/v1/ws/{}", args.url.trim_end_matches('/').replacen("http", "ws", 1), args.stream);
    let rss_before = args.pid.and_then(rss_kb);

    let started = Instant::now();
    let clients = connect_all(&ws_url, args.clients, args.connect_concurrency).await?;
    let connect_s = started.elapsed().as_secs_f64();
    // Let the server settle its allocations before reading memory.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_connected = args.pid.and_then(rss_kb);

    let (stop_tx, stop_rx) = watch::channel(false);
    let readers: Vec<_> = clients.into_iter().map(|ws| tokio::spawn(read(ws, args.events, stop_rx.clone()))).collect();
    let cpu_before = args.pid.and_then(cpu_seconds);
    let publish_started = Instant::now();
    publish(&args, kind).await?;
    let publish_s = publish_started.elapsed().as_secs_f64();
    let stopper = tokio::spawn(async move {
        tokio::time::sleep(GRACE).await;
        let _ = stop_tx.send(true);
    });
    let mut latencies = Vec::with_capacity(args.clients * args.events);
    let (mut delivered, mut duplicated, mut last_receipt) = (0usize, 0usize, publish_started);
    for reader in readers {
        let r = reader.await?;
        delivered += r.latencies_us.len();
        duplicated += r.duplicated;
        latencies.extend(r.latencies_us);
        last_receipt = last_receipt.max(r.last_receipt);
    }
    stopper.abort();
    let cpu_after = args.pid.and_then(cpu_seconds);
    let rss_after = args.pid.and_then(rss_kb);
    let delivery_s = (last_receipt - publish_started).as_secs_f64().max(1e-9);

    latencies.sort_unstable();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((p / 100.0) * (latencies.len() - 1) as f64).round() as usize;
        latencies[i] as f64 / 1000.0
    };
    let expected = args.clients * args.events;
    let cpu_s = cpu_before.zip(cpu_after).map(|(a, b)| b - a);
    let report = json!({
        "clients": args.clients,
        "events": args.events,
        "rate": args.rate,
        "stream": args.stream,
        "connect_s": connect_s,
        "connections_per_s": args.clients as f64 / connect_s,
        "publish_s": publish_s,
        "expected": expected,
        "delivered": delivered,
        "lost": expected.saturating_sub(delivered),
        "duplicated": duplicated,
        "deliveries_per_s": delivered as f64 / delivery_s,
        "latency_ms": {"p50": pct(50.0), "p95": pct(95.0), "p99": pct(99.0), "max": pct(100.0)},
        "server": {
            "cpu_s": cpu_s,
            "cpu_us_per_delivery": cpu_s.filter(|_| delivered > 0).map(|c| c * 1e6 / delivered as f64),
            "cpu_utilisation": cpu_s.map(|c| c / delivery_s),
            "rss_kb_before": rss_before,
            "rss_kb_connected": rss_connected,
            "rss_kb_after": rss_after,
            "rss_kb_per_connection": rss_before.zip(rss_connected).map(|(a, b)| (b as f64 - a as f64) / args.clients as f64),
        },
    });
    if args.json {
        println!("{report}");
    } else {
        print_report(&report);
    }
    Ok(())
}

fn event_type(stream: &str) -> Result<&'static str, BoxError> {
    Ok(match stream {
        "dashboard" => "metric_updated",
        "anomalies" => "anomaly_detected",
        "training" => "training_progress",
        "events" => "system_alert",
        other => return Err(format!("unknown stream {other:?}: dashboard, anomalies, training or events").into()),
    })
}

async fn connect_all(url: &str, n: usize, concurrency: usize) -> Result<Vec<Ws>, BoxError> {
    // Client messages are tiny; keep 10,000 clients' buffers small too.
    let config = WebSocketConfig::default().read_buffer_size(16 << 10).write_buffer_size(0);
    let results: Vec<Result<Ws, String>> = stream::iter(0..n)
        .map(|_| async move {
            let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
                .await
                .map_err(|e| format!("connect {url}: {e}"))?;
            // The `connection` message: the client is subscribed from here on.
            match ws.next().await {
                Some(Ok(Message::Text(_))) => Ok(ws),
                other => Err(format!("no connection message: {other:?}")),
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    results.into_iter().collect::<Result<Vec<_>, _>>().map_err(Into::into)
}

async fn publish(args: &BenchFanoutArgs, kind: &str) -> Result<(), BoxError> {
    let http = reqwest::Client::new();
    let base = args.publish_url.as_deref().unwrap_or(&args.url);
    let url = format!("{}/api/v1/events", base.trim_end_matches('/'));
    let filler = "x".repeat(args.payload_bytes);
    let start = tokio::time::Instant::now();
    for seq in 0..args.events {
        tokio::time::sleep_until(start + Duration::from_secs_f64(seq as f64 / args.rate)).await;
        let mut details = json!({"bench_seq": seq, "sent_us": now_us()});
        if !filler.is_empty() {
            details["filler"] = Value::String(filler.clone());
        }
        let resp = http.post(&url).json(&event(kind, seq, details)).send().await?;
        if !resp.status().is_success() {
            return Err(format!("publish {seq}: {} {}", resp.status(), resp.text().await.unwrap_or_default()).into());
        }
    }
    Ok(())
}

fn event(kind: &str, seq: usize, details: Value) -> Value {
    let data = match kind {
        "metric_updated" => {
            json!({"machine_id": MACHINE, "metric_name": "power_kw", "value": seq, "unit": "kW", "details": details})
        }
        "anomaly_detected" => {
            json!({"machine_id": MACHINE, "severity": "warning", "anomaly_type": "bench", "value": seq, "details": details})
        }
        "training_progress" => {
            json!({"job_id": "bench", "machine_id": MACHINE, "status": "running", "progress_pct": 50, "details": details})
        }
        _ => json!({"alert_type": "bench", "message": "bench", "severity": "info", "details": details}),
    };
    json!({"type": kind, "data": data})
}

struct ReaderResult {
    latencies_us: Vec<u32>,
    duplicated: usize,
    last_receipt: Instant,
}

/// Receives until every event arrived or the grace period ends.
async fn read(mut ws: Ws, events: usize, mut stop: watch::Receiver<bool>) -> ReaderResult {
    let mut seen = vec![false; events];
    let mut r = ReaderResult { latencies_us: Vec::with_capacity(events), duplicated: 0, last_receipt: Instant::now() };
    while r.latencies_us.len() < events {
        let msg = tokio::select! {
            m = ws.next() => m,
            _ = stop.changed() => break,
        };
        let Some(Ok(Message::Text(text))) = msg else {
            if matches!(msg, Some(Ok(Message::Ping(_) | Message::Pong(_)))) {
                continue;
            }
            break;
        };
        let received = now_us();
        let (Some(seq), Some(sent)) = (field(&text, "\"bench_seq\":"), field(&text, "\"sent_us\":")) else { continue };
        match seen.get_mut(seq as usize) {
            Some(s) if !*s => {
                *s = true;
                r.latencies_us.push(received.saturating_sub(sent).min(u32::MAX as u64) as u32);
                r.last_receipt = Instant::now();
            }
            Some(_) => r.duplicated += 1,
            None => {}
        }
    }
    let _ = ws.close(None).await;
    r
}

/// The integer after `key` in a JSON text, found without parsing the rest.
fn field(text: &str, key: &str) -> Option<u64> {
    let start = text.find(key)? + key.len();
    let digits: &str = &text[start..];
    let end = digits.find(|c: char| !c.is_ascii_digit()).unwrap_or(digits.len());
    digits[..end].parse().ok()
}

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// utime + stime of a process, in seconds, from `/proc/PID/stat`.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // After the command name: state is field 3, utime 14 and stime 15 (1-based).
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / USER_HZ)
}

/// Clock ticks per second in `/proc/PID/stat`: 100 on every Linux
/// architecture we run on.
const USER_HZ: f64 = 100.0;

fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn print_report(r: &Value) {
    let f = |v: &Value| v.as_f64().map_or("-".to_owned(), |x| format!("{x:.2}"));
    println!(
        "clients {} · events {} at {}/s on /ws/{}",
        r["clients"],
        r["events"],
        r["rate"],
        r["stream"].as_str().unwrap_or("")
    );
    println!("connect      {} s ({} connections/s)", f(&r["connect_s"]), f(&r["connections_per_s"]));
    println!(
        "delivered    {} of {} · lost {} · duplicated {}",
        r["delivered"], r["expected"], r["lost"], r["duplicated"]
    );
    println!("throughput   {} deliveries/s", f(&r["deliveries_per_s"]));
    let l = &r["latency_ms"];
    println!("latency ms   p50 {} · p95 {} · p99 {} · max {}", f(&l["p50"]), f(&l["p95"]), f(&l["p99"]), f(&l["max"]));
    let s = &r["server"];
    if !s["cpu_s"].is_null() {
        println!(
            "server       cpu {} s · {} µs/delivery · {} of a core",
            f(&s["cpu_s"]),
            f(&s["cpu_us_per_delivery"]),
            f(&s["cpu_utilisation"])
        );
        println!(
            "server RSS   {} KB before · {} KB connected · {} KB after · {} KB/connection",
            s["rss_kb_before"],
            s["rss_kb_connected"],
            s["rss_kb_after"],
            f(&s["rss_kb_per_connection"])
        );
    }
}
