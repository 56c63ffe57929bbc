//! `enms bench fanout`: opens N WebSocket clients, publishes M events at R/s
//! through `POST /api/v1/events`, each carrying its sequence number and send
//! time, and reports delivery latency, deliveries per second, lost and
//! duplicated deliveries, connect time, and — given the server's pid — its
//! CPU time per delivery and RSS.
//!
//! Latency is measured twice, on one clock, from the publish call: to the
//! moment the kernel put the message's packet in the client's socket
//! (`latency`, the server's delivery time) and to the moment the client read
//! it (`read latency`, which adds the benchmark's own queueing: 1000 clients
//! reading 100,000 messages a second keep one core mostly busy). Run it on
//! a different core from the server (`bench/fanout.sh` pins the server to
//! core 0 and this client to core 1) so the CPU figures are the server's.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{StreamExt, stream};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::raw_ws::{RawWs, Received, split_url};
use crate::cli::BenchFanoutArgs;

type BoxError = Box<dyn std::error::Error>;

/// How long clients may wait for stragglers after the last publish.
const GRACE: Duration = Duration::from_secs(10);
const MACHINE: &str = "c0000000-0000-0000-0000-000000000001";

pub async fn run(args: BenchFanoutArgs) -> Result<(), BoxError> {
    if args.clients == 0 || args.connect_concurrency == 0 || args.rate.is_nan() || args.rate <= 0.0 {
        return Err("--clients, --connect-concurrency and --rate must be positive".into());
    }
    let kind = event_type(&args.stream)?;
    let (host, prefix) = split_url(&args.url)?;
    let ws_path = format!("{prefix}/api/v1/ws/{}", args.stream);
    let rss_before = args.pid.and_then(rss_kb);

    let connect_cpu = (args.pid.and_then(cpu_seconds), cpu_seconds(std::process::id()));
    let started = Instant::now();
    let clients = connect_all(&host, &ws_path, args.clients, args.connect_concurrency).await?;
    let connect_s = started.elapsed().as_secs_f64();
    // CPU per handshake, server and this client: which side bounds connects.
    let per_connection_us =
        |before: Option<f64>, after: Option<f64>| before.zip(after).map(|(a, b)| (b - a) * 1e6 / args.clients as f64);
    let server_connect_us = per_connection_us(connect_cpu.0, args.pid.and_then(cpu_seconds));
    let client_connect_us = per_connection_us(connect_cpu.1, cpu_seconds(std::process::id()));
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
    let mut arrival = Vec::with_capacity(args.clients * args.events);
    let mut read = Vec::with_capacity(args.clients * args.events);
    let (mut delivered, mut duplicated, mut last_receipt) = (0usize, 0usize, publish_started);
    for reader in readers {
        let r = reader.await?;
        delivered += r.read_us.len();
        duplicated += r.duplicated;
        arrival.extend(r.arrival_us);
        read.extend(r.read_us);
        last_receipt = last_receipt.max(r.last_receipt);
    }
    stopper.abort();
    let cpu_after = args.pid.and_then(cpu_seconds);
    let rss_after = args.pid.and_then(rss_kb);
    let delivery_s = (last_receipt - publish_started).as_secs_f64().max(1e-9);
    let expected = args.clients * args.events;
    let cpu_s = cpu_before.zip(cpu_after).map(|(a, b)| b - a);
    let report = json!({
        "clients": args.clients,
        "events": args.events,
        "rate": args.rate,
        "stream": args.stream,
        "connect_s": connect_s,
        "connections_per_s": args.clients as f64 / connect_s,
        "connect_cpu_us_per_connection": {"server": server_connect_us, "client": client_connect_us},
        "publish_s": publish_s,
        "expected": expected,
        "delivered": delivered,
        "lost": expected.saturating_sub(delivered),
        "duplicated": duplicated,
        "deliveries_per_s": delivered as f64 / delivery_s,
        "latency_ms": percentiles(arrival),
        "read_latency_ms": percentiles(read),
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

async fn connect_all(host: &str, path: &str, n: usize, concurrency: usize) -> Result<Vec<RawWs>, BoxError> {
    let results: Vec<Result<RawWs, String>> = stream::iter(0..n)
        .map(|_| async move {
            let mut ws = RawWs::connect(host, path).await.map_err(|e| format!("connect {host}{path}: {e}"))?;
            // The `connection` message: the client is subscribed from here on.
            match ws.recv().await {
                Ok(Received::Message(m)) if find(m, br#""type":"connection""#).is_some() => Ok(ws),
                Ok(Received::Message(m)) => {
                    Err(format!("expected the connection message, got {}", String::from_utf8_lossy(m)))
                }
                Ok(Received::Closed) => Err("closed before the connection message".to_owned()),
                Err(e) => Err(format!("no connection message: {e}")),
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    results.into_iter().collect::<Result<Vec<_>, _>>().map_err(Into::into)
}

/// Publishes from a thread of its own: on the readers' runtime the publisher
/// would queue behind 1000 ready readers and fall behind its rate whenever
/// they keep the load core busy, measuring the benchmark instead of the
/// server.
async fn publish(args: &BenchFanoutArgs, kind: &'static str) -> Result<(), BoxError> {
    let base = args.publish_url.as_deref().unwrap_or(&args.url);
    let url = format!("{}/api/v1/events", base.trim_end_matches('/'));
    let filler = "x".repeat(args.payload_bytes);
    let (events, rate) = (args.events, args.rate);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let result = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt.block_on(publish_paced(&url, kind, events, rate, &filler)),
            Err(e) => Err(format!("publisher runtime: {e}")),
        };
        let _ = done_tx.send(result);
    });
    done_rx.await.map_err(|_| "the publisher thread panicked")?.map_err(Into::into)
}

async fn publish_paced(url: &str, kind: &str, events: usize, rate: f64, filler: &str) -> Result<(), String> {
    let http = reqwest::Client::new();
    let start = tokio::time::Instant::now();
    for seq in 0..events {
        tokio::time::sleep_until(start + Duration::from_secs_f64(seq as f64 / rate)).await;
        let mut details = json!({"bench_seq": seq, "sent_us": now_us()});
        if !filler.is_empty() {
            details["filler"] = Value::String(filler.to_owned());
        }
        let resp =
            http.post(url).json(&event(kind, seq, details)).send().await.map_err(|e| format!("publish {seq}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("publish {seq}: {} {}", resp.status(), resp.text().await.unwrap_or_default()));
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

/// p50/p95/p99/max in ms of latencies in µs.
fn percentiles(mut us: Vec<u32>) -> Value {
    us.sort_unstable();
    let pct = |p: f64| -> f64 {
        if us.is_empty() {
            return 0.0;
        }
        let i = ((p / 100.0) * (us.len() - 1) as f64).round() as usize;
        us[i] as f64 / 1000.0
    };
    json!({"p50": pct(50.0), "p95": pct(95.0), "p99": pct(99.0), "max": pct(100.0)})
}

struct ReaderResult {
    /// Publish call → the packet reached the client's socket (the kernel's
    /// receive time; the read time where the kernel gives none).
    arrival_us: Vec<u32>,
    /// Publish call → this client read the message.
    read_us: Vec<u32>,
    duplicated: usize,
    last_receipt: Instant,
}

/// Receives until every event arrived or the grace period ends.
async fn read(mut ws: RawWs, events: usize, mut stop: watch::Receiver<bool>) -> ReaderResult {
    let mut seen = vec![false; events];
    let mut r = ReaderResult {
        arrival_us: Vec::with_capacity(events),
        read_us: Vec::with_capacity(events),
        duplicated: 0,
        last_receipt: Instant::now(),
    };
    while r.read_us.len() < events {
        let text = tokio::select! {
            m = ws.recv() => match m {
                Ok(Received::Message(text)) => text,
                Ok(Received::Closed) | Err(_) => break,
            },
            _ = stop.changed() => break,
        };
        let received = now_us();
        let (Some(seq), Some(sent)) = (field(text, b"\"bench_seq\":"), field(text, b"\"sent_us\":")) else { continue };
        match seen.get_mut(seq as usize) {
            Some(s) if !*s => {
                *s = true;
                let since = |t: u64| t.saturating_sub(sent).min(u32::MAX as u64) as u32;
                r.arrival_us.push(since(ws.arrived_us().unwrap_or(received)));
                r.read_us.push(since(received));
                r.last_receipt = Instant::now();
            }
            Some(_) => r.duplicated += 1,
            None => {}
        }
    }
    let _ = ws.close().await;
    r
}

/// Where `needle` first occurs in `text`.
fn find(text: &[u8], needle: &[u8]) -> Option<usize> {
    text.windows(needle.len()).position(|w| w == needle)
}

/// The integer after `key` in a JSON text, found without parsing the rest.
fn field(text: &[u8], key: &[u8]) -> Option<u64> {
    let start = find(text, key)? + key.len();
    let digits = &text[start..];
    let end = digits.iter().position(|c| !c.is_ascii_digit()).unwrap_or(digits.len());
    std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
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
    let c = &r["connect_cpu_us_per_connection"];
    println!(
        "connect      {} s ({} connections/s) · CPU µs per connection: server {} · client {}",
        f(&r["connect_s"]),
        f(&r["connections_per_s"]),
        f(&c["server"]),
        f(&c["client"])
    );
    println!(
        "delivered    {} of {} · lost {} · duplicated {}",
        r["delivered"], r["expected"], r["lost"], r["duplicated"]
    );
    println!("throughput   {} deliveries/s", f(&r["deliveries_per_s"]));
    for (label, key) in [("latency ms  ", "latency_ms"), ("read ms     ", "read_latency_ms")] {
        let l = &r[key];
        println!("{label} p50 {} · p95 {} · p99 {} · max {}", f(&l["p50"]), f(&l["p95"]), f(&l["p99"]), f(&l["max"]));
    }
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
